package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/verify/testdata"
	tdxtestdata "github.com/google/go-tdx-guest/testing/testdata"

	"github.com/sealroot/sealroot/host/verify/snp"
)

// genoaMeasurement is the launch measurement of the real Genoa report in
// Trustee's SNP evidence JSON (wire/snpreport/testdata/README.md).
const genoaMeasurement = "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b315506e73e"

func readGenoaEvidence(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "wire", "snpreport", "testdata", "trustee-snp-genoa-evidence.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVerifyTrusteeSNPEvidence is the acceptance test of the Trustee
// format: the real Genoa evidence verifies offline, detected from its
// content, alone or inside tee-evidence.
func TestVerifyTrusteeSNPEvidence(t *testing.T) {
	ev := readGenoaEvidence(t)
	plain := writeTemp(t, "evidence.json", ev)
	wrapped := writeTemp(t, "tee-evidence.json", []byte(`{"primary_evidence":`+string(ev)+`,"additional_evidence":""}`))
	for _, args := range [][]string{
		{"--evidence", plain},
		{"--evidence", plain, "--format", "trustee"},
		{"--evidence", wrapped},
	} {
		args = append([]string{"verify", "--tee", "snp", "--offline", "--allow-debug", "--json", "--measurement", genoaMeasurement}, args...)
		code, out, errOut := runCLI(t, args...)
		var res verifyResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %v\n%s\n%s", args, err, out, errOut)
		}
		if code != 0 || !res.Verified || !res.PolicyOK || res.Claims.Measurement != genoaMeasurement || res.Claims.ProductLine != "Genoa" {
			t.Fatalf("%v: exit %d %+v %s", args, code, res, errOut)
		}
	}
}

// TestVerifyTrusteeSNPTampered changes one byte of each kind of signed
// field in the JSON and expects the signature check to refuse it.
func TestVerifyTrusteeSNPTampered(t *testing.T) {
	ev := readGenoaEvidence(t)
	var doc map[string]any
	if err := json.Unmarshal(ev, &doc); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		field string
		edit  func(rep map[string]any)
	}{
		{"measurement", func(rep map[string]any) { bump(rep["measurement"].([]any), 0) }},
		{"report_data", func(rep map[string]any) { bump(rep["report_data"].([]any), 63) }},
		{"host_data", func(rep map[string]any) { bump(rep["host_data"].([]any), 5) }},
		{"chip_id", func(rep map[string]any) { bump(rep["chip_id"].([]any), 0) }},
		{"policy", func(rep map[string]any) { rep["policy"] = rep["policy"].(float64) + 1<<19 }},
		{"guest_svn", func(rep map[string]any) { rep["guest_svn"] = 1.0 }},
		{"reported_tcb", func(rep map[string]any) {
			tcb := rep["reported_tcb"].(map[string]any)
			tcb["microcode"] = tcb["microcode"].(float64) + 1
		}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			var c map[string]any
			_ = json.Unmarshal(ev, &c)
			tc.edit(c["attestation_report"].(map[string]any))
			b, _ := json.Marshal(c)
			code, _, errOut := runCLI(t, "verify", "--tee", "snp", "--offline", "--allow-debug", "--evidence", writeTemp(t, "t.json", b))
			if code != 1 || !strings.Contains(errOut, "report signature does not verify") {
				t.Fatalf("exit %d, stderr %s", code, errOut)
			}
		})
	}
}

func bump(a []any, i int) { a[i] = float64((int(a[i].(float64)) + 1) % 256) }

