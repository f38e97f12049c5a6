package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
)

// testAdminBroker serves a broker with an admin token on loopback.
func testAdminBroker(t *testing.T) (url, tokenFile string) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	k, _, err := kek.LoadOrCreate(filepath.Join(t.TempDir(), "kek"))
	if err != nil {
		t.Fatal(err)
	}
	tk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	const token = "cli-admin-token-0123456789"
	srv, err := broker.New(broker.Config{Store: st, KEK: k, TokenKey: tk, AdminToken: token})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	tokenFile = filepath.Join(t.TempDir(), "admin-token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	return hs.URL, tokenFile
}

func TestRegisterAndWorkloadsCLI(t *testing.T) {
	url, tok := testAdminBroker(t)
	dir := t.TempDir()
	passFile := filepath.Join(dir, "pass")
	const pass = "0123456789abcdef0123456789abcdef"
	os.WriteFile(passFile, []byte(pass+"\n"), 0o600)
	m := hex.EncodeToString(make([]byte, 48))
	conn := []string{"--broker", url, "--admin-token-file", tok}

	code, out, errOut := runCLI(t, append([]string{"register", "--workload-id", "cli-wl", "--tee", "snp",
		"--measurement", m, "--passphrase-file", passFile, "--min-tcb", "bl=1,tee=0,snp=2,ucode=3", "--host-data", strings.Repeat("5a", 32), "--json"}, conn...)...)
	if code != 0 {
		t.Fatalf("register: %d %s", code, errOut)
	}
	var w broker.AdminWorkload
	if err := json.Unmarshal([]byte(out), &w); err != nil || w.WorkloadID != "cli-wl" || !w.HasPassphrase || w.Policy.MinTCB != "bl=1,tee=0,snp=2,ucode=3" {
		t.Fatalf("register output %s", out)
	}
	if strings.Contains(out+errOut, pass) {
		t.Fatal("passphrase printed")
	}
	// Again: refused with exit 1 and a hint.
	code, _, errOut = runCLI(t, append([]string{"register", "--workload-id", "cli-wl", "--tee", "snp", "--measurement", m, "--measurement-only"}, conn...)...)
	if code != 1 || !strings.Contains(errOut, "--replace") {
		t.Fatalf("duplicate register: %d %s", code, errOut)
	}
	// Usage errors exit 2.
	for _, args := range [][]string{
		{"register", "--workload-id", "x", "--tee", "snp"},
		{"register", "--workload-id", "x", "--tee", "snp", "--measurement", "zz"},
		{"register", "--workload-id", "x", "--tee", "snp", "--measurement", m, "--max-vmpl", "7"},
		{"register", "--workload-id", "x", "--tee", "quantum", "--measurement", m},
	} {
		if code, _, errOut := runCLI(t, append(args, conn...)...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, code, errOut)
		}
	}
	if code, _, _ := runCLI(t, "workloads", "list", "--broker", url); code != 2 {
		t.Error("list without a token file is not a usage error")
	}

	code, out, errOut = runCLI(t, append([]string{"workloads", "list"}, conn...)...)
	if code != 0 || !strings.Contains(out, "cli-wl") || !strings.Contains(out, "WORKLOAD") {
		t.Fatalf("list: %d %s %s", code, out, errOut)
	}
	code, out, _ = runCLI(t, append([]string{"workloads", "show", "cli-wl"}, conn...)...)
	if code != 0 || !strings.Contains(out, "default/cli-wl/passphrase") {
		t.Fatalf("show: %d %s", code, out)
	}
	resFile := filepath.Join(dir, "res")
	os.WriteFile(resFile, []byte("resource value"), 0o600)
	if code, _, errOut := runCLI(t, append([]string{"workloads", "put-resource", "cli-wl", "default/key/1", "--file", resFile}, conn...)...); code != 0 {
		t.Fatalf("put-resource: %s", errOut)
	}
	m2 := hex.EncodeToString(append(make([]byte, 47), 1))
	if code, out, errOut := runCLI(t, append([]string{"workloads", "set-policy", "cli-wl", "--measurement", m2, "--json"}, conn...)...); code != 0 || !strings.Contains(out, m2) || !strings.Contains(out, "default/key/1") {
		t.Fatalf("set-policy: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, append([]string{"workloads", "set-passphrase", "cli-wl", "--passphrase-file", passFile}, conn...)...); code != 0 {
		t.Fatalf("set-passphrase: %s", errOut)
	}
	if code, _, _ := runCLI(t, append([]string{"workloads", "delete-resource", "cli-wl", "default/key/1"}, conn...)...); code != 0 {
		t.Fatal("delete-resource")
	}
	if code, out, _ := runCLI(t, append([]string{"workloads", "delete", "cli-wl", "--json"}, conn...)...); code != 0 || !strings.Contains(out, `"deleted": true`) {
		t.Fatalf("delete: %d %s", code, out)
	}
	code, _, errOut = runCLI(t, append([]string{"workloads", "show", "cli-wl"}, conn...)...)
	if code != 1 || !strings.Contains(errOut, "404") {
		t.Fatalf("show deleted: %d %s", code, errOut)
	}
	// A wrong token says what to check.
	bad := filepath.Join(dir, "bad-token")
	os.WriteFile(bad, []byte("not-the-token-0123456789"), 0o600)
	code, _, errOut = runCLI(t, "workloads", "list", "--broker", url, "--admin-token-file", bad)
	if code != 1 || !strings.Contains(errOut, "401") || !strings.Contains(errOut, "--admin-token-file") {
		t.Fatalf("wrong token: %d %s", code, errOut)
	}
}

func TestBrokerCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"broker"},
		{"broker", "--state", t.TempDir(), "--registration", "sometimes"},
		{"broker", "--state", t.TempDir(), "--registration", "token"},
		{"broker", "--config", filepath.Join(t.TempDir(), "missing.yaml")},
	} {
		if code, _, errOut := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d (%s), want 2", args, code, errOut)
		}
	}
}

func TestBrokerHelpHasExamples(t *testing.T) {
	for _, args := range [][]string{{"broker"}, {"register"}, {"workloads"}, {"workloads", "list"}, {"workloads", "show"},
		{"workloads", "delete"}, {"workloads", "set-policy"}, {"workloads", "set-passphrase"}, {"workloads", "put-resource"}, {"workloads", "delete-resource"}} {
		c, _, err := newRootCmd().Find(args)
		if err != nil || c.Example == "" {
			t.Errorf("%v: no example (%v)", args, err)
		}
	}
}

// TestRegisterTDXNeedsRTMRs: `register --tee tdx` takes --rtmr N=HEX and
// refuses to register a TDX workload on MRTD alone.
func TestRegisterTDXNeedsRTMRs(t *testing.T) {
	url, tok := testAdminBroker(t)
	conn := []string{"--broker", url, "--admin-token-file", tok}
	mrtd := strings.Repeat("ab", 48)
	r1, r2 := strings.Repeat("01", 48), strings.Repeat("02", 48)
	base := []string{"register", "--workload-id", "td", "--tee", "tdx", "--measurement", mrtd, "--measurement-only"}
	for _, tc := range []struct {
		extra []string
		want  string
	}{
		{nil, "--rtmr 1=HEX and --rtmr 2=HEX"},
		{[]string{"--rtmr", "1=" + r1}, "--rtmr 1=HEX and --rtmr 2=HEX"},
		{[]string{"--rtmr", "1=" + r1, "--rtmr", "2=abcd"}, "96 hex"},
		{[]string{"--rtmr", "1=" + r1, "--rtmr", "1=" + r2}, "twice"},
		{[]string{"--rtmr", "4=" + r1}, "N from 0 to 3"},
		{[]string{"--rtmr", r1}, "N=HEX"},
	} {
		code, _, errOut := runCLI(t, append(append(append([]string{}, base...), tc.extra...), conn...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d %q, want 2 with %q", tc.extra, code, errOut, tc.want)
		}
	}
	if code, _, errOut := runCLI(t, append([]string{"register", "--workload-id", "s", "--tee", "snp", "--measurement", mrtd, "--measurement-only", "--rtmr", "1=" + r1}, conn...)...); code != 2 || !strings.Contains(errOut, "tdx only") {
		t.Errorf("--rtmr on snp: exit %d %q", code, errOut)
	}

	code, out, errOut := runCLI(t, append(append(base, "--rtmr", "1=0x"+strings.ToUpper(r1), "--rtmr", "2="+r2, "--json"), conn...)...)
	if code != 0 {
		t.Fatalf("register tdx: %d %s", code, errOut)
	}
	var w broker.AdminWorkload
	if err := json.Unmarshal([]byte(out), &w); err != nil || w.Policy.RTMRs[1] != r1 || w.Policy.RTMRs[2] != r2 {
		t.Fatalf("register output %s", out)
	}
	code, out, _ = runCLI(t, append([]string{"workloads", "show", "td"}, conn...)...)
	if code != 0 || !strings.Contains(out, "rtmr1:         "+r1) || !strings.Contains(out, "rtmr2:         "+r2) {
		t.Fatalf("show: %d %s", code, out)
	}
	// set-policy takes the same flags and the same rule.
	if code, _, errOut := runCLI(t, append([]string{"workloads", "set-policy", "td", "--measurement", mrtd}, conn...)...); code != 2 || !strings.Contains(errOut, "--rtmr") {
		t.Fatalf("set-policy without rtmrs: %d %s", code, errOut)
	}
	r2b := strings.Repeat("22", 48)
	if code, out, errOut := runCLI(t, append([]string{"workloads", "set-policy", "td", "--measurement", mrtd, "--rtmr", "1=" + r1, "--rtmr", "2=" + r2b, "--json"}, conn...)...); code != 0 || !strings.Contains(out, r2b) {
		t.Fatalf("set-policy: %d %s %s", code, out, errOut)
	}
}
