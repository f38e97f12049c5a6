package broker

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify"
	"github.com/sealroot/sealroot/host/verify/certcache"
	"github.com/sealroot/sealroot/wire/kbs"
)

// TestTDXOfflineRefusesWithoutCollateral: a broker whose verifiers are
// built as Run builds them with --offline and an empty STATE/certs refuses
// a genuine TDX quote (go-tdx-guest's real Sapphire Rapids quote) at the
// evidence check, naming the missing collateral, rather than verifying it
// on its signature and PCK chain and going on to the binding check.
func TestTDXOfflineRefusesWithoutCollateral(t *testing.T) {
	at := time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)
	b := newTestBroker(t, func(c *Config) {
		cache, err := certcache.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		vs, err := verify.Broker(verify.Options{Cache: cache, Offline: true, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		c.Verifiers[attest.TEETDX] = vs[attest.TEETDX]
	})
	tdxOfflineHandshake(t, b, "collateral not available offline", "TCB info")
}

// TestTDXChainOnlyClaimsRefused: a broker given a chain-only TDX
// verifier by other code (Config.Verifiers), not by verify.Broker,
// refuses what it accepts.
func TestTDXChainOnlyClaimsRefused(t *testing.T) {
	at := time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)
	b := newTestBroker(t, func(c *Config) {
		v, err := verify.New(attest.TEETDX, verify.Options{Offline: true, TDXChainOnly: true, Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		c.Verifiers[attest.TEETDX] = v
	})
	tdxOfflineHandshake(t, b, "signature and PCK chain only", "TCB status")
}

// tdxOfflineHandshake registers the real quote's TD and runs a Trustee
// handshake with it, which must be refused at the evidence check with a
// reason containing both of want.
func tdxOfflineHandshake(t *testing.T, b *testBroker, want ...string) {
	t.Helper()
	var mrtd [48]byte
	copy(mrtd[:], testdata.RawQuote[0xB8:0xE8])
	var rtmrs [4][48]byte
	for i := range rtmrs {
		copy(rtmrs[i][:], testdata.RawQuote[0x178+48*i:])
	}
	pass := "tdx-passphrase"
	reg := AdminRegistration{WorkloadID: "td", TEE: attest.TEETDX, Policy: tdxPolicy(mrtd, rtmrs), Passphrase: &pass}
	if code, body := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg)); code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}

	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	req, _ := http.NewRequest(http.MethodPost, b.URL+"/kbs/v0/auth",
		strings.NewReader(`{"version":"0.4.0","tee":"tdx","extra-params":{"workload_id":"td"}}`))
	code, body := do(t, hc, req)
	if code != http.StatusOK {
		t.Fatalf("auth: %d %s", code, body)
	}
	var ch kbs.Challenge
	if err := json.Unmarshal([]byte(body), &ch); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, err := kbs.NewJWK(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := json.Marshal(jwk)
	att := `{"init-data":null,"runtime-data":{"nonce":"` + ch.Nonce + `","tee-pubkey":` + string(pk) +
		`},"tee-evidence":{"primary_evidence":{"cc_eventlog":null,"quote":"` + base64.StdEncoding.EncodeToString(bytes.Clone(testdata.RawQuote)) +
		`"},"additional_evidence":""}}`
	req, _ = http.NewRequest(http.MethodPost, b.URL+"/kbs/v0/attest", strings.NewReader(att))
	if code, body := do(t, hc, req); code != http.StatusUnauthorized {
		t.Fatalf("attest: %d %s, want 401", code, body)
	}
	var rec map[string]any
	for _, r := range b.audit.records(t) {
		if r["event"] == eventRefusal && r["workload"] == "td" {
			rec = r
		}
	}
	if rec == nil || rec["check"] != "evidence" {
		t.Fatalf("refusal %v, want one at the evidence check (records %v)", rec, b.audit.records(t))
	}
	reason, _ := rec["reason"].(string)
	for _, w := range want {
		if !strings.Contains(reason, w) {
			t.Fatalf("refusal reason %q lacks %q", reason, w)
		}
	}
}
