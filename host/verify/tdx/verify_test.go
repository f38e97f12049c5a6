package tdx

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tdxtest "github.com/google/go-tdx-guest/testing"
	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/certcache"
	"github.com/sealroot/sealroot/host/verify/policy"
)

// The real Sapphire Rapids quote shipped with go-tdx-guest and its MRTD.
const realMRTD = "6363b8043668a3ad953278e10389574d326c6749fb78aa810ecd9336923db86f22fc00b8dcd404bc10d5e119d7215cbb"

// collateralTime is when go-tdx-guest's sample collateral is valid.
var collateralTime = time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

func realQuote() []byte { return bytes.Clone(testdata.RawQuote) }

func TestEmbeddedRootIsIntels(t *testing.T) {
	block, _ := pem.Decode(intelRootPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.Raw)
	if got := hex.EncodeToString(sum[:]); got != "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3" {
		t.Fatalf("embedded root fingerprint %s", got)
	}
	if cert.Subject.CommonName != "Intel SGX Root CA" {
		t.Fatalf("embedded root is %q", cert.Subject.CommonName)
	}
}

func TestVerifyRealQuoteOffline(t *testing.T) {
	v := NewVerifier(Options{Offline: true, AllowChainOnly: true, Now: fixedNow(collateralTime)})
	c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEETDX, Report: realQuote()})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	t.Logf("MRTD %x", c.Measurement)
	if got := hex.EncodeToString(c.Measurement); got != realMRTD {
		t.Fatalf("MRTD %s, want %s", got, realMRTD)
	}
	// MRTD sits at body offset 0x88, the body at quote offset 0x30.
	if !bytes.Equal(c.Measurement, testdata.RawQuote[0xB8:0xE8]) {
		t.Fatal("MRTD is not the quote's bytes 0xb8-0xe8")
	}
	if !bytes.Equal(c.ReportData, testdata.RawQuote[0x238:0x278]) || len(c.HostData) != 48 {
		t.Fatalf("report_data %x host_data %x", c.ReportData, c.HostData)
	}
	if c.TEE != attest.TEETDX || c.ReportVersion != 4 || c.Debug {
		t.Fatalf("claims %+v", c)
	}
	for _, k := range []string{"rtmr0", "rtmr1", "rtmr2", "rtmr3", "mrseam", "tee_tcb_svn", "xfam", "td_attributes"} {
		if c.Extra[k] == "" {
			t.Errorf("Extra[%s] missing", k)
		}
	}
	if c.Extra["collateral"] != ModeOffline || !ChainOnly(c) {
		t.Errorf("collateral mode %q", c.Extra["collateral"])
	}
}

// TestOfflineWithoutCacheRefuses: offline, with no cache at all, the real
// quote is refused unless chain-only verification was asked for.
func TestOfflineWithoutCacheRefuses(t *testing.T) {
	v := NewVerifier(Options{Offline: true, Now: fixedNow(collateralTime)})
	c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEETDX, Report: realQuote()})
	if !errors.Is(err, ErrCollateralMissing) || c != nil {
		t.Fatalf("Verify = %v, %v; want ErrCollateralMissing", c, err)
	}
	for _, w := range []string{"without a collateral cache", "TCB status", "sealroot verify --tee tdx", "--cache-dir"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// TestTamperedQuoteFails flips one byte in the signed header and body and
// in the signature.
func TestTamperedQuoteFails(t *testing.T) {
	tests := []struct {
		name string
		off  int
		want string
	}{
		{"header qe vendor id", 0x0C, "signature"},
		{"mrtd", 0xB8, "signature"},
		{"mrconfigid", 0xE8, "signature"},
		{"rtmr3", 0x208, "signature"},
		{"report_data", 0x238, "signature"},
		{"td attributes debug bit", 0xA8, "signature"},
		{"quote signature", 0x27C + 5, "signature"},
		{"attestation key", 0x27C + 0x40 + 3, ""}, // fails at the key, the QE report data or the signature
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := realQuote()
			q[tt.off] ^= 0x01
			v := NewVerifier(Options{Offline: true, AllowChainOnly: true, Now: fixedNow(collateralTime)})
			_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEETDX, Report: q})
			if err == nil {
				t.Fatal("tampered quote verified")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not name the %s check", err, tt.want)
			}
		})
	}
}

func TestDebugClaim(t *testing.T) {
	// Only claim mapping: a debug TD's quote cannot be signed here.
	q, err := ParseQuote(realQuote())
	if err != nil {
		t.Fatal(err)
	}
	q.TdQuoteBody.TdAttributes[0] |= 1
	if c := claimsFrom(q); !c.Debug || c.Policy&1 == 0 {
		t.Fatalf("debug bit not mapped: %+v", c)
	}
}

