package broker

import (
	"bufio"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/wire/kbs"
)

// TestRegisterBuildahReplay replays buildah's registration byte for byte
// (what Go's http.Post writes): new id → 200, same id again → 409, and an
// admin may replace it.
func TestRegisterBuildahReplay(t *testing.T) {
	b := newTestBroker(t)
	m := measurement(1)
	body := registrationBody("buildah-wl", hex.EncodeToString(m[:]), randomHex(32))
	u, _ := url.Parse(b.URL)
	raw := "POST /kbs/v0/register_workload HTTP/1.1\r\n" +
		"Host: " + u.Host + "\r\n" +
		"User-Agent: Go-http-client/1.1\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n", len(body)) +
		"Content-Type: application/json\r\n" +
		"Accept-Encoding: gzip\r\n\r\n" + body
	send := func() (int, string) {
		c, err := net.Dial("tcp", u.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(rb)
	}
	if code, rb := send(); code != http.StatusOK && code != http.StatusAccepted {
		t.Fatalf("first registration: %d %s", code, rb)
	}
	if code, rb := send(); code != http.StatusConflict {
		t.Fatalf("second registration: %d %s, want 409", code, rb)
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "registration_conflict" || rec["workload"] != "buildah-wl" {
		t.Fatalf("conflict audit record %v", rec)
	}
	// The workload is an SNP workload with the safe default policy, whatever
	// tee_config says (buildah's SNP flags include DEBUG).
	wl, err := b.st.GetWorkload(t.Context(), "buildah-wl")
	if err != nil {
		t.Fatal(err)
	}
	doc, _ := parsePolicy(wl.Policy)
	if wl.TEE != "snp" || doc.AllowDebug || doc.MaxVMPL != 0 || len(doc.Measurements) != 1 || doc.Measurements[0] != hex.EncodeToString(m[:]) {
		t.Fatalf("stored workload %+v policy %+v", wl, doc)
	}
	if strings.Contains(string(wl.SealedPassphrase), body[strings.Index(body, `"passphrase":"`)+14:][:64]) {
		t.Fatal("passphrase stored in the clear")
	}
	// An admin may replace it.
	if code, rb := post(t, b.URL+"/kbs/v0/register_workload", testAdminToken, body); code != http.StatusOK {
		t.Fatalf("admin replace: %d %s", code, rb)
	}
	// buildah with an unmeasurable firmware sends an empty measurement.
	if code, _ := post(t, b.URL+"/kbs/v0/register_workload", "", registrationBody("no-measure", "", "x")); code != http.StatusBadRequest {
		t.Fatalf("registration without measurement: %d", code)
	}
}

func TestRegistrationModes(t *testing.T) {
	const regToken = "registration-token-0123456789"
	m := measurement(2)
	for _, tc := range []struct {
		mode      string
		token     string // bearer
		basic     bool   // token as URL userinfo password
		wantCode  int
		wantCheck string
	}{
		{RegistrationOpen, "", false, 200, ""},
		{RegistrationToken, "", false, 401, "registration_token"},
		{RegistrationToken, "wrong-token-0123456789", false, 401, "registration_token"},
		{RegistrationToken, regToken, false, 200, ""},
		{RegistrationToken, regToken, true, 200, ""},
		{RegistrationToken, testAdminToken, false, 200, ""},
		{RegistrationClosed, regToken, false, 401, "registration_closed"},
		{RegistrationClosed, testAdminToken, false, 200, ""},
		{RegistrationClosed, testAdminToken, true, 200, ""},
	} {
		name := fmt.Sprintf("%s/bearer=%t/basic=%t/%s", tc.mode, tc.token != "", tc.basic, tc.token)
		t.Run(name, func(t *testing.T) {
			b := newTestBroker(t, func(c *Config) { c.Registration, c.RegistrationToken = tc.mode, regToken })
			target := b.URL + "/kbs/v0/register_workload"
			bearer := tc.token
			if tc.basic {
				u, _ := url.Parse(b.URL)
				u.User = url.UserPassword("buildah", tc.token)
				target, bearer = u.String()+"/kbs/v0/register_workload", ""
			}
			code, body := post(t, target, bearer, registrationBody("w", hex.EncodeToString(m[:]), randomHex(32)))
			if code != tc.wantCode {
				t.Fatalf("code %d (%s), want %d", code, body, tc.wantCode)
			}
			if tc.wantCheck != "" {
				if rec := b.audit.lastRefusal(t); rec["check"] != tc.wantCheck {
					t.Fatalf("audit check %v, want %s", rec["check"], tc.wantCheck)
				}
			}
		})
	}
}

func TestRegistrationRejectsBadInput(t *testing.T) {
	b := newTestBroker(t)
	m := hex.EncodeToString(make([]byte, 48))
	for name, body := range map[string]string{
		"not json":         `{`,
		"bad id":           registrationBody("a/b", m, "p"),
		"short hash":       registrationBody("w", "abcd", "p"),
		"empty passphrase": registrationBody("w", m, ""),
		"bad tee_config":   `{"workload_id":"w","launch_measurement":"` + m + `","passphrase":"p","tee_config":"{"}`,
		"huge":             `{"workload_id":"` + strings.Repeat("a", 70<<10) + `"}`,
	} {
		code, reply := post(t, b.URL+"/kbs/v0/register_workload", "", body)
		if code != http.StatusBadRequest && code != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: %d %s", name, code, reply)
		}
		if strings.Contains(reply, `"passphrase"`) {
			t.Errorf("%s: reply echoes the body", name)
		}
	}
}

