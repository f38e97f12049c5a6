package snp

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-sev-guest/verify/testdata"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/certcache"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// The real Milan report shipped with go-sev-guest (hardware, version 2)
// and its VCEK, valid from 2022-09-24 to 2029-09-24.
var milanTime = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)

const milanMeasurement = "b07af9620f3b839b47996422ddec6058338951d984e312115131ea82705eaf5b6bdf8a9ece31a5a608eb0cf2e4872b01"

func milanEvidence() *attest.Evidence {
	return &attest.Evidence{
		TEE:    attest.TEESNP,
		Report: bytes.Clone(testdata.AttestationBytes),
		Certs:  MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: testdata.VcekBytes}}),
	}
}

func milanVerifier(o Options) *Verifier {
	o.Now = func() time.Time { return milanTime }
	return NewVerifier(o)
}

func TestMilanReportVerifiesOffline(t *testing.T) {
	c, err := milanVerifier(Options{Offline: true}).Verify(context.Background(), milanEvidence())
	if err != nil {
		t.Fatal(err)
	}
	rd := make([]byte, 64)
	copy(rd, []byte{1, 2, 3, 4, 5})
	checks := []struct {
		name      string
		got, want any
	}{
		{"tee", c.TEE, "snp"},
		{"simulated", c.Simulated, false},
		{"measurement", hex.EncodeToString(c.Measurement), milanMeasurement},
		{"report_data", hex.EncodeToString(c.ReportData), hex.EncodeToString(rd)},
		{"host_data", hex.EncodeToString(c.HostData), strings.Repeat("00", 32)},
		{"chip_id", hex.EncodeToString(c.ChipID[:8]), "3ac3fe21e13fb099"},
		{"debug", c.Debug, true}, // policy 0xb0000 has bit 19 set
		{"policy", c.Policy, uint64(0xb0000)},
		{"vmpl", c.VMPL, 0},
		{"tcb", c.ReportedTCB, attest.TCB{Bootloader: 2, TEE: 0, SNP: 5, Microcode: 68}},
		{"product", c.ProductLine, "Milan"},
		{"version", c.ReportVersion, uint32(2)},
		{"signer", c.Extra["signer"], "VCEK"},
		{"source", c.Extra["cert_source"], "evidence"},
		{"firmware", c.Extra["firmware"], "1.49.3"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
		}
	}
}

// TestEverySignedByteIsCovered flips each byte of the signed part (and of
// the signature) in turn: every change must fail as a signature failure,
// whatever field it lands in (reserved bytes, version, policy, signer
// info, CPUID, chip id...).
func TestEverySignedByteIsCovered(t *testing.T) {
	v := milanVerifier(Options{Offline: true})
	ev := milanEvidence()
	for off := 0; off < SignedSize+2*snpreport.SigComponentSize; off++ {
		for _, mask := range []byte{0x01, 0x80} {
			if off%7 != 0 && mask == 0x80 { // the high bit on a sample of offsets
				continue
			}
			ev.Report[off] ^= mask
			_, err := v.Verify(context.Background(), ev)
			ev.Report[off] ^= mask
			if err == nil || !strings.HasPrefix(err.Error(), "snp: report signature does not verify against the VCEK") {
				t.Fatalf("byte %#x ^ %#x: got %v, want a signature failure", off, mask, err)
			}
		}
	}
	// Past the signature, the bytes are reserved and must be zero.
	ev.Report[SignedSize+2*snpreport.SigComponentSize] ^= 1
	if _, err := v.Verify(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "malformed report") {
		t.Fatalf("reserved byte after the signature: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		now  time.Time
		edit func(*attest.Evidence)
		want string
	}{
		{"nil evidence", Options{Offline: true}, milanTime, nil, "no evidence"},
		{"tdx evidence", Options{Offline: true}, milanTime, func(e *attest.Evidence) { e.TEE = attest.TEETDX }, `tee "tdx"`},
		{"short report", Options{Offline: true}, milanTime, func(e *attest.Evidence) { e.Report = e.Report[:100] }, "report is 100 bytes"},
		{"extended report as report", Options{Offline: true}, milanTime, func(e *attest.Evidence) { e.Report = append(e.Report, e.Certs...) }, "want 1184"},
		{"no VCEK offline", Options{Offline: true}, milanTime, func(e *attest.Evidence) { e.Certs = nil }, "VCEK missing for chip 3ac3fe21e13fb099… at reported TCB 0x4405000000000002: the evidence carries none, and offline mode forbids fetching it from AMD KDS"},
		{"no VCEK, offline, empty cache", Options{Offline: true, Cache: emptyCache(t)}, milanTime, func(e *attest.Evidence) { e.Certs = nil }, "the evidence carries none and the cache has none"},
		{"VCEK expired", Options{Offline: true}, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), nil, "does not chain to a trusted Milan root: x509: certificate has expired"},
		{"VCEK not yet valid", Options{Offline: true}, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), nil, "does not chain"},
		{"ASK put in the VCEK slot", Options{Offline: true}, milanTime, func(e *attest.Evidence) {
			roots, _ := amdRoots()
			e.Certs = MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: roots["Milan"][0].ProductCerts.Ask.Raw}})
		}, "is not an AMD SEV-Milan, Genoa or Turin signing key"},
		{"garbage VCEK", Options{Offline: true}, milanTime, func(e *attest.Evidence) {
			e.Certs = MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: []byte("not a cert")}})
		}, "VCEK certificate (from the evidence) does not parse"},
		{"broken certificate table", Options{Offline: true}, milanTime, func(e *attest.Evidence) { e.Certs = e.Certs[:30] }, "certificate table in the evidence"},
		{"roots of another product", Options{Offline: true, Roots: map[string][]*trust.AMDRootCerts{}}, milanTime, nil, "no trusted roots for product line Milan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := milanEvidence()
			if tt.edit != nil {
				tt.edit(ev)
			}
			if tt.name == "nil evidence" {
				ev = nil
			}
			o := tt.opts
			now := tt.now
			o.Now = func() time.Time { return now }
			_, err := NewVerifier(o).Verify(context.Background(), ev)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v\nwant an error containing %q", err, tt.want)
			}
		})
	}
}

