package main

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
)

const tdvfGenerationUsage = "with --tee tdx and --kernel: the TDVF's edk2 release, edk2-202508 (edk2-stable202508 or later) or edk2-202502 (edk2-stable202502 or 202505); both with QEMU 10.0+"

// runMeasureTDX prints MRTD and, with --kernel and --initrd, RTMR1 and
// RTMR2 of a QEMU+TDVF direct boot. MRTD stays the last line.
func runMeasureTDX(cmd *cobra.Command, f *measureTEEFlags, m measureCommon) error {
	tdvfGeneration := f.tdvfGeneration
	if f.firmware == "" {
		return usageError("--tee tdx needs --firmware FILE (a TDVF build)")
	}
	withCmdline := cmd.Flags().Changed("cmdline")
	switch {
	case m.kernel == "" && (m.initrd != "" || m.appendArgs != "" || withCmdline):
		return usageError("--initrd, --append and --cmdline are measured (into RTMR2) only with --kernel")
	case m.kernel != "" && m.initrd == "":
		return usageError("--tee tdx with --kernel needs --initrd: RTMR1 and RTMR2 are computed for a kernel and initrd given to QEMU")
	case withCmdline && m.appendArgs != "":
		return usageError("--cmdline and --append exclude each other")
	case m.kernel != "" && !measure.CheckTDVFGeneration(tdvfGeneration):
		return usageError("--tdvf-generation %q: want %s (docs/measurement.md)", tdvfGeneration, strings.Join(measure.TDVFGenerations, " or "))
	}
	fw, err := measure.ReadFirmware(f.firmware)
	if err != nil {
		return withStatus(1, err)
	}
	mrtd, err := measure.MRTD(fw, f.tdxPageOrder)
	if err != nil {
		return withStatus(1, err)
	}
	out := cmd.OutOrStdout()
	inputs := map[string]any{"tee": "tdx", "vmm": "qemu", "firmware": f.firmware, "page_order": f.tdxPageOrder}
	if m.kernel == "" {
		return printMeasurement(out, m.asJSON, "mrtd", mrtd[:], inputs)
	}
	in := measure.RTMRInputs{Kernel: m.kernel, Initrd: m.initrd, Cmdline: launch.Cmdline(m.appendArgs), Generation: tdvfGeneration}
	if withCmdline {
		in.Cmdline = f.cmdline
	}
	r1, r2, err := measure.RTMRs(in)
	if err != nil {
		return withStatus(1, err)
	}
	if m.asJSON {
		inputs["kernel"], inputs["initrd"], inputs["cmdline"], inputs["tdvf_generation"] = in.Kernel, in.Initrd, in.Cmdline, in.Generation
		inputs["mrtd"], inputs["rtmr1"], inputs["rtmr2"] = hex.EncodeToString(mrtd[:]), hex.EncodeToString(r1[:]), hex.EncodeToString(r2[:])
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(inputs)
	}
	_, err = fmt.Fprintf(out, "rtmr1 %x\nrtmr2 %x\n%x\n", r1, r2, mrtd)
	return err
}
