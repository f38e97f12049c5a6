package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

// launchTEEFlags are the flags of `sealroot launch` for SEV-SNP and TDX.
type launchTEEFlags struct {
	firmware        string
	dryRun          bool
	snpPolicy       string
	cbitpos         int
	reducedPhysBits int
	cpuType         string
	quoteSocket     string
}

// register binds the flags of t to fl.
func (t *launchTEEFlags) register(fl *pflag.FlagSet) {
	fl.StringVar(&t.firmware, "firmware", "", "with --tee snp|tdx: the OVMF image (SNP: an AmdSev build with kernel hashes; TDX: a TDVF build)")
	fl.BoolVar(&t.dryRun, "dry-run", false, "print the QEMU command line (shell-quoted, one line) and exit without starting it")
	fl.StringVar(&t.snpPolicy, "snp-policy", fmt.Sprintf("%#x", launch.DefaultSNPPolicy), "with --tee snp: the guest policy")
	fl.IntVar(&t.cbitpos, "cbitpos", 0, "with --tee snp: the C-bit position (default: probed from this CPU)")
	fl.IntVar(&t.reducedPhysBits, "reduced-phys-bits", 0, "with --tee snp and --cbitpos: the physical address bits lost to memory encryption")
	fl.StringVar(&t.cpuType, "cpu-type", measure.DefaultCPUType, "with --tee snp: the QEMU vCPU model (it enters the launch measurement)")
	fl.StringVar(&t.quoteSocket, "quote-socket", launch.DefaultQuoteSocket, "with --tee tdx: the Quote Generation Service, unix:PATH or vsock:CID:PORT")
}

// checkTEELaunch rejects flags that do not apply to an SNP or TDX launch,
// and a disk built for another TEE (its init would look for another
// attestation device).
func checkTEELaunch(f *launchFlags, diskTEE string) error {
	switch {
	case f.simDir != "":
		return usageError("--sim-dir needs --tee sim")
	case f.accel != "auto" && f.accel != "kvm":
		return usageError("--tee %s runs under KVM only: --accel %s does not apply", f.tee, f.accel)
	case diskTEE != f.tee:
		return withStatus(event.StatusLaunchFailed, fmt.Errorf("--tee %s: the disk was built for tee %q (image build --tee %s)", f.tee, diskTEE, f.tee))
	}
	return nil
}

// newTEE builds the SNP or TDX launch for the disk whose config is
// rawConfig: HOST_DATA (SNP) or MRCONFIGID (TDX) binds that config's
// SHA-256, the digest the guest compares with its own.
func newTEE(f *launchTEEFlags, kind string, rawConfig []byte) (*launch.TEE, error) {
	if f.firmware == "" {
		return nil, usageError("--tee %s needs --firmware FILE", kind)
	}
	digest := diskconfig.HostData(rawConfig)
	t := &launch.TEE{Kind: kind, Firmware: f.firmware}
	if kind == launch.TEETDX {
		t.MRConfigID = launch.MRConfigID(digest)
		t.QuoteSocket = f.quoteSocket
		return t, nil
	}
	p, err := measure.ParseUint(f.snpPolicy, 64)
	if err != nil {
		return nil, usageError("--snp-policy %q: want a number such as 0x30000", f.snpPolicy)
	}
	if (f.cbitpos == 0) != (f.reducedPhysBits == 0) {
		return nil, usageError("--cbitpos and --reduced-phys-bits go together")
	}
	t.Policy, t.CBitPos, t.ReducedPhysBits, t.CPUType, t.HostData = p, f.cbitpos, f.reducedPhysBits, f.cpuType, digest
	return t, nil
}
