package tsm

import (
	"context"
	"fmt"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/report"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// SNPQuoteProvider returns a raw SNP report followed by its certificate
// table. go-sev-guest's QuoteProviders (and its test providers) satisfy it;
// the package itself is not linked into the guest init (its report
// conversions pull in the protobuf runtime).
type SNPQuoteProvider interface {
	IsSupported() bool
	GetRawQuote(reportData [64]byte) ([]uint8, error)
}

// SNPLeveledQuoteProvider also requests reports at a VMPL.
type SNPLeveledQuoteProvider interface {
	SNPQuoteProvider
	GetRawQuoteAtLevel(reportData [64]byte, vmpl uint) ([]uint8, error)
}

type snpAttester struct {
	qp   SNPQuoteProvider
	via  string // for error messages
	vmpl int
}

func newSNP(o Options) (attest.Attester, error) {
	if o.VMPL < 0 || o.VMPL > 3 {
		return nil, fmt.Errorf("tsm: snp vmpl %d: want 0 to 3", o.VMPL)
	}
	a := &snpAttester{qp: o.SNPQuoteProvider, via: "the configured provider", vmpl: o.VMPL}
	if a.qp == nil {
		// configfs-tsm when its provider is sev_guest, else the
		// /dev/sev-guest ioctl.
		if c, err := tsmClient(o.TSM); err == nil {
			if p, err := tsmProvider(c); err == nil && p == providerSEV {
				a.qp, a.via = &snpConfigfs{tsm: c}, TSMReportDir
			}
		}
		if a.qp == nil && o.TSM == nil && deviceExists(SEVGuestPath) {
			a.qp, a.via = &snpDevice{path: SEVGuestPath}, SEVGuestPath
		}
		if a.qp == nil {
			return nil, fmt.Errorf("tsm: no SEV-SNP guest interface: %s has no %s provider and %s cannot be opened (not an SNP guest, or the sev-guest driver is not loaded)",
				TSMReportDir, providerSEV, SEVGuestPath)
		}
	}
	if !a.qp.IsSupported() {
		return nil, fmt.Errorf("tsm: SEV-SNP quote provider (%s) is not supported here", a.via)
	}
	if a.vmpl != 0 {
		if _, ok := a.qp.(SNPLeveledQuoteProvider); !ok {
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
	if lqp, ok := a.qp.(SNPLeveledQuoteProvider); ok {
		raw, err = lqp.GetRawQuoteAtLevel(reportData, uint(a.vmpl))
	} else {
		raw, err = a.qp.GetRawQuote(reportData)
	}
	if err != nil {
		return nil, fmt.Errorf("tsm: snp report via %s at vmpl %d: %w", a.via, a.vmpl, err)
	}
	if len(raw) < snpreport.ReportSize {
		return nil, fmt.Errorf("tsm: snp report via %s is %d bytes, want at least %d", a.via, len(raw), snpreport.ReportSize)
	}
	ev := &attest.Evidence{TEE: attest.TEESNP, Report: append([]byte(nil), raw[:snpreport.ReportSize]...)}
	if len(raw) > snpreport.ReportSize {
		ev.Certs = append([]byte(nil), raw[snpreport.ReportSize:]...)
	}
	return ev, nil
}

// snpConfigfs gets SNP reports from configfs-tsm: outblob is the report,
// auxblob the certificate table the host supplied (if any), privlevel the
// VMPL.
type snpConfigfs struct {
	tsm configfsi.Client
}

func (s *snpConfigfs) IsSupported() bool { return s.tsm != nil }

func (s *snpConfigfs) GetRawQuote(reportData [64]byte) ([]uint8, error) {
	return s.GetRawQuoteAtLevel(reportData, 0)
}

func (s *snpConfigfs) GetRawQuoteAtLevel(reportData [64]byte, vmpl uint) ([]uint8, error) {
	resp, err := tsmReport(s.tsm, &report.Request{InBlob: reportData[:], GetAuxBlob: true, Privilege: &report.Privilege{Level: vmpl}}, providerSEV)
	if err != nil {
		return nil, err
	}
	if len(resp.OutBlob) < snpreport.ReportSize {
		return nil, fmt.Errorf("%s: outblob of %d bytes, want an SNP report of %d", TSMReportDir, len(resp.OutBlob), snpreport.ReportSize)
	}
	return append(resp.OutBlob[:snpreport.ReportSize:snpreport.ReportSize], resp.AuxBlob...), nil
}