// TestKrunFlow is the whole krun handshake of docs/interop.md §3: auth → attest →
// key, and the passphrase decrypts. The workload is registered for the
// simulated TEE, the only kind simulated evidence unlocks
// (TestSimulatedEvidenceNeedsSimWorkload).
func TestKrunFlow(t *testing.T) {
	b := newTestBroker(t)
	m := measurement(3)
	pass := b.registerSim(t, "wl-a", m)
	c := newKrunClient(t, b.URL, 0)
	nonce, code := c.auth(t, "wl-a")
	if code != http.StatusOK {
		t.Fatalf("auth: %d", code)
	}
	if code, body := c.attest(t, nonce, m); code != http.StatusOK || body != "" {
		t.Fatalf("attest: %d %q (want 200 with an empty body)", code, body)
	}
	got, code := c.key(t, "wl-a")
	if code != http.StatusOK || got != pass {
		t.Fatalf("key: %d, passphrase matches: %t", code, got == pass)
	}
	// The session may read its key again until it expires.
	if got, code := c.key(t, "wl-a"); code != http.StatusOK || got != pass {
		t.Fatalf("second key read: %d", code)
	}
	recs := b.audit.records(t)
	var releases int
	for _, r := range recs {
		if r["event"] == eventKeyRelease {
			releases++
			if r["workload"] != "wl-a" || r["dialect"] != "krun" || r["client"] != "127.0.0.1" {
				t.Errorf("release record %v", r)
			}
		}
	}
	if releases != 2 {
		t.Fatalf("%d key_release records, want 2", releases)
	}
	// No secret in any log line.
	if strings.Contains(b.audit.String()+b.logs.String(), pass) || strings.Contains(b.audit.String(), nonce) {
		t.Fatal("a secret or session id reached the logs")
	}
	// Session expiry ends key access.
	b.clock.Advance(6 * time.Minute)
	if _, code := c.key(t, "wl-a"); code != http.StatusUnauthorized {
		t.Fatalf("key after expiry: %d", code)
	}
}

// TestKrunCrossWorkload: the key endpoint serves only the workload the
// session attested as. This is a per-session check, not separation between
// workloads: alice and bob share a measurement and have no host_data, so a
// guest of alice that names bob at /auth attests as bob
// (TestSameMeasurementWithoutHostData). Only host_data tells such workloads
// apart (TestHostDataSeparatesWorkloads).
func TestKrunCrossWorkload(t *testing.T) {
	b := newTestBroker(t)
	m := measurement(4)
	b.registerSim(t, "alice", m)
	b.registerSim(t, "bob", m)
	c := newKrunClient(t, b.URL, 1)
	nonce, _ := c.auth(t, "alice")
	if code, body := c.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("attest: %d %s", code, body)
	}
	if _, code := c.key(t, "bob"); code != http.StatusUnauthorized {
		t.Fatalf("cross-workload key: %d, want 401", code)
	}
	rec := b.audit.lastRefusal(t)
	if rec["check"] != "workload_mismatch" || rec["workload"] != "bob" {
		t.Fatalf("audit record %v", rec)
	}
	if _, code := c.key(t, "alice"); code != http.StatusOK {
		t.Fatalf("own key: %d", code)
	}
}

