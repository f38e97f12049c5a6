package broker

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/wire/kbs"
)

// TestTrusteeFlow: auth → attest → resource with EC and RSA guest keys,
// the passphrase read with the cookie and with the bearer token.
func TestTrusteeFlow(t *testing.T) {
	for _, kind := range []string{"ec", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			b := newTestBroker(t)
			m := measurement(10)
			pass := b.registerSim(t, "tw", m)
			c := newTrusteeClient(t, b.URL, kind)
			nonce, code := c.auth(t)
			if code != http.StatusOK {
				t.Fatalf("auth: %d %s", code, nonce)
			}
			if code, body := c.attest(t, nonce, m); code != http.StatusOK {
				t.Fatalf("attest: %d %s", code, body)
			}
			for _, bearer := range []bool{false, true} {
				got, code, body := c.resource(t, kbs.PassphrasePath("tw"), bearer)
				if code != http.StatusOK || got != pass {
					t.Fatalf("resource (bearer %t): %d %s", bearer, code, body)
				}
				var j kbs.JWE
				json.Unmarshal([]byte(body), &j)
				hdr, _ := base64.RawURLEncoding.DecodeString(j.Protected)
				wantAlg := map[string]string{"ec": `{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{`, "rsa": `{"alg":"RSA-OAEP-256","enc":"A256GCM"}`}[kind]
				if !strings.HasPrefix(string(hdr), wantAlg) {
					t.Fatalf("protected header %s", hdr)
				}
			}
			// The token is a broker-signed ES256 JWT carrying the claims.
			parts := strings.Split(c.token, ".")
			hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
			payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
			var claims map[string]any
			json.Unmarshal(payload, &claims)
			if !strings.Contains(string(hdr), `"ES256"`) || claims["iss"] != tokenIssuer || claims["tee"] != "snp" ||
				claims["measurement"] != hex.EncodeToString(m[:]) || claims["exp"] == nil {
				t.Fatalf("token header %s claims %v", hdr, claims)
			}
			// Tokens die with their session.
			b.clock.Advance(6 * time.Minute)
			if _, code, _ := c.resource(t, kbs.PassphrasePath("tw"), true); code != http.StatusUnauthorized {
				t.Fatalf("bearer after expiry: %d", code)
			}
			// The releases are audited; no secret reaches a log record
			// (the operational log keeps every level, debug included).
			if !strings.Contains(b.audit.String(), `"event":"key_release"`) {
				t.Errorf("no key_release audit record:\n%s", b.audit.String())
			}
			all := b.audit.String() + b.logs.String()
			for what, secret := range map[string]string{"passphrase": pass, "attestation token": c.token, "admin token": testAdminToken} {
				if strings.Contains(all, secret) {
					t.Errorf("the %s is in a log record", what)
				}
			}
		})
	}
}

func TestTrusteeResources(t *testing.T) {
	b := newTestBroker(t)
	m, m2 := measurement(11), measurement(12)
	b.registerSim(t, "alpha", m)
	b.registerSim(t, "beta", m2)
	put := func(id, path, value string) {
		req, _ := http.NewRequest(http.MethodPut, b.URL+"/admin/v1/workloads/"+id+"/resources/"+path, strings.NewReader(value))
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		if code, body := do(t, http.DefaultClient, req); code != http.StatusNoContent {
			t.Fatalf("put resource: %d %s", code, body)
		}
	}
	put("alpha", "default/key/1", "alpha's key")
	put("beta", "default/key/1", "beta's key")
	put("beta", "default/cert/tls", "beta's cert")

	c := newTrusteeClient(t, b.URL, "ec")
	nonce, _ := c.auth(t)
	if code, body := c.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("attest: %d %s", code, body)
	}
	// Its own resource by path; the other workload's same path is not it.
	if got, code, body := c.resource(t, "default/key/1", false); code != http.StatusOK || got != "alpha's key" {
		t.Fatalf("own resource: %d %s %q", code, body, got)
	}
	// Another workload's resources and passphrase are refused.
	if _, code, _ := c.resource(t, "default/cert/tls", false); code != http.StatusNotFound {
		t.Fatalf("other workload's resource: %d", code)
	}
	if _, code, _ := c.resource(t, kbs.PassphrasePath("beta"), false); code != http.StatusUnauthorized {
		t.Fatalf("other workload's passphrase: %d", code)
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "workload_mismatch" || rec["workload"] != "beta" {
		t.Fatalf("audit %v", rec)
	}
	// Bad paths are 404 problems.
	for _, p := range []string{"default/key", ".hidden/a/b", "a/b/c/d"} {
		req, _ := http.NewRequest(http.MethodGet, b.URL+"/kbs/v0/resource/"+p, nil)
		code, body := do(t, c.hc, req)
		if code != http.StatusNotFound {
			t.Errorf("path %s: %d", p, code)
		}
		if pr, err := kbs.ParseProblem([]byte(body)); err != nil || pr.Variant() != kbs.ProblemInvalidRequestPath {
			t.Errorf("path %s: body %s", p, body)
		}
	}
}

