package tsm

import (
	"fmt"

	"github.com/google/go-sev-guest/abi"
	sevclient "github.com/google/go-sev-guest/client"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
)

// HeldSEVDevice is an SNP quote provider over a sev-guest device opened
// once (sevclient.OpenDevice), where go-sev-guest's ioctl provider opens
// /dev/sev-guest for every report. It keeps working after the node is
// removed: the guest init opens it before the seal phase takes
// /dev/sev-guest away from the workload, and serves runtime evidence
// through it (init/runtimeev). Reports are laid out as the ioctl provider
// lays them out: the report, then the extended certificate table when the
// host supplies certificates.
type HeldSEVDevice struct {
	Device sevclient.Device
}

// IsSupported reports whether a device is held.
func (h HeldSEVDevice) IsSupported() bool { return h.Device != nil }

// GetRawQuote is GetRawQuoteAtLevel at VMPL 0.
func (h HeldSEVDevice) GetRawQuote(reportData [64]byte) ([]byte, error) {
	return h.GetRawQuoteAtLevel(reportData, 0)
}

// GetRawQuoteAtLevel returns the raw report at level, followed by the
// certificate table when there is one.
func (h HeldSEVDevice) GetRawQuoteAtLevel(reportData [64]byte, level uint) ([]byte, error) {
	report, certs, err := sevclient.GetRawExtendedReportAtVmpl(h.Device, reportData, int(level))
	if err != nil {
		// No certificate support: a plain report, as the ioctl provider does.
		return sevclient.GetRawReportAtVmpl(h.Device, reportData, int(level))
	}
	if len(certs) == 0 {
		return report, nil
	}
	ext, err := abi.ExtendedPlatformCertTable(certs)
	if err != nil {
		return nil, fmt.Errorf("invalid certificate table: %w", err)
	}
	return append(report, ext...), nil
}

// Product is the calling CPU's SEV product.
//
// Deprecated: as in go-sev-guest's QuoteProvider.
func (HeldSEVDevice) Product() *spb.SevProduct { return abi.SevProduct() }
