package kbs

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math/big"
	"strings"
	"sync"
	"testing"

	"github.com/sealroot/sealroot/wire/snpreport"
)

var (
	rsaOnce sync.Once
	rsaKey1 *rsa.PrivateKey
)

// testRSAKey returns one 2048-bit key per test binary (generation is slow).
func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey1 = k
	})
	return rsaKey1
}

func TestTrusteeReportDataWorkedVector(t *testing.T) {
	// docs/interop.md §4, step 3.
	jwk := JWK{Kty: "EC", Crv: "P-256", Alg: "ECDH-ES+A256KW",
		X: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",
		Y: "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"}
	const nonce = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	const want = "d934ba73c76ad6ce42e80746cefb42b74c7e0af0f0d30ace51557c3da2a8fe7608b3c6856f09e1f101fd459a86b1c846"

	got48 := TrusteeReportData(nonce, jwk, "", 0)
	if hex.EncodeToString(got48) != want {
		t.Fatalf("sha-384 binding = %x, want %s", got48, want)
	}
	got64 := TrusteeReportData(nonce, jwk, "", 64)
	if len(got64) != 64 || hex.EncodeToString(got64[:48]) != want || !bytes.Equal(got64[48:], make([]byte, 16)) {
		t.Fatalf("padded binding = %x", got64)
	}
	// The same document written by hand in canonical form.
	canon := `{"additional-evidence":"","nonce":"` + nonce + `","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"` + jwk.X + `","y":"` + jwk.Y + `"}}`
	if sum := sha512.Sum384([]byte(canon)); hex.EncodeToString(sum[:]) != want {
		t.Fatalf("hand-written canonical document does not give the vector: %x", sum)
	}
}

func TestTrusteeReportDataBindsEveryInput(t *testing.T) {
	base := JWK{Kty: "EC", Crv: "P-256", Alg: AlgECDHESA256KW, X: "AQ", Y: "Ag"}
	ref := TrusteeReportData("n", base, "", 64)
	variants := map[string][]byte{
		"nonce":      TrusteeReportData("m", base, "", 64),
		"additional": TrusteeReportData("n", base, "x", 64),
		"key x":      TrusteeReportData("n", JWK{Kty: "EC", Crv: "P-256", Alg: AlgECDHESA256KW, X: "AA", Y: "Ag"}, "", 64),
		"html chars": TrusteeReportData("<&>", base, "", 64),
	}
	for name, v := range variants {
		if bytes.Equal(v, ref) {
			t.Errorf("changing %s did not change report_data", name)
		}
	}
	// Members outside the binding set do not count.
	withN := base
	withN.N = "ignored"
	if !bytes.Equal(TrusteeReportData("n", withN, "", 64), ref) {
		t.Error("an n member on an EC key changed the binding")
	}
	// No HTML escaping: '<' is hashed as itself.
	canon := `{"additional-evidence":"","nonce":"<&>","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"AQ","y":"Ag"}}`
	sum := sha512.Sum384([]byte(canon))
	if !bytes.Equal(variants["html chars"][:48], sum[:]) {
		t.Error("binding escapes HTML characters")
	}
}

func TestKrunReportData(t *testing.T) {
	k := testRSAKey(t)
	const nonce = "0123456789abcdef0123456789abcdef"
	got := KrunReportData(nonce, &k.PublicKey)
	// Independent computation from docs/interop.md §3: SHA-512(nonce ‖ b64(n) ‖ b64(e)).
	e := big.NewInt(int64(k.E)).Bytes()
	want := sha512.Sum512([]byte(nonce + base64.StdEncoding.EncodeToString(k.N.Bytes()) + base64.StdEncoding.EncodeToString(e)))
	if got != want {
		t.Fatalf("krun binding mismatch")
	}
	if base64.StdEncoding.EncodeToString(e) != "AQAB" {
		t.Fatalf("exponent 65537 encodes as %q, want AQAB", base64.StdEncoding.EncodeToString(e))
	}
	pk := NewKrunPubKey(&k.PublicKey)
	back, err := pk.RSAPublicKey()
	if err != nil || !back.Equal(&k.PublicKey) {
		t.Fatalf("krun key round trip: %v", err)
	}
}

// oddModulus returns n bytes shaped like an RSA modulus: top bit set, odd.
func oddModulus(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	b[0] |= 0x80
	b[n-1] |= 1
	return b
}

