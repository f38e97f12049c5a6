package snp_test

import (
	"context"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/snp"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// Real Genoa hardware evidence (report version 3) in Trustee's form, kept
// with its source and licence in wire/snpreport/testdata.
const (
	genoaEvidence    = "../../../wire/snpreport/testdata/trustee-snp-genoa-evidence.json"
	genoaMeasurement = "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e"
)

// TestRealGenoaReport verifies real Genoa evidence offline against AMD's
// embedded Genoa roots with the VCEK it carries, and checks that changed
// signed bytes fail as signature failures on this product line too.
func TestRealGenoaReport(t *testing.T) {
	b, err := os.ReadFile(genoaEvidence)
	if err != nil {
		t.Fatalf("reading the real Genoa evidence: %v", err)
	}
	ev, err := snpreport.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	v := snp.NewVerifier(snp.Options{Offline: true})
	c, err := v.Verify(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(c.Measurement) != genoaMeasurement || c.ProductLine != "Genoa" || c.ReportVersion != 3 ||
		c.ReportedTCB != (attest.TCB{Bootloader: 10, TEE: 0, SNP: 23, Microcode: 25}) || c.Debug || c.Simulated {
		t.Fatalf("claims %+v", c)
	}
	for off := 0; off < snp.SignedSize; off += 5 {
		ev.Report[off] ^= 0x04
		_, err := v.Verify(context.Background(), ev)
		ev.Report[off] ^= 0x04
		if err == nil || !strings.HasPrefix(err.Error(), "snp: report signature does not verify against the VCEK") {
			t.Fatalf("byte %#x: %v", off, err)
		}
	}
}
