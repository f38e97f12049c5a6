package cca

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/veraison/ccatoken"
	"github.com/veraison/ccatoken/platform"
	"github.com/veraison/ccatoken/realm"
	cose "github.com/veraison/go-cose"
	"github.com/veraison/psatoken"

	"github.com/sealroot/sealroot/attest"
)

func mustKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// tokenSpec describes a token to build; zero fields get defaults.
type tokenSpec struct {
	lifecycle uint16
	// rakInToken, when set, replaces the RAK placed in the realm token
	// (the token is still signed by rak).
	rakInToken *ecdsa.PublicKey
	// skipBinding leaves a wrong platform nonce.
	skipBinding bool
}

var (
	testRIM       = fill(48, 0xc1)
	testChallenge = fill(64, 0xab)
	testRPV       = fill(64, 0x5e)
)

// buildToken signs a realm token with rak and a platform token with cpak,
// using ccatoken's builders, and returns the CBOR collection.
func buildToken(t testing.TB, cpak, rak *ecdsa.PrivateKey, spec tokenSpec) []byte {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	pubInToken := &rak.PublicKey
	if spec.rakInToken != nil {
		pubInToken = spec.rakInToken
	}
	coseKey, err := cose.NewKeyFromPublic(pubInToken)
	must(err)
	rakCBOR, err := coseKey.MarshalCBOR()
	must(err)

	r := realm.NewClaims()
	must(r.SetChallenge(testChallenge))
	must(r.SetPersonalizationValue(testRPV))
	must(r.SetInitialMeasurement(testRIM))
	must(r.SetExtensibleMeasurements([][]byte{fill(48, 1), fill(48, 2), fill(48, 3), fill(48, 4)}))
	must(r.SetHashAlgID("sha-384"))
	must(r.SetPubKey(rakCBOR))
	must(r.SetPubKeyHashAlgID("sha-256"))

	lifecycle := spec.lifecycle
	if lifecycle == 0 {
		lifecycle = platform.LifecycleSecuredMin
	}
	mv, sid := fill(32, 3), fill(32, 4)
	mt, ver := "BL", "1.2.3"
	p := platform.NewClaims()
	must(p.SetSecurityLifeCycle(lifecycle))
	must(p.SetImplID(fill(32, 0x1d)))
	must(p.SetInstID(append([]byte{0x01}, fill(32, 0x2e)...)))
	must(p.SetSoftwareComponents([]psatoken.ISwComponent{&psatoken.SwComponent{
		MeasurementType: &mt, MeasurementValue: &mv, Version: &ver, SignerID: &sid,
	}}))
	must(p.SetHashAlgID("sha-256"))
	must(p.SetConfig([]byte{1, 2, 3}))
	must(p.SetVSI("https://vsi.example"))

	var ev ccatoken.Evidence
	must(ev.SetClaims(p, r)) // sets the platform nonce to H(RAK)
	if spec.skipBinding {
		must(p.SetNonce(fill(32, 0)))
	}
	ps, err := cose.NewSigner(cose.AlgorithmES384, cpak)
	must(err)
	rs, err := cose.NewSigner(cose.AlgorithmES384, rak)
	must(err)
	tok, err := ev.ValidateAndSign(ps, rs)
	must(err)
	return tok
}

func verify(t testing.TB, keys []crypto.PublicKey, tok []byte) (*attest.Claims, error) {
	t.Helper()
	return NewVerifier(Options{TrustedCPAKs: keys}).Verify(context.Background(), &attest.Evidence{TEE: attest.TEECCA, Report: tok})
}

func TestVerifyBuiltToken(t *testing.T) {
	cpak, rak := mustKey(t, elliptic.P384()), mustKey(t, elliptic.P384())
	other := mustKey(t, elliptic.P384())
	tok := buildToken(t, cpak, rak, tokenSpec{})

	// The trusted key need not come first.
	c, err := verify(t, []crypto.PublicKey{&other.PublicKey, &cpak.PublicKey}, tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if c.TEE != attest.TEECCA || !bytes.Equal(c.Measurement, testRIM) || !bytes.Equal(c.ReportData, testChallenge) || !bytes.Equal(c.HostData, testRPV) {
		t.Fatalf("claims %+v", c)
	}
	if c.Debug {
		t.Error("secured platform reported as debug")
	}
	want := map[string]string{
		"rem0":                          strings.Repeat("01", 48),
		"rem3":                          strings.Repeat("04", 48),
		"realm_hash_alg":                "sha-384",
		"realm_profile":                 realm.ProfileName,
		"platform_lifecycle":            "secured (0x3000)",
		"platform_implementation_id":    strings.Repeat("1d", 32),
		"platform_config":               "010203",
		"platform_verification_service": "https://vsi.example",
		"platform_sw0":                  "BL 1.2.3 measurement=" + strings.Repeat("03", 32) + " signer=" + strings.Repeat("04", 32),
	}
	for k, v := range want {
		if c.Extra[k] != v {
			t.Errorf("Extra[%s] = %q, want %q", k, c.Extra[k], v)
		}
	}
}

func TestVerifyRejects(t *testing.T) {
	cpak, rak := mustKey(t, elliptic.P384()), mustKey(t, elliptic.P384())
	other := mustKey(t, elliptic.P384())
	good := buildToken(t, cpak, rak, tokenSpec{})
	trusted := []crypto.PublicKey{&cpak.PublicKey}

	tests := []struct {
		name    string
		keys    []crypto.PublicKey
		tok     []byte
		wantIs  error
		wantMsg string
	}{
		{"no trusted keys", nil, good, ErrUntrustedPlatform, "no CPAK is trusted"},
		{"untrusted cpak", []crypto.PublicKey{&other.PublicKey}, good, ErrUntrustedPlatform, "tried 1 keys"},
		{"realm signed by another key", trusted, buildToken(t, cpak, rak, tokenSpec{rakInToken: &other.PublicKey}), nil, "realm token"},
		{"binding broken", trusted, buildToken(t, cpak, rak, tokenSpec{skipBinding: true}), nil, "binding"},
		{"empty", trusted, nil, nil, "empty token"},
		{"not cbor", trusted, []byte("hello"), nil, "decoding token"},
		{"too big", trusted, make([]byte, MaxTokenSize+1), nil, "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := verify(t, tt.keys, tt.tok)
			if err == nil {
				t.Fatal("Verify succeeded")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error %v is not %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q lacks %q", err, tt.wantMsg)
			}
		})
	}
}

