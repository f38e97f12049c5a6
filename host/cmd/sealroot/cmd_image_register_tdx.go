package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
)

// imageRegisterTDX are the flags `image build --register --tee tdx` adds:
// how the launch's TDVF measures (its edk2 generation, the VMM's page
// order).
var imageRegisterTDX struct {
	generation, pageOrder string
}

func init() {
	c, _, _ := rootCmd.Find([]string{"image", "build"})
	fl := c.Flags()
	fl.StringVar(&imageRegisterTDX.generation, "tdvf-generation", measure.DefaultTDVFGeneration, "with --register --tee tdx: "+strings.TrimPrefix(tdvfGenerationUsage, "with --tee tdx and --kernel: "))
	fl.StringVar(&imageRegisterTDX.pageOrder, "tdx-page-order", measure.TDXSinglePass, "with --register --tee tdx: single-pass (upstream KVM/QEMU) or two-pass (earlier TDX patch sets)")
}

// checkTDXRegisterFlags vets the flags that compute a TDX policy (MRTD,
// RTMR1, RTMR2) at build time.
func checkTDXRegisterFlags(tee string) error {
	if tee != "tdx" {
		return nil
	}
	r, x := imageRegister, imageRegisterTDX
	switch {
	case r.firmware == "" || r.kernel == "" || r.initrd == "":
		return usageError("--register --tee tdx needs --firmware (the TDVF image), --kernel and --initrd of the launch: its policy holds MRTD, RTMR1 and RTMR2, computed from them")
	case r.machine != launch.MachinePC:
		return usageError("--machine %s: TDX launches use the %s machine", r.machine, launch.MachinePC)
	case !measure.CheckTDVFGeneration(x.generation):
		return usageError("--tdvf-generation %q: want %s (docs/measurement.md)", x.generation, strings.Join(measure.TDVFGenerations, " or "))
	case x.pageOrder != measure.TDXSinglePass && x.pageOrder != measure.TDXTwoPass:
		return usageError("--tdx-page-order %q: want %s or %s", x.pageOrder, measure.TDXSinglePass, measure.TDXTwoPass)
	}
	return nil
}

// tdxBuildPolicy adds to pf the MRTD, RTMR1 and RTMR2 that
// `sealroot launch --tee tdx` with the same firmware, kernel, initrd and
// --append will show, through the launcher's own RTMRInputs, and prints
// them to w.
func tdxBuildPolicy(w io.Writer, pf *policyFlagValues) error {
	r, x := imageRegister, imageRegisterTDX
	o := launch.Options{Kernel: r.kernel, Initrd: r.initrd, Append: r.appendArgs, Machine: r.machine,
		TEE: &launch.TEE{Kind: launch.TEETDX, Firmware: r.firmware}}
	in, err := o.RTMRInputs(x.generation)
	if err != nil {
		return err
	}
	fw, err := measure.ReadFirmware(r.firmware)
	if err != nil {
		return withStatus(1, err)
	}
	mrtd, err := measure.MRTD(fw, x.pageOrder)
	if err != nil {
		return withStatus(1, err)
	}
	r1, r2, err := measure.RTMRs(in)
	if err != nil {
		return withStatus(1, err)
	}
	fmt.Fprintf(w, "expected TDX MRTD: %x\nexpected TDX RTMR1: %x\nexpected TDX RTMR2: %x\n", mrtd, r1, r2)
	pf.measurements = append(pf.measurements, fmt.Sprintf("%x", mrtd))
	pf.rtmrs = []string{fmt.Sprintf("1=%x", r1), fmt.Sprintf("2=%x", r2)}
	return nil
}
