package configbind

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-tdx-guest/testing/testdata"
	"github.com/veraison/ccatoken"
	"github.com/veraison/ccatoken/platform"
	"github.com/veraison/ccatoken/realm"
	cose "github.com/veraison/go-cose"
	"github.com/veraison/psatoken"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/cca"
	"github.com/sealroot/sealroot/host/verify/tdx"
	"github.com/sealroot/sealroot/wire/snpreport"
)

var (
	digest = sha256.Sum256([]byte(`{"tee":"tdx","tee_data":"","workload_id":"w","cpus":1,"ram_mib":512,"attestation_url":"https://kbs"}`))
	other  = sha256.Sum256([]byte("another config"))
)

// tdxQuote is go-tdx-guest's real Sapphire Rapids quote with MRCONFIGID
// set to mrconfigid (the signature no longer covers it; the guest does not
// verify its own quote).
func tdxQuote(mrconfigid []byte) []byte {
	q := bytes.Clone(testdata.RawQuote)
	copy(q[0x30+0xB8:], mrconfigid)
	return q
}

func TestTDXMRConfigID(t *testing.T) {
	want, _ := Expected(attest.TEETDX, digest)
	if len(want) != 48 || !bytes.Equal(want[:32], digest[:]) || !bytes.Equal(want[32:], make([]byte, 16)) {
		t.Fatalf("expected MRCONFIGID %x", want)
	}
	q := tdxQuote(want)
	// go-tdx-guest's own parser finds the same field.
	pq, err := tdx.ParseQuote(q)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Bound(&attest.Evidence{TEE: attest.TEETDX, Report: q}); !bytes.Equal(got, pq.GetTdQuoteBody().GetMrConfigId()) {
		t.Fatalf("MRCONFIGID %x, go-tdx-guest reads %x", got, pq.GetTdQuoteBody().GetMrConfigId())
	}
	if err := Check(&attest.Evidence{TEE: attest.TEETDX, Report: q}, digest); err != nil {
		t.Fatalf("the config's own MRCONFIGID: %v", err)
	}
	err = Check(&attest.Evidence{TEE: attest.TEETDX, Report: q}, other)
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "MRCONFIGID") {
		t.Fatalf("another config: %v", err)
	}
	zero := tdxQuote(make([]byte, 48))
	if err := Check(&attest.Evidence{TEE: attest.TEETDX, Report: zero}, digest); !errors.Is(err, ErrUnattested) {
		t.Fatalf("zero MRCONFIGID: %v", err)
	}
	// The shipped quote's own MRCONFIGID is zero: a launch that bound nothing.
	if err := Check(&attest.Evidence{TEE: attest.TEETDX, Report: testdata.RawQuote}, digest); !errors.Is(err, ErrUnattested) {
		t.Fatalf("the real quote: %v", err)
	}
	// Only the digest's half: the trailing 16 bytes must be zero too.
	half := bytes.Clone(want)
	half[47] = 1
	if err := Check(&attest.Evidence{TEE: attest.TEETDX, Report: tdxQuote(half)}, digest); !errors.Is(err, ErrMismatch) {
		t.Fatalf("non-zero tail: %v", err)
	}
	for _, bad := range [][]byte{q[:100], append([]byte{3, 0}, q[2:]...)} {
		if _, err := Bound(&attest.Evidence{TEE: attest.TEETDX, Report: bad}); err == nil {
			t.Error("a malformed quote was read")
		}
	}
}

// ccaToken signs a realm token with the given personalization value, with
// ccatoken's builders.
func ccaToken(t testing.TB, rpv []byte) []byte {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		must(err)
		return k
	}
	cpak, rak := key(), key()
	ck, err := cose.NewKeyFromPublic(&rak.PublicKey)
	must(err)
	rakCBOR, err := ck.MarshalCBOR()
	must(err)
	r := realm.NewClaims()
	must(r.SetChallenge(bytes.Repeat([]byte{0xab}, 64)))
	must(r.SetPersonalizationValue(rpv))
	must(r.SetInitialMeasurement(bytes.Repeat([]byte{0xc1}, 48)))
	must(r.SetExtensibleMeasurements([][]byte{make([]byte, 48), make([]byte, 48), make([]byte, 48), make([]byte, 48)}))
	must(r.SetHashAlgID("sha-384"))
	must(r.SetPubKey(rakCBOR))
	must(r.SetPubKeyHashAlgID("sha-256"))
	p := platform.NewClaims()
	mv, sid, mt, ver := make([]byte, 32), make([]byte, 32), "BL", "1.0.0"
	must(p.SetSecurityLifeCycle(platform.LifecycleSecuredMin))
	must(p.SetImplID(bytes.Repeat([]byte{0x1d}, 32)))
	must(p.SetInstID(append([]byte{1}, bytes.Repeat([]byte{0x2e}, 32)...)))
	must(p.SetSoftwareComponents([]psatoken.ISwComponent{&psatoken.SwComponent{MeasurementType: &mt, MeasurementValue: &mv, Version: &ver, SignerID: &sid}}))
	must(p.SetHashAlgID("sha-256"))
	must(p.SetConfig([]byte{1}))
	must(p.SetVSI("https://vsi.example"))
	var ev ccatoken.Evidence
	must(ev.SetClaims(p, r))
	ps, err := cose.NewSigner(cose.AlgorithmES384, cpak)
	must(err)
	rs, err := cose.NewSigner(cose.AlgorithmES384, rak)
	must(err)
	tok, err := ev.ValidateAndSign(ps, rs)
	must(err)
	return tok
}

