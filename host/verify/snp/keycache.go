package snp

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-sev-guest/abi"
)

// Defaults of the verified-key cache (Options.KeyCacheSize, KeyCacheTTL).
const (
	DefaultKeyCacheSize = 1024
	DefaultKeyCacheTTL  = time.Hour
)

// verifiedKey is an endorsement certificate that passed every check that
// depends on the certificate alone: it parses, names a product line, chains
// to a trusted root of that line, fits AMD's KDS profile, carries a P-384
// key and readable KDS extensions. Everything here is a function of the
// certificate bytes and the verifier's roots, except the time at which the
// chain is valid, which [notBefore, notAfter] bounds: the intersection of
// the validity of every certificate on the chain that verified.
type verifiedKey struct {
	cert      *x509.Certificate
	pub       *ecdsa.PublicKey
	kind      abi.ReportSigner
	line      string
	end       *Endorsement
	notBefore time.Time
	notAfter  time.Time
	checkedAt time.Time
}

// validAt reports whether the chain check still holds at now: inside the
// chain's validity and within ttl of the check.
func (k *verifiedKey) validAt(now time.Time, ttl time.Duration) bool {
	return !now.Before(k.notBefore) && !now.After(k.notAfter) &&
		!now.Before(k.checkedAt) && now.Sub(k.checkedAt) < ttl
}

type keyID struct {
	sum  [32]byte // SHA-256 of the certificate's DER
	kind abi.ReportSigner
}

// keyCache remembers verified endorsement keys, bounded in number (least
// recently used first out) and in age. It also remembers, for reports that
// carry no certificate, which verified VCEK the on-disk cache gave for a
// chip at a TCB, so the disk is read once per key rather than per report.
// A Verifier has its own: an entry is only valid under that verifier's
// roots.
type keyCache struct {
	mu     sync.Mutex
	max    int
	ttl    time.Duration
	lru    *list.List // of *keyEntry, most recent first
	byID   map[keyID]*list.Element
	byChip map[string]keyID // vcekCacheKey -> key
}

type keyEntry struct {
	id   keyID
	key  *verifiedKey
	chip string // byChip key pointing here, or ""
}

func newKeyCache(max int, ttl time.Duration) *keyCache {
	return &keyCache{max: max, ttl: ttl, lru: list.New(), byID: map[keyID]*list.Element{}, byChip: map[string]keyID{}}
}

// get returns the verified key for id if it is still valid at now.
func (c *keyCache) get(id keyID, now time.Time) *verifiedKey {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.byID[id]
	if !ok {
		return nil
	}
	e := el.Value.(*keyEntry)
	if !e.key.validAt(now, c.ttl) {
		c.remove(el)
		return nil
	}
	c.lru.MoveToFront(el)
	return e.key
}

// chipKey returns the id of the VCEK remembered for a chip at a TCB.
func (c *keyCache) chipKey(chip string) (keyID, bool) {
	if c == nil {
		return keyID{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	id, ok := c.byChip[chip]
	return id, ok
}

// put remembers k under id, and under chip when not "".
func (c *keyCache) put(id keyID, k *verifiedKey, chip string) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.byID[id]; ok {
		c.remove(el)
	}
	if old, ok := c.byChip[chip]; ok && chip != "" {
		if el, ok := c.byID[old]; ok {
			el.Value.(*keyEntry).chip = ""
		}
		delete(c.byChip, chip)
	}
	c.byID[id] = c.lru.PushFront(&keyEntry{id: id, key: k, chip: chip})
	if chip != "" {
		c.byChip[chip] = id
	}
	for c.lru.Len() > c.max {
		c.remove(c.lru.Back())
	}
}

// len is the number of keys held.
func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *keyCache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*keyEntry)
	delete(c.byID, e.id)
	if e.chip != "" {
		delete(c.byChip, e.chip)
	}
}

func idOf(der []byte, kind abi.ReportSigner) keyID {
	return keyID{sum: sha256.Sum256(der), kind: kind}
}

