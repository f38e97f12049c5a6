package broker

import (
	"encoding/hex"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestAdminAPI(t *testing.T) {
	b := newTestBroker(t)
	m := measurement(20)
	mh := hex.EncodeToString(m[:])
	pass := "admin-set-passphrase"
	reg := AdminRegistration{WorkloadID: "adm", TEE: "snp", Policy: WorkloadPolicy{Measurements: []string{mh}, MinTCB: "bl=0,tee=0,snp=0,ucode=0"}, Passphrase: &pass}

	code, body := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg))
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	var v AdminWorkload
	json.Unmarshal([]byte(body), &v)
	if v.WorkloadID != "adm" || !v.HasPassphrase || v.PassphraseResource != "default/adm/passphrase" || v.Origin != "admin" {
		t.Fatalf("created %+v", v)
	}
	if strings.Contains(body, pass) {
		t.Fatal("admin reply contains the passphrase")
	}
	if code, _ := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg)); code != http.StatusConflict {
		t.Fatalf("second create: %d", code)
	}
	// An snp workload is not unlocked by simulated evidence, even on a
	// broker that trusts the simulated root.
	c := newKrunClient(t, b.URL, 0)
	nonce, _ := c.auth(t, "adm")
	if code, body := c.attest(t, nonce, m); code != http.StatusUnauthorized {
		t.Fatalf("simulated evidence for an snp workload: %d %s", code, body)
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "simulated" {
		t.Fatalf("audit %v", rec)
	}

	// Replace without a passphrase keeps the passphrase; as a "sim"
	// workload a simulated guest can use it.
	reg.Replace, reg.Passphrase, reg.TEE = true, nil, "sim"
	if code, body := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg)); code != http.StatusOK || !strings.Contains(body, `"has_passphrase":true`) || !strings.Contains(body, `"tee":"sim"`) {
		t.Fatalf("replace: %d %s", code, body)
	}
	c = newKrunClient(t, b.URL, 0)
	nonce, _ = c.auth(t, "adm")
	if code, body := c.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("attest: %d %s", code, body)
	}
	if got, code := c.key(t, "adm"); code != http.StatusOK || got != pass {
		t.Fatalf("key: %d", code)
	}
	// Rotate the passphrase.
	if code, body := b.adminDo(t, http.MethodPut, "/admin/v1/workloads/adm/passphrase", `{"passphrase":"rotated-passphrase"}`); code != http.StatusNoContent {
		t.Fatalf("rotate: %d %s", code, body)
	}
	c = newKrunClient(t, b.URL, 0)
	nonce, _ = c.auth(t, "adm")
	c.attest(t, nonce, m)
	if got, _ := c.key(t, "adm"); got != "rotated-passphrase" {
		t.Fatal("rotated passphrase not served")
	}
	// Policy validation.
	for _, bad := range []string{`{"measurements":[]}`, `{"measurements":["zz"]}`, `{"measurements":["` + mh + `"],"max_vmpl":4}`,
		`{"measurements":["` + mh + `"],"min_tcb":"x=1"}`, `{"measurements":["` + mh + `"],"unknown":1}`} {
		if code, body := b.adminDo(t, http.MethodPut, "/admin/v1/workloads/adm/policy", bad); code != http.StatusBadRequest {
			t.Errorf("policy %s: %d %s", bad, code, body)
		}
	}
	// Resources.
	if code, _ := b.adminDo(t, http.MethodPut, "/admin/v1/workloads/adm/resources/default/key/1", "value"); code != http.StatusNoContent {
		t.Fatal("put resource")
	}
	if code, _ := b.adminDo(t, http.MethodPut, "/admin/v1/workloads/adm/resources/default/adm/passphrase", "x"); code != http.StatusBadRequest {
		t.Fatal("a resource may not shadow the passphrase")
	}
	if code, _ := b.adminDo(t, http.MethodPut, "/admin/v1/workloads/nope/resources/default/key/1", "x"); code != http.StatusNotFound {
		t.Fatal("resource of a missing workload")
	}
	code, body = b.adminDo(t, http.MethodGet, "/admin/v1/workloads/adm", "")
	if code != http.StatusOK || !strings.Contains(body, `"path":"default/key/1","size":5`) || strings.Contains(body, "value") {
		t.Fatalf("show: %d %s", code, body)
	}
	code, body = b.adminDo(t, http.MethodGet, "/admin/v1/workloads", "")
	var list []AdminWorkload
	if code != http.StatusOK || json.Unmarshal([]byte(body), &list) != nil || len(list) != 1 {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, _ := b.adminDo(t, http.MethodDelete, "/admin/v1/workloads/adm/resources/default/key/1", ""); code != http.StatusNoContent {
		t.Fatal("delete resource")
	}
	if code, _ := b.adminDo(t, http.MethodDelete, "/admin/v1/workloads/adm", ""); code != http.StatusNoContent {
		t.Fatal("delete")
	}
	if code, _ := b.adminDo(t, http.MethodGet, "/admin/v1/workloads/adm", ""); code != http.StatusNotFound {
		t.Fatal("deleted workload still shown")
	}
	// Every mutation is audited with the admin's identity.
	var actions []string
	for _, r := range b.audit.records(t) {
		if r["event"] == eventAdmin {
			actions = append(actions, r["action"].(string))
			if r["admin"] != "token" {
				t.Errorf("admin record %v", r)
			}
		}
	}
	if strings.Join(actions, ",") != "create,replace,set_passphrase,put_resource,delete_resource,delete" {
		t.Fatalf("admin audit actions %v", actions)
	}
}

