package snp

// The verifier checks each certificate chain and each report signature
// once. go-sev-guest's verify.SnpAttestation, which used to run as a second
// full pass, is kept here as a differential oracle: for real evidence and
// for every class of mutation (signed fields, signature, certificate chain,
// certificate profile, product line), whatever it refuses this verifier
// refuses too.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/verify"
	"github.com/google/go-sev-guest/verify/testdata"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// goSevGuest runs go-sev-guest's full verification on a raw report and
// endorsement certificate under roots (AMD's when nil).
func goSevGuest(raw, vcek []byte, roots map[string][]*trust.AMDRootCerts, now time.Time) error {
	report, err := abi.ReportToProto(raw)
	if err != nil {
		return err
	}
	if roots == nil {
		if roots, err = amdRoots(); err != nil {
			return err
		}
	}
	trusted := map[string][]*trust.AMDRootCerts{}
	for k, v := range roots {
		trusted[k] = v
	}
	if fms := report.GetCpuid1EaxFms(); fms != 0 {
		// go-sev-guest calls a Genoa of model A0h "Unknown".
		if line := ProductLineFromCPUID(raw[snpreport.OffCPUIDFam], raw[snpreport.OffCPUIDFam+1]); line != "" {
			trusted[kds.ProductLineFromFms(fms)] = roots[line]
		}
	}
	att := &spb.Attestation{Report: report, CertificateChain: &spb.CertificateChain{VcekCert: vcek, Extras: map[string][]byte{}}}
	return verify.SnpAttestation(att, &verify.Options{DisableCertFetching: true, TrustedRoots: trusted, Now: now})
}

// crossCheck verifies (raw, vcek) with both verifiers and fails the test
// when go-sev-guest refuses what this verifier accepts.
func crossCheck(t *testing.T, what string, raw, vcek []byte, roots map[string][]*trust.AMDRootCerts, now time.Time) (ours, theirs error) {
	t.Helper()
	v := NewVerifier(Options{Offline: true, Roots: roots, Now: func() time.Time { return now }})
	_, ours = v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: raw,
		Certs: MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: vcek}})})
	theirs = goSevGuest(raw, vcek, roots, now)
	if theirs != nil && ours == nil {
		t.Fatalf("%s: go-sev-guest refuses (%v) but the verifier accepts", what, theirs)
	}
	return ours, theirs
}

func genoaRaw(t *testing.T) (report, vcek []byte) {
	t.Helper()
	b, err := os.ReadFile("../../../wire/snpreport/testdata/trustee-snp-genoa-evidence.json")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := snpreport.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := ParseCertTable(ev.Certs)
	if err != nil {
		t.Fatal(err)
	}
	return ev.Report, certFromTable(entries, GUIDVCEK)
}

// TestCrossCheckRealEvidence: both verifiers accept the real Milan and
// Genoa reports, and for a flip of every signed byte, of the signature and
// of the certificates, both refuse.
func TestCrossCheckRealEvidence(t *testing.T) {
	genoa, genoaVCEK := genoaRaw(t)
	for _, tc := range []struct {
		name        string
		report, crt []byte
		now         time.Time
	}{
		{"Milan", bytes.Clone(testdata.AttestationBytes), bytes.Clone(testdata.VcekBytes), milanTime},
		{"Genoa", genoa, genoaVCEK, time.Now()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if ours, theirs := crossCheck(t, "untouched", tc.report, tc.crt, nil, tc.now); ours != nil || theirs != nil {
				t.Fatalf("untouched: ours %v, go-sev-guest %v", ours, theirs)
			}
			for off := 0; off < SignedSize+2*snpreport.SigComponentSize; off += 3 {
				tc.report[off] ^= 0x10
				ours, theirs := crossCheck(t, "report byte", tc.report, tc.crt, nil, tc.now)
				tc.report[off] ^= 0x10
				if ours == nil || theirs == nil {
					t.Fatalf("report byte %#x: ours %v, go-sev-guest %v", off, ours, theirs)
				}
			}
			// Certificate bytes: wherever a flip lands (signed part,
			// signature, key, extensions), both refuse.
			for off := 0; off < len(tc.crt); off += 37 {
				tc.crt[off] ^= 0x01
				ours, _ := crossCheck(t, "certificate byte", tc.report, tc.crt, nil, tc.now)
				tc.crt[off] ^= 0x01
				if ours == nil {
					t.Fatalf("certificate byte %d flipped: accepted", off)
				}
			}
		})
	}
	// The wrong chain: Genoa's VCEK for the Milan report and the reverse.
	if ours, _ := crossCheck(t, "Genoa VCEK, Milan report", testdata.AttestationBytes, genoaVCEK, nil, milanTime); ours == nil {
		t.Fatal("Milan report with Genoa's VCEK accepted")
	}
	if ours, _ := crossCheck(t, "Milan VCEK, Genoa report", genoa, testdata.VcekBytes, nil, time.Now()); ours == nil {
		t.Fatal("Genoa report with Milan's VCEK accepted")
	}
	// The wrong product: the Milan VCEK under roots that give Milan's
	// name to Genoa's ARK and ASK.
	amd, _ := amdRoots()
	swapped := map[string][]*trust.AMDRootCerts{"Milan": amd["Genoa"], "Genoa": amd["Milan"]}
	if ours, _ := crossCheck(t, "swapped roots", testdata.AttestationBytes, testdata.VcekBytes, swapped, milanTime); ours == nil {
		t.Fatal("Milan report under Genoa's roots accepted")
	}
}

