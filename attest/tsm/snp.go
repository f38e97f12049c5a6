package tsm

import (
	"context"
	"fmt"

	sevclient "github.com/google/go-sev-guest/client"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/trusteesnp"
)

type snpAttester struct {
	qp   sevclient.QuoteProvider
	via  string // for error messages
	vmpl int
}

func newSNP(o Options) (attest.Attester, error) {
	if o.VMPL < 0 || o.VMPL > 3 {
		return nil, fmt.Errorf("tsm: snp vmpl %d: want 0 to 3", o.VMPL)
	}
	a := &snpAttester{qp: o.SNPQuoteProvider, via: "the configured provider", vmpl: o.VMPL}
	if a.qp == nil {
		// go-sev-guest's configfs provider is supported only when the
		// configfs-tsm provider is sev_guest; the ioctl one when
		// /dev/sev-guest opens.
		if cfs := (&sevclient.LinuxConfigFsQuoteProvider{}); cfs.IsSupported() {
			a.qp, a.via = cfs, TSMReportDir
		} else if dev := (&sevclient.LinuxIoctlQuoteProvider{}); dev.IsSupported() {
			a.qp, a.via = dev, SEVGuestPath
		} else {
			return nil, fmt.Errorf("tsm: no SEV-SNP guest interface: %s has no %s provider and %s cannot be opened (not an SNP guest, or the sev-guest driver is not loaded)",
				TSMReportDir, providerSEV, SEVGuestPath)
		}
	}
	if !a.qp.IsSupported() {
		return nil, fmt.Errorf("tsm: SEV-SNP quote provider (%s) is not supported here", a.via)
	}
	if a.vmpl != 0 {
		if _, ok := a.qp.(sevclient.LeveledQuoteProvider); !ok {
			return nil, fmt.Errorf("tsm: snp provider (%s) cannot request reports at vmpl %d", a.via, a.vmpl)
		}
	}
	return a, nil
}

func (a *snpAttester) TEE() string { return attest.TEESNP }

// Attest returns the raw report and, when the host supplied certificates,
// the certificate table that followed it.
func (a *snpAttester) Attest(ctx context.Context, reportData [64]byte) (*attest.Evidence, error) {
	if err := ctxDone(ctx); err != nil {
		return nil, err
	}
	var raw []byte
	var err error
	if lqp, ok := a.qp.(sevclient.LeveledQuoteProvider); ok {
		raw, err = lqp.GetRawQuoteAtLevel(reportData, uint(a.vmpl))
	} else {
		raw, err = a.qp.GetRawQuote(reportData)
	}
	if err != nil {
		return nil, fmt.Errorf("tsm: snp report via %s at vmpl %d: %w", a.via, a.vmpl, err)
	}
	if len(raw) < trusteesnp.ReportSize {
		return nil, fmt.Errorf("tsm: snp report via %s is %d bytes, want at least %d", a.via, len(raw), trusteesnp.ReportSize)
	}
	ev := &attest.Evidence{TEE: attest.TEESNP, Report: append([]byte(nil), raw[:trusteesnp.ReportSize]...)}
	if len(raw) > trusteesnp.ReportSize {
		ev.Certs = append([]byte(nil), raw[trusteesnp.ReportSize:]...)
	}
	return ev, nil
}
