package sim

import (
	"context"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/snp"
)

// simVerifier verifies simulated reports with the SNP verifier.
type simVerifier struct {
	a *Authority
	v *snp.Verifier
}

// NewVerifier returns the SNP verifier rooted in a's simulated ARK and ASK:
// o.Roots is replaced by a.Roots() and o.Simulated set, so claims say
// Simulated. Evidence without a VCEK (the krun dialect sends an empty
// cert_chain) is verified with a's VCEK. o.Cache is not used: the VCEK is
// always at hand, and a cache shared with real verifiers should not fill
// with simulated certificates.
func NewVerifier(a *Authority, o snp.Options) attest.Verifier {
	o.Roots = a.Roots()
	o.Simulated = true
	o.Cache = nil
	return &simVerifier{a: a, v: snp.NewVerifier(o)}
}

func (s *simVerifier) Verify(ctx context.Context, ev *attest.Evidence) (*attest.Claims, error) {
	if ev != nil && !hasEndorsement(ev.Certs) {
		table, err := snp.MergeCertTables(ev.Certs, snp.MarshalCertTable([]snp.CertEntry{{GUID: snp.GUIDVCEK, Data: s.a.vcek.Raw}}))
		if err == nil { // a broken table is left for the SNP verifier to report
			cp := *ev
			cp.Certs = table
			ev = &cp
		}
	}
	return s.v.Verify(ctx, ev)
}

// hasEndorsement reports whether a certificate table holds a VCEK or VLEK.
func hasEndorsement(table []byte) bool {
	entries, err := snp.ParseCertTable(table)
	if err != nil {
		return true
	}
	for _, e := range entries {
		if e.GUID == snp.GUIDVCEK || e.GUID == snp.GUIDVLEK {
			return true
		}
	}
	return false
}
