package main

import (
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-sev-guest/verify/testdata"

	"github.com/sealroot/sealroot/host/verify/snp"
)

// The real Milan report shipped with go-sev-guest: its measurement, and a
// time inside its VCEK's validity (2022-09-24 to 2029-09-24).
const (
	milanMeasurement = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"
	milanAt          = "2024-06-01T00:00:00Z"
)

// TestVerifyMilanOffline is the acceptance test: the real Milan report and
// its VCEK verify offline and the measurement is printed. The report's
// policy allows debugging, which the default policy refuses.
func TestVerifyMilanOffline(t *testing.T) {
	report := writeTemp(t, "report.bin", testdata.AttestationBytes)
	vcek := writeTemp(t, "vcek.der", testdata.VcekBytes)
	vcekPEM := writeTemp(t, "vcek.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: testdata.VcekBytes}))
	extended := writeTemp(t, "ext.bin", append(append([]byte{}, testdata.AttestationBytes...),
		snp.MarshalCertTable([]snp.CertEntry{{GUID: snp.GUIDVCEK, Data: testdata.VcekBytes}})...))

	code, out, errOut := runCLI(t, "verify", "--tee", "snp", "--evidence", report, "--certs", vcek, "--offline", "--at", milanAt, "--allow-debug")
	if code != 0 || !strings.Contains(out, "measurement         "+milanMeasurement) || !strings.Contains(out, "genuine; policy satisfied") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}
	code, out, errOut = runCLI(t, "verify", "--tee", "snp", "--evidence", report, "--certs", vcek, "--offline", "--at", milanAt)
	if code != 1 || !strings.Contains(out, milanMeasurement) || !strings.Contains(errOut, "debug guest not allowed") {
		t.Fatalf("default policy: exit %d\nstdout:\n%s\nstderr: %s", code, out, errOut)
	}
	// The same through an extended report, and with a PEM VCEK.
	for _, args := range [][]string{{"--evidence", extended}, {"--evidence", report, "--certs", vcekPEM}} {
		args = append([]string{"verify", "--tee", "snp", "--offline", "--at", milanAt, "--allow-debug", "--json"}, args...)
		code, out, errOut = runCLI(t, args...)
		var res verifyResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if code != 0 || !res.Verified || !res.PolicyOK || res.Claims.Measurement != milanMeasurement || res.Claims.ProductLine != "Milan" {
			t.Fatalf("%v: exit %d %+v %s", args, code, res, errOut)
		}
	}
}

func TestVerifyFailures(t *testing.T) {
	report := writeTemp(t, "report.bin", testdata.AttestationBytes)
	vcek := writeTemp(t, "vcek.der", testdata.VcekBytes)
	flipped := append([]byte{}, testdata.AttestationBytes...)
	flipped[0x90] ^= 1
	bad := writeTemp(t, "flipped.bin", flipped)
	cache := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no VCEK offline", []string{"--tee", "snp", "--evidence", report, "--offline"}, 1, "offline mode forbids fetching it from AMD KDS"},
		{"flipped measurement byte", []string{"--tee", "snp", "--evidence", bad, "--certs", vcek, "--offline", "--at", milanAt}, 1, "report signature does not verify against the VCEK"},
		{"wrong measurement", []string{"--tee", "snp", "--evidence", report, "--certs", vcek, "--offline", "--at", milanAt, "--allow-debug", "--measurement", strings.Repeat("00", 48)}, 1, "measurement mismatch"},
		{"tcb too low", []string{"--tee", "snp", "--evidence", report, "--certs", vcek, "--offline", "--at", milanAt, "--allow-debug", "--min-tcb", "bl=2,snp=6,ucode=68"}, 1, "tcb below minimum"},
		{"wrong report data", []string{"--tee", "snp", "--evidence", report, "--certs", vcek, "--offline", "--at", milanAt, "--allow-debug", "--report-data", "0102030406"}, 1, "report_data mismatch"},
		{"missing evidence file", []string{"--tee", "snp", "--evidence", filepath.Join(t.TempDir(), "nope")}, 1, "no such file"},
		{"short evidence", []string{"--tee", "snp", "--evidence", writeTemp(t, "short", make([]byte, 1000))}, 1, "want at least 1184"},
		{"unknown tee", []string{"--tee", "sgx", "--evidence", report}, 2, `--tee "sgx"`},
		{"no evidence flag", []string{"--tee", "snp"}, 2, "--evidence are required"},
		{"bad hex", []string{"--tee", "snp", "--evidence", report, "--measurement", "xyz"}, 2, "want hex"},
		{"bad min-tcb", []string{"--tee", "snp", "--evidence", report, "--min-tcb", "bl=300"}, 2, "--min-tcb"},
		{"bad time", []string{"--tee", "snp", "--evidence", report, "--at", "yesterday"}, 2, "RFC 3339"},
		{"sim without sim-dir", []string{"--tee", "sim", "--evidence", report}, 2, "--sim-dir"},
		{"sim-dir without sim", []string{"--tee", "snp", "--evidence", report, "--sim-dir", cache}, 2, "only for --tee sim"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, append([]string{"verify"}, tt.args...)...)
			if code != tt.code || !strings.Contains(errOut, tt.err) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errOut, tt.code, tt.err)
			}
		})
	}
}

