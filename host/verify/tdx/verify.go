// Package tdx verifies Intel TDX quotes and turns them into attest.Claims.
//
// Verification is go-tdx-guest's: the quote's ECDSA signature by the
// attestation key, the QE report that binds that key, signed by the PCK
// certificate, and the PCK chain up to the Intel SGX Root CA. With
// collateral (TCB info, QE identity and, by default, the PCK and root CRLs,
// all signed by Intel and checked by go-tdx-guest) it also refuses a TCB
// Intel has marked out of date, an unknown QE, and revoked certificates.
//
// Collateral comes from Intel PCS through an injectable getter and is kept in
// an on-disk cache (host/verify/certcache), so a verifier with a warm cache needs
// no network. Offline, the verifier uses cached collateral when the cache
// has all of it. When a piece is missing it refuses the quote
// (ErrCollateralMissing, naming the piece), unless Options.AllowChainOnly
// asks for a signature-and-chain-only check instead; the claims then say so
// (Extra["collateral"] = ModeOffline, ChainOnly), so nobody mistakes a
// chain-only check for a TCB check.
//
// Only quote version 4 is supported: that is what go-tdx-guest v0.3.1
// parses. Version 5 quotes (TDX 1.5 with a TD report 1.5 body) are refused
// with an error that says so.
package tdx

import (
	"context"
	"crypto/x509"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/abi"
	pb "github.com/google/go-tdx-guest/proto/tdx"
	"github.com/google/go-tdx-guest/verify"
	"github.com/google/go-tdx-guest/verify/trust"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/certcache"
)

// The Intel SGX Root CA, the same certificate go-tdx-guest embeds (SHA-256
// fingerprint 44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3).
// Passing it explicitly keeps go-tdx-guest from printing a warning to
// standard output on every verification.
//
//go:embed intel_sgx_root_ca.pem
var intelRootPEM []byte

