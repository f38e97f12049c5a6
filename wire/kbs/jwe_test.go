package kbs

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// guestKeys returns the key kinds a guest may use, by name, with their JWKs.
func guestKeys(t *testing.T) map[string]struct {
	priv crypto.PrivateKey
	jwk  JWK
} {
	t.Helper()
	ec, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecd, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// P-521: the attestation agent's tee_key_algorithm ECDH-ES+A256KW-P521.
	ec521, err := ecdh.P521().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecd521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r := testRSAKey(t)
	out := map[string]struct {
		priv crypto.PrivateKey
		jwk  JWK
	}{}
	for name, priv := range map[string]crypto.PrivateKey{"ecdh": ec, "ecdsa": ecd, "ecdh-p521": ec521, "ecdsa-p521": ecd521, "rsa": r} {
		j, err := NewJWK(priv.(interface{ Public() crypto.PublicKey }).Public())
		if err != nil {
			t.Fatal(err)
		}
		out[name] = struct {
			priv crypto.PrivateKey
			jwk  JWK
		}{priv, j}
	}
	return out
}

func TestJWERoundTrip(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	for name, k := range guestKeys(t) {
		t.Run(name, func(t *testing.T) {
			j, err := EncryptJWE(k.jwk, secret)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := json.Marshal(j)
			parsed, err := ParseJWE(body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parsed.Decrypt(k.priv)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("decrypt: %v", err)
			}
			// Every member is base64url without padding.
			re := regexp.MustCompile(`^[A-Za-z0-9_-]*$`)
			for _, m := range []string{j.Protected, j.EncryptedKey, j.IV, j.Ciphertext, j.Tag} {
				if !re.MatchString(m) {
					t.Errorf("member %q is not unpadded base64url", m)
				}
			}
			// Independent decryption with go-jose.
			obj, err := jose.ParseEncryptedJSON(string(body),
				[]jose.KeyAlgorithm{jose.ECDH_ES_A256KW, jose.RSA_OAEP_256}, []jose.ContentEncryption{jose.A256GCM})
			if err != nil {
				t.Fatalf("go-jose parse: %v", err)
			}
			joseKey := k.priv
			if e, ok := k.priv.(*ecdh.PrivateKey); ok { // go-jose wants ecdsa
				curve := elliptic.P256()
				if e.Curve() == ecdh.P521() {
					curve = elliptic.P521()
				}
				if joseKey, err = ecdsa.ParseRawPrivateKey(curve, e.Bytes()); err != nil {
					t.Fatal(err)
				}
			}
			got, err = obj.Decrypt(joseKey)
			if err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("go-jose decrypt: %v", err)
			}
		})
	}
}