// testCA is a Milan-shaped ARK and ASK made for the test, to issue
// endorsement certificates that break one rule of AMD's profile each.
type testCA struct {
	ark, ask *x509.Certificate
	askKey   *rsa.PrivateKey
	roots    map[string][]*trust.AMDRootCerts
}

func amdTestName(cn string) pkix.Name {
	return pkix.Name{CommonName: cn, Country: []string{"US"}, Locality: []string{"Santa Clara"}, Province: []string{"CA"},
		Organization: []string{"Advanced Micro Devices"}, OrganizationalUnit: []string{"Engineering"}}
}

var testEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	arkKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	askKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ca := func(serial int64, cn string) *x509.Certificate {
		return &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: amdTestName(cn), NotBefore: testEpoch, NotAfter: testEpoch.AddDate(10, 0, 0),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			SignatureAlgorithm: x509.SHA384WithRSAPSS,
		}
	}
	arkT := ca(1, "ARK-Milan")
	arkDER, err := x509.CreateCertificate(rand.Reader, arkT, arkT, &arkKey.PublicKey, arkKey)
	if err != nil {
		t.Fatal(err)
	}
	ark, _ := x509.ParseCertificate(arkDER)
	askDER, err := x509.CreateCertificate(rand.Reader, ca(2, "SEV-Milan"), ark, &askKey.PublicKey, arkKey)
	if err != nil {
		t.Fatal(err)
	}
	ask, _ := x509.ParseCertificate(askDER)
	return &testCA{ark: ark, ask: ask, askKey: askKey, roots: map[string][]*trust.AMDRootCerts{
		"Milan": {{ProductLine: "Milan", ProductCerts: &trust.ProductCerts{Ark: ark, Ask: ask}}},
	}}
}

// vcekSpec is an endorsement certificate to issue; the zero value is a
// well-formed Milan VCEK.
type vcekSpec struct {
	cn       string
	sigAlg   x509.SignatureAlgorithm
	curve    elliptic.Curve
	subject  func(*pkix.Name)
	product  string
	structV  int
	hwid     []byte
	cspID    string
	extra    []pkix.Extension
	tcb      attest.TCB
	validity [2]time.Time
}

func (ca *testCA) issue(t *testing.T, s vcekSpec) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	if s.cn == "" {
		s.cn = "SEV-VCEK"
	}
	if s.sigAlg == 0 {
		s.sigAlg = x509.SHA384WithRSAPSS
	}
	if s.curve == nil {
		s.curve = elliptic.P384()
	}
	if s.product == "" {
		s.product = "Milan-B1"
	}
	if s.validity[0].IsZero() {
		s.validity = [2]time.Time{testEpoch, testEpoch.AddDate(7, 0, 0)}
	}
	key, err := ecdsa.GenerateKey(s.curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	name := amdTestName(s.cn)
	if s.subject != nil {
		s.subject(&name)
	}
	intExt := func(oid asn1.ObjectIdentifier, v int) pkix.Extension {
		b, _ := asn1.Marshal(v)
		return pkix.Extension{Id: oid, Value: b}
	}
	pn, _ := asn1.MarshalWithParams(s.product, "ia5")
	exts := []pkix.Extension{
		intExt(kds.OidStructVersion, s.structV), {Id: kds.OidProductName1, Value: pn},
		intExt(kds.OidBlSpl, int(s.tcb.Bootloader)), intExt(kds.OidTeeSpl, int(s.tcb.TEE)),
		intExt(kds.OidSpl4, 0), intExt(kds.OidSpl5, 0), intExt(kds.OidSpl6, 0), intExt(kds.OidSpl7, 0),
		intExt(kds.OidSnpSpl, int(s.tcb.SNP)), intExt(kds.OidUcodeSpl, int(s.tcb.Microcode)),
	}
	if s.hwid != nil {
		exts = append(exts, pkix.Extension{Id: kds.OidHwid, Value: s.hwid})
	}
	if s.cspID != "" {
		v, _ := asn1.MarshalWithParams(s.cspID, "ia5")
		exts = append(exts, pkix.Extension{Id: kds.OidCspID, Value: v})
	}
	exts = append(exts, s.extra...)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: name, NotBefore: s.validity[0], NotAfter: s.validity[1],
		SignatureAlgorithm: s.sigAlg, ExtraExtensions: exts,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.ask, &key.PublicKey, ca.askKey)
	if err != nil {
		t.Fatal(err)
	}
	return der, key
}

