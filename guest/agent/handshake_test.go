package agent

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealroot/sealroot/wire/kbs"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// fakeBroker is a minimal broker of either dialect on an httptest server.
// It issues the nonces nonce(n) returns for the n-th /auth (from 1), checks
// each /attest's report_data binding against the key it carries, records
// the keys, answers /attest with attestStatus(n) (0: success) and serves
// the secret encrypted to the key of the last successful attestation.
type fakeBroker struct {
	t            *testing.T
	dialect      string
	nonce        func(n int) string
	attestStatus func(n int) int
	secret       []byte

	mu       sync.Mutex
	auths    int
	attests  int
	keys     []string // k-mod (krun) or the JWK's x or n (Trustee), in /attest order
	sessions map[string]string
	attested map[string]kbs.JWK // Trustee: session → key
	krunKey  map[string]kbs.KrunPubKey
}

func newFakeBroker(t *testing.T, dialect string, nonce func(int) string, attestStatus func(int) int) (*fakeBroker, string) {
	t.Helper()
	fb := &fakeBroker{t: t, dialect: dialect, nonce: nonce, attestStatus: attestStatus, secret: []byte(passphrase),
		sessions: map[string]string{}, attested: map[string]kbs.JWK{}, krunKey: map[string]kbs.KrunPubKey{}}
	if fb.attestStatus == nil {
		fb.attestStatus = func(int) int { return 0 }
	}
	ts := httptest.NewServer(fb)
	t.Cleanup(ts.Close)
	return fb, ts.URL
}

// randomKrunNonce is what reference-kbs and sealroot's broker issue.
func randomKrunNonce() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func randomTrusteeNonce() string {
	var b [32]byte
	rand.Read(b[:])
	return kbs.NewTrusteeNonce(b)
}

func (fb *fakeBroker) cookieName() string {
	if fb.dialect == kbs.DialectTrustee {
		return kbs.TrusteeCookie
	}
	return kbs.KrunCookie
}

func (fb *fakeBroker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	session := ""
	if c, err := r.Cookie(fb.cookieName()); err == nil {
		session = c.Value
	}
	switch {
	case r.URL.Path == "/kbs/v0/auth":
		fb.auths++
		var id [16]byte
		rand.Read(id[:])
		sid := hex.EncodeToString(id[:])
		n := fb.nonce(fb.auths)
		fb.sessions[sid] = n
		http.SetCookie(w, &http.Cookie{Name: fb.cookieName(), Value: sid})
		json.NewEncoder(w).Encode(kbs.Challenge{Nonce: n, ExtraParams: kbs.EmptyExtraParams})
	case r.URL.Path == "/kbs/v0/attest":
		fb.attests++
		nonce, ok := fb.sessions[session]
		if !ok {
			http.Error(w, "unknown session", http.StatusUnauthorized)
			return
		}
		if fb.dialect == kbs.DialectTrustee {
			a, err := kbs.ParseAttestation(body)
			if err != nil {
				fb.t.Errorf("fake broker: %v", err)
				http.Error(w, "bad attest", http.StatusBadRequest)
				return
			}
			ev, err := snpreport.Decode(a.TEEEvidence.PrimaryEvidence)
			if err != nil {
				fb.t.Errorf("fake broker: %v", err)
				http.Error(w, "bad evidence", http.StatusBadRequest)
				return
			}
			jwk := a.RuntimeData.TEEPubKey
			if a.RuntimeData.Nonce != nonce || string(ev.Report[0x50:0x90]) != string(kbs.TrusteeReportData(nonce, jwk, "", 64)) {
				fb.t.Errorf("fake broker: report_data does not bind this session's nonce and the key sent")
			}
			fb.keys = append(fb.keys, jwk.X+jwk.N)
			if code := fb.attestStatus(fb.attests); code != 0 {
				http.Error(w, "injected fault", code)
				return
			}
			fb.attested[session] = jwk
			w.Write([]byte(`{"token":"x.y.z"}`))
			return
		}
		a, err := kbs.ParseKrunAttestation(body)
		if err != nil {
			fb.t.Errorf("fake broker: %v", err)
			http.Error(w, "bad attest", http.StatusBadRequest)
			return
		}
		report, _, err := kbs.DecodeKrunSNPEvidence(a.TEEEvidence)
		if err != nil {
			fb.t.Errorf("fake broker: %v", err)
			http.Error(w, "bad evidence", http.StatusBadRequest)
			return
		}
		if rd := kbs.KrunBinding(nonce, a.TEEPubKey); string(report[0x50:0x90]) != string(rd[:]) {
			fb.t.Errorf("fake broker: report_data does not bind this session's nonce and the key sent")
		}
		fb.keys = append(fb.keys, a.TEEPubKey.KMod)
		if code := fb.attestStatus(fb.attests); code != 0 {
			http.Error(w, "injected fault", code)
			return
		}
		fb.krunKey[session] = a.TEEPubKey
	case strings.HasPrefix(r.URL.Path, "/kbs/v0/key/"):
		k, ok := fb.krunKey[session]
		if !ok {
			http.Error(w, "not attested", http.StatusUnauthorized)
			return
		}
		pub, err := k.RSAPublicKey()
		if err != nil {
			fb.t.Errorf("fake broker: %v", err)
			return
		}
		b, err := kbs.KrunEncryptSecret(pub, fb.secret)
		if err != nil {
			fb.t.Errorf("fake broker: %v", err)
			return
		}
		w.Write(b)
	case strings.HasPrefix(r.URL.Path, "/kbs/v0/resource/"):
		jwk, ok := fb.attested[session]
		if !ok {
			http.Error(w, "not attested", http.StatusUnauthorized)
			return
		}
		j, err := kbs.EncryptJWE(jwk, fb.secret)
		if err != nil {
			fb.t.Errorf("fake broker: %v", err)
			return
		}
		json.NewEncoder(w).Encode(j)
	default:
		http.NotFound(w, r)
	}
}