func TestVLEKReportWithoutVLEK(t *testing.T) {
	ev := milanEvidence()
	ev.Certs = nil
	ev.Report[snpreport.OffKeyInfo] = 1 << 2 // signing_key = VLEK
	_, err := milanVerifier(Options{}).Verify(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "signed with a VLEK but the evidence carries no VLEK certificate") {
		t.Fatalf("Verify = %v", err)
	}
	// With a VCEK at hand, the signature decides, and says what the
	// report claimed.
	ev = milanEvidence()
	ev.Report[snpreport.OffKeyInfo] = 1 << 2
	_, err = milanVerifier(Options{Offline: true}).Verify(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "signature does not verify against the VCEK (the report names signing key VLEK)") {
		t.Fatalf("Verify = %v", err)
	}
}

func TestCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := milanVerifier(Options{Offline: true}).Verify(ctx, milanEvidence()); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("Verify = %v", err)
	}
}

func emptyCache(t testing.TB) *certcache.Cache {
	c, err := certcache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCacheRemembersVCEK(t *testing.T) {
	cache := emptyCache(t)
	v := milanVerifier(Options{Offline: true, Cache: cache})
	// First verification: VCEK from the evidence, stored.
	if _, err := v.Verify(context.Background(), milanEvidence()); err != nil {
		t.Fatal(err)
	}
	// A new verifier on the same directory (a restart), evidence without
	// certificates, offline: the cache supplies the VCEK.
	cache2, err := certcache.Open(cache.Dir())
	if err != nil {
		t.Fatal(err)
	}
	ev := milanEvidence()
	ev.Certs = nil
	c, err := milanVerifier(Options{Offline: true, Cache: cache2}).Verify(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if c.Extra["cert_source"] != "cache" {
		t.Fatalf("cert_source = %q, want cache", c.Extra["cert_source"])
	}
	// A corrupted cache entry fails verification; it is never trusted.
	cache2.Put(vcekCacheKey("Milan", ev.Report[snpreport.OffChipID:snpreport.OffChipID+64], 0x4405000000000002), []byte("junk"))
	if _, err := milanVerifier(Options{Offline: true, Cache: cache2}).Verify(context.Background(), ev); err == nil {
		t.Fatal("a junk cache entry verified")
	}
}

// kdsServer serves the Milan VCEK where AMD's KDS would, counting requests.
func kdsServer(t *testing.T, status int) (*httptest.Server, *atomic.Int32, *atomic.Value) {
	t.Helper()
	var n atomic.Int32
	var lastURL atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		lastURL.Store(r.URL.String())
		if status != http.StatusOK {
			w.WriteHeader(status)
			return
		}
		if r.URL.Path != "/vcek/v1/Milan/"+hex.EncodeToString(testdata.AttestationBytes[snpreport.OffChipID:snpreport.OffChipID+64]) {
			http.NotFound(w, r)
			return
		}
		w.Write(testdata.VcekBytes)
	}))
	t.Cleanup(srv.Close)
	return srv, &n, &lastURL
}