func TestVerifyFormatErrors(t *testing.T) {
	ev := readGenoaEvidence(t)
	jsonFile := writeTemp(t, "evidence.json", ev)
	report := writeTemp(t, "report.bin", testdata.AttestationBytes)
	extended := writeTemp(t, "ext.bin", append(append([]byte{}, testdata.AttestationBytes...),
		snp.MarshalCertTable([]snp.CertEntry{{GUID: snp.GUIDVCEK, Data: testdata.VcekBytes}})...))
	notJSON := writeTemp(t, "broken.json", append([]byte(`{"attestation_report":`), bytes.Repeat([]byte("x"), 2000)...))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown format", []string{"--tee", "snp", "--evidence", report, "--format", "cbor"}, 2, `--format "cbor": --tee snp reads auto, raw, extended, trustee`},
		{"extended is not tdx", []string{"--tee", "tdx", "--evidence", report, "--format", "extended"}, 2, "--tee tdx reads auto, raw, trustee"},
		{"json as raw", []string{"--tee", "snp", "--evidence", jsonFile, "--format", "raw", "--offline"}, 1, "raw snp report: 6714 bytes, want 1184"},
		{"raw as extended", []string{"--tee", "snp", "--evidence", report, "--format", "extended", "--offline"}, 1, "extended snp report: 1184 bytes"},
		{"extended as trustee", []string{"--tee", "snp", "--evidence", extended, "--format", "trustee", "--offline"}, 1, "trustee snp evidence json: not a JSON object"},
		{"broken json", []string{"--tee", "snp", "--evidence", notJSON, "--offline"}, 1, "trustee snp evidence json"},
		{"too short", []string{"--tee", "snp", "--evidence", writeTemp(t, "short", []byte("abc")), "--offline"}, 1, "not a raw SNP report (1184 bytes), not an extended report"},
		{"snp json to tdx", []string{"--tee", "tdx", "--evidence", jsonFile, "--offline"}, 1, "trustee tdx evidence json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, append([]string{"verify"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d (want %d), stderr %q, want %q", code, tc.code, errOut, tc.want)
			}
		})
	}
}

// FuzzEvidenceFromFile feeds arbitrary files to the format detection and
// decoders of `sealroot verify`: they return an error or well-sized parts,
// never panic.
func FuzzEvidenceFromFile(f *testing.F) {
	f.Add(readGenoaEvidenceF(f), "auto")
	f.Add(testdata.AttestationBytes, "auto")
	f.Add([]byte(`{"primary_evidence":{"quote":"AAAA","cc_eventlog":null},"additional_evidence":""}`), "trustee")
	f.Add([]byte(`{"primary_evidence":[]}`), "auto")
	f.Fuzz(func(t *testing.T, b []byte, format string) {
		if report, _, err := snpEvidenceFromFile(b, format); err == nil && len(report) != snp.ReportSize {
			t.Fatalf("snp report of %d bytes accepted", len(report))
		}
		if quote, _, err := tdxEvidenceFromFile(b, format); err == nil && len(quote) == 0 {
			t.Fatal("empty tdx quote accepted")
		}
	})
}

func readGenoaEvidenceF(f *testing.F) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "wire", "snpreport", "testdata", "trustee-snp-genoa-evidence.json"))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// TestVerifyTrusteeTDXWrapped: Trustee's TDX evidence inside the whole
// tee-evidence object verifies like the bare primary_evidence, detected
// or with --format trustee; the quote read as raw fails on its format.
func TestVerifyTrusteeTDXWrapped(t *testing.T) {
	primary, _ := json.Marshal(map[string]any{"quote": base64.StdEncoding.EncodeToString(tdxtestdata.RawQuote), "cc_eventlog": nil})
	wrapped := writeTemp(t, "tee-evidence.json", []byte(`{"primary_evidence":`+string(primary)+`,"additional_evidence":""}`))
	for _, extra := range [][]string{nil, {"--format", "trustee"}} {
		args := append([]string{"verify", "--tee", "tdx", "--evidence", wrapped, "--offline", "--allow-chain-only", "--at=2024-06-01T00:00:00Z"}, extra...)
		if code, out, errOut := runCLI(t, args...); code != 0 || !strings.Contains(out, cliRealMRTD) {
			t.Fatalf("%v: exit %d\n%s\n%s", extra, code, out, errOut)
		}
	}
	if code, _, errOut := runCLI(t, "verify", "--tee", "tdx", "--evidence", wrapped, "--format", "raw", "--offline"); code != 1 || errOut == "" {
		t.Fatalf("json read as a raw quote: exit %d %s", code, errOut)
	}
}