// TestTamperedTokenFails flips every byte of a built token in turn: each
// change must make verification fail (or the token undecodable), never
// yield different claims.
func TestTamperedTokenFails(t *testing.T) {
	cpak, rak := mustKey(t, elliptic.P384()), mustKey(t, elliptic.P384())
	tok := buildToken(t, cpak, rak, tokenSpec{})
	keys := []crypto.PublicKey{&cpak.PublicKey}
	for i := range tok {
		bad := bytes.Clone(tok)
		bad[i] ^= 0x01
		if c, err := verify(t, keys, bad); err == nil {
			// A flip in the CBOR framing can decode to the same token
			// (e.g. unused bits); the claims must then be unchanged.
			if !bytes.Equal(c.Measurement, testRIM) || !bytes.Equal(c.ReportData, testChallenge) {
				t.Fatalf("byte %d flipped: verified with different claims", i)
			}
		}
	}
}

func TestDebugLifecycle(t *testing.T) {
	cpak, rak := mustKey(t, elliptic.P384()), mustKey(t, elliptic.P384())
	for _, lc := range []uint16{platform.LifecycleNonCCAPlatformDebugMin, platform.LifecycleRecoverableCCAPlatformDebugMin + 1} {
		c, err := verify(t, []crypto.PublicKey{&cpak.PublicKey}, buildToken(t, cpak, rak, tokenSpec{lifecycle: lc}))
		if err != nil {
			t.Fatalf("lifecycle %#x: %v", lc, err)
		}
		if !c.Debug || c.Policy != uint64(lc) {
			t.Errorf("lifecycle %#x: debug %v policy %#x", lc, c.Debug, c.Policy)
		}
	}
}

// TestRealTFRMMToken verifies the example token from TF-RMM that
// veraison/ccatoken ships, with its platform key (see testdata/README.md).
func TestRealTFRMMToken(t *testing.T) {
	tok, err := os.ReadFile("testdata/tf-rmm-cca-token.cbor")
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := os.ReadFile("testdata/tf-rmm-cpak.pem")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ParseCPAKs(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	c, err := verify(t, keys, tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	t.Logf("RIM %x", c.Measurement)
	if len(c.Measurement) == 0 || len(c.ReportData) != 64 || c.Extra["rem0"] == "" {
		t.Fatalf("claims %+v", c)
	}
	bad := bytes.Clone(tok)
	bad[len(bad)-10] ^= 0x80 // inside the realm token's signature
	if _, err := verify(t, keys, bad); err == nil {
		t.Fatal("tampered real token verified")
	}
	if _, err := verify(t, []crypto.PublicKey{&mustKey(t, elliptic.P384()).PublicKey}, tok); !errors.Is(err, ErrUntrustedPlatform) {
		t.Fatalf("real token with a foreign CPAK: %v", err)
	}
}

func TestParseCPAKs(t *testing.T) {
	k := mustKey(t, elliptic.P256())
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pub := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	keys, err := ParseCPAKs(append(bytes.Clone(pub), pub...))
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParseCPAKs: %d keys, %v", len(keys), err)
	}
	for _, bad := range []string{"", "not pem", string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: []byte{1}})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2}}))} {
		if _, err := ParseCPAKs([]byte(bad)); err == nil {
			t.Errorf("ParseCPAKs(%.20q) succeeded", bad)
		}
	}
}

func TestWrongTEE(t *testing.T) {
	if _, err := NewVerifier(Options{}).Verify(context.Background(), &attest.Evidence{TEE: "snp"}); err == nil {
		t.Fatal("accepted snp evidence")
	}
}

func FuzzDecode(f *testing.F) {
	cpak, rak := mustKey(f, elliptic.P384()), mustKey(f, elliptic.P384())
	f.Add(buildToken(f, cpak, rak, tokenSpec{}))
	if b, err := os.ReadFile("testdata/tf-rmm-cca-token.cbor"); err == nil {
		f.Add(b)
	}
	f.Add([]byte{0xd9, 0x01, 0x8f, 0xa0})
	f.Add(mustHex("d9018fa219acca4100" + "19acd14100"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tok, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes must map to claims without failing hard.
		_, _ = claimsFrom(tok)
	})
}

func mustHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
