package verify

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/cca"
	"github.com/sealroot/sealroot/host/verify/sim"
)

// sharedRoot is one simulated root for the tests that need any (making
// one generates RSA keys, which takes seconds).
var sharedRoot = sync.OnceValues(func() (*sim.Authority, error) {
	dir, err := os.MkdirTemp("", "verify-sim")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := sim.Init(dir); err != nil {
		return nil, err
	}
	return sim.Load(dir)
})

func shared(t *testing.T) *sim.Authority {
	t.Helper()
	a, err := sharedRoot()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func simRoot(t *testing.T) *sim.Authority {
	t.Helper()
	dir := t.TempDir()
	if err := sim.Init(dir); err != nil {
		t.Fatal(err)
	}
	a, err := sim.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func realCCA(t *testing.T) (token []byte, o Options) {
	t.Helper()
	tok, err := os.ReadFile("cca/testdata/tf-rmm-cca-token.cbor")
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile("cca/testdata/tf-rmm-cpak.pem")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := cca.ParseCPAKs(pem)
	if err != nil {
		t.Fatal(err)
	}
	return tok, Options{CCACPAKs: keys, Offline: true}
}

// Every TEE of the table that attests has a verifier here; one that does
// not, or a name not in the table, has none.
func TestNewCoversTheTable(t *testing.T) {
	_, full := realCCA(t)
	full.SimRoot = shared(t)
	for _, e := range append(attest.TEEs(), attest.TEEInfo{Name: "nvidia"}, attest.TEEInfo{Name: ""}) {
		v, err := New(e.Name, full)
		if e.Attestable != (err == nil && v != nil) {
			t.Errorf("New(%q): %v, %v; the table says attestable=%v", e.Name, v, err, e.Attestable)
		}
		if !e.Attestable && (err == nil || !strings.Contains(err.Error(), "want snp, tdx, cca or sim")) {
			t.Errorf("New(%q) error %v does not list the TEEs that have verifiers", e.Name, err)
		}
	}
}

func TestNewWithoutTrustAnchor(t *testing.T) {
	for _, tee := range []string{attest.TEESim, attest.TEECCA} {
		if _, err := New(tee, Options{}); !errors.Is(err, ErrNoTrustAnchor) || !strings.Contains(err.Error(), "tee "+tee) {
			t.Errorf("New(%q) without its anchor: %v, want ErrNoTrustAnchor naming the TEE", tee, err)
		}
	}
}

func TestBrokerSet(t *testing.T) {
	_, withCCA := realCCA(t)
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"defaults", Options{}, []string{"snp", "tdx"}},
		{"cca keys", withCCA, []string{"cca", "snp", "tdx"}},
		{"sim root", Options{SimRoot: shared(t)}, []string{"snp", "tdx"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vs, err := Broker(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for k := range vs {
				got = append(got, k)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("broker verifiers %v, want %v", got, tc.want)
			}
			_, isFirst := vs[attest.TEESNP].(FirstOf)
			if isFirst != (tc.o.SimRoot != nil) {
				t.Fatalf("snp verifier tries the simulated root: %v, want %v", isFirst, tc.o.SimRoot != nil)
			}
		})
	}
}

// The broker's snp verifier accepts a report the trusted simulated root
// signed (claims say simulated), and refuses one another simulated root
// signed, with each root's reason; the cca verifier takes TF-RMM's token.
func TestBrokerVerifies(t *testing.T) {
	ctx := context.Background()
	trusted, other := shared(t), simRoot(t)
	vs, err := Broker(Options{SimRoot: trusted, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	rd := [64]byte{1, 2, 3}
	for _, tc := range []struct {
		name   string
		signer *sim.Authority
		ok     bool
	}{{"trusted root", trusted, true}, {"other root", other, false}} {
		report, table, err := tc.signer.Sign(sim.ReportParams{ReportData: rd, Measurement: [48]byte{9}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := vs[attest.TEESNP].Verify(ctx, &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: table})
		if tc.ok {
			if err != nil || !c.Simulated || c.ReportData[0] != 1 {
				t.Errorf("%s: claims %+v, err %v", tc.name, c, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "simulated root: ") || !strings.Contains(err.Error(), "; AMD root: ") {
			t.Errorf("%s: err %v, want a refusal naming both roots", tc.name, err)
		}
	}

	tok, o := realCCA(t)
	vs, err = Broker(o)
	if err != nil {
		t.Fatal(err)
	}
	c, err := vs[attest.TEECCA].Verify(ctx, &attest.Evidence{TEE: attest.TEECCA, Report: tok})
	if err != nil || len(c.Measurement) == 0 {
		t.Fatalf("TF-RMM token: claims %+v, err %v", c, err)
	}
}
