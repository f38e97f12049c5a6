package snp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-sev-guest/verify/trust"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/host/verify/snp"
)

// Simulated secure processors, one per product line, made once: they sign
// reports of every version, which no real test data covers.
var (
	simOnce sync.Once
	sims    map[string]*sim.Authority
	simErr  error
)

func authorities(t *testing.T) map[string]*sim.Authority {
	t.Helper()
	simOnce.Do(func() {
		sims = map[string]*sim.Authority{}
		for _, line := range []string{"Milan", "Genoa", "Turin"} {
			dir := t.TempDir()
			if simErr = sim.InitWith(dir, sim.InitOptions{ProductLine: line}); simErr != nil {
				return
			}
			if sims[line], simErr = sim.Load(dir); simErr != nil {
				return
			}
		}
	})
	if simErr != nil {
		t.Fatal(simErr)
	}
	return sims
}

func TestProductLinesAndVersions(t *testing.T) {
	for line, a := range authorities(t) {
		v := snp.NewVerifier(snp.Options{Roots: a.Roots(), Offline: true})
		for _, version := range []uint32{2, 3, 4, 5} {
			t.Run(line+"/v"+string(rune('0'+version)), func(t *testing.T) {
				p := sim.ReportParams{Version: version}
				copy(p.Measurement[:], line)
				report, table, err := a.Sign(p)
				if err != nil {
					t.Fatal(err)
				}
				c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: table})
				if err != nil {
					t.Fatal(err)
				}
				if c.ProductLine != line || c.ReportVersion != version || c.ReportedTCB != a.Info().TCB || !bytes.Equal(c.Measurement, p.Measurement[:]) {
					t.Fatalf("claims %+v", c)
				}
				if c.Simulated {
					t.Fatal("Simulated set without Options.Simulated")
				}
				// A flipped byte anywhere in the signed part is a signature
				// failure on every product line and version.
				for _, off := range []int{0, 0x08, 0x30, 0x48, 0x90, 0x180, 0x188, 0x189, 0x1A0, 0x1F8, 0x29F} {
					report[off] ^= 0x10
					_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: table})
					report[off] ^= 0x10
					if err == nil || !strings.Contains(err.Error(), "report signature does not verify") {
						t.Fatalf("byte %#x: %v", off, err)
					}
				}
			})
		}
	}
}

func TestTurinTCBLayout(t *testing.T) {
	a := authorities(t)["Turin"]
	report, _, err := a.Sign(sim.ReportParams{})
	if err != nil {
		t.Fatal(err)
	}
	tcb := a.Info().TCB
	raw := report[0x180:0x188]
	want := []byte{tcb.FMC, tcb.Bootloader, tcb.TEE, tcb.SNP, 0, 0, 0, tcb.Microcode}
	if !bytes.Equal(raw, want) {
		t.Fatalf("reported TCB bytes % x, want % x", raw, want)
	}
	if binary.LittleEndian.Uint64(raw) == 0 || tcb.FMC == 0 {
		t.Fatal("test needs a non-zero FMC")
	}
}

// Roots of one product line do not verify another's reports, and a
// verifier never takes roots from the evidence.
func TestRootsAreNotInterchangeable(t *testing.T) {
	as := authorities(t)
	milan, genoa := as["Milan"], as["Genoa"]
	report, table, err := genoa.Sign(sim.ReportParams{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = snp.NewVerifier(snp.Options{Roots: milan.Roots(), Offline: true}).Verify(context.Background(),
		&attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: table})
	if err == nil || !strings.Contains(err.Error(), "no trusted roots for product line Genoa") {
		t.Fatalf("Genoa report under Milan roots: %v", err)
	}
	// Another installation's root, filed under Milan, does not chain a
	// report whose table carries this installation's ARK and ASK.
	foreign := genoa.Roots()["Genoa"][0]
	foreign.ProductLine = "Milan"
	other := map[string][]*trust.AMDRootCerts{"Milan": {foreign}}
	report, table, _ = milan.Sign(sim.ReportParams{})
	_, err = snp.NewVerifier(snp.Options{Roots: other, Offline: true}).Verify(context.Background(),
		&attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: table})
	if err == nil || !strings.Contains(err.Error(), "does not chain to a trusted Milan root") {
		t.Fatalf("report under another installation's root: %v", err)
	}
}