// TestVerifyCacheDir: a VCEK seen once is found again in --cache-dir.
func TestVerifyCacheDir(t *testing.T) {
	report := writeTemp(t, "report.bin", testdata.AttestationBytes)
	vcek := writeTemp(t, "vcek.der", testdata.VcekBytes)
	cache := t.TempDir()
	base := []string{"verify", "--tee", "snp", "--evidence", report, "--offline", "--at", milanAt, "--allow-debug", "--cache-dir", cache}
	if code, _, errOut := runCLI(t, append(base, "--certs", vcek)...); code != 0 {
		t.Fatalf("first run: %d %s", code, errOut)
	}
	code, out, errOut := runCLI(t, base...)
	if code != 0 || !strings.Contains(out, "cert_source         cache") {
		t.Fatalf("second run: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestSimCLI: sim init, show, measure, sim report, verify --tee sim, with
// one simulated secure processor (RSA-4096 key generation is slow).
func TestSimCLI(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := runCLI(t, "sim", "init", "--dir", dir)
	if code != 0 || !strings.Contains(out, "product_line  Milan") {
		t.Fatalf("sim init: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Run("flow", func(t *testing.T) { simFlow(t, dir) })
	t.Run("commands", func(t *testing.T) { simCommands(t, dir) })
}

// simFlow: measure, sim report, verify --tee sim.
func simFlow(t *testing.T, dir string) {
	kernel := writeTemp(t, "vmlinuz", []byte(strings.Repeat("k", 5000)))
	initrd := writeTemp(t, "initrd", []byte(strings.Repeat("i", 3000)))

	code, m, errOut := runCLI(t, "measure", "--tee", "sim", "--kernel", kernel, "--initrd", initrd, "--cpus", "2", "--memory", "1024")
	m = strings.TrimSpace(m)
	if code != 0 || len(m) != 96 {
		t.Fatalf("measure: exit %d %q %s", code, m, errOut)
	}
	out := filepath.Join(t.TempDir(), "ext.bin")
	rd := strings.Repeat("ab", 64)
	if code, _, errOut := runCLI(t, "sim", "report", "--dir", dir, "-o", out, "--measurement", m, "--report-data", rd); code != 0 {
		t.Fatalf("sim report: exit %d %s", code, errOut)
	}
	code, js, errOut := runCLI(t, "verify", "--tee", "sim", "--sim-dir", dir, "--evidence", out, "--measurement", m, "--report-data", rd, "--json")
	var res verifyResult
	if err := json.Unmarshal([]byte(js), &res); err != nil || code != 0 || !res.PolicyOK || !res.Claims.Simulated || res.Claims.Measurement != m {
		t.Fatalf("verify --tee sim: exit %d %v %s %s", code, err, js, errOut)
	}
	// The same report is no SNP evidence: AMD's roots refuse it.
	code, _, errOut = runCLI(t, "verify", "--tee", "snp", "--evidence", out, "--offline")
	if code != 1 || !strings.Contains(errOut, "does not chain to a trusted Milan root") {
		t.Fatalf("verify --tee snp of a simulated report: exit %d %s", code, errOut)
	}
	// A report for another launch fails the measurement check.
	code, _, errOut = runCLI(t, "verify", "--tee", "sim", "--sim-dir", dir, "--evidence", out, "--measurement", strings.Repeat("0", 96))
	if code != 1 || !strings.Contains(errOut, "measurement mismatch") {
		t.Fatalf("wrong measurement: exit %d %s", code, errOut)
	}
}

func simCommands(t *testing.T, dir string) {
	code, out, errOut := runCLI(t, "sim", "show", "--dir", dir, "--json")
	var info struct {
		Dir         string `json:"dir"`
		ProductLine string `json:"product_line"`
		ChipID      string `json:"chip_id"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil || code != 0 || info.ProductLine != "Milan" || len(info.ChipID) != 128 {
		t.Fatalf("sim show: exit %d %v %s %s", code, err, out, errOut)
	}
	if code, _, errOut := runCLI(t, "sim", "init", "--dir", dir); code != 1 || !strings.Contains(errOut, "refusing to replace") {
		t.Fatalf("sim init over existing keys: exit %d %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "sim", "init"); code != 2 {
		t.Fatalf("sim init without --dir: exit %d", code)
	}
	if code, _, _ := runCLI(t, "sim", "init", "--dir", t.TempDir(), "--product", "rome"); code != 2 {
		t.Fatalf("unknown product: exit %d", code)
	}
	if code, _, errOut := runCLI(t, "sim", "show", "--dir", t.TempDir()); code != 1 || !strings.Contains(errOut, "sealroot sim init") {
		t.Fatalf("sim show of an empty dir: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "sim", "report", "--dir", dir, "-o", filepath.Join(t.TempDir(), "r"), "--measurement", strings.Repeat("00", 49)); code != 2 || !strings.Contains(errOut, "at most 48") {
		t.Fatalf("oversized measurement: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "sim", "report", "--dir", dir, "-o", filepath.Join(t.TempDir(), "r"), "--policy", "1"); code != 1 || !strings.Contains(errOut, "guest policy") {
		t.Fatalf("bad policy: exit %d %s", code, errOut)
	}
}

func TestMeasureCLI(t *testing.T) {
	kernel := writeTemp(t, "vmlinuz", []byte("kernel"))
	initrd := writeTemp(t, "initrd", []byte("initrd"))
	measureOf := func(args ...string) string {
		t.Helper()
		code, out, errOut := runCLI(t, append([]string{"measure", "--kernel", kernel, "--initrd", initrd}, args...)...)
		if code != 0 {
			t.Fatalf("measure %v: exit %d %s", args, code, errOut)
		}
		out = strings.TrimSpace(out)
		if b, err := hex.DecodeString(out); err != nil || len(b) != 48 || strings.ToLower(out) != out {
			t.Fatalf("measure %v printed %q", args, out)
		}
		return out
	}
	def := measureOf()
	if explicit := measureOf("--tee", "sim", "--cpus", "1", "--memory", "512"); explicit != def {
		t.Error("defaults are not 1 vCPU and 512 MiB")
	}
	seen := map[string]string{"default": def}
	for name, args := range map[string][]string{
		"cpus":   {"--cpus", "2"},
		"memory": {"--memory", "1024"},
		"append": {"--append", "loglevel=7"},
	} {
		m := measureOf(args...)
		for other, prev := range seen {
			if m == prev {
				t.Errorf("%s gives the same measurement as %s", name, other)
			}
		}
		seen[name] = m
	}
	code, out, _ := runCLI(t, "measure", "--kernel", kernel, "--initrd", initrd, "--json")
	var j map[string]any
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 || j["measurement"] != def || j["cmdline"] == "" {
		t.Fatalf("--json: exit %d %v %s", code, err, out)
	}
	for _, args := range [][]string{
		{"measure", "--tee", "snp", "--kernel", kernel, "--initrd", initrd},
		{"measure", "--kernel", kernel},
	} {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, _ := runCLI(t, "measure", "--kernel", kernel, "--initrd", filepath.Join(t.TempDir(), "none")); code != 1 {
		t.Errorf("missing initrd: exit %d, want 1", code)
	}
}

func TestHelpHasExamples(t *testing.T) {
	for _, args := range [][]string{{"verify"}, {"measure"}, {"sim", "init"}, {"sim", "show"}, {"sim", "report"}} {
		c, _, err := newRootCmd().Find(args)
		if err != nil || c.Example == "" {
			t.Errorf("%v: no example (%v)", args, err)
		}
	}
}