var intelRoots = sync.OnceValue(func() *x509.CertPool {
	block, _ := pem.Decode(intelRootPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		panic("tdx: embedded Intel root does not parse: " + err.Error())
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
})

// MaxQuoteSize bounds the quote accepted for parsing. Real quotes are about
// 5 KB; the PCK chain dominates.
const MaxQuoteSize = 64 << 10

// tdAttributesDebug is TD_ATTRIBUTES bit 0 (TUD.DEBUG).
const tdAttributesDebug = 1

// Options configure a Verifier.
type Options struct {
	// Cache holds collateral between runs. When nil and CacheDir is set,
	// the directory is opened at the first verification.
	Cache    *certcache.Cache
	CacheDir string
	// Offline forbids the network: collateral only from the cache. A quote
	// whose collateral the cache lacks (or any quote, without a cache) is
	// refused with ErrCollateralMissing unless AllowChainOnly.
	Offline bool
	// AllowChainOnly, offline, verifies a quote whose collateral is not
	// cached on its signature and PCK chain alone, without the TCB status,
	// QE identity and revocation checks, and marks the claims
	// (Extra["collateral"] = ModeOffline). For a person inspecting evidence
	// (sealroot verify --offline); a relying party that releases secrets
	// must leave it false.
	AllowChainOnly bool
	// Getter fetches Intel PCS URLs (go-tdx-guest's interface). Nil means
	// HTTPS with retries, within the verification's context (pcs.go),
	// unless Offline.
	Getter trust.HTTPSGetter
	// Now is the time at which certificates and collateral must be valid;
	// nil means time.Now.
	Now func() time.Time
	// SkipRevocation skips the PCK and root CRLs when collateral is used.
	SkipRevocation bool
	// CollateralMaxAge is how long cached collateral is used before it is
	// fetched again (online only; a failed refresh falls back to the cached
	// copy, whose own expiry go-tdx-guest checks). Zero means 24 hours.
	CollateralMaxAge time.Duration
	// TrustedRoots replaces the Intel SGX Root CA (tests only).
	TrustedRoots *x509.CertPool
}

// Verifier verifies TDX quotes. It is safe for concurrent use.
type Verifier struct {
	o         Options
	cacheOnce sync.Once
	cache     *certcache.Cache
	cacheErr  error
}

// NewVerifier returns a Verifier for Evidence{TEE: "tdx"}.
func NewVerifier(o Options) attest.Verifier {
	return &Verifier{o: o}
}

// Collateral modes reported in Claims.Extra["collateral"].
const (
	ModeCollateral = "checked: TCB info and QE identity from Intel PCS"
	ModeOffline    = "none: offline, signature and PCK chain only (no TCB status, QE identity or revocation check)"
)

// ErrCollateralMissing means the verifier is offline and the cache lacks
// collateral the quote needs, and chain-only verification was not allowed.
var ErrCollateralMissing = errors.New("collateral not available offline")

// ChainOnly reports whether claims come from a TDX quote verified on its
// signature and PCK chain only (Options.AllowChainOnly): genuine Intel
// hardware, but its TCB status, QE identity and revocation not checked.
func ChainOnly(c *attest.Claims) bool {
	return c != nil && c.TEE == attest.TEETDX && c.Extra["collateral"] == ModeOffline
}

// warmHint says how to fill a collateral cache.
const warmHint = "warm the cache on a machine that reaches Intel PCS with " +
	"'sealroot verify --tee tdx --evidence QUOTE --cache-dir DIR' for a quote of this platform " +
	"(a broker's cache is STATE/certs; copy the directory over), or run the broker once without --offline"

// Verify checks the quote in ev.Report and returns its claims.
func (v *Verifier) Verify(ctx context.Context, ev *attest.Evidence) (*attest.Claims, error) {
	if ev == nil || ev.TEE != attest.TEETDX {
		return nil, fmt.Errorf("tdx: evidence is not a tdx quote")
	}
	quote, err := ParseQuote(ev.Report)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cache, err := v.openCache()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	if v.o.Now != nil {
		now = v.o.Now()
	}
	roots := v.o.TrustedRoots
	if roots == nil {
		roots = intelRoots()
	}

	g := &collateralGetter{cache: cache, now: now, maxAge: v.o.CollateralMaxAge}
	if !v.o.Offline {
		g.next = v.o.Getter
		if g.next == nil {
			g.next = networkGetter(ctx)
		}
	}
	mode := ModeCollateral
	revocation := !v.o.SkipRevocation
	useCollateral := g.next != nil || cache != nil
	if !useCollateral && !v.o.AllowChainOnly {
		return nil, fmt.Errorf("tdx: %w: offline without a collateral cache, so the TCB status, QE identity and revocation of the quote's platform cannot be checked; %s",
			ErrCollateralMissing, warmHint)
	}
	if useCollateral {
		// go-tdx-guest keeps per-call state in Options: one per call.
		err = verify.TdxQuote(quote, &verify.Options{
			GetCollateral: true, CheckRevocations: revocation, Getter: g, Now: now, TrustedRoots: roots,
		})
		switch {
		case err != nil && g.next == nil && g.missed() && v.o.AllowChainOnly:
			// Offline, the cache lacks some collateral, and the caller
			// asked for a chain-only check in that case.
			useCollateral = false
		case err != nil && g.next == nil && g.missed():
			return nil, fmt.Errorf("tdx: %w: the cache lacks %s, so the TCB status, QE identity and revocation of the quote's platform cannot be checked; %s",
				ErrCollateralMissing, g.missing(), warmHint)
		case err != nil:
			return nil, fmt.Errorf("tdx: verifying quote with collateral: %w", err)
		}
	}
	if !useCollateral {
		mode = ModeOffline
		if err := verify.TdxQuote(quote, &verify.Options{Now: now, TrustedRoots: roots}); err != nil {
			return nil, fmt.Errorf("tdx: verifying quote signature and pck chain: %w", err)
		}
	} else if revocation {
		mode += ", PCK and root CRLs"
	}
	c := claimsFrom(quote)
	c.Extra["collateral"] = mode
	if len(ev.EventLog) > 0 {
		c.Extra["event_log"] = fmt.Sprintf("%d bytes, not replayed against the RTMRs", len(ev.EventLog))
	}
	return c, nil
}

func (v *Verifier) openCache() (*certcache.Cache, error) {
	if v.o.Cache != nil {
		return v.o.Cache, nil
	}
	if v.o.CacheDir == "" {
		return nil, nil
	}
	v.cacheOnce.Do(func() {
		v.cache, v.cacheErr = certcache.Open(v.o.CacheDir)
	})
	if v.cacheErr != nil {
		return nil, fmt.Errorf("tdx: opening collateral cache: %w", v.cacheErr)
	}
	return v.cache, nil
}

// ParseQuote parses a raw TDX quote with go-tdx-guest's abi package and
// checks its shape (version 4, TDX TEE type, field sizes). It does not
// verify anything.
func ParseQuote(raw []byte) (*pb.QuoteV4, error) {
	if len(raw) > MaxQuoteSize {
		return nil, fmt.Errorf("tdx: quote is %d bytes, more than %d", len(raw), MaxQuoteSize)
	}
	if len(raw) < abi.QuoteMinSize {
		return nil, fmt.Errorf("tdx: quote is %d bytes, less than the minimum %d", len(raw), abi.QuoteMinSize)
	}
	if v := binary.LittleEndian.Uint16(raw); v != abi.QuoteVersion {
		return nil, fmt.Errorf("tdx: quote version %d not supported (only version 4; version 5 quotes from TDX 1.5 are not yet handled)", v)
	}
	if t := binary.LittleEndian.Uint32(raw[4:]); t != abi.TeeTDX {
		return nil, fmt.Errorf("tdx: quote tee type %#x is not TDX (%#x)", t, abi.TeeTDX)
	}
	if err := checkLayout(raw); err != nil {
		return nil, fmt.Errorf("tdx: malformed quote: %w", err)
	}
	q, err := quoteToProto(raw)
	if err != nil {
		return nil, fmt.Errorf("tdx: parsing quote: %w", err)
	}
	quote, ok := q.(*pb.QuoteV4)
	if !ok {
		return nil, fmt.Errorf("tdx: parsing quote: unexpected type %T", q)
	}
	if err := abi.CheckQuoteV4(quote); err != nil {
		return nil, fmt.Errorf("tdx: malformed quote: %w", err)
	}
	return quote, nil
}

// quoteToProto calls go-tdx-guest's parser, turning a panic into an error.
// go-tdx-guest v0.3.1 slices some nested lengths without bounds checks;
// checkLayout rejects those quotes first, so this is only a second line of
// defence for a verifier that must not crash on hostile input.
func quoteToProto(raw []byte) (q any, err error) {
	defer func() {
		if r := recover(); r != nil {
			q, err = nil, fmt.Errorf("quote parser failed: %v", r)
		}
	}()
	return abi.QuoteToProto(raw)
}

// Quote v4 layout: header (0x30) and TD quote body (0x248), then the signed
// data size and signed data: ECDSA signature (0x40), attestation key (0x40)
// and certification data {type u16, size u32, data}. Type 6 data is the QE
// report (0x180), its signature (0x40), QE auth data {size u16, data} and
// the PCK chain as certification data of type 5.
const (
	offSignedDataSize = 0x278
	offSignedData     = 0x27C
	certDataQEReport  = 6
	certDataPCKChain  = 5
)

// checkLayout walks every nested length of a v4 quote and makes sure it
// stays inside the quote, before go-tdx-guest's parser slices by them.
func checkLayout(raw []byte) error {
	le16 := func(b []byte) uint64 { return uint64(binary.LittleEndian.Uint16(b)) }
	le32 := func(b []byte) uint64 { return uint64(binary.LittleEndian.Uint32(b)) }
	if len(raw) < offSignedData {
		return fmt.Errorf("%d bytes, too short for header and body", len(raw))
	}
	signed := raw[offSignedData:]
	n := le32(raw[offSignedDataSize:])
	if n > uint64(len(signed)) {
		return fmt.Errorf("signed data size %d exceeds the %d bytes left", n, len(signed))
	}
	signed = signed[:n]
	if len(signed) < 0x80+6 {
		return fmt.Errorf("signed data of %d bytes lacks signature, attestation key and certification data", len(signed))
	}
	cd := signed[0x80:]
	if t := le16(cd); t != certDataQEReport {
		return fmt.Errorf("certification data type %d, want %d (QE report)", t, certDataQEReport)
	}
	if size := le32(cd[2:]); size != uint64(len(cd)-6) {
		return fmt.Errorf("certification data size %d, but %d bytes follow", size, len(cd)-6)
	}
	qe := cd[6:]
	if len(qe) < 0x1C2 {
		return fmt.Errorf("QE report certification data of %d bytes is too short", len(qe))
	}
	auth := le16(qe[0x1C0:])
	rest := qe[0x1C2:]
	if auth > uint64(len(rest)) {
		return fmt.Errorf("QE auth data size %d exceeds the %d bytes left", auth, len(rest))
	}
	pck := rest[auth:]
	if len(pck) < 6 {
		return fmt.Errorf("no PCK certification data after the QE auth data")
	}
	if t := le16(pck); t != certDataPCKChain {
		return fmt.Errorf("PCK certification data type %d, want %d (PCK chain)", t, certDataPCKChain)
	}
	if size := le32(pck[2:]); size != uint64(len(pck)-6) {
		return fmt.Errorf("PCK chain size %d, but %d bytes follow", size, len(pck)-6)
	}
	return nil
}

// claimsFrom maps a (verified) quote to claims.
func claimsFrom(q *pb.QuoteV4) *attest.Claims {
	b := q.GetTdQuoteBody()
	h := q.GetHeader()
	attrs := binary.LittleEndian.Uint64(b.GetTdAttributes())
	x := hex.EncodeToString
	extra := map[string]string{
		"mrseam":          x(b.GetMrSeam()),
		"mrsignerseam":    x(b.GetMrSignerSeam()),
		"seam_attributes": x(b.GetSeamAttributes()),
		"td_attributes":   x(b.GetTdAttributes()),
		"xfam":            x(b.GetXfam()),
		"mrowner":         x(b.GetMrOwner()),
		"mrownerconfig":   x(b.GetMrOwnerConfig()),
		"tee_tcb_svn":     x(b.GetTeeTcbSvn()),
		"qe_svn":          strconv.Itoa(int(binary.LittleEndian.Uint16(pad2(h.GetQeSvn())))),
		"pce_svn":         strconv.Itoa(int(binary.LittleEndian.Uint16(pad2(h.GetPceSvn())))),
	}
	for i, r := range b.GetRtmrs() {
		extra["rtmr"+strconv.Itoa(i)] = x(r)
	}
	return &attest.Claims{
		TEE:           attest.TEETDX,
		Measurement:   clone(b.GetMrTd()),
		ReportData:    clone(b.GetReportData()),
		HostData:      clone(b.GetMrConfigId()),
		Debug:         attrs&tdAttributesDebug != 0,
		Policy:        attrs,
		ReportVersion: h.GetVersion(),
		Extra:         extra,
	}
}

func pad2(b []byte) []byte {
	out := make([]byte, 2)
	copy(out, b)
	return out
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// errNotCached is returned by an offline collateralGetter for a URL it has
// not cached.
var errNotCached = errors.New("collateral not in cache")