func TestJWEProtectedHeaderOrder(t *testing.T) {
	keys := guestKeys(t)
	ecJWE, err := EncryptJWE(keys["ecdh"].jwk, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ := b64url.DecodeString(ecJWE.Protected)
	re := regexp.MustCompile(`^\{"alg":"ECDH-ES\+A256KW","enc":"A256GCM","epk":\{"crv":"P-256","kty":"EC","x":"[A-Za-z0-9_-]{43}","y":"[A-Za-z0-9_-]{43}"\}\}$`)
	if !re.Match(hdr) {
		t.Fatalf("EC protected header %s", hdr)
	}
	// A P-521 guest key gets a P-521 epk (66-byte coordinates), as
	// Trustee's KBS sends it.
	ec521JWE, err := EncryptJWE(keys["ecdh-p521"].jwk, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ = b64url.DecodeString(ec521JWE.Protected)
	re = regexp.MustCompile(`^\{"alg":"ECDH-ES\+A256KW","enc":"A256GCM","epk":\{"crv":"P-521","kty":"EC","x":"[A-Za-z0-9_-]{88}","y":"[A-Za-z0-9_-]{88}"\}\}$`)
	if !re.Match(hdr) {
		t.Fatalf("P-521 protected header %s", hdr)
	}
	rsaJWE, err := EncryptJWE(keys["rsa"].jwk, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	hdr, _ = b64url.DecodeString(rsaJWE.Protected)
	if string(hdr) != `{"alg":"RSA-OAEP-256","enc":"A256GCM"}` {
		t.Fatalf("RSA protected header %s", hdr)
	}

	// Trustee's agent rebuilds the AAD as alg, enc, then the remaining
	// members sorted (serde_json's BTreeMap), nested members sorted too.
	var parsed map[string]any
	if err := json.Unmarshal(mustB64(t, ecJWE.Protected), &parsed); err != nil {
		t.Fatal(err)
	}
	rebuilt := `{"alg":` + jsonString(parsed["alg"].(string)) + `,"enc":` + jsonString(parsed["enc"].(string))
	delete(parsed, "alg")
	delete(parsed, "enc")
	rest, _ := json.Marshal(parsed) // Go sorts map keys at every level
	rebuilt += "," + strings.TrimPrefix(string(rest), "{")
	if b64url.EncodeToString([]byte(rebuilt)) != ecJWE.Protected {
		t.Fatalf("re-serialized header %s differs from the protected member", rebuilt)
	}

	// Header helper with a member that sorts before "enc" and an HTML char.
	h, err := protectedHeader("A", "B", map[string]any{"cty": "<x>", "zz": map[string]any{"b": 1, "a": 2}})
	if err != nil {
		t.Fatal(err)
	}
	if string(h) != `{"alg":"A","enc":"B","cty":"<x>","zz":{"a":2,"b":1}}` {
		t.Fatalf("header %s", h)
	}
}

func jsonString(s string) string {
	var b bytes.Buffer
	writeJSONString(&b, s)
	return b.String()
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := b64url.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestJWEDecryptsGoJose(t *testing.T) {
	// The guest must open JWEs from any correct encrypter, not only ours.
	secret := []byte("passphrase")
	for name, k := range guestKeys(t) {
		alg := jose.ECDH_ES_A256KW
		if k.jwk.Kty == KtyRSA {
			alg = jose.RSA_OAEP_256
		}
		enc, err := jose.NewEncrypter(jose.A256GCM, jose.Recipient{Algorithm: alg,
			Key: k.priv.(interface{ Public() crypto.PublicKey }).Public()}, nil)
		if err != nil {
			if strings.HasPrefix(name, "ecdh") { // go-jose wants *ecdsa.PublicKey
				continue
			}
			t.Fatalf("%s: %v", name, err)
		}
		obj, err := enc.Encrypt(secret)
		if err != nil {
			t.Fatal(err)
		}
		j, err := ParseJWE([]byte(obj.FullSerialize()))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := j.Decrypt(k.priv)
		if err != nil || !bytes.Equal(got, secret) {
			t.Fatalf("%s: %v", name, err)
		}
	}
}

func TestJWETamper(t *testing.T) {
	keys := guestKeys(t)
	secret := []byte("top secret passphrase")
	for name, k := range keys {
		j, err := EncryptJWE(k.jwk, secret)
		if err != nil {
			t.Fatal(err)
		}
		flip := func(s string) string {
			b := mustB64(t, s)
			b[len(b)/2] ^= 1
			return b64url.EncodeToString(b)
		}
		cases := map[string]JWE{
			"ciphertext": {j.Protected, j.EncryptedKey, j.IV, flip(j.Ciphertext), j.Tag},
			"tag":        {j.Protected, j.EncryptedKey, j.IV, j.Ciphertext, flip(j.Tag)},
			"iv":         {j.Protected, j.EncryptedKey, flip(j.IV), j.Ciphertext, j.Tag},
			"key":        {j.Protected, flip(j.EncryptedKey), j.IV, j.Ciphertext, j.Tag},
			"protected":  {flip(j.Protected), j.EncryptedKey, j.IV, j.Ciphertext, j.Tag},
		}
		for what, bad := range cases {
			if _, err := bad.Decrypt(k.priv); err == nil {
				t.Errorf("%s: tampered %s decrypted", name, what)
			} else if strings.Contains(err.Error(), string(secret)) {
				t.Errorf("%s: error carries the secret", name)
			}
		}
		// Wrong key of the same kind.
		other := guestKeys(t)[name]
		if name != "rsa" { // the RSA test key is shared
			if _, err := j.Decrypt(other.priv); err == nil {
				t.Errorf("%s: decrypted with another key", name)
			}
		}
	}
	// A key of the other kind is refused by alg.
	j, _ := EncryptJWE(keys["rsa"].jwk, secret)
	if _, err := j.Decrypt(keys["ecdh"].priv); err == nil {
		t.Error("RSA JWE opened with an EC key")
	}
}