func TestAdminAuth(t *testing.T) {
	b := newTestBroker(t)
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/admin/v1/workloads", nil)
	if code, _ := do(t, http.DefaultClient, req); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	req.Header.Set("Authorization", "Bearer wrong-token-0123456789")
	if code, _ := do(t, http.DefaultClient, req); code != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", code)
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "admin_auth" {
		t.Fatalf("audit %v", rec)
	}
	off := newTestBroker(t, func(c *Config) { c.AdminToken = "" })
	req, _ = http.NewRequest(http.MethodGet, off.URL+"/admin/v1/workloads", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	if code, _ := do(t, http.DefaultClient, req); code != http.StatusForbidden {
		t.Fatalf("disabled admin API: %d", code)
	}
}

func TestHealthMetrics(t *testing.T) {
	b := newTestBroker(t)
	m := measurement(21)
	b.registerBuildah(t, "from-buildah", measurement(23))
	b.registerSim(t, "wl", m)
	c := newKrunClient(t, b.URL, 0)
	nonce, _ := c.auth(t, "wl")
	c.attest(t, nonce, m)
	c.key(t, "wl")
	c2 := newKrunClient(t, b.URL, 0)
	nonce, _ = c2.auth(t, "wl")
	c2.attest(t, nonce, measurement(22))

	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready"} {
		req, _ := http.NewRequest(http.MethodGet, b.URL+path, nil)
		if code, body := do(t, http.DefaultClient, req); code != http.StatusOK || !strings.Contains(body, want) {
			t.Fatalf("%s: %d %s", path, code, body)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/metrics", nil)
	code, body := do(t, http.DefaultClient, req)
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	if strings.Contains(body, `op="create_session"`) {
		t.Error("a handshake wrote a session to the store")
	}
	for _, want := range []string{
		`sealroot_broker_attestations_total{check="",dialect="krun",result="success",tee="snp"} 1`,
		`sealroot_broker_attestations_total{check="measurement",dialect="krun",result="refused",tee="snp"} 1`,
		`sealroot_broker_key_releases_total{dialect="krun"} 1`,
		`sealroot_broker_http_requests_total{code="200",route="auth"} 2`,
		`sealroot_broker_verify_seconds_count{tee="snp"} 2`,
		// A handshake writes no session: both spent sessions are in memory.
		`sealroot_broker_pending_sessions 0`,
		`sealroot_broker_settled_sessions 2`,
		`sealroot_broker_registrations_total{result="ok"} 1`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Readiness fails when the store is gone.
	b.st.Close()
	req, _ = http.NewRequest(http.MethodGet, b.URL+"/readyz", nil)
	if code, _ := do(t, http.DefaultClient, req); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz with a closed store: %d", code)
	}
}

func TestRateLimit(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.RateLimit, c.RateBurst = 1, 3 })
	var codes []int
	for range 5 {
		code, _ := post(t, b.URL+"/kbs/v0/auth", "", `{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"w\"}"}`)
		codes = append(codes, code)
	}
	if codes[0] != 200 || codes[2] != 200 || codes[3] != http.StatusTooManyRequests || codes[4] != http.StatusTooManyRequests {
		t.Fatalf("codes %v", codes)
	}
	b.clock.Advance(2e9) // two tokens back
	if code, _ := post(t, b.URL+"/kbs/v0/auth", "", `{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"w\"}"}`); code != 200 {
		t.Fatalf("after refill: %d", code)
	}
	// A path that merely ends like a health check is limited: spend the
	// second refilled token, then ask.
	post(t, b.URL+"/kbs/v0/auth", "", "{}")
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/kbs/v0/key/xyz", nil)
	if code, _ := do(t, http.DefaultClient, req); code != http.StatusTooManyRequests {
		t.Fatalf("key path ending in z: %d, want 429", code)
	}
	// Health checks are never limited.
	req, _ = http.NewRequest(http.MethodGet, b.URL+"/healthz", nil)
	for range 5 {
		if code, _ := do(t, http.DefaultClient, req); code != 200 {
			t.Fatal("healthz rate limited")
		}
	}
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "broker.yaml")
	os.WriteFile(cfg, []byte("listen: 127.0.0.1:9999\nstate: /var/lib/x\nsession-ttl: 2m\noffline: true\ntrusted-proxy:\n  - 10.0.0.0/8\n  - 192.168.0.0/16\n"), 0o600)
	var o Options
	fs := pflag.NewFlagSet("b", pflag.ContinueOnError)
	o.RegisterFlags(fs)
	if err := fs.Parse([]string{"--state", "/cli/wins"}); err != nil {
		t.Fatal(err)
	}
	if err := ApplyConfigFile(fs, cfg); err != nil {
		t.Fatal(err)
	}
	if o.Listen != "127.0.0.1:9999" || o.State != "/cli/wins" || o.SessionTTL.String() != "2m0s" || !o.Offline || len(o.TrustedProxies) != 2 {
		t.Fatalf("options %+v", o)
	}
	// JSON works too; unknown keys are errors.
	os.WriteFile(cfg, []byte(`{"listen":"127.0.0.1:1","bogus":1}`), 0o600)
	if err := ApplyConfigFile(fs, cfg); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("unknown key: %v", err)
	}
}

func TestClientIPBehindProxy(t *testing.T) {
	b := newTestBroker(t)
	_, n, _ := net.ParseCIDR("127.0.0.0/8")
	b.cfg.TrustedProxies = append(b.cfg.TrustedProxies, n)
	req, _ := http.NewRequest(http.MethodGet, "http://x/", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	req.Header.Set("X-Forwarded-For", "203.0.113.9, 127.0.0.2")
	if got := b.clientIP(req); got != "203.0.113.9" {
		t.Fatalf("client %q", got)
	}
	req.RemoteAddr = "198.51.100.1:5555" // not a trusted proxy: header ignored
	if got := b.clientIP(req); got != "198.51.100.1" {
		t.Fatalf("client %q", got)
	}
}
