package main

import (
	"github.com/spf13/pflag"

	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
)

// registerSNPFlags binds the --register flags of `image build` that compute
// an SNP or TDX launch measurement to r.
func (r *imageRegisterFlags) registerSNPFlags(fl *pflag.FlagSet) {
	fl.StringVar(&r.firmware, "firmware", "", "with --register --tee snp|tdx and --kernel/--initrd: the OVMF (snp) or TDVF (tdx) image sealroot launch will boot")
	fl.StringVar(&r.cpuType, "cpu-type", measure.DefaultCPUType, "with --register --tee snp: the vCPU model of the launch")
	fl.StringVar(&r.guestFeatures, "guest-features", "0x1", "with --register --tee snp: the VMSA's SEV_FEATURES (0x1; 0x21 with DebugSwap)")
	r.registerTDXFlags(fl)
}

// checkSNPRegisterFlags vets the flags that compute an SNP measurement at
// build time.
func checkSNPRegisterFlags(r *imageRegisterFlags, tee string) error {
	if r.firmware != "" && tee != "snp" && tee != "tdx" {
		return usageError("--firmware computes an SNP or TDX launch measurement: only with --tee snp or tdx")
	}
	if tee == "snp" && r.kernel != "" && r.firmware == "" {
		return usageError("--tee snp with --kernel and --initrd needs --firmware (the OVMF image the launch boots)")
	}
	if tee != "snp" {
		return nil
	}
	if _, err := measure.CPUSig(r.cpuType); err != nil {
		return usageError("--cpu-type: %v", err)
	}
	if _, err := measure.ParseUint(r.guestFeatures, 64); err != nil {
		return usageError("--guest-features %q: want a number such as 0x1", r.guestFeatures)
	}
	return nil
}

// snpBuildMeasurement computes the launch measurement of
// `sealroot launch --tee snp` with the same kernel, initrd, --append,
// firmware and vCPU model, and the vCPU count of the built config, through
// the launcher's own SNPInputs.
func snpBuildMeasurement(r *imageRegisterFlags, cpus int) ([48]byte, error) {
	features, _ := measure.ParseUint(r.guestFeatures, 64) // vetted by checkSNPRegisterFlags
	o := launch.Options{Kernel: r.kernel, Initrd: r.initrd, Append: r.appendArgs, CPUs: cpus,
		TEE: &launch.TEE{Kind: launch.TEESNP, Firmware: r.firmware, CPUType: r.cpuType}}
	in, err := o.SNPInputs(features)
	if err != nil {
		return [48]byte{}, err
	}
	return measure.SNP(in)
}