func TestKrunPubKeyRejects(t *testing.T) {
	k := testRSAKey(t)
	good := NewKrunPubKey(&k.PublicKey)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString
	topClear := k.N.Bytes()
	topClear[0] &^= 0x80
	for name, pk := range map[string]KrunPubKey{
		"alg":        {Alg: "EC", KMod: good.KMod, KExp: good.KExp},
		"not base64": {Alg: "RSA", KMod: "!!", KExp: good.KExp},
		"url base64": {Alg: "RSA", KMod: base64.RawURLEncoding.EncodeToString(k.N.Bytes()), KExp: good.KExp},
		"small":      NewKrunPubKey(&small.PublicKey),
		// Any modulus length but 256 bytes makes the binding ambiguous.
		"255 bytes":         {Alg: "RSA", KMod: enc(oddModulus(255)), KExp: good.KExp},
		"257 bytes":         {Alg: "RSA", KMod: enc(oddModulus(257)), KExp: good.KExp},
		"rsa-3072":          {Alg: "RSA", KMod: enc(oddModulus(384)), KExp: good.KExp},
		"rsa-4096":          {Alg: "RSA", KMod: enc(oddModulus(512)), KExp: good.KExp},
		"leading zero byte": {Alg: "RSA", KMod: enc(append([]byte{0}, k.N.Bytes()...)), KExp: good.KExp},
		"top bit clear":     {Alg: "RSA", KMod: enc(topClear), KExp: good.KExp},
		"line break in mod": {Alg: "RSA", KMod: good.KMod[:64] + "\n" + good.KMod[64:], KExp: good.KExp},
		"mod without pad":   {Alg: "RSA", KMod: strings.TrimRight(good.KMod, "="), KExp: good.KExp},
		"exp even":          {Alg: "RSA", KMod: good.KMod, KExp: enc([]byte{1, 0, 0})},
		"exp one":           {Alg: "RSA", KMod: good.KMod, KExp: "AQ=="},
		"exp long":          {Alg: "RSA", KMod: good.KMod, KExp: enc([]byte{1, 0, 0, 0, 1})},
		"exp leading zero":  {Alg: "RSA", KMod: good.KMod, KExp: enc([]byte{0, 1, 0, 1})},
		"exp line break":    {Alg: "RSA", KMod: good.KMod, KExp: "AQAB\r\n"},
		"exp trailing bits": {Alg: "RSA", KMod: good.KMod, KExp: "AQB="}, // non-zero bits under the padding
	} {
		if _, err := pk.RSAPublicKey(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, e := range map[string][]byte{"65537": {1, 0, 1}, "3": {3}, "4 bytes": {0x7f, 0xff, 0xff, 0xff}} {
		pk := KrunPubKey{Alg: "RSA", KMod: good.KMod, KExp: enc(e)}
		if _, err := pk.RSAPublicKey(); err != nil {
			t.Errorf("exponent %s refused: %v", name, err)
		}
	}
}

// TestKrunBindingSuffixForgery is the attack the exact key shape prevents.
// The binding hashes nonce ‖ base64(n) ‖ base64(e) without separators, so a
// host that knows the guest's modulus n can choose n' = p ‖ n (p of 3 bytes,
// one base64 group) and give the guest the nonce N ‖ base64(p): the guest's
// report_data then equals the binding of the broker's nonce N with the
// host's key n'. The broker must refuse n'.
func TestKrunBindingSuffixForgery(t *testing.T) {
	k := testRSAKey(t)
	const brokerNonce = "00112233445566778899aabbccddeeff"
	prefix := []byte{0x80, 0x00, 0x01}
	forged := KrunPubKey{Alg: "RSA", KMod: base64.StdEncoding.EncodeToString(append(prefix, k.N.Bytes()...)), KExp: "AQAB"}

	guestNonce := brokerNonce + base64.StdEncoding.EncodeToString(prefix)
	guestBinding := KrunReportData(guestNonce, &k.PublicKey)
	if KrunBinding(brokerNonce, forged) != guestBinding {
		t.Fatal("the forgery does not collide: the test no longer shows the ambiguity it guards against")
	}
	if _, err := forged.RSAPublicKey(); err == nil || !strings.Contains(err.Error(), "RSA-2048") {
		t.Fatalf("forged %d-byte modulus: %v, want refused as not RSA-2048", KrunModulusSize+len(prefix), err)
	}
}

func TestKrunSecretRoundTrip(t *testing.T) {
	k := testRSAKey(t)
	secret := []byte(strings.Repeat("ab", 32))
	body, err := KrunEncryptSecret(&k.PublicKey, secret)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("reply is not a JSON string: %v", err)
	}
	if ct, err := hex.DecodeString(s); err != nil || len(ct) != 256 {
		t.Fatalf("reply is not hex of a 256-byte ciphertext")
	}
	got, err := KrunDecryptSecret(k, body)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("round trip failed: %v", err)
	}
	// A flipped ciphertext byte must fail, without the secret in the error.
	bad := []byte(s)
	bad[10] ^= 1
	if bad[10] > 'f' || (bad[10] > '9' && bad[10] < 'a') {
		bad[10] = '0'
	}
	badBody, _ := json.Marshal(string(bad))
	if _, err := KrunDecryptSecret(k, badBody); err == nil {
		t.Fatal("tampered ciphertext decrypted")
	} else if strings.Contains(err.Error(), string(secret)) {
		t.Fatal("error carries the secret")
	}
}