func TestTrusteeNamedWorkload(t *testing.T) {
	b := newTestBroker(t)
	m := measurement(13)
	b.registerSim(t, "one", m)
	pass2 := b.registerSim(t, "two", m) // same measurement
	c := newTrusteeClient(t, b.URL, "ec")
	c.extra = `{"workload_id":"two"}`
	nonce, _ := c.auth(t)
	if code, body := c.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("attest: %d %s", code, body)
	}
	if got, code, _ := c.resource(t, kbs.PassphrasePath("two"), false); code != http.StatusOK || got != pass2 {
		t.Fatalf("named workload's passphrase: %d", code)
	}
	if _, code, _ := c.resource(t, kbs.PassphrasePath("one"), false); code != http.StatusUnauthorized {
		t.Fatalf("the other workload with the same measurement: %d", code)
	}
}

func TestTrusteeRefusals(t *testing.T) {
	m := measurement(14)
	for _, tc := range []struct {
		name   string
		params func(*sim.ReportParams)
		nonce  func(string) string
		check  string
		code   int
	}{
		{name: "debug", params: func(p *sim.ReportParams) { p.Policy = sim.DefaultPolicy | 1<<19 }, check: "no_workload", code: 401},
		{name: "measurement", params: func(p *sim.ReportParams) { p.Measurement = measurement(15) }, check: "no_workload", code: 401},
		{name: "report_data", params: func(p *sim.ReportParams) { p.ReportData[0] ^= 1 }, check: "report_data", code: 401},
		{name: "other nonce", nonce: func(n string) string { return base64.StdEncoding.EncodeToString(make([]byte, 32)) }, check: "nonce", code: 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBroker(t)
			b.registerSim(t, "tw", m)
			c := newTrusteeClient(t, b.URL, "ec")
			c.params = tc.params
			nonce, _ := c.auth(t)
			if tc.nonce != nil {
				nonce = tc.nonce(nonce)
			}
			code, body := c.attest(t, nonce, m)
			if code != tc.code {
				t.Fatalf("attest: %d %s", code, body)
			}
			if _, err := kbs.ParseProblem([]byte(body)); err != nil {
				t.Fatalf("refusal body is not RFC 7807: %s", body)
			}
			if rec := b.audit.lastRefusal(t); rec["check"] != tc.check {
				t.Fatalf("audit %v, want check %s", rec, tc.check)
			}
			if _, code, _ := c.resource(t, kbs.PassphrasePath("tw"), false); code != http.StatusUnauthorized {
				t.Fatalf("resource after refusal: %d", code)
			}
		})
	}

	t.Run("flat pre-0.4 body", func(t *testing.T) {
		b := newTestBroker(t)
		c := newTrusteeClient(t, b.URL, "ec")
		c.auth(t)
		req, _ := http.NewRequest(http.MethodPost, b.URL+"/kbs/v0/attest", strings.NewReader(`{"tee-pubkey":{"kty":"EC"},"tee-evidence":"{}"}`))
		if code, body := do(t, c.hc, req); code != http.StatusBadRequest {
			t.Fatalf("flat body: %d %s", code, body)
		}
	})

	t.Run("forged token", func(t *testing.T) {
		b := newTestBroker(t)
		b.registerSim(t, "tw", m)
		c := newTrusteeClient(t, b.URL, "ec")
		nonce, _ := c.auth(t)
		c.attest(t, nonce, m)
		parts := strings.Split(c.token, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.Replace(string(payload), `"tee":"snp"`, `"tee":"tdx"`, 1)
		c.token = parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
		if _, code, _ := c.resource(t, kbs.PassphrasePath("tw"), true); code != http.StatusUnauthorized {
			t.Fatalf("forged token: %d", code)
		}
		if rec := b.audit.lastRefusal(t); rec["check"] != "token" {
			t.Fatalf("audit %v", rec)
		}
		c.token = ""
		req, _ := http.NewRequest(http.MethodGet, b.URL+"/kbs/v0/resource/"+kbs.PassphrasePath("tw"), nil)
		if code, body := do(t, http.DefaultClient, req); code != http.StatusUnauthorized || !strings.Contains(body, "TokenNotFound") {
			t.Fatalf("no credentials: %d %s", code, body)
		}
	})
}

// TestDialectsAreSeparate: a krun session can not read Trustee resources and
// a Trustee session can not use the krun key endpoint.
func TestDialectsAreSeparate(t *testing.T) {
	b := newTestBroker(t)
	m := measurement(16)
	b.registerSim(t, "wl", m)
	k := newKrunClient(t, b.URL, 0)
	nonce, _ := k.auth(t, "wl")
	k.attest(t, nonce, m)
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/kbs/v0/resource/"+kbs.PassphrasePath("wl"), nil)
	for _, ck := range k.hc.Jar.Cookies(req.URL) {
		req.AddCookie(&http.Cookie{Name: kbs.TrusteeCookie, Value: ck.Value})
	}
	if code, _ := do(t, http.DefaultClient, req); code != http.StatusUnauthorized {
		t.Fatalf("krun session on the trustee endpoint: %d", code)
	}
	c := newTrusteeClient(t, b.URL, "ec")
	nonce, _ = c.auth(t)
	c.attest(t, nonce, m)
	req, _ = http.NewRequest(http.MethodGet, b.URL+"/kbs/v0/key/wl", nil)
	for _, ck := range c.hc.Jar.Cookies(req.URL) {
		req.AddCookie(&http.Cookie{Name: kbs.KrunCookie, Value: ck.Value})
	}
	if code, _ := do(t, http.DefaultClient, req); code != http.StatusUnauthorized {
		t.Fatalf("trustee session on the krun endpoint: %d", code)
	}
}