// TestKrunRefusals: no secret leaves for a stale nonce, a reused nonce, a
// wrong binding, a debug guest, a wrong measurement, VMPL 1, an unknown
// workload or a missing cookie, and the audit log names the failed check.
func TestKrunRefusals(t *testing.T) {
	m := measurement(5)
	wrongRD := [64]byte{1, 2, 3}
	for _, tc := range []struct {
		name     string
		setup    func(b *testBroker, c *krunClient)
		workload string // the workload named at /auth (default "wl")
		check    string
	}{
		{name: "stale nonce", setup: func(b *testBroker, c *krunClient) { b.clock.Advance(5*time.Minute + time.Second) }, check: "session_expired"},
		{name: "wrong report_data", setup: func(b *testBroker, c *krunClient) { c.reportData = &wrongRD }, check: "report_data"},
		{name: "debug guest", setup: func(b *testBroker, c *krunClient) {
			c.params = func(p *sim.ReportParams) { p.Policy = sim.DefaultPolicy | 1<<19 }
		}, check: "debug"},
		{name: "wrong measurement", setup: func(b *testBroker, c *krunClient) {
			c.params = func(p *sim.ReportParams) { p.Measurement = measurement(99) }
		}, check: "measurement"},
		{name: "vmpl 1", setup: func(b *testBroker, c *krunClient) {
			c.params = func(p *sim.ReportParams) { p.VMPL = 1 }
		}, check: "vmpl"},
		{name: "unknown workload", workload: "nobody", check: "unknown_workload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBroker(t)
			b.registerSim(t, "wl", m)
			c := newKrunClient(t, b.URL, 2)
			wid := "wl"
			if tc.workload != "" {
				wid = tc.workload
			}
			nonce, code := c.auth(t, wid)
			if code != http.StatusOK {
				t.Fatalf("auth %d", code)
			}
			if tc.setup != nil {
				tc.setup(b, c)
			}
			if code, body := c.attest(t, nonce, m); code != http.StatusUnauthorized {
				t.Fatalf("attest: %d %s, want 401", code, body)
			}
			rec := b.audit.lastRefusal(t)
			if rec["check"] != tc.check || rec["workload"] != wid || rec["dialect"] != "krun" {
				t.Fatalf("audit record %v, want check %q", rec, tc.check)
			}
			if _, code := c.key(t, wid); code != http.StatusUnauthorized {
				t.Fatalf("key after refused attest: %d", code)
			}
		})
	}

	// A workload's runtime report, asked for over exactly the binding this
	// handshake needs, is refused as runtime evidence.
	t.Run("runtime evidence", func(t *testing.T) {
		b := newTestBroker(t)
		b.registerSim(t, "wl", m)
		c := newKrunClient(t, b.URL, 2)
		nonce, _ := c.auth(t, "wl")
		boot := kbs.KrunReportData(nonce, &c.priv.PublicKey)
		rd := kbs.RuntimeReportData(boot[:])
		c.reportData = &rd
		if code, body := c.attest(t, nonce, m); code != http.StatusUnauthorized {
			t.Fatalf("attest: %d %s, want 401", code, body)
		}
		if rec := b.audit.lastRefusal(t); rec["check"] != "runtime_evidence" {
			t.Fatalf("audit %v", rec)
		}
	})

	t.Run("reused nonce", func(t *testing.T) {
		b := newTestBroker(t)
		b.registerSim(t, "wl", m)
		c := newKrunClient(t, b.URL, 2)
		nonce, _ := c.auth(t, "wl")
		if code, body := c.attest(t, nonce, m); code != http.StatusOK {
			t.Fatalf("first attest: %d %s", code, body)
		}
		if code, _ := c.attest(t, nonce, m); code != http.StatusUnauthorized {
			t.Fatalf("second attest on one nonce: %d", code)
		}
		if rec := b.audit.lastRefusal(t); rec["check"] != "nonce_reused" {
			t.Fatalf("audit %v", rec)
		}
		// A failed attestation also spends the nonce.
		c2 := newKrunClient(t, b.URL, 2)
		nonce, _ = c2.auth(t, "wl")
		if code, _ := c2.attest(t, nonce, measurement(98)); code != http.StatusUnauthorized {
			t.Fatal("wrong measurement accepted")
		}
		if code, _ := c2.attest(t, nonce, m); code != http.StatusUnauthorized {
			t.Fatal("retry on a spent nonce accepted")
		}
		if rec := b.audit.lastRefusal(t); rec["check"] != "nonce_reused" {
			t.Fatalf("audit %v", rec)
		}
		if _, code := c2.key(t, "wl"); code != http.StatusUnauthorized {
			t.Fatal("key released after a refused attestation")
		}
	})

	t.Run("forged signature", func(t *testing.T) {
		b := newTestBroker(t)
		b.registerSim(t, "wl", m)
		other := newOtherAuthority(t)
		c := newKrunClient(t, b.URL, 2)
		nonce, _ := c.auth(t, "wl")
		saved := simAuthority
		simAuthority = other // the client signs with an untrusted chip
		code, _ := c.attest(t, nonce, m)
		simAuthority = saved
		if code != http.StatusUnauthorized {
			t.Fatalf("report from an untrusted root: %d", code)
		}
		if rec := b.audit.lastRefusal(t); rec["check"] != "evidence" {
			t.Fatalf("audit %v", rec)
		}
	})

	t.Run("no cookie", func(t *testing.T) {
		b := newTestBroker(t)
		c := newKrunClient(t, b.URL, 2)
		if code, _ := c.attest(t, strings.Repeat("0", 32), m); code != http.StatusUnauthorized {
			t.Fatalf("attest without session: %d", code)
		}
		if rec := b.audit.lastRefusal(t); rec["check"] != "session" {
			t.Fatalf("audit %v", rec)
		}
		if _, code := c.key(t, "wl"); code != http.StatusUnauthorized {
			t.Fatal("key without session")
		}
	})
}

