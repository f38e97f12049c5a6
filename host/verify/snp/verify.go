// Package snp verifies AMD SEV-SNP attestation reports on the host.
//
// A Verifier answers one question: is this report genuine? It returns the
// report's contents as attest.Claims and leaves judging them (measurement,
// report_data, debug, VMPL, TCB minimums) to host/verify/policy.
//
// A report is genuine when it is signed by an endorsement key (a VCEK,
// unique to one chip at one TCB, or a VLEK, issued to a cloud provider)
// whose certificate chains to a trusted AMD root. The checks run in this
// order, and each failure names its check:
//
//  1. Find the endorsement certificate: from the evidence's certificate
//     table, else from the on-disk cache, else from AMD's KDS (VCEKs only,
//     never in offline mode).
//  2. The certificate chains to a trusted root of its product line (Milan,
//     Genoa, Turin) and has the shape AMD's KDS gives every VCEK and VLEK
//     (X.509 v3, RSASSA-PSS SHA-384, an ECDSA P-384 key, AMD's names, KDS
//     extensions that fit the key's kind and product line). Roots come from
//     Options only, AMD's embedded ones by default; an ARK or ASK inside the
//     evidence is never trusted. These checks depend on the certificate
//     alone, so a Verifier runs them once per certificate and remembers the
//     result (bounded in number and age, and never past the chain's
//     validity; keycache.go).
//  3. The ECDSA P-384 signature over bytes 0 to 0x2A0 verifies with the
//     certificate's key, once. This runs before any field is interpreted,
//     so a change to any signed byte, reserved ones included, is reported
//     as a signature failure rather than as whatever the changed field
//     means.
//  4. The report is well formed (version 2 to 5, valid policy and signer
//     info, reserved bytes zero), its CPUID product line matches the
//     certificate's and its signer info names the kind of key that signed.
//  5. The certificate's TCB (and for a VCEK, its chip id) equals the
//     report's reported TCB and CHIP_ID, so the reported TCB in the claims
//     is one AMD certified for this chip.
//
// This code is the authoritative verifier. go-sev-guest's
// verify.SnpAttestation, which an earlier version ran as a second full
// check, is now a differential test (crosscheck_test.go): every mutation
// it refuses, this verifier refuses too.
//
// Only then are the claims returned, and a VCEK that came from the evidence
// or KDS is stored in the cache for next time.
package snp

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/certcache"
	"github.com/sealroot/sealroot/host/verify/policy"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// Options configure a Verifier.
type Options struct {
	// Roots are the trusted ARK/ASK(/ASVK) per product line ("Milan",
	// "Genoa", "Turin"). nil means AMD's roots embedded in go-sev-guest.
	Roots map[string][]*trust.AMDRootCerts
	// Simulated marks Roots as a simulated secure processor's root: claims
	// then carry Simulated=true, which policies refuse by default.
	Simulated bool
	// Cache, when set, is consulted for VCEKs the evidence lacks and
	// remembers VCEKs seen in evidence or fetched from KDS.
	Cache *certcache.Cache
	// Getter fetches from AMD KDS; nil uses a KDSGetter with defaults.
	Getter trust.HTTPSGetter
	// Offline forbids any network access: a VCEK must come with the
	// evidence or from the cache.
	Offline bool
	// Now gives the time at which certificates must be valid; nil is
	// time.Now.
	Now func() time.Time
	// KeyCacheSize bounds how many verified endorsement certificates the
	// Verifier remembers (0 is DefaultKeyCacheSize, negative remembers
	// none). A remembered certificate is not re-checked against the roots
	// until KeyCacheTTL has passed or its chain's validity ends.
	KeyCacheSize int
	// KeyCacheTTL is how long a verified certificate is remembered (0 is
	// DefaultKeyCacheTTL).
	KeyCacheTTL time.Duration
}

// Verifier verifies SNP evidence. It is safe for concurrent use.
type Verifier struct {
	o    Options
	keys *keyCache // nil when KeyCacheSize < 0
}

