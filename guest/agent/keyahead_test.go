package agent

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/wire/kbs"
)

// TestKeyMadeAheadUsedOnce: the key made ahead of time serves the first
// handshake that needs an RSA key and never a second one; the Trustee EC
// dialect never asks for it.
func TestKeyMadeAheadUsedOnce(t *testing.T) {
	ahead, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		name, protocol, key, dialect string
		wantAsked                    int
	}{
		{"krun", "", "", kbs.DialectKrun, 1},
		{"trustee-rsa", "trustee", KeyRSA, kbs.DialectTrustee, 1},
		{"trustee-ec", "trustee", KeyEC, kbs.DialectTrustee, 0},
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
			logs := &logBuffer{}
			o := testOptions(testConfig("wl-1", url, d.protocol, "20s"), &hookAttester{Attester: simAttester(t, measurement)}, logs)
			o.TrusteeKey = d.key
			asked := 0
			o.FirstRSAKey = func() (*rsa.PrivateKey, error) { asked++; return ahead, nil }
			got, err := FetchPassphrase(context.Background(), o)
			if err != nil || string(got) != passphrase {
				t.Fatalf("FetchPassphrase: %v\nlogs:\n%s", err, logs)
			}
			_, _, keys := fb.counts()
			if len(keys) != 2 || keys[0] == keys[1] {
				t.Fatalf("keys sent %d, distinct %v: want a fresh key for the second handshake", len(keys), len(keys) == 2 && keys[0] != keys[1])
			}
			if asked != d.wantAsked {
				t.Fatalf("key made ahead asked for %d times, want %d", asked, d.wantAsked)
			}
			made, fresh := strings.Count(logs.String(), "made ahead of time"), strings.Count(logs.String(), "fresh ")
			if made != d.wantAsked || made+fresh != 2 {
				t.Fatalf("%d keys made ahead, %d fresh; want %d ahead of 2:\n%s", made, fresh, d.wantAsked, logs)
			}
		})
	}
}

func TestAheadKeyFallsBack(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for name, get := range map[string]func() (*rsa.PrivateKey, error){
		"error":    func() (*rsa.PrivateKey, error) { return nil, errors.New("no entropy") },
		"1024 bit": func() (*rsa.PrivateKey, error) { return small, nil },
		"nil":      nil,
	} {
		if k := (&aheadKey{get: get}).take(); k != nil {
			t.Errorf("%s: took a key", name)
		}
	}
	var none *aheadKey
	if none.take() != nil {
		t.Error("nil aheadKey gave a key")
	}
}