// testReport is a version-3 Milan report of chip hwid at tcb, signed by key.
func testReport(t *testing.T, hwid []byte, tcb attest.TCB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	r := make([]byte, ReportSize)
	binary.LittleEndian.PutUint32(r[snpreport.OffVersion:], 3)
	binary.LittleEndian.PutUint64(r[snpreport.OffPolicy:], 1<<16|1<<17)
	binary.LittleEndian.PutUint32(r[snpreport.OffSigAlgo:], sigAlgoECDSA)
	tcbv := binary.LittleEndian.Uint64([]byte{tcb.Bootloader, tcb.TEE, 0, 0, 0, 0, tcb.SNP, tcb.Microcode})
	for _, off := range []int{snpreport.OffCurrentTCB, snpreport.OffReportedTCB, snpreport.OffCommittedTCB, snpreport.OffLaunchTCB} {
		binary.LittleEndian.PutUint64(r[off:], tcbv)
	}
	r[snpreport.OffCPUIDFam], r[snpreport.OffCPUIDFam+1], r[snpreport.OffCPUIDFam+2] = 0x19, 0x01, 0x01
	copy(r[snpreport.OffChipID:], hwid)
	copy(r[snpreport.OffMeasurement:], bytes.Repeat([]byte{0x5a}, 48)) // measurement
	if _, err := ParseReport(r); err != nil {
		t.Fatalf("test report is malformed: %v", err)
	}
	signReport(t, r, key)
	return r
}

func signReport(t *testing.T, r []byte, key *ecdsa.PrivateKey) {
	t.Helper()
	d := sha512.Sum384(r[:SignedSize])
	rr, ss, err := ecdsa.Sign(rand.Reader, key, d[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := r[SignedSize:]
	clear(sig[:2*snpreport.SigComponentSize])
	le := func(dst []byte, v *big.Int) {
		b := v.Bytes()
		for i := range b {
			dst[i] = b[len(b)-1-i]
		}
	}
	le(sig[:snpreport.SigComponentSize], rr)
	le(sig[snpreport.SigComponentSize:], ss)
}

// TestCrossCheckCertificateProfile issues one endorsement certificate per
// rule of AMD's KDS profile, each breaking that rule, with a report it
// validly signs. The well-formed one passes both verifiers; every broken
// one is refused by this verifier, whether or not go-sev-guest notices.
func TestCrossCheckCertificateProfile(t *testing.T) {
	ca := newTestCA(t)
	hwid := bytes.Repeat([]byte{0xc3}, 64)
	tcb := attest.TCB{Bootloader: 4, SNP: 22, Microcode: 213}
	now := testEpoch.AddDate(1, 0, 0)
	der, key := ca.issue(t, vcekSpec{hwid: hwid, tcb: tcb})
	if ours, theirs := crossCheck(t, "well-formed", testReport(t, hwid, tcb, key), der, ca.roots, now); ours != nil || theirs != nil {
		t.Fatalf("well-formed test VCEK: ours %v, go-sev-guest %v", ours, theirs)
	}
	other := ca.issue
	for _, tc := range []struct {
		name string
		spec vcekSpec
		want string
	}{
		{"subject CN", vcekSpec{cn: "SEV-VLEK"}, `subject common name "SEV-VLEK"`},
		{"SHA-256 signature", vcekSpec{sigAlg: x509.SHA256WithRSAPSS}, "signature algorithm SHA256-RSAPSS"},
		{"PKCS#1 v1.5 signature", vcekSpec{sigAlg: x509.SHA384WithRSA}, "want SHA-384 with RSASSA-PSS"},
		{"P-256 key", vcekSpec{curve: elliptic.P256()}, "key is not ECDSA P-384"},
		{"subject organization", vcekSpec{subject: func(n *pkix.Name) { n.Organization = []string{"Mallory"} }}, "subject: organization"},
		{"subject locality missing", vcekSpec{subject: func(n *pkix.Name) { n.Locality = nil }}, "subject: locality"},
		{"foreign extension", vcekSpec{extra: []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3, 4}, Value: []byte{5, 0}}}}, "extension 1.2.3.4 is not one of AMD's KDS extensions"},
		{"VLEK extensions in a VCEK", vcekSpec{cspID: "mallory"}, "a VCEK must name a chip id and no CSP id"},
		{"no chip id", vcekSpec{}, "a VCEK must name a chip id"},
		{"product of another line", vcekSpec{product: "Genoa-B1"}, `product name "Genoa-B1" is not of product line Milan`},
		{"Turin structure version", vcekSpec{structV: 1}, "KDS structure version 1"},
		{"chip id of another chip", vcekSpec{hwid: bytes.Repeat([]byte{0x3c}, 64)}, "it is for chip 3c3c"},
		{"another TCB", vcekSpec{tcb: attest.TCB{Bootloader: 4, SNP: 22, Microcode: 214}}, "it certifies TCB"},
		{"expired", vcekSpec{validity: [2]time.Time{testEpoch, testEpoch.AddDate(0, 6, 0)}}, "does not chain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec
			if s.hwid == nil && tc.name != "no chip id" && s.cspID == "" {
				s.hwid = hwid
			}
			if s.tcb == (attest.TCB{}) {
				s.tcb = tcb
			}
			der, key := other(t, s)
			ours, theirs := crossCheck(t, tc.name, testReport(t, hwid, tcb, key), der, ca.roots, now)
			if ours == nil || !strings.Contains(ours.Error(), tc.want) {
				t.Fatalf("ours: %v\nwant an error containing %q (go-sev-guest: %v)", ours, tc.want, theirs)
			}
		})
	}
	// A certificate issued by another ASK of the same name does not chain.
	stranger := newTestCA(t)
	der, key = stranger.issue(t, vcekSpec{hwid: hwid, tcb: tcb})
	if ours, _ := crossCheck(t, "stranger", testReport(t, hwid, tcb, key), der, ca.roots, now); ours == nil || !strings.Contains(ours.Error(), "does not chain") {
		t.Fatalf("VCEK from another ASK: %v", ours)
	}
}