func (fb *fakeBroker) counts() (auths, attests int, keys []string) {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return fb.auths, fb.attests, append([]string(nil), fb.keys...)
}

// TestNonceFormRefused: a challenge whose nonce is not exactly the
// dialect's form ends the exchange at step auth, before any key is bound to
// it, and is not retried. The first krun case is the MITM's: a genuine
// 32-hex nonce followed by the base64 tail of a modulus the host chose.
func TestNonceFormRefused(t *testing.T) {
	hex32 := randomKrunNonce()
	cases := []struct {
		name, dialect, nonce string
	}{
		{"krun nonce with a base64 tail", "", hex32 + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="},
		{"krun nonce of 1024 characters", "", strings.Repeat("a", 1024)},
		{"krun nonce of 33 hex", "", hex32 + "0"},
		{"krun nonce of 31 hex", "", hex32[:31]},
		{"krun nonce in uppercase hex", "", strings.ToUpper(hex32)},
		{"krun nonce in base64", "", randomTrusteeNonce()},
		{"trustee nonce of 3 bytes", "trustee", "AAAA"},
		{"trustee nonce of 33 bytes", "trustee", base64.StdEncoding.EncodeToString(make([]byte, 33))},
		{"trustee nonce without padding", "trustee", base64.RawStdEncoding.EncodeToString(make([]byte, 32))},
		{"trustee nonce in base64url", "trustee", strings.Repeat("_", 43) + "="},
		{"trustee nonce with non-canonical padding bits", "trustee", strings.Repeat("A", 42) + "B="},
		{"trustee nonce in hex", "trustee", hex32},
		{"trustee nonce with a base64 tail", "trustee", randomTrusteeNonce() + "QUJD"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dialect := kbs.DialectKrun
			if c.dialect != "" {
				dialect = c.dialect
			}
			fb, url := newFakeBroker(t, dialect, func(int) string { return c.nonce }, nil)
			att := &hookAttester{Attester: simAttester(t, measurement)}
			logs := &logBuffer{}
			o := testOptions(testConfig("wl-1", url, c.dialect, "20s"), att, logs)
			slept := 0
			o.Sleep = func(context.Context, time.Duration) error { slept++; return nil }
			_, err := FetchPassphrase(context.Background(), o)
			checkNoSecret(t, err, logs)
			var ae *Error
			if !errors.As(err, &ae) || ae.Step != StepAuth || ae.Retryable() || !strings.Contains(err.Error(), "challenge nonce") {
				t.Fatalf("error = %v, want a final auth failure about the challenge nonce", err)
			}
			t.Logf("error: %v", err)
			auths, attests, _ := fb.counts()
			if n := att.calls.Load(); n != 0 || attests != 0 || auths != 1 || slept != 0 {
				t.Fatalf("%d auths, %d attester calls, %d attests, %d retries: want 1, 0, 0, 0", auths, n, attests, slept)
			}
		})
	}
}

