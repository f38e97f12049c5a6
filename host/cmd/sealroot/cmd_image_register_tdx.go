package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
)

// registerTDXFlags binds the flags `image build --register --tee tdx` adds:
// how the launch's TDVF measures (its edk2 generation, the VMM's page
// order).
func (r *imageRegisterFlags) registerTDXFlags(fl *pflag.FlagSet) {
	fl.StringVar(&r.tdvfGeneration, "tdvf-generation", measure.DefaultTDVFGeneration, "with --register --tee tdx: "+strings.TrimPrefix(tdvfGenerationUsage, "with --tee tdx and --kernel: "))
	fl.StringVar(&r.tdxPageOrder, "tdx-page-order", measure.TDXSinglePass, "with --register --tee tdx: single-pass (upstream KVM/QEMU) or two-pass (earlier TDX patch sets)")
}

// checkTDXRegisterFlags vets the flags that compute a TDX policy (MRTD,
// RTMR1, RTMR2) at build time.
func checkTDXRegisterFlags(r *imageRegisterFlags, tee string) error {
	if tee != "tdx" {
		return nil
	}
	switch {
	case r.firmware == "" || r.kernel == "" || r.initrd == "":
		return usageError("--register --tee tdx needs --firmware (the TDVF image), --kernel and --initrd of the launch: its policy holds MRTD, RTMR1 and RTMR2, computed from them")
	case r.machine != launch.MachinePC:
		return usageError("--machine %s: TDX launches use the %s machine", r.machine, launch.MachinePC)
	case !measure.CheckTDVFGeneration(r.tdvfGeneration):
		return usageError("--tdvf-generation %q: want %s (docs/measurement.md)", r.tdvfGeneration, strings.Join(measure.TDVFGenerations, " or "))
	case r.tdxPageOrder != measure.TDXSinglePass && r.tdxPageOrder != measure.TDXTwoPass:
		return usageError("--tdx-page-order %q: want %s or %s", r.tdxPageOrder, measure.TDXSinglePass, measure.TDXTwoPass)
	}
	return nil
}

// tdxBuildPolicy adds to pf the MRTD, RTMR1 and RTMR2 that
// `sealroot launch --tee tdx` with the same firmware, kernel, initrd and
// --append will show, through the launcher's own RTMRInputs, and prints
// them to w.
func tdxBuildPolicy(w io.Writer, r *imageRegisterFlags, pf *policyFlagValues) error {
	o := launch.Options{Kernel: r.kernel, Initrd: r.initrd, Append: r.appendArgs, Machine: r.machine,
		TEE: &launch.TEE{Kind: launch.TEETDX, Firmware: r.firmware}}
	in, err := o.RTMRInputs(r.tdvfGeneration)
	if err != nil {
		return err
	}
	fw, err := measure.ReadFirmware(r.firmware)
	if err != nil {
		return withStatus(1, err)
	}
	mrtd, err := measure.MRTD(fw, r.tdxPageOrder)
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