// TestKeyCache: a certificate is checked once and remembered; the memory
// never outlives the chain's validity or the TTL, is bounded, and a
// report signed by another key under a remembered certificate still fails.
func TestKeyCache(t *testing.T) {
	ca := newTestCA(t)
	hwid := bytes.Repeat([]byte{0xc3}, 64)
	tcb := attest.TCB{Bootloader: 4, SNP: 22, Microcode: 213}
	now := testEpoch.AddDate(1, 0, 0)
	der, key := ca.issue(t, vcekSpec{hwid: hwid, tcb: tcb, validity: [2]time.Time{testEpoch, now.Add(2 * time.Hour)}})
	report := testReport(t, hwid, tcb, key)
	clock := now
	v := NewVerifier(Options{Offline: true, Roots: ca.roots, Now: func() time.Time { return clock }, KeyCacheSize: 2, KeyCacheTTL: time.Hour})
	ev := &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: der}})}
	if _, err := v.Verify(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	id := idOf(der, abi.VcekReportSigner)
	first := v.keys.get(id, clock)
	if first == nil {
		t.Fatal("verified certificate not remembered")
	}
	if _, err := v.Verify(context.Background(), ev); err != nil || v.keys.get(id, clock) != first {
		t.Fatalf("second verification: %v, or the certificate was checked again", err)
	}
	// The remembered key still checks every report's signature.
	forged := bytes.Clone(report)
	forged[0x90] ^= 1
	if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: forged, Certs: ev.Certs}); err == nil ||
		!strings.Contains(err.Error(), "report signature does not verify") {
		t.Fatalf("forged report under a remembered certificate: %v", err)
	}
	// Past the TTL the chain is checked again (a new entry).
	clock = now.Add(61 * time.Minute)
	if _, err := v.Verify(context.Background(), ev); err != nil || v.keys.get(id, clock) == first {
		t.Fatalf("after the TTL: %v, or the old entry was reused", err)
	}
	// Past the certificate's validity, a remembered entry does not help.
	clock = now.Add(3 * time.Hour)
	if _, err := v.Verify(context.Background(), ev); err == nil || !strings.Contains(err.Error(), "does not chain") {
		t.Fatalf("expired certificate: %v", err)
	}
	// Bounded: three certificates, two remembered.
	clock = now
	for i := 0; i < 3; i++ {
		der, key := ca.issue(t, vcekSpec{hwid: hwid, tcb: tcb})
		if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: testReport(t, hwid, tcb, key),
			Certs: MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: der}})}); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.keys.len(); n != 2 {
		t.Fatalf("cache holds %d keys, want 2", n)
	}
	// Roots are per verifier: another verifier, with AMD's roots, refuses
	// the certificate its neighbour remembers.
	if _, err := NewVerifier(Options{Offline: true, Now: func() time.Time { return now }}).Verify(context.Background(), ev); err == nil {
		t.Fatal("a verifier with AMD's roots accepted the test certificate")
	}
}