func TestParseQuoteRejects(t *testing.T) {
	v5 := realQuote()
	v5[0] = 5
	sgx := realQuote()
	sgx[4] = 0
	tests := []struct {
		name string
		q    []byte
		want string
	}{
		{"empty", nil, "less than the minimum"},
		{"short", realQuote()[:0x3FB], "less than the minimum"},
		{"version 5", v5, "version 5 not supported"},
		{"sgx quote", sgx, "not TDX"},
		{"huge", make([]byte, MaxQuoteSize+1), "more than"},
		{"truncated chain", realQuote()[:len(testdata.RawQuote)-100], "tdx:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseQuote(tt.q)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseQuote = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := NewVerifier(Options{Offline: true, AllowChainOnly: true}).Verify(context.Background(), &attest.Evidence{TEE: "snp", Report: realQuote()}); err == nil {
		t.Fatal("Verify accepted evidence of another tee")
	}
}

// pcsServer serves go-tdx-guest's sample PCS responses on loopback; the
// getter below sends each PCS URL there as a query parameter.
func pcsServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		resp, ok := tdxtest.TestGetter.Responses[r.URL.Query().Get("u")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		for k, vs := range resp.Header {
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.Write(resp.Body)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

type loopbackGetter struct{ base string }

func (g loopbackGetter) Get(u string) (map[string][]string, []byte, error) {
	resp, err := http.Get(g.base + "/?u=" + url.QueryEscape(u))
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	return resp.Header, body, nil
}

// TestCollateralAndCache runs the collateral path against go-tdx-guest's
// sample PCS responses. Those do not list the sample quote's TCB level (the
// upstream tests expect the same refusal), so success here is the TCB check
// running and refusing, first from the network, then from the cache alone.
func TestCollateralAndCache(t *testing.T) {
	srv, hits := pcsServer(t)
	dir := t.TempDir()
	cache, err := certcache.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ev := &attest.Evidence{TEE: attest.TEETDX, Report: realQuote()}

	online := NewVerifier(Options{Cache: cache, Getter: loopbackGetter{srv.URL}, Now: fixedNow(collateralTime)})
	_, err = online.Verify(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "TCB") {
		t.Fatalf("online Verify = %v, want the TCB status refusal", err)
	}
	fetched := hits.Load()
	if fetched < 3 {
		t.Fatalf("only %d PCS requests", fetched)
	}

	// Offline, from the warm cache: the same checks, no requests.
	offline := NewVerifier(Options{CacheDir: dir, Offline: true, Now: fixedNow(collateralTime)})
	_, err = offline.Verify(context.Background(), ev)
	if err == nil || !strings.Contains(err.Error(), "TCB") {
		t.Fatalf("offline cached Verify = %v, want the TCB status refusal", err)
	}
	if hits.Load() != fetched {
		t.Fatal("offline verification went to the network")
	}

	// Online again within the max age: served from the cache.
	if _, err := online.Verify(context.Background(), ev); err == nil {
		t.Fatal("second online Verify succeeded")
	}
	if hits.Load() != fetched {
		t.Fatalf("fresh cache entries were refetched (%d requests, want %d)", hits.Load(), fetched)
	}

	// Cached collateral past its nextUpdate is refused, not ignored.
	late := NewVerifier(Options{CacheDir: dir, Offline: true, Now: fixedNow(time.Date(2053, 7, 1, 0, 0, 0, 0, time.UTC))})
	if _, err := late.Verify(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("Verify with expired collateral = %v", err)
	}

	// Offline with an empty cache: the quote that collateral refuses must
	// not pass on its chain alone. The refusal names the missing piece
	// (TCB info is fetched first) and how to warm the cache.
	emptyDir := t.TempDir()
	empty := NewVerifier(Options{CacheDir: emptyDir, Offline: true, Now: fixedNow(collateralTime)})
	c, err := empty.Verify(context.Background(), ev)
	if !errors.Is(err, ErrCollateralMissing) || c != nil {
		t.Fatalf("offline Verify with empty cache = %v, %v; want ErrCollateralMissing", c, err)
	}
	for _, w := range []string{"TCB info (https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=", "sealroot verify --tee tdx", "STATE/certs"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}

	// Only when asked for: chain only, and said so.
	chainOnly := NewVerifier(Options{CacheDir: emptyDir, Offline: true, AllowChainOnly: true, Now: fixedNow(collateralTime)})
	c, err = chainOnly.Verify(context.Background(), ev)
	if err != nil {
		t.Fatalf("offline chain-only Verify with empty cache: %v", err)
	}
	if c.Extra["collateral"] != ModeOffline || !ChainOnly(c) {
		t.Fatalf("collateral mode %q", c.Extra["collateral"])
	}

	// A cache holding all but one piece: refused, naming that piece. A
	// corrupt entry counts as absent.
	partialDir := t.TempDir()
	partial, err := certcache.Open(partialDir)
	if err != nil {
		t.Fatal(err)
	}
	for u := range tdxtest.TestGetter.Responses {
		b, ok, err := cache.Get(cacheKey(u))
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		if strings.Contains(u, "/qe/identity") {
			b = []byte("{corrupt")
		}
		if err := partial.Put(cacheKey(u), b); err != nil {
			t.Fatal(err)
		}
	}
	v := NewVerifier(Options{Cache: partial, Offline: true, Now: fixedNow(collateralTime)})
	if _, err := v.Verify(context.Background(), ev); !errors.Is(err, ErrCollateralMissing) ||
		!strings.Contains(err.Error(), "lacks QE identity (https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity)") {
		t.Fatalf("offline Verify without the QE identity = %v", err)
	}
}

func TestCollateralName(t *testing.T) {
	for u, want := range map[string]string{
		"https://api.trustedservices.intel.com/tdx/certification/v4/tcb?fmspc=50806f000000":          "TCB info",
		"https://api.trustedservices.intel.com/tdx/certification/v4/qe/identity":                     "QE identity",
		"https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der": "PCK CRL",
		"https://certificates.trustedservices.intel.com/IntelSGXRootCA.der":                          "root CA CRL",
	} {
		if _, ok := tdxtest.TestGetter.Responses[u]; !ok {
			t.Errorf("%s is not one of go-tdx-guest's sample PCS URLs", u)
		}
		if got := collateralName(u); got != want {
			t.Errorf("collateralName(%s) = %q, want %q", u, got, want)
		}
	}
}

type failingGetter struct{}

func (failingGetter) Get(u string) (map[string][]string, []byte, error) {
	return nil, nil, errors.New("network unreachable")
}

func TestOnlineWithoutNetworkFails(t *testing.T) {
	v := NewVerifier(Options{Getter: failingGetter{}, Now: fixedNow(collateralTime)})
	_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEETDX, Report: realQuote()})
	if err == nil || !strings.Contains(err.Error(), "network unreachable") {
		t.Fatalf("Verify = %v", err)
	}
}

func TestCacheDirError(t *testing.T) {
	file := t.TempDir() + "/not-a-dir"
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(Options{CacheDir: file, Offline: true, AllowChainOnly: true})
	if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEETDX, Report: realQuote()}); err == nil || !strings.Contains(err.Error(), "cache") {
		t.Fatalf("Verify = %v", err)
	}
}

