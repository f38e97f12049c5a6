package verify

import (
	"bytes"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/snpreport"
)

func TestDecodeTrustee(t *testing.T) {
	snpJSON, err := os.ReadFile("../../wire/snpreport/testdata/trustee-snp-genoa-evidence.json")
	if err != nil {
		t.Fatal(err)
	}
	// The recorded report's measurement (wire/snpreport/testdata/README.md).
	measurement, _ := hex.DecodeString("6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e")
	for _, tc := range []struct {
		name, tee, primary string
		check              func(*attest.Evidence) bool
		wantErr            string
	}{
		{name: "snp, recorded Trustee evidence", tee: "snp", primary: string(snpJSON), check: func(ev *attest.Evidence) bool {
			return ev.TEE == "snp" && len(ev.Report) == snpreport.ReportSize &&
				bytes.Equal(ev.Report[snpreport.OffMeasurement:snpreport.OffMeasurement+48], measurement) && len(ev.Certs) > 0
		}},
		{name: "tdx with event log", tee: "tdx", primary: `{"quote":"AQID","cc_eventlog":"BAU="}`, check: func(ev *attest.Evidence) bool {
			return ev.TEE == "tdx" && bytes.Equal(ev.Report, []byte{1, 2, 3}) && bytes.Equal(ev.EventLog, []byte{4, 5})
		}},
		{name: "tdx without event log", tee: "tdx", primary: `{"quote":"AQID","cc_eventlog":null}`, check: func(ev *attest.Evidence) bool {
			return ev.TEE == "tdx" && bytes.Equal(ev.Report, []byte{1, 2, 3}) && ev.EventLog == nil
		}},
		{name: "cca token", tee: "cca", primary: `{"token":[210,132,67]}`, check: func(ev *attest.Evidence) bool {
			return ev.TEE == "cca" && bytes.Equal(ev.Report, []byte{210, 132, 67})
		}},
		{name: "sim is no wire TEE", tee: "sim", primary: string(snpJSON), wantErr: `tee "sim" has no evidence decoder`},
		{name: "unknown tee", tee: "nvidia", primary: `{}`, wantErr: `tee "nvidia" has no evidence decoder`},
		{name: "snp not JSON", tee: "snp", primary: `[`, wantErr: "json"},
		{name: "tdx quote not base64", tee: "tdx", primary: `{"quote":"!!"}`, wantErr: "quote"},
		{name: "cca token byte out of range", tee: "cca", primary: `{"token":[256]}`, wantErr: "token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := DecodeTrustee(tc.tee, []byte(tc.primary))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !tc.check(ev) {
				t.Fatalf("evidence %+v, err %v", ev, err)
			}
		})
	}
}

func FuzzDecodeTrustee(f *testing.F) {
	for _, s := range []string{`{"quote":"AQID","cc_eventlog":null}`, `{"token":[1,2]}`, `{"attestation_report":{}}`, `{}`} {
		for _, tee := range []string{"snp", "tdx", "cca"} {
			f.Add(tee, []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, tee string, primary []byte) {
		ev, err := DecodeTrustee(tee, primary)
		if err != nil {
			return
		}
		if w, werr := attest.WireName(tee); werr != nil || ev.TEE != w || ev.TEE != tee {
			t.Fatalf("tee %q decoded into %q evidence", tee, ev.TEE)
		}
	})
}