// verifyKey runs the certificate-only checks on an endorsement certificate
// of kind key, in the order their failures are reported: it parses, its
// issuer names a product line with trusted roots, it chains to one of
// them at now, it fits AMD's KDS certificate profile, its key is ECDSA
// P-384, and its KDS extensions parse.
func (v *Verifier) verifyKey(der []byte, key abi.ReportSigner, source string, now time.Time) (*verifiedKey, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("snp: %v certificate (from the %s) does not parse: %w", key, source, err)
	}
	line, err := issuerProductLine(cert, key)
	if err != nil {
		return nil, fmt.Errorf("snp: %v certificate: %w", key, err)
	}
	roots, err := v.rootsFor(line)
	if err != nil {
		return nil, err
	}
	chain, err := chainTo(roots, cert, key, now)
	if err != nil {
		return nil, fmt.Errorf("snp: %v certificate does not chain to a trusted %s root: %w", key, line, err)
	}
	if err := checkProfile(cert, key, line); err != nil {
		return nil, fmt.Errorf("snp: %v certificate is not shaped as AMD's KDS issues them: %w", key, err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P384() {
		return nil, fmt.Errorf("snp: %v certificate key is not ECDSA P-384", key)
	}
	end, err := ParseEndorsement(cert)
	if err != nil {
		return nil, fmt.Errorf("snp: %v certificate extensions: %w", key, err)
	}
	if err := checkEndorsementKind(end, key, line); err != nil {
		return nil, fmt.Errorf("snp: %v certificate extensions: %w", key, err)
	}
	k := &verifiedKey{cert: cert, pub: pub, kind: key, line: line, end: end, checkedAt: now}
	for i, c := range chain {
		if i == 0 || c.NotBefore.After(k.notBefore) {
			k.notBefore = c.NotBefore
		}
		if i == 0 || c.NotAfter.Before(k.notAfter) {
			k.notAfter = c.NotAfter
		}
	}
	return k, nil
}

// oidAuthorityKeyID is the only extension outside AMD's KDS arc that a
// VCEK or VLEK carries (the ASK signing it may add it).
var oidAuthorityKeyID = asn1.ObjectIdentifier{2, 5, 29, 35}

// checkProfile checks the shape AMD's KDS gives every VCEK and VLEK (AMD
// publication 57230): an X.509 v3 certificate signed with RSASSA-PSS
// SHA-384, an ECDSA key, subject CN SEV-VCEK or SEV-VLEK, and AMD's
// location in subject and issuer. On Milan and Genoa no extension outside
// the KDS arc but the authority key id is allowed (go-sev-guest's profile
// rule, which its v0.15.0 also applies); Turin certificates are not held to
// it, since no real one was available to confirm their extension set.
func checkProfile(cert *x509.Certificate, key abi.ReportSigner, line string) error {
	if cert.Version != 3 {
		return fmt.Errorf("X.509 version %d, want 3", cert.Version)
	}
	if cert.SignatureAlgorithm != x509.SHA384WithRSAPSS {
		return fmt.Errorf("signature algorithm %v, want SHA-384 with RSASSA-PSS", cert.SignatureAlgorithm)
	}
	if cert.PublicKeyAlgorithm != x509.ECDSA {
		return fmt.Errorf("public key algorithm %v, want ECDSA", cert.PublicKeyAlgorithm)
	}
	if want := "SEV-" + key.String(); cert.Subject.CommonName != want {
		return fmt.Errorf("subject common name %q, want %q", cert.Subject.CommonName, want)
	}
	if err := amdLocation(cert.Subject.Country, cert.Subject.Locality, cert.Subject.Province, cert.Subject.Organization, cert.Subject.OrganizationalUnit); err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	if err := amdLocation(cert.Issuer.Country, cert.Issuer.Locality, cert.Issuer.Province, cert.Issuer.Organization, cert.Issuer.OrganizationalUnit); err != nil {
		return fmt.Errorf("issuer: %w", err)
	}
	if line != "Turin" {
		for _, x := range cert.Extensions {
			inArc := len(x.Id) > len(kdsArc) && x.Id[:len(kdsArc)].Equal(kdsArc)
			if !inArc && !x.Id.Equal(oidAuthorityKeyID) {
				return fmt.Errorf("extension %v is not one of AMD's KDS extensions", x.Id)
			}
		}
	}
	return nil
}

// amdLocation checks the location attributes AMD's names carry.
func amdLocation(country, locality, province, org, unit []string) error {
	for _, f := range []struct {
		what string
		got  []string
		want string
	}{
		{"country", country, "US"}, {"locality", locality, "Santa Clara"}, {"state", province, "CA"},
		{"organization", org, "Advanced Micro Devices"}, {"organizational unit", unit, "Engineering"},
	} {
		if len(f.got) != 1 || f.got[0] != f.want {
			return fmt.Errorf("%s %q, want %q", f.what, f.got, f.want)
		}
	}
	return nil
}

// checkEndorsementKind checks the extensions against the key's kind and
// product line: a VCEK names its chip and no cloud provider, a VLEK the
// reverse, and the product name ("Milan-B1" for a VCEK, "Milan" for a
// VLEK) is of the line the issuer names.
func checkEndorsementKind(e *Endorsement, key abi.ReportSigner, line string) error {
	switch key {
	case abi.VcekReportSigner:
		if e.HWID == nil || e.CSPID != "" {
			return errors.New("a VCEK must name a chip id and no CSP id")
		}
	case abi.VlekReportSigner:
		if e.HWID != nil || e.CSPID == "" {
			return errors.New("a VLEK must name a CSP id and no chip id")
		}
	}
	if name, _, _ := strings.Cut(e.ProductName, "-"); name != line {
		return fmt.Errorf("product name %q is not of product line %s", e.ProductName, line)
	}
	if (e.StructVersion == 1) != (line == "Turin") {
		return fmt.Errorf("KDS structure version %d on %s", e.StructVersion, line)
	}
	return nil
}