func TestVCEKFromKDS(t *testing.T) {
	srv, n, lastURL := kdsServer(t, http.StatusOK)
	cache := emptyCache(t)
	getter := &KDSGetter{Client: srv.Client(), BaseURL: srv.URL}
	ev := milanEvidence()
	ev.Certs = nil
	c, err := milanVerifier(Options{Cache: cache, Getter: getter}).Verify(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if c.Extra["cert_source"] != "kds" || n.Load() != 1 {
		t.Fatalf("cert_source %q after %d requests", c.Extra["cert_source"], n.Load())
	}
	if q := lastURL.Load().(string); !strings.HasSuffix(q, "?blSPL=2&teeSPL=0&snpSPL=5&ucodeSPL=68") {
		t.Errorf("KDS query %q", q)
	}
	// The fetched VCEK is cached: the next verification asks nobody.
	if _, err := milanVerifier(Options{Cache: cache, Getter: getter}).Verify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if n.Load() != 1 {
		t.Fatalf("%d KDS requests, want 1", n.Load())
	}
}

func TestKDSFailures(t *testing.T) {
	ev := milanEvidence()
	ev.Certs = nil
	srv, _, _ := kdsServer(t, http.StatusNotFound)
	_, err := milanVerifier(Options{Getter: &KDSGetter{Client: srv.Client(), BaseURL: srv.URL}}).Verify(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "AMD KDS has no VCEK for chip 3ac3fe21e13fb099") || !strings.Contains(err.Error(), "Genoa") {
		t.Fatalf("404 everywhere: %v", err)
	}
	srv2, n, _ := kdsServer(t, http.StatusForbidden)
	_, err = milanVerifier(Options{Getter: &KDSGetter{Client: srv2.Client(), BaseURL: srv2.URL}}).Verify(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "fetching the VCEK from AMD KDS") || !strings.Contains(err.Error(), "403") || n.Load() != 1 {
		t.Fatalf("403 after %d requests: %v", n.Load(), err)
	}
	// A masked chip id cannot be looked up.
	ev.Report[snpreport.OffKeyInfo] = 2
	clear(ev.Report[snpreport.OffChipID : snpreport.OffChipID+64])
	_, err = milanVerifier(Options{Getter: &KDSGetter{Client: srv.Client(), BaseURL: srv.URL}}).Verify(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "CHIP_ID is masked") {
		t.Fatalf("masked chip id: %v", err)
	}
}

// FuzzVerify runs the whole verifier on arbitrary report and certificate
// table bytes. It must never panic, and only the untouched real report
// may verify.
func FuzzVerify(f *testing.F) {
	ev := milanEvidence()
	f.Add(ev.Report, ev.Certs)
	f.Add(ev.Report, []byte{})
	f.Add(ev.Report[:100], ev.Certs)
	f.Add(make([]byte, ReportSize), ev.Certs[:40])
	v := milanVerifier(Options{Offline: true})
	f.Fuzz(func(t *testing.T, report, certs []byte) {
		c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: certs})
		if err == nil && (!bytes.Equal(report, testdata.AttestationBytes) || hex.EncodeToString(c.Measurement) != milanMeasurement) {
			t.Fatalf("verified a report that is not the real one")
		}
	})
}

// BenchmarkSNPVerify measures full verifications of the real Milan report
// with a warm certificate cache (the VCEK comes from the cache, offline):
// after the first, the certificate checks are remembered, so each
// verification is one signature check, the report's parse and the binding.
func BenchmarkSNPVerify(b *testing.B) {
	cache := emptyCache(b)
	v := milanVerifier(Options{Offline: true, Cache: cache})
	if _, err := v.Verify(context.Background(), milanEvidence()); err != nil {
		b.Fatal(err)
	}
	ev := milanEvidence()
	ev.Certs = nil
	b.ReportAllocs()
	for b.Loop() {
		c, err := v.Verify(context.Background(), ev)
		if err != nil || c.Extra["cert_source"] != "cache" {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkSNPVerifyEvidenceVCEK is the Trustee case: every report
// carries its VCEK, which the verifier recognises by its SHA-256.
func BenchmarkSNPVerifyEvidenceVCEK(b *testing.B) {
	v := milanVerifier(Options{Offline: true})
	ev := milanEvidence()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}

// BenchmarkECDSAP384Verify is the floor: one raw ECDSA P-384 signature
// check over the same 672 signed bytes.
func BenchmarkECDSAP384Verify(b *testing.B) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	digest := sha512.Sum384(testdata.AttestationBytes[:SignedSize])
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		d := sha512.Sum384(testdata.AttestationBytes[:SignedSize])
		if !ecdsa.Verify(&key.PublicKey, d[:], r, s) {
			b.Fatal("verify failed")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
}
