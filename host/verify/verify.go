// Package verify is the host's registry of evidence verifiers: one
// constructor per TEE of the table in package attest, from one options
// struct. The broker (Broker: the verifiers by wire TEE) and `sealroot
// verify` (New: the verifier for one --tee) both build theirs here, so the
// TEE→verifier mapping exists once.
//
// It is host code: the guest init never links it (guest/init/deps_test.go).
package verify

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/cca"
	"github.com/sealroot/sealroot/host/verify/certcache"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/host/verify/snp"
	"github.com/sealroot/sealroot/host/verify/tdx"
	"github.com/sealroot/sealroot/internal/textclip"
)

// Options are what the verifiers need. The zero value verifies real SNP and
// TDX evidence against the vendors' roots, fetching collateral on demand.
type Options struct {
	// Cache holds certificates and collateral between runs (SNP, TDX);
	// nil keeps nothing.
	Cache *certcache.Cache
	// Offline forbids the network: collateral only from Cache. A TDX quote
	// whose collateral Cache lacks is refused (tdx.ErrCollateralMissing)
	// unless TDXChainOnly.
	Offline bool
	// TDXChainOnly, offline, lets New(attest.TEETDX) verify a quote whose
	// collateral is not cached on its signature and PCK chain alone (no TCB
	// status, QE identity or revocation check; the claims say so, see
	// tdx.ChainOnly). For inspecting evidence (sealroot verify --offline);
	// Broker ignores it, so a broker never releases a secret on a
	// chain-only check.
	TDXChainOnly bool
	// Now is the time at which certificates must be valid; nil is
	// time.Now.
	Now func() time.Time
	// SimRoot is the simulated secure processor's authority (sim.Load).
	// New(attest.TEESim) needs it; with it, Broker accepts simulated
	// reports as SNP evidence besides real ones.
	SimRoot *sim.Authority
	// CCACPAKs are the trusted Arm CCA platform keys (cca.ParseCPAKs).
	// There is no built-in CCA trust anchor: New(attest.TEECCA) needs
	// them, and Broker has no CCA verifier without them.
	CCACPAKs []crypto.PublicKey
}

// ErrNoTrustAnchor means a TEE's verifier was asked for without the trust
// anchor it has no default for (the simulated root, the CCA CPAKs).
var ErrNoTrustAnchor = errors.New("no trust anchor given")

// constructors are the verifiers of the attestable TEEs, by config tee name.
var constructors = map[string]func(Options) (attest.Verifier, error){
	attest.TEESNP: func(o Options) (attest.Verifier, error) {
		return snp.NewVerifier(snp.Options{Cache: o.Cache, Offline: o.Offline, Now: o.Now}), nil
	},
	attest.TEESim: func(o Options) (attest.Verifier, error) {
		if o.SimRoot == nil {
			return nil, fmt.Errorf("tee sim: %w: the simulated root (sealroot sim init)", ErrNoTrustAnchor)
		}
		return sim.NewVerifier(o.SimRoot, snp.Options{Cache: o.Cache, Offline: o.Offline, Now: o.Now}), nil
	},
	attest.TEETDX: func(o Options) (attest.Verifier, error) {
		return tdx.NewVerifier(tdx.Options{Cache: o.Cache, Offline: o.Offline, AllowChainOnly: o.TDXChainOnly, Now: o.Now}), nil
	},
	attest.TEECCA: func(o Options) (attest.Verifier, error) {
		if len(o.CCACPAKs) == 0 {
			return nil, fmt.Errorf("tee cca: %w: the trusted platform keys (CPAKs)", ErrNoTrustAnchor)
		}
		return cca.NewVerifier(cca.Options{TrustedCPAKs: o.CCACPAKs}), nil
	},
}

// New returns the verifier for evidence of config TEE tee (attest.TEEs):
// snp, sim, tdx or cca.
func New(tee string, o Options) (attest.Verifier, error) {
	c, ok := constructors[tee]
	if !ok {
		return nil, fmt.Errorf("tee %q has no verifier (want %s)", textclip.Clip(tee, 80), attest.Names(func(t attest.TEEInfo) bool { return t.Attestable }))
	}
	return c(o)
}

// Broker returns the verifiers a broker judges evidence with, by the wire
// TEE the evidence names: snp and tdx always; cca with CCACPAKs. With
// SimRoot, snp evidence is tried against the simulated root first and then
// AMD's, so simulated and real reports both verify (the broker's policy
// then decides which a workload accepts); the simulated verifier stays
// offline, as its certificates are all local. TDX quotes are always
// verified with collateral: offline, one whose collateral the cache lacks
// is refused (o.TDXChainOnly is ignored).
func Broker(o Options) (map[string]attest.Verifier, error) {
	o.TDXChainOnly = false
	out := map[string]attest.Verifier{}
	for _, t := range attest.TEEs() {
		if !t.Hardware {
			continue
		}
		v, err := New(t.Name, o)
		if errors.Is(err, ErrNoTrustAnchor) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[t.Wire] = v
	}
	if o.SimRoot != nil {
		so := o
		so.Offline = true
		sv, err := New(attest.TEESim, so)
		if err != nil {
			return nil, err
		}
		w, _ := attest.WireName(attest.TEESim)
		out[w] = FirstOf{Names: []string{"simulated root", "AMD root"}, Verifiers: []attest.Verifier{sv, out[w]}}
	}
	return out, nil
}

// FirstOf verifies with each verifier in turn and returns the first
// success; the error of a failure names each verifier's own.
type FirstOf struct {
	Names     []string
	Verifiers []attest.Verifier
}

// Verify implements attest.Verifier.
func (f FirstOf) Verify(ctx context.Context, ev *attest.Evidence) (*attest.Claims, error) {
	var errs []string
	for i, v := range f.Verifiers {
		c, err := v.Verify(ctx, ev)
		if err == nil {
			return c, nil
		}
		errs = append(errs, f.Names[i]+": "+err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.New(strings.Join(errs, "; "))
}
