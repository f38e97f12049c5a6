// Package tsm holds the guest-side hardware Attesters: AMD SEV-SNP, Intel TDX
// and Arm CCA. Each asks the kernel for evidence binding 64 bytes of
// report_data and returns it unmodified: the raw SNP report and its
// certificate table, the raw TDX quote, the CCA token.
//
// The kernel offers two interfaces. configfs-tsm (/sys/kernel/config/tsm/
// report, Linux 6.7+) serves all three TEEs; its "provider" attribute names
// the driver behind it (sev_guest, tdx_guest, arm_cca_guest). The older
// per-vendor character devices (/dev/sev-guest, /dev/tdx_guest) serve one
// each. An Attester uses configfs-tsm when its provider is the right one and
// falls back to the vendor device; it never uses another TEE's provider.
// New returns exactly the Attester for the TEE named and fails, naming the
// paths it looked at, when that TEE's interface is absent, so a guest whose
// config says "tdx" cannot quietly produce SNP evidence or none.
//
// go-configfs-tsm serves every configfs path (checking the provider
// attribute); the vendor devices are driven with go-sev-guest's and
// go-tdx-guest's ioctl structures (their linuxabi packages) by this
// package's own code (snpdev.go, tdxdev.go). The vendor libraries' client
// packages are not used: they convert reports to protobuf messages and so
// link the protobuf runtime into the guest init, over a megabyte of its
// initrd. Their QuoteProviders still fit Options for tests and hosts.
//
// The guest init mounts configfs with MountConfigfs before the first
// attestation: u-root's rootfs setup does not.
package tsm

import (
	"context"
	"fmt"

	"github.com/google/go-configfs-tsm/configfs/configfsi"

	"github.com/sealroot/sealroot/attest"
)

// Paths the Attesters look at, for error messages and docs.
const (
	ConfigfsDir  = "/sys/kernel/config"
	TSMReportDir = configfsi.TsmPrefix + "/report"
	SEVGuestPath = attest.DevSEVGuest
	TDXGuestPath = attest.DevTDXGuest
	providerSEV  = "sev_guest"
	providerTDX  = "tdx_guest"
	providerCCA  = "arm_cca_guest"
	providerCCA2 = "arm_cca" // module name after the driver's rename
)

// Options configure the Attesters. The zero value uses the real kernel
// interfaces; the provider fields exist for tests and unusual setups.
type Options struct {
	// VMPL is the SNP privilege level to request reports at (0-3).
	VMPL int
	// SNPQuoteProvider replaces the SNP provider selection (configfs, then
	// ioctl). When it is not an SNPLeveledQuoteProvider only VMPL 0 works.
	SNPQuoteProvider SNPQuoteProvider
	// TDXQuoteProvider replaces the TDX provider selection.
	TDXQuoteProvider TDXQuoteProvider
	// TSM replaces the configfs-tsm client (every configfs path); with it
	// set, the vendor devices are not tried.
	TSM configfsi.Client
}

// New returns the Attester for tee ("snp", "tdx" or "cca"). It fails when
// that TEE's kernel interface is missing; it never returns an Attester for
// another TEE.
func New(tee string, opts Options) (attest.Attester, error) {
	switch tee {
	case attest.TEESNP:
		return newSNP(opts)
	case attest.TEETDX:
		return newTDX(opts)
	case attest.TEECCA:
		return newCCA(opts)
	case attest.TEESim:
		return nil, fmt.Errorf("tsm: tee %q is the simulated secure processor, not hardware: use its own attester", tee)
	default:
		return nil, fmt.Errorf("tsm: tee %q has no hardware attester (want %s)", tee, attest.Names(func(t attest.TEEInfo) bool { return t.Hardware }))
	}
}

// ctxDone returns ctx's error, if any. The kernel calls cannot be
// interrupted, so cancellation is honoured before them only.
func ctxDone(ctx context.Context) error {
	if ctx == nil {
		return nil
	}
	return ctx.Err()
}
