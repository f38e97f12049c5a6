package tsm

import (
	"context"
	"fmt"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/report"

	"github.com/sealroot/sealroot/attest"
)

// tdxAttester gets a quote from configfs-tsm (provider tdx_guest), from an
// injected go-tdx-guest QuoteProvider, or from /dev/tdx_guest.
type tdxAttester struct {
	tsm    configfsi.Client // configfs path, or nil
	qp     TDXQuoteProvider // injected provider, or nil
	device *tdxDevice       // /dev/tdx_guest ioctls, or nil
}

func newTDX(o Options) (attest.Attester, error) {
	if o.TDXQuoteProvider != nil {
		if err := o.TDXQuoteProvider.IsSupported(); err != nil {
			return nil, fmt.Errorf("tsm: tdx quote provider: %w", err)
		}
		return &tdxAttester{qp: o.TDXQuoteProvider}, nil
	}
	c, cerr := tsmClient(o.TSM)
	if cerr == nil {
		p, err := tsmProvider(c)
		if err == nil && p == providerTDX {
			return &tdxAttester{tsm: c}, nil
		}
		if err == nil {
			cerr = fmt.Errorf("%s provider is %q, not %s", TSMReportDir, p, providerTDX)
		} else {
			cerr = err
		}
	}
	if o.TSM == nil && deviceExists(TDXGuestPath) {
		return &tdxAttester{device: &tdxDevice{path: TDXGuestPath}}, nil
	}
	return nil, fmt.Errorf("tsm: no TDX guest interface: configfs-tsm unusable (%v) and %s missing (not a TDX guest, or the tdx-guest driver is not loaded)", cerr, TDXGuestPath) //nolint:errorlint // the configfs cause is context for the operator; a caller must not take it for the device's absence
}

func (a *tdxAttester) TEE() string { return attest.TEETDX }

// Attest returns the raw quote.
func (a *tdxAttester) Attest(ctx context.Context, reportData [64]byte) (*attest.Evidence, error) {
	if err := ctxDone(ctx); err != nil {
		return nil, err
	}
	var quote []byte
	switch {
	case a.tsm != nil:
		resp, err := tsmReport(a.tsm, &report.Request{InBlob: reportData[:]}, providerTDX)
		if err != nil {
			return nil, fmt.Errorf("tsm: tdx quote: %w", err)
		}
		quote = resp.OutBlob
	case a.qp != nil:
		q, err := a.qp.GetRawQuote(reportData)
		if err != nil {
			return nil, fmt.Errorf("tsm: tdx quote: %w", err)
		}
		quote = q
	default:
		q, err := a.device.quote(reportData)
		if err != nil {
			return nil, fmt.Errorf("tsm: tdx quote via %s (kernels from 6.7 serve quotes through configfs-tsm only): %w", TDXGuestPath, err)
		}
		quote = q
	}
	if len(quote) == 0 {
		return nil, fmt.Errorf("tsm: tdx quote: empty")
	}
	return &attest.Evidence{TEE: attest.TEETDX, Report: quote}, nil
}

// ccaAttester gets a realm token from configfs-tsm (provider arm_cca_guest).
type ccaAttester struct {
	tsm configfsi.Client
}

func newCCA(o Options) (attest.Attester, error) {
	c, err := tsmClient(o.TSM)
	if err != nil {
		return nil, fmt.Errorf("tsm: no Arm CCA guest interface: %w (not a realm, configfs not mounted, or the arm-cca-guest driver is not loaded)", err)
	}
	p, err := tsmProvider(c)
	if err != nil {
		return nil, fmt.Errorf("tsm: no Arm CCA guest interface: %w", err)
	}
	if p != providerCCA && p != providerCCA2 {
		return nil, fmt.Errorf("tsm: no Arm CCA guest interface: %s provider is %q, not %s", TSMReportDir, p, providerCCA)
	}
	return &ccaAttester{tsm: c}, nil
}

func (a *ccaAttester) TEE() string { return attest.TEECCA }

// Attest returns the CCA token (CBOR collection of platform and realm
// tokens) exactly as the kernel returned it; reportData is the challenge.
func (a *ccaAttester) Attest(ctx context.Context, reportData [64]byte) (*attest.Evidence, error) {
	if err := ctxDone(ctx); err != nil {
		return nil, err
	}
	resp, err := tsmReport(a.tsm, &report.Request{InBlob: reportData[:]}, providerCCA, providerCCA2)
	if err != nil {
		return nil, fmt.Errorf("tsm: cca token: %w", err)
	}
	if len(resp.OutBlob) == 0 {
		return nil, fmt.Errorf("tsm: cca token: empty")
	}
	return &attest.Evidence{TEE: attest.TEECCA, Report: resp.OutBlob}, nil
}