func FuzzParseQuote(f *testing.F) {
	f.Add(realQuote())
	f.Add(realQuote()[:0x400])
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ParseQuote(b)
		if err != nil {
			return
		}
		c := claimsFrom(q)
		if len(c.Measurement) != 48 || len(c.ReportData) != 64 {
			t.Fatalf("claims from a parsed quote: mrtd %d bytes, report_data %d", len(c.Measurement), len(c.ReportData))
		}
	})
}

// TestMigratableRefused: TD_ATTRIBUTES bit 29 (MIGRATABLE) reaches the
// policy as Claims.Policy bit 29. The real quote is not migratable and
// passes the default policy; the same claims with the bit set (claims
// only: a changed quote no longer verifies, as shown last) are refused
// unless the policy allows a migration agent.
func TestMigratableRefused(t *testing.T) {
	v := NewVerifier(Options{Offline: true, AllowChainOnly: true, Now: fixedNow(collateralTime)})
	ev := &attest.Evidence{TEE: attest.TEETDX, Report: realQuote()}
	c, err := v.Verify(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	if err := (&policy.Policy{}).Validate(c); err != nil {
		t.Fatalf("real quote (TD_ATTRIBUTES %s) refused: %v", c.Extra["td_attributes"], err)
	}

	q, err := ParseQuote(realQuote())
	if err != nil {
		t.Fatal(err)
	}
	q.TdQuoteBody.TdAttributes[3] |= 0x20 // bit 29 of the little-endian field
	m := claimsFrom(q)
	if m.Policy != c.Policy|policy.TDXAttributesMigratable || m.Extra["td_attributes"] != "0000006000000000" {
		t.Fatalf("flipped claims: policy %#x, td_attributes %s", m.Policy, m.Extra["td_attributes"])
	}
	if err := (&policy.Policy{}).Validate(m); !errors.Is(err, policy.ErrMigrationAgent) || !strings.Contains(err.Error(), "migratable") {
		t.Fatalf("migratable TD: %v, want policy.ErrMigrationAgent", err)
	}
	if err := (&policy.Policy{AllowMigrationAgent: true}).Validate(m); err != nil {
		t.Fatalf("migratable TD with AllowMigrationAgent: %v", err)
	}

	raw := realQuote()
	raw[0x30+0x78+3] |= 0x20 // TD_ATTRIBUTES at body offset 0x78
	if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEETDX, Report: raw}); err == nil || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("quote with the migratable bit set verified: %v", err)
	}
}