// TestKrunBindingKeyShape: the krun binding hashes nonce ‖ base64(n) ‖
// base64(e) without separators, so the broker takes only the key the guest
// makes (RSA-2048, canonical base64) and only its own 32-character nonce.
// The first case is the man-in-the-middle forgery: a host that knows the
// guest's modulus n sends n' = p ‖ n and has fed the guest the nonce
// N ‖ base64(p), so the guest's report_data is exactly the binding of N and
// n'. Had the broker accepted n', it would have encrypted the passphrase to
// the host's key.
func TestKrunBindingKeyShape(t *testing.T) {
	m := measurement(8)
	guest := guestRSAKey(0)
	nb := guest.N.Bytes()
	for _, tc := range []struct {
		name string
		// kmod and binding return the k-mod text sent and the report_data
		// the guest's evidence carries, given the broker's nonce.
		kmod    func() string
		binding func(nonce, kmod string) [64]byte
		code    int
		check   string
	}{
		{name: "suffix forgery (259-byte n' ending in the guest's n)",
			kmod: func() string { return b64(append([]byte{0x80, 0x00, 0x01}, nb...)) },
			binding: func(nonce, _ string) [64]byte {
				// What the fooled guest hashes: its own key after a longer nonce.
				return sha512.Sum512([]byte(nonce + b64([]byte{0x80, 0x00, 0x01}) + b64(nb) + "AQAB"))
			},
			code: http.StatusBadRequest, check: "tee_pubkey"},
		{name: "255-byte modulus", kmod: func() string { return b64(oddBytes(255)) }, code: http.StatusBadRequest, check: "tee_pubkey"},
		{name: "257-byte modulus", kmod: func() string { return b64(oddBytes(257)) }, code: http.StatusBadRequest, check: "tee_pubkey"},
		{name: "rsa-3072 modulus", kmod: func() string { return b64(oddBytes(384)) }, code: http.StatusBadRequest, check: "tee_pubkey"},
		{name: "rsa-4096 modulus", kmod: func() string { return b64(oddBytes(512)) }, code: http.StatusBadRequest, check: "tee_pubkey"},
		{name: "line break in k-mod", kmod: func() string { return b64(nb)[:76] + "\n" + b64(nb)[76:] }, code: http.StatusBadRequest, check: "tee_pubkey"},
		{name: "binding over a longer nonce",
			binding: func(nonce, kmod string) [64]byte { return sha512.Sum512([]byte(nonce + "00" + kmod + "AQAB")) },
			code:    http.StatusUnauthorized, check: "report_data"},
		{name: "binding over a nonce missing its last character",
			binding: func(nonce, kmod string) [64]byte { return sha512.Sum512([]byte(nonce[:31] + kmod + "AQAB")) },
			code:    http.StatusUnauthorized, check: "report_data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBroker(t)
			b.registerSim(t, "wl", m)
			c := newKrunClient(t, b.URL, 0)
			nonce, _ := c.auth(t, "wl")
			kmod := b64(nb)
			if tc.kmod != nil {
				kmod = tc.kmod()
				c.kmod = kmod
			}
			rd := sha512.Sum512([]byte(nonce + kmod + "AQAB")) // bound as the broker computes it
			if tc.binding != nil {
				rd = tc.binding(nonce, kmod)
			}
			c.reportData = &rd
			if code, body := c.attest(t, nonce, m); code != tc.code {
				t.Fatalf("attest: %d %q, want %d", code, body, tc.code)
			}
			if rec := b.audit.lastRefusal(t); rec["check"] != tc.check || rec["workload"] != "wl" {
				t.Fatalf("audit record %v, want check %q", rec, tc.check)
			}
			if _, code := c.key(t, "wl"); code != http.StatusUnauthorized {
				t.Fatalf("key after a refused attestation: %d", code)
			}
		})
	}
}