func TestKrunRequestAndEvidence(t *testing.T) {
	req, err := NewKrunRequest("snp", "wl-1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(req)
	want := `{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"wl-1\"}"}`
	if string(body) != want {
		t.Fatalf("auth body %s, want %s", body, want)
	}
	back, err := ParseRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := back.KrunWorkloadID(); err != nil || id != "wl-1" {
		t.Fatalf("workload id %q, %v", id, err)
	}
	if DialectOf(back.Version) != DialectKrun || DialectOf("0.4.0") != DialectTrustee || DialectOf("0.1.0") != "" {
		t.Fatal("dialect selection wrong")
	}

	report := make([]byte, snpreport.ReportSize)
	report[0] = 2
	for _, table := range [][]byte{nil, {1, 2, 3}} {
		ev, err := EncodeKrunSNPEvidence("milan", report, table)
		if err != nil {
			t.Fatal(err)
		}
		r, c, err := DecodeKrunSNPEvidence(ev)
		if err != nil || !bytes.Equal(r, report) || !bytes.Equal(c, table) {
			t.Fatalf("evidence round trip: %v", err)
		}
	}
	// libkrun's literal form.
	lit := `{"gen":"milan","report":"` + hex.EncodeToString(report) + `","cert_chain":"[]"}`
	if _, c, err := DecodeKrunSNPEvidence(lit); err != nil || c != nil {
		t.Fatalf("libkrun evidence: %v", err)
	}
	for name, ev := range map[string]string{
		"short":   `{"gen":"milan","report":"00","cert_chain":"[]"}`,
		"not hex": `{"gen":"milan","report":"` + strings.Repeat("zz", snpreport.ReportSize) + `"}`,
		"array":   `[]`,
		"chain":   `{"gen":"milan","report":"` + hex.EncodeToString(report) + `","cert_chain":"xyz"}`,
	} {
		if _, _, err := DecodeKrunSNPEvidence(ev); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseRequestErrors(t *testing.T) {
	for name, body := range map[string]string{
		"empty":       ``,
		"array":       `[]`,
		"no version":  `{"tee":"snp","extra-params":""}`,
		"no tee":      `{"version":"0.4.0","extra-params":""}`,
		"bad json":    `{"version":`,
		"wrong types": `{"version":1,"tee":"snp"}`,
	} {
		if _, err := ParseRequest([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	r, err := ParseRequest([]byte(`{"version":"0.0.0","tee":"snp","extra-params":"{}"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.KrunWorkloadID(); err == nil {
		t.Error("extra-params without workload_id accepted")
	}
	r.ExtraParams = json.RawMessage(`{"workload_id":"x"}`)
	if _, err := r.KrunWorkloadID(); err == nil {
		t.Error("extra-params as an object accepted in the krun dialect")
	}
}

func TestParseAttestation(t *testing.T) {
	good := `{"init-data":null,"runtime-data":{"nonce":"bm9uY2U=","tee-pubkey":{"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x":"AQ","y":"Ag"}},"tee-evidence":{"primary_evidence":{"a":1},"additional_evidence":""}}`
	a, err := ParseAttestation([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if a.RuntimeData.Nonce != "bm9uY2U=" || string(a.TEEEvidence.PrimaryEvidence) != `{"a":1}` {
		t.Fatalf("decoded %+v", a)
	}
	for name, body := range map[string]string{
		"flat (pre-0.4)":     `{"tee-pubkey":{"kty":"EC"},"tee-evidence":"{}"}`,
		"no nonce":           `{"runtime-data":{"tee-pubkey":{"kty":"EC"}},"tee-evidence":{"primary_evidence":{}}}`,
		"no key":             `{"runtime-data":{"nonce":"n"},"tee-evidence":{"primary_evidence":{}}}`,
		"evidence string":    `{"runtime-data":{"nonce":"n","tee-pubkey":{"kty":"EC"}},"tee-evidence":{"primary_evidence":"{}"}}`,
		"evidence null":      `{"runtime-data":{"nonce":"n","tee-pubkey":{"kty":"EC"}},"tee-evidence":{"primary_evidence":null}}`,
		"additional not str": `{"runtime-data":{"nonce":"n","tee-pubkey":{"kty":"EC"}},"tee-evidence":{"primary_evidence":{},"additional_evidence":{}}}`,
	} {
		if _, err := ParseAttestation([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// sealroot's own encoding round-trips and writes init-data as null.
	out, _ := json.Marshal(Attestation{RuntimeData: RuntimeData{Nonce: "n", TEEPubKey: JWK{Kty: "EC"}},
		TEEEvidence: TEEEvidence{PrimaryEvidence: json.RawMessage(`{}`)}})
	if !strings.HasPrefix(string(out), `{"init-data":null,"runtime-data":`) {
		t.Fatalf("encoded %s", out)
	}
}

func TestJWKRoundTrip(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	x, _ := ecdh.P256().GenerateKey(rand.Reader)
	k := testRSAKey(t)
	for name, pub := range map[string]any{"ecdsa": &ec.PublicKey, "ecdh": x.PublicKey(), "rsa": &k.PublicKey} {
		j, err := NewJWK(pub)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		back, err := j.PublicKey()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch b := back.(type) {
		case *ecdh.PublicKey:
			want, _ := ecdhOf(pub)
			if !b.Equal(want) {
				t.Errorf("%s: key changed", name)
			}
		case *rsa.PublicKey:
			if !b.Equal(&k.PublicKey) {
				t.Errorf("%s: key changed", name)
			}
		}
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := NewJWK(&p384.PublicKey); err == nil {
		t.Error("P-384 key accepted")
	}
	good, _ := NewJWK(x.PublicKey())
	for name, j := range map[string]JWK{
		"kty":                        {Kty: "OKP"},
		"curve":                      {Kty: "EC", Crv: "P-384", X: good.X, Y: good.Y},
		"alg":                        {Kty: "EC", Crv: "P-256", Alg: "ECDH-ES", X: good.X, Y: good.Y},
		"short x":                    {Kty: "EC", Crv: "P-256", X: "AQ", Y: good.Y},
		"P-256 coordinates as P-521": {Kty: "EC", Crv: "P-521", X: good.X, Y: good.Y},
		"off curve":                  {Kty: "EC", Crv: "P-256", X: good.X, Y: good.X},
		"padded":                     {Kty: "EC", Crv: "P-256", X: good.X + "=", Y: good.Y},
		"rsa alg":                    {Kty: "RSA", Alg: "RSA1_5", N: "AQAB", E: "AQAB"},
	} {
		if _, err := j.PublicKey(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func ecdhOf(pub any) (*ecdh.PublicKey, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return k.ECDH()
	case *ecdh.PublicKey:
		return k, nil
	}
	return nil, nil
}

func TestProblem(t *testing.T) {
	p := NewProblem(ProblemPolicyDeny, "measurement mismatch")
	body, _ := json.Marshal(p)
	if string(body) != `{"type":"https://github.com/confidential-containers/kbs/errors/PolicyDeny","detail":"measurement mismatch"}` {
		t.Fatalf("problem body %s", body)
	}
	back, err := ParseProblem(body)
	if err != nil || back.Variant() != ProblemPolicyDeny {
		t.Fatalf("parse: %v %+v", err, back)
	}
	if _, err := ParseProblem([]byte(`{"detail":"x"}`)); err == nil {
		t.Error("problem without type accepted")
	}
}

func TestTDXAndCCAEvidence(t *testing.T) {
	q := base64.StdEncoding.EncodeToString([]byte("quote"))
	log := base64.StdEncoding.EncodeToString([]byte("log"))
	quote, el, err := DecodeTDXEvidence([]byte(`{"cc_eventlog":"` + log + `","quote":"` + q + `"}`))
	if err != nil || string(quote) != "quote" || string(el) != "log" {
		t.Fatalf("tdx: %v", err)
	}
	if _, el, err := DecodeTDXEvidence([]byte(`{"cc_eventlog":null,"quote":"` + q + `"}`)); err != nil || el != nil {
		t.Fatalf("tdx without log: %v", err)
	}
	if _, _, err := DecodeTDXEvidence([]byte(`{"quote":"!!"}`)); err == nil {
		t.Error("tdx: bad base64 accepted")
	}
	if tok, err := DecodeCCAEvidence([]byte(`{"token":"` + q + `"}`)); err != nil || string(tok) != "quote" {
		t.Fatalf("cca: %v", err)
	}
	if _, err := DecodeCCAEvidence([]byte(`{"token":""}`)); err == nil {
		t.Error("cca: empty token accepted")
	}
	// CoCo's attestation agent sends the token as an array of byte values.
	if tok, err := DecodeCCAEvidence([]byte(`{"token":[113,117,111,116,101]}`)); err != nil || string(tok) != "quote" {
		t.Fatalf("cca byte array: %q %v", tok, err)
	}
	for _, bad := range []string{`{"token":[]}`, `{"token":[256]}`, `{"token":[-1]}`, `{"token":[1.5]}`, `{"token":7}`} {
		if _, err := DecodeCCAEvidence([]byte(bad)); err == nil {
			t.Errorf("cca: %s accepted", bad)
		}
	}
}
