package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-tdx-guest/testing/testdata"
)

// The MRTD of go-tdx-guest's real Sapphire Rapids quote.
const cliRealMRTD = "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb"

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVerifyTDXOffline(t *testing.T) {
	quote := writeTemp(t, "quote.dat", testdata.RawQuote)
	trustee, _ := json.Marshal(map[string]any{"quote": base64.StdEncoding.EncodeToString(testdata.RawQuote), "cc_eventlog": nil})
	trusteeFile := writeTemp(t, "evidence.json", trustee)
	tampered := bytes.Clone(testdata.RawQuote)
	tampered[0xB8] ^= 1
	tamperedFile := writeTemp(t, "bad.dat", tampered)
	at := "--at=2024-06-01T00:00:00Z"

	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  string
	}{
		{"offline without collateral", []string{"--tee", "tdx", "--evidence", quote, "--offline", at},
			1, nil, "collateral not available offline"},
		{"raw quote", []string{"--tee", "tdx", "--evidence", quote, "--offline", "--allow-chain-only", at},
			0, []string{"measurement", cliRealMRTD, "collateral", "signature and PCK chain only",
				"genuine (signature and PCK chain only: TCB status, QE identity and revocation NOT checked); policy satisfied"}, ""},
		{"empty cache", []string{"--tee", "tdx", "--evidence", quote, "--offline", "--allow-chain-only", "--cache-dir", t.TempDir(), at},
			0, []string{"TCB status, QE identity and revocation NOT checked"}, ""},
		{"chain-only needs offline tdx", []string{"--tee", "snp", "--evidence", quote, "--offline", "--allow-chain-only"}, 2, nil, "--allow-chain-only is for --tee tdx with --offline"},
		{"trustee json", []string{"--tee", "tdx", "--evidence", trusteeFile, "--offline", "--allow-chain-only", at}, 0, []string{cliRealMRTD}, ""},
		{"json output", []string{"--tee", "tdx", "--evidence", quote, "--offline", "--allow-chain-only", at, "--json"}, 0, []string{`"verified": true`, `"policy_ok": true`, `"warning": "signature and PCK chain only: TCB status, QE identity and revocation NOT checked"`}, ""},
		{"matching measurement", []string{"--tee", "tdx", "--evidence", quote, "--offline", "--allow-chain-only", at, "--measurement", cliRealMRTD}, 0, nil, ""},
		{"other measurement", []string{"--tee", "tdx", "--evidence", quote, "--offline", "--allow-chain-only", at, "--measurement", strings.Repeat("00", 48)},
			1, []string{cliRealMRTD}, "measurement mismatch"},
		{"tampered", []string{"--tee", "tdx", "--evidence", tamperedFile, "--offline", "--allow-chain-only", at}, 1, nil, "signature"},
		{"certs refused", []string{"--tee", "tdx", "--evidence", quote, "--certs", quote, "--offline"}, 2, nil, "--certs is not used"},
		{"cca without certs", []string{"--tee", "cca", "--evidence", quote}, 2, nil, "needs --certs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"verify"}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantErr, errOut)
			}
			if strings.Contains(out, "WARN") {
				t.Errorf("library warning on stdout:\n%s", out)
			}
		})
	}
}

func TestVerifyCCAUntrusted(t *testing.T) {
	tok, err := os.ReadFile("../../verify/cca/testdata/tf-rmm-cca-token.cbor")
	if err != nil {
		t.Fatal(err)
	}
	tokFile := writeTemp(t, "token.cbor", tok)
	cpak, err := os.ReadFile("../../verify/cca/testdata/tf-rmm-cpak.pem")
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	other := writeTemp(t, "other.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))

	code, out, errOut := runCLI(t, "verify", "--tee", "cca", "--evidence", tokFile, "--certs", writeTemp(t, "cpak.pem", cpak))
	if code != 0 || !strings.Contains(out, "measurement") || !strings.Contains(out, "rem0") {
		t.Fatalf("trusted cpak: exit %d\n%s\n%s", code, out, errOut)
	}
	code, _, errOut = runCLI(t, "verify", "--tee", "cca", "--evidence", tokFile, "--certs", other)
	if code != 1 || !strings.Contains(errOut, "not signed by a trusted CPAK") {
		t.Fatalf("foreign cpak: exit %d\n%s", code, errOut)
	}
}