// oddBytes returns n random bytes shaped like an RSA modulus (top bit set,
// odd): only the length is wrong.
func oddBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	b[0] |= 0x80
	b[n-1] |= 1
	return b
}

// TestPolicyTightenedAfterAttest: the policy in force at release time wins.
func TestPolicyTightenedAfterAttest(t *testing.T) {
	b := newTestBroker(t)
	m := measurement(6)
	b.registerSim(t, "wl", m)
	c := newKrunClient(t, b.URL, 0)
	nonce, _ := c.auth(t, "wl")
	if code, _ := c.attest(t, nonce, m); code != http.StatusOK {
		t.Fatal("attest")
	}
	other := measurement(7)
	code, body := b.adminDo(t, http.MethodPut, "/admin/v1/workloads/wl/policy", mustJSON(WorkloadPolicy{Measurements: []string{hex.EncodeToString(other[:])}}))
	if code != http.StatusOK {
		t.Fatalf("policy update: %d %s", code, body)
	}
	if _, code := c.key(t, "wl"); code != http.StatusUnauthorized {
		t.Fatalf("key after the policy dropped the measurement: %d", code)
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "measurement" {
		t.Fatalf("audit %v", rec)
	}
}

func TestAuthRejects(t *testing.T) {
	b := newTestBroker(t)
	for name, tc := range map[string]struct {
		body string
		code int
	}{
		"unknown version":             {`{"version":"0.1.0","tee":"snp","extra-params":""}`, 400},
		"krun tdx":                    {`{"version":"0.0.0","tee":"tdx","extra-params":"{\"workload_id\":\"w\"}"}`, 400},
		"krun no workload":            {`{"version":"0.0.0","tee":"snp","extra-params":"{}"}`, 400},
		"krun bad id":                 {`{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"../x\"}"}`, 400},
		"trustee sample":              {`{"version":"0.4.0","tee":"sample","extra-params":""}`, 400},
		"trustee no verifier for tdx": {`{"version":"0.4.0","tee":"tdx","extra-params":""}`, 400},
		"trustee no extra-params":     {`{"version":"0.4.0","tee":"snp"}`, 400},
		"not json":                    {`hello`, 400},
	} {
		if code, body := post(t, b.URL+"/kbs/v0/auth", "", tc.body); code != tc.code {
			t.Errorf("%s: %d %s, want %d", name, code, body, tc.code)
		}
	}
}

// newOtherAuthority makes a second simulated secure processor, untrusted by
// the test brokers.
func newOtherAuthority(t *testing.T) *sim.Authority {
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