func TestCCARealmPersonalizationValue(t *testing.T) {
	want, _ := Expected(attest.TEECCA, digest)
	if len(want) != 64 || !bytes.Equal(want[32:], make([]byte, 32)) {
		t.Fatalf("expected RPV %x", want)
	}
	tok := ccaToken(t, want)
	if err := Check(&attest.Evidence{TEE: attest.TEECCA, Report: tok}, digest); err != nil {
		t.Fatalf("the config's own RPV: %v", err)
	}
	if err := Check(&attest.Evidence{TEE: attest.TEECCA, Report: tok}, other); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "personalization") {
		t.Fatalf("another config: %v", err)
	}
	if err := Check(&attest.Evidence{TEE: attest.TEECCA, Report: ccaToken(t, make([]byte, 64))}, digest); !errors.Is(err, ErrUnattested) {
		t.Fatalf("zero RPV: %v", err)
	}
	// TF-RMM's real token: our reader and ccatoken's agree on its RPV.
	real, err := os.ReadFile("../../host/verify/cca/testdata/tf-rmm-cca-token.cbor")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Bound(&attest.Evidence{TEE: attest.TEECCA, Report: real})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := cca.Decode(real)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := dec.RealmClaims.GetPersonalizationValue()
	if !bytes.Equal(got, ref) {
		t.Fatalf("RPV %x, ccatoken reads %x", got, ref)
	}
	if err := Check(&attest.Evidence{TEE: attest.TEECCA, Report: real}, digest); err == nil {
		t.Fatal("TF-RMM's token binds this config?")
	}
	for _, bad := range [][]byte{nil, {0xd9, 0x01, 0x8f, 0xa0}, tok[:len(tok)/2]} {
		if _, err := Bound(&attest.Evidence{TEE: attest.TEECCA, Report: bad}); err == nil {
			t.Errorf("malformed token %x was read", bad)
		}
	}
}

func TestSNPHostData(t *testing.T) {
	r := make([]byte, snpreport.ReportSize)
	copy(r[snpreport.OffHostData:], digest[:])
	if err := Check(&attest.Evidence{TEE: attest.TEESNP, Report: r}, digest); err != nil {
		t.Fatal(err)
	}
	if err := Check(&attest.Evidence{TEE: attest.TEESNP, Report: r}, other); !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "HOST_DATA") {
		t.Fatal(err)
	}
	if err := Check(&attest.Evidence{TEE: attest.TEESNP, Report: make([]byte, snpreport.ReportSize)}, digest); !errors.Is(err, ErrUnattested) {
		t.Fatal(err)
	}
	if _, err := Bound(&attest.Evidence{TEE: attest.TEESNP, Report: r[:0x40]}); err == nil {
		t.Fatal("a short report was read")
	}
}

func FuzzBound(f *testing.F) {
	f.Add("tdx", bytes.Clone(testdata.RawQuote))
	f.Add("cca", []byte{0xd9, 0x01, 0x8f, 0xa1, 0x19, 0xac, 0xd1, 0x41, 0x00})
	if b, err := os.ReadFile("../../host/verify/cca/testdata/tf-rmm-cca-token.cbor"); err == nil {
		f.Add("cca", b)
	}
	f.Fuzz(func(t *testing.T, tee string, b []byte) {
		if tee != attest.TEETDX && tee != attest.TEECCA {
			tee = attest.TEESNP
		}
		v, err := Bound(&attest.Evidence{TEE: tee, Report: b})
		if err == nil {
			if want, _ := Expected(tee, digest); len(v) != len(want) {
				t.Fatalf("%s field of %d bytes", tee, len(v))
			}
		}
	})
}