// TestFreshKeyPerHandshake: when /attest fails transiently and the broker
// then issues a new challenge, the second handshake binds and sends a key
// different from the first, and the secret is opened with that new key.
func TestFreshKeyPerHandshake(t *testing.T) {
	for _, d := range []struct{ name, protocol, key, dialect string }{
		{"krun", "", "", kbs.DialectKrun},
		{"trustee-ec", "trustee", KeyEC, kbs.DialectTrustee},
		{"trustee-rsa", "trustee", KeyRSA, kbs.DialectTrustee},
	} {
		t.Run(d.name, func(t *testing.T) {
			nonce := randomKrunNonce
			if d.dialect == kbs.DialectTrustee {
				nonce = randomTrusteeNonce
			}
			fb, url := newFakeBroker(t, d.dialect, func(int) string { return nonce() }, func(n int) int {
				if n == 1 {
					return http.StatusServiceUnavailable
				}
				return 0
			})
			att := &hookAttester{Attester: simAttester(t, measurement)}
			logs := &logBuffer{}
			o := testOptions(testConfig("wl-1", url, d.protocol, "20s"), att, logs)
			o.TrusteeKey = d.key
			got, err := FetchPassphrase(context.Background(), o)
			checkNoSecret(t, err, logs)
			if err != nil {
				t.Fatalf("FetchPassphrase: %v\nlogs:\n%s", err, logs)
			}
			if string(got) != passphrase {
				t.Fatal("wrong passphrase")
			}
			auths, attests, keys := fb.counts()
			if auths != 2 || attests != 2 || len(keys) != 2 {
				t.Fatalf("%d auths, %d attests, %d keys: want 2 of each", auths, attests, len(keys))
			}
			if keys[0] == "" || keys[0] == keys[1] {
				t.Fatal("the second handshake sent the same public key as the first")
			}
			if n := strings.Count(logs.String(), "fresh "); n != 2 {
				t.Fatalf("%d keys made, want 2:\n%s", n, logs)
			}
		})
	}
}

// TestNewKeyWipesTheOld: the key of an earlier handshake is wiped when the
// next one makes its own.
func TestNewKeyWipesTheOld(t *testing.T) {
	keys := keyMaker{logf: func(string, ...any) {}, now: time.Now}
	k := &krun{keys: keys}
	var err error
	if k.key, err = keys.rsa(); err != nil {
		t.Fatal(err)
	}
	old := k.key
	k.wipe()
	if k.key != nil || old.D.Sign() != 0 || old.Primes[0].Sign() != 0 {
		t.Fatal("krun: the old key was not wiped and dropped")
	}
	tr := &trustee{keys: keys, keyKind: KeyRSA}
	if tr.key, tr.jwk, err = keys.trustee(KeyRSA); err != nil {
		t.Fatal(err)
	}
	oldT, ok := tr.key.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("trustee RSA key is a %T", tr.key)
	}
	tr.wipe()
	if tr.key != nil || tr.jwk.N != "" || oldT.D.Sign() != 0 {
		t.Fatal("trustee: the old key was not wiped and dropped")
	}
}

func TestCheckNonces(t *testing.T) {
	for n, ok := range map[string]bool{
		"0123456789abcdef0123456789abcdef":  true,
		"0123456789abcdef0123456789abcdeF":  false,
		"0123456789abcdef0123456789abcde":   false,
		"0123456789abcdef0123456789abcdef0": false,
		"0123456789abcdef0123456789abcdeg":  false,
		"":                                  false,
	} {
		if err := checkKrunNonce(n); (err == nil) != ok {
			t.Errorf("checkKrunNonce(%q) = %v, want ok=%v", n, err, ok)
		}
	}
	for n, ok := range map[string]bool{
		vectorNonce:                                    true,
		strings.TrimSuffix(vectorNonce, "="):           false,
		vectorNonce + "=":                              false,
		strings.Replace(vectorNonce, "H", "\n", 1):     false,
		"-" + vectorNonce[1:]:                          false,
		"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=": false, // non-zero padding bits
		"": false,
	} {
		if err := checkTrusteeNonce(n); (err == nil) != ok {
			t.Errorf("checkTrusteeNonce(%q) = %v, want ok=%v", n, err, ok)
		}
	}
}