// NewVerifier returns a Verifier with options o.
func NewVerifier(o Options) *Verifier {
	if o.Getter == nil {
		o.Getter = &KDSGetter{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.KeyCacheSize == 0 {
		o.KeyCacheSize = DefaultKeyCacheSize
	}
	if o.KeyCacheTTL <= 0 {
		o.KeyCacheTTL = DefaultKeyCacheTTL
	}
	v := &Verifier{o: o}
	if o.KeyCacheSize > 0 {
		v.keys = newKeyCache(o.KeyCacheSize, o.KeyCacheTTL)
	}
	return v
}

var _ attest.Verifier = (*Verifier)(nil)

// endorsement is the certificate of the key that should have signed a
// report, and where it came from.
type endorsement struct {
	der    []byte
	key    abi.ReportSigner // what the certificate is: VCEK or VLEK
	source string           // "evidence", "cache" or "kds"
	known  *verifiedKey     // set when found through the key cache's chip index
}

// Verify checks that ev is a genuine SNP report and returns its claims.
func (v *Verifier) Verify(ctx context.Context, ev *attest.Evidence) (*attest.Claims, error) {
	if ev == nil {
		return nil, errors.New("snp: no evidence")
	}
	if ev.TEE != attest.TEESNP {
		return nil, fmt.Errorf("snp: evidence is for tee %q, not %q", ev.TEE, attest.TEESNP)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("snp: %w", err)
	}
	raw := ev.Report
	if len(raw) != ReportSize {
		return nil, fmt.Errorf("snp: report is %d bytes, want %d", len(raw), ReportSize)
	}
	h := peekHeader(raw)
	table, err := ParseCertTable(ev.Certs)
	if err != nil {
		return nil, fmt.Errorf("snp: certificate table in the evidence: %w", err)
	}

	// 1. The endorsement certificate.
	now := v.o.Now()
	end, err := v.endorsement(ctx, h, table, now)
	if err != nil {
		return nil, err
	}

	// 2. It chains to a trusted root and fits AMD's profile: checked once
	// per certificate and then remembered (keycache.go).
	key := end.known
	var id keyID
	if key == nil {
		id = idOf(end.der, end.key)
		key = v.keys.get(id, now)
	}
	fresh := key == nil
	if fresh {
		if key, err = v.verifyKey(end.der, end.key, end.source, now); err != nil {
			return nil, err
		}
		v.keys.put(id, key, "")
	}

	// 3. The signature, over the raw bytes, before any field is read.
	if err := checkSignature(raw, key.pub); err != nil {
		note := ""
		if h.signer != end.key {
			note = fmt.Sprintf(" (the report names signing key %v)", h.signer)
		}
		return nil, fmt.Errorf("snp: report signature does not verify against the %v%s: %w", end.key, note, err)
	}

	// 4. Format, and agreement between report and certificate.
	line := key.line
	report, err := ParseReport(raw)
	if err != nil {
		return nil, fmt.Errorf("snp: malformed report: %w", err)
	}
	if h.version >= abi.ReportVersion3 && h.fmsLine != line {
		named := "no SNP product"
		if h.fmsLine != "" {
			named = fmt.Sprintf("product %q", h.fmsLine)
		}
		return nil, fmt.Errorf("snp: report CPUID family/model/stepping %02x/%02x/%02x names %s but the %v is %s's",
			raw[snpreport.OffCPUIDFam], raw[snpreport.OffCPUIDFam+1], raw[snpreport.OffCPUIDFam+2], named, end.key, line)
	}
	if h.signer != end.key {
		return nil, fmt.Errorf("snp: report names signing key %v but carries a %v", h.signer, end.key)
	}

	// 5. The certificate certifies this chip at this TCB.
	reported, err := decodeTCB(report.GetReportedTcb(), line)
	if err != nil {
		return nil, fmt.Errorf("snp: reported TCB: %w", err)
	}
	if err := checkBinding(key.end, end.key, report, reported); err != nil {
		return nil, fmt.Errorf("snp: %v does not match the report: %w", end.key, err)
	}
	launch, err := decodeTCB(report.GetLaunchTcb(), line)
	if err != nil {
		return nil, fmt.Errorf("snp: launch TCB: %w", err)
	}

	if fresh && end.key == abi.VcekReportSigner && v.o.Cache != nil && !allZero(h.chipID) {
		chip := vcekCacheKey(line, h.chipID, h.reportedTCB)
		if end.source != "cache" {
			// Best effort: a cache that cannot be written costs a future
			// fetch, not this verification.
			_ = v.o.Cache.Put(chip, end.der)
		}
		v.keys.put(id, key, chip)
	}
	c := v.claims(report, line, reported, end)
	c.LaunchTCB = &launch
	return c, nil
}

// endorsement finds the certificate of the key that signed the report.
func (v *Verifier) endorsement(ctx context.Context, h header, table []CertEntry, now time.Time) (*endorsement, error) {
	vcek := certFromTable(table, GUIDVCEK)
	vlek := certFromTable(table, GUIDVLEK)
	switch {
	case h.signer == abi.VlekReportSigner && len(vlek) > 0:
		return &endorsement{der: vlek, key: abi.VlekReportSigner, source: "evidence"}, nil
	case h.signer == abi.VcekReportSigner && len(vcek) > 0:
		return &endorsement{der: vcek, key: abi.VcekReportSigner, source: "evidence"}, nil
	// The signer field is not yet authenticated: when the evidence holds
	// only the other kind of key, let the signature check decide.
	case len(vcek) > 0 && len(vlek) == 0:
		return &endorsement{der: vcek, key: abi.VcekReportSigner, source: "evidence"}, nil
	case len(vlek) > 0 && len(vcek) == 0:
		return &endorsement{der: vlek, key: abi.VlekReportSigner, source: "evidence"}, nil
	}
	switch {
	case h.signer == abi.VlekReportSigner:
		return nil, errors.New("snp: the report is signed with a VLEK but the evidence carries no VLEK certificate (VLEKs cannot be fetched from AMD KDS; the host must supply it)")
	case !h.signerOK:
		return nil, fmt.Errorf("snp: the report names no endorsement key (signing_key %v) and the evidence carries no certificate", h.signer)
	}

	lines := productLines
	if h.fmsLine != "" {
		lines = []string{h.fmsLine}
	}
	if v.o.Cache != nil {
		for _, line := range lines {
			if id, ok := v.keys.chipKey(vcekCacheKey(line, h.chipID, h.reportedTCB)); ok {
				if k := v.keys.get(id, now); k != nil {
					return &endorsement{der: k.cert.Raw, key: abi.VcekReportSigner, source: "cache", known: k}, nil
				}
			}
		}
		for _, line := range lines {
			der, ok, err := v.o.Cache.Get(vcekCacheKey(line, h.chipID, h.reportedTCB))
			if err != nil {
				return nil, fmt.Errorf("snp: reading the VCEK from the cache: %w", err)
			}
			if ok {
				return &endorsement{der: der, key: abi.VcekReportSigner, source: "cache"}, nil
			}
		}
	}
	where := "the evidence carries none"
	if v.o.Cache != nil {
		where += " and the cache has none"
	}
	if v.o.Offline {
		return nil, fmt.Errorf("snp: VCEK missing for chip %s at reported TCB %#016x: %s, and offline mode forbids fetching it from AMD KDS", shortHex(h.chipID), h.reportedTCB, where)
	}
	if allZero(h.chipID) {
		return nil, fmt.Errorf("snp: VCEK missing: %s, and the report's CHIP_ID is masked, so AMD KDS cannot be asked for it", where)
	}
	var tried []string
	for _, line := range lines {
		if line == "Turin" && h.fmsLine == "" {
			continue // version 2 reports predate Turin
		}
		tcb, err := decodeTCB(h.reportedTCB, line)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: reported TCB: %v", line, err))
			continue
		}
		der, err := trust.GetWith(ctx, v.o.Getter, vcekURL(line, h.chipID, tcb))
		if isNotFound(err) {
			tried = append(tried, fmt.Sprintf("%s: %v", line, err))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("snp: fetching the VCEK from AMD KDS: %w", err)
		}
		return &endorsement{der: der, key: abi.VcekReportSigner, source: "kds"}, nil
	}
	return nil, fmt.Errorf("snp: AMD KDS has no VCEK for chip %s at reported TCB %#016x: %s", shortHex(h.chipID), h.reportedTCB, strings.Join(tried, "; "))
}

// rootsFor returns the trusted roots of a product line.
func (v *Verifier) rootsFor(line string) ([]*trust.AMDRootCerts, error) {
	all := v.o.Roots
	if all == nil {
		var err error
		if all, err = amdRoots(); err != nil {
			return nil, fmt.Errorf("snp: %w", err)
		}
	}
	roots := all[line]
	if len(roots) == 0 {
		return nil, fmt.Errorf("snp: no trusted roots for product line %s", line)
	}
	return roots, nil
}

// issuerProductLine reads the product line from the endorsement
// certificate's issuer, SEV-<line> (VCEK) or SEV-VLEK-<line> (VLEK).
func issuerProductLine(cert *x509.Certificate, key abi.ReportSigner) (string, error) {
	prefix := "SEV-"
	if key == abi.VlekReportSigner {
		prefix = "SEV-VLEK-"
	}
	cn := cert.Issuer.CommonName
	if line, ok := strings.CutPrefix(cn, prefix); ok {
		for _, l := range productLines {
			if l == line {
				return line, nil
			}
		}
	}
	return "", fmt.Errorf("issuer %q is not an AMD %sMilan, Genoa or Turin signing key", cn, prefix)
}

// chainTo checks that cert chains to one of roots at now and returns the
// chain, cert first.
func chainTo(roots []*trust.AMDRootCerts, cert *x509.Certificate, key abi.ReportSigner, now time.Time) ([]*x509.Certificate, error) {
	var errs []error
	for _, r := range roots {
		opts := r.X509Options(now, key)
		if opts == nil {
			errs = append(errs, fmt.Errorf("root has no ARK or no certificate authority for %v keys", key))
			continue
		}
		chains, err := cert.Verify(*opts)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return chains[0], nil
	}
	return nil, errors.Join(errs...)
}

// checkBinding compares what the endorsement certificate certifies (TCB,
// and a VCEK's chip id) with the report.
func checkBinding(e *Endorsement, key abi.ReportSigner, r *spb.Report, reported attest.TCB) error {
	if e.TCB != reported {
		return fmt.Errorf("it certifies TCB %s, the report claims %s", policy.FormatTCB(e.TCB), policy.FormatTCB(reported))
	}
	if key != abi.VcekReportSigner || allZero(r.GetChipId()) {
		return nil // VLEKs are not per chip; a masked CHIP_ID cannot be compared
	}
	if e.HWID == nil {
		return errors.New("it names no chip")
	}
	// Turin certificates name the chip by the first 8 bytes of CHIP_ID.
	if !bytes.Equal(e.HWID, r.GetChipId()[:len(e.HWID)]) {
		return fmt.Errorf("it is for chip %s, the report is from chip %s", shortHex(e.HWID), shortHex(r.GetChipId()))
	}
	return nil
}

func (v *Verifier) claims(r *spb.Report, line string, reported attest.TCB, end *endorsement) *attest.Claims {
	c := &attest.Claims{
		TEE:           attest.TEESNP,
		Simulated:     v.o.Simulated,
		Measurement:   r.GetMeasurement(),
		ReportData:    r.GetReportData(),
		HostData:      r.GetHostData(),
		ChipID:        r.GetChipId(),
		Debug:         r.GetPolicy()&(1<<policyDebugBit) != 0,
		VMPL:          int(r.GetVmpl()),
		Policy:        r.GetPolicy(),
		ReportedTCB:   reported,
		ProductLine:   line,
		ReportVersion: r.GetVersion(),
	}
	info, _ := abi.ParseSignerInfo(r.GetSignerInfo()) // validated by ParseReport
	c.Extra = map[string]string{
		"signer":            end.key.String(),
		"cert_source":       end.source,
		"guest_svn":         fmt.Sprint(r.GetGuestSvn()),
		"family_id":         hex.EncodeToString(r.GetFamilyId()),
		"image_id":          hex.EncodeToString(r.GetImageId()),
		"id_key_digest":     hex.EncodeToString(r.GetIdKeyDigest()),
		"author_key_digest": hex.EncodeToString(r.GetAuthorKeyDigest()),
		"author_key_en":     fmt.Sprint(info.AuthorKeyEn),
		"mask_chip_key":     fmt.Sprint(info.MaskChipKey),
		"report_id":         hex.EncodeToString(r.GetReportId()),
		"report_id_ma":      hex.EncodeToString(r.GetReportIdMa()),
		"platform_info":     fmt.Sprintf("%#x", r.GetPlatformInfo()),
		"current_tcb":       formatRawTCB(r.GetCurrentTcb(), line),
		"committed_tcb":     formatRawTCB(r.GetCommittedTcb(), line),
		"launch_tcb":        formatRawTCB(r.GetLaunchTcb(), line),
		"firmware":          firmwareVersion(r.GetCurrentMajor(), r.GetCurrentMinor(), r.GetCurrentBuild()),
		"committed_firmware": firmwareVersion(r.GetCommittedMajor(), r.GetCommittedMinor(),
			r.GetCommittedBuild()),
	}
	return c
}

// formatRawTCB renders a TCB_VERSION by components, or as hex when its
// reserved bytes are not zero.
func formatRawTCB(v uint64, line string) string {
	t, err := decodeTCB(v, line)
	if err != nil {
		return fmt.Sprintf("%#016x", v)
	}
	return policy.FormatTCB(t)
}

// vcekCacheKey is the cache key of the VCEK of a chip at a TCB.
func vcekCacheKey(line string, chipID []byte, tcb uint64) string {
	return fmt.Sprintf("snp/vcek/%s/%x/%016x", line, chipID, tcb)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// shortHex abbreviates a chip id for messages.
func shortHex(b []byte) string {
	if len(b) > 8 {
		return hex.EncodeToString(b[:8]) + "…"
	}
	return hex.EncodeToString(b)
}
