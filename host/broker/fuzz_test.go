package broker

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/wire/kbs"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// Every decoder of request bytes is fuzzed. The invariants: no panic, and
// nothing accepted that later code assumes impossible.

func FuzzParseRegistration(f *testing.F) {
	m := strings.Repeat("ab", 48)
	f.Add([]byte(registrationBody("w", m, "p")))
	f.Add([]byte(`{"workload_id":"w","launch_measurement":"","passphrase":"","tee_config":""}`))
	f.Add([]byte(`{"workload_id":"../../x","launch_measurement":"` + m + `","passphrase":"p","tee_config":"{"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		reg, meas, err := parseRegistration(b)
		if err != nil {
			if reg == nil {
				return
			}
			t.Fatal("error with a result")
		}
		if validateWorkloadID(reg.WorkloadID) != nil || len(meas) != 48 || reg.Passphrase == "" || len(reg.Passphrase) > maxPassphrase {
			t.Fatalf("accepted %q", b)
		}
		if strings.ContainsAny(reg.WorkloadID, "/\\ \x00") {
			t.Fatalf("workload id %q accepted", reg.WorkloadID)
		}
	})
}

func FuzzTrusteeWorkloadID(f *testing.F) {
	for _, s := range []string{`""`, `{"supported-hash-algorithms":["sha384"]}`, `{"workload_id":"w"}`, `{"workload_id":""}`, `null`, `7`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = trusteeWorkloadID(b)
	})
}

func FuzzDecodeKrunAttest(f *testing.F) {
	k := guestRSAKey(0)
	pk := kbs.NewKrunPubKey(&k.PublicKey)
	ev, _ := kbs.EncodeKrunSNPEvidence("milan", make([]byte, snpreport.ReportSize), nil)
	good, _ := json.Marshal(kbs.KrunAttestation{TEEPubKey: pk, TEEEvidence: ev})
	f.Add(good)
	f.Add([]byte(`{"tee-pubkey":{"alg":"RSA","k-mod":"AQAB","k-exp":"AQAB"},"tee-evidence":"{}"}`))
	sess := &store.Session{ID: strings.Repeat("a", 32), Nonce: strings.Repeat("a", 32), Dialect: kbs.DialectKrun, TEE: "snp"}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, ref := decodeKrunAttest(sess, b)
		if ref != nil {
			if ref.code != http.StatusBadRequest {
				t.Fatalf("decoder refusal with code %d", ref.code)
			}
			return
		}
		if len(a.evidence.Report) != snpreport.ReportSize || len(a.reportData) != 64 || len(a.pubKey) == 0 {
			t.Fatalf("accepted attempt %+v", a)
		}
		// Only the RSA-2048 key a guest makes: the binding has no separators.
		var pk kbs.KrunPubKey
		if json.Unmarshal(a.pubKey, &pk) != nil || len(pk.KMod) != 344 {
			t.Fatalf("accepted a k-mod of %d base64 characters, want 344 (RSA-2048)", len(pk.KMod))
		}
	})
}

func FuzzDecodeTrusteeAttest(f *testing.F) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, _ := kbs.NewJWK(&ec.PublicKey)
	jb, _ := json.Marshal(jwk)
	nonce := strings.Repeat("A", 43) + "="
	f.Add([]byte(`{"init-data":null,"runtime-data":{"nonce":"` + nonce + `","tee-pubkey":` + string(jb) + `},"tee-evidence":{"primary_evidence":{"attestation_report":{}},"additional_evidence":""}}`))
	f.Add([]byte(`{"runtime-data":{"nonce":"` + nonce + `","tee-pubkey":` + string(jb) + `},"tee-evidence":{"primary_evidence":{"quote":"AAAA"}}}`))
	sessions := []*store.Session{
		{ID: strings.Repeat("b", 32), Nonce: nonce, Dialect: kbs.DialectTrustee, TEE: "snp"},
		{ID: strings.Repeat("b", 32), Nonce: nonce, Dialect: kbs.DialectTrustee, TEE: "tdx"},
		{ID: strings.Repeat("b", 32), Nonce: nonce, Dialect: kbs.DialectTrustee, TEE: "cca"},
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, sess := range sessions {
			a, ref := decodeTrusteeAttest(sess, b)
			if ref != nil {
				continue
			}
			if a.evidence.TEE != sess.TEE || len(a.reportData) != 64 {
				t.Fatalf("accepted attempt for %s: %+v", sess.TEE, a.evidence)
			}
		}
	})
}

func FuzzWorkloadPolicy(f *testing.F) {
	m := strings.Repeat("0a", 48)
	f.Add([]byte(`{"measurements":["`+m+`"],"host_data":"00","min_tcb":"bl=1,tee=0,snp=8,ucode=115","max_vmpl":0}`), "snp")
	f.Add([]byte(`{"measurements":["`+strings.Repeat("0a", 32)+`"]}`), "cca")
	f.Add([]byte(`{"measurements":["`+m+`"],"rtmrs":{"1":"`+m+`","2":"`+m+`"}}`), "tdx")
	f.Add([]byte(`{"measurements":["`+m+`"],"rtmrs":{"1":"`+m+`"}}`), "tdx")
	f.Fuzz(func(t *testing.T, b []byte, tee string) {
		var doc WorkloadPolicy
		if json.Unmarshal(b, &doc) != nil || doc.Validate(tee) != nil {
			return
		}
		pol, err := doc.compile(tee, true, nil)
		if err != nil {
			t.Fatalf("validated policy does not compile: %v", err)
		}
		if len(pol.Measurements) == 0 || pol.AllowSimulated != (tee == attest.TEESim) || pol.MaxVMPL < 0 || pol.MaxVMPL > 3 {
			t.Fatalf("compiled %+v", pol)
		}
		if tee == attest.TEETDX && (len(pol.RTMRs[1]) != 48 || len(pol.RTMRs[2]) != 48) {
			t.Fatalf("tdx policy without rtmr 1 and 2: %+v", pol.RTMRs)
		}
		if tee != attest.TEETDX && len(pol.RTMRs) != 0 {
			t.Fatalf("rtmrs on a %s policy", tee)
		}
	})
}

func FuzzTokenVerify(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts := newTokenSigner(key)
	now := time.Now()
	tok, _ := ts.issue(tokenClaims{TEE: "snp"})
	f.Add(tok)
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ts.verify(s, now)
		if err == nil && (c.ID == "" || c.Expiry == nil) {
			t.Fatal("accepted a token without jti or exp")
		}
	})
}

var (
	fuzzSrvOnce sync.Once
	fuzzSrv     *Server
)

// FuzzHandlers throws bytes at the broker's request handlers through
// ServeHTTP: every answer must be a well-formed HTTP status, never a 5xx.
func FuzzHandlers(f *testing.F) {
	fuzzSrvOnce.Do(func() { fuzzSrv = newTestBroker(f).Server })
	m := strings.Repeat("ab", 48)
	for _, s := range []struct{ path, body string }{
		{"/kbs/v0/auth", `{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"w\"}"}`},
		{"/kbs/v0/auth", `{"version":"0.4.0","tee":"snp","extra-params":""}`},
		{"/kbs/v0/attest", `{"tee-pubkey":{},"tee-evidence":""}`},
		{"/kbs/v0/register_workload", registrationBody("fz", m, "p")},
	} {
		f.Add(s.path, []byte(s.body), strings.Repeat("c", 32))
	}
	f.Fuzz(func(t *testing.T, path string, body []byte, cookie string) {
		if !strings.HasPrefix(path, "/kbs/v0/") {
			return
		}
		req := httptest.NewRequest(http.MethodPost, "http://broker/", bytes.NewReader(body))
		req.URL.Path = path
		req.AddCookie(&http.Cookie{Name: kbs.KrunCookie, Value: sanitizeCookie(cookie)})
		rec := httptest.NewRecorder()
		fuzzSrv.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body.String())
		}
	})
}

func sanitizeCookie(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, s)
}
