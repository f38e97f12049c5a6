// Package sim is sealroot's simulated secure processor: a stand-in for AMD
// SEV-SNP on machines without it, so the whole flow (launch, attestation,
// key release) runs everywhere, with the same verifier as real hardware.
//
// The host side is an Authority: a per-installation ARK → ASK → VCEK chain
// made by Init, shaped exactly like AMD's (RSA-4096 ARK and ASK with
// RSA-PSS SHA-384 signatures, an ECDSA P-384 VCEK carrying AMD's KDS
// extensions for TCB and chip id), so that go-sev-guest's verify package
// accepts it once given the simulated root. Only the VCEK's private key is
// kept: the ARK and ASK keys are discarded after Init, so nobody, not even
// the owner, can mint a second VCEK under this root. The launcher runs a
// Server that signs real version-3 SNP reports over the launch digest it
// computed (host/measure) and serves them over a virtio-serial port; the
// guest's Attester (package attest/simport, which also holds the port's
// frame protocol and is all the guest links of the simulated TEE) asks for
// them. The broker verifies them with NewVerifier, whose claims say
// Simulated, which a policy refuses unless told otherwise.
//
// The simulated root proves nothing about hardware: whoever holds
// vcek-key.pem can sign anything. It is for development, tests and CI.
package sim

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	"github.com/google/go-sev-guest/verify/trust"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/snp"
	ts "github.com/sealroot/sealroot/wire/snpreport"
)

// Files of a simulated secure processor directory.
const (
	ARKFile     = "ark.pem"
	ASKFile     = "ask.pem"
	VCEKFile    = "vcek.pem"
	VCEKKeyFile = "vcek-key.pem"
	InfoFile    = "sim.json"
)

// products are the simulated product lines: CPUID family, model and
// stepping as real parts report them, and the VCEK productName extension.
var products = map[string]struct {
	family, model, stepping byte
	name                    string
}{
	"Milan": {0x19, 0x01, 0x01, "Milan-B1"},
	"Genoa": {0x19, 0x11, 0x01, "Genoa-B1"},
	"Turin": {0x1A, 0x02, 0x01, "Turin-B1"},
}

// Info describes a simulated secure processor (sim.json).
type Info struct {
	// Format is the version of this file's layout (1).
	Format int `json:"format"`
	// ProductLine is "Milan", "Genoa" or "Turin".
	ProductLine string `json:"product_line"`
	// ChipID is the 64-byte CHIP_ID, random per installation, as hex. On
	// Turin only the first 8 bytes are set, as on real parts.
	ChipID string `json:"chip_id"`
	// TCB is the platform's TCB, reported and certified in the VCEK.
	TCB attest.TCB `json:"tcb"`
	// Firmware is the simulated SNP firmware version.
	Firmware Firmware `json:"firmware"`
	// Created is when Init ran.
	Created time.Time `json:"created"`
}

// Firmware is an SNP firmware version.
type Firmware struct {
	Major uint8 `json:"major"`
	Minor uint8 `json:"minor"`
	Build uint8 `json:"build"`
}

// InitOptions tune Init.
type InitOptions struct {
	// Force replaces the keys of an existing directory.
	Force bool
	// ProductLine is "Milan" (default), "Genoa" or "Turin".
	ProductLine string
	// Rand is the randomness source; nil is crypto/rand.
	Rand io.Reader
	// Now is the creation time; zero is time.Now.
	Now time.Time
}

// Default simulated platform state: plausible values for a patched part.
var (
	defaultTCB      = attest.TCB{Bootloader: 4, TEE: 0, SNP: 22, Microcode: 213}
	defaultTurinTCB = attest.TCB{FMC: 1, Bootloader: 1, TEE: 1, SNP: 3, Microcode: 84}
	defaultFirmware = Firmware{Major: 1, Minor: 55, Build: 21}
)

// Init creates a fresh simulated secure processor in dir (created 0700 if
// missing) with Milan defaults. It refuses to replace existing keys; use
// InitWith and Force for that.
func Init(dir string) error { return InitWith(dir, InitOptions{}) }

// InitWith is Init with options.
func InitWith(dir string, o InitOptions) error {
	if dir == "" {
		return errors.New("sim: empty directory name")
	}
	if o.ProductLine == "" {
		o.ProductLine = "Milan"
	}
	prod, ok := products[o.ProductLine]
	if !ok {
		return fmt.Errorf("sim: product line %q: want Milan, Genoa or Turin", o.ProductLine)
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if !o.Force {
		for _, f := range []string{ARKFile, ASKFile, VCEKFile, VCEKKeyFile, InfoFile} {
			if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
				return fmt.Errorf("sim: %s already holds a simulated secure processor (%s exists); refusing to replace its keys", dir, f)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("sim: %w", err)
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("sim: creating %s: %w", dir, err)
	}

	info := Info{Format: 1, ProductLine: o.ProductLine, TCB: defaultTCB, Firmware: defaultFirmware, Created: o.Now.UTC().Truncate(time.Second)}
	chip := make([]byte, abi.ChipIDSize)
	hwid := chip // what the VCEK names the chip by
	if o.ProductLine == "Turin" {
		info.TCB = defaultTurinTCB
		hwid = chip[:8]
	}
	if _, err := io.ReadFull(o.Rand, hwid); err != nil {
		return fmt.Errorf("sim: chip id: %w", err)
	}
	info.ChipID = hex.EncodeToString(chip)

	arkKey, err := rsa.GenerateKey(o.Rand, 4096)
	if err != nil {
		return fmt.Errorf("sim: ARK key: %w", err)
	}
	askKey, err := rsa.GenerateKey(o.Rand, 4096)
	if err != nil {
		return fmt.Errorf("sim: ASK key: %w", err)
	}
	vcekKey, err := ecdsa.GenerateKey(elliptic.P384(), o.Rand)
	if err != nil {
		return fmt.Errorf("sim: VCEK key: %w", err)
	}

	notBefore := o.Now.Add(-time.Hour) // tolerate clock skew between hosts
	arkTmpl := &x509.Certificate{
		Subject:               amdName("ARK-" + o.ProductLine),
		NotBefore:             notBefore,
		NotAfter:              o.Now.AddDate(25, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SignatureAlgorithm:    x509.SHA384WithRSAPSS,
	}
	askTmpl := &x509.Certificate{
		Subject:               amdName("SEV-" + o.ProductLine),
		NotBefore:             notBefore,
		NotAfter:              o.Now.AddDate(25, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SignatureAlgorithm:    x509.SHA384WithRSAPSS,
	}
	exts, err := vcekExtensions(prod.name, info.TCB, hwid)
	if err != nil {
		return err
	}
	// The VCEK must carry AMD's KDS extensions and nothing else (besides
	// the authority key id): go-sev-guest rejects unknown extensions, so
	// no key usage, basic constraints or subject key id here.
	vcekTmpl := &x509.Certificate{
		Subject:            amdName("SEV-VCEK"),
		NotBefore:          notBefore,
		NotAfter:           o.Now.AddDate(7, 0, 0), // AMD's VCEKs live 7 years
		ExtraExtensions:    exts,
		SignatureAlgorithm: x509.SHA384WithRSAPSS,
	}
	for _, t := range []*x509.Certificate{arkTmpl, askTmpl, vcekTmpl} {
		if t.SerialNumber, err = serial(o.Rand); err != nil {
			return err
		}
	}
	ark, err := issue(o.Rand, "ARK", arkTmpl, arkTmpl, &arkKey.PublicKey, arkKey)
	if err != nil {
		return err
	}
	ask, err := issue(o.Rand, "ASK", askTmpl, ark, &askKey.PublicKey, arkKey)
	if err != nil {
		return err
	}
	vcekDER, err := x509.CreateCertificate(o.Rand, vcekTmpl, ask, &vcekKey.PublicKey, askKey)
	if err != nil {
		return fmt.Errorf("sim: VCEK certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(vcekKey)
	if err != nil {
		return fmt.Errorf("sim: VCEK key: %w", err)
	}
	infoJSON, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{VCEKKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
		{ARKFile, pemCert(ark.Raw), 0o644},
		{ASKFile, pemCert(ask.Raw), 0o644},
		{VCEKFile, pemCert(vcekDER), 0o644},
		{InfoFile, append(infoJSON, '\n'), 0o644},
	}
	for _, f := range files {
		if err := writeFileAtomic(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("sim: writing %s: %w", f.name, err)
		}
	}
	return nil
}

// amdName is a subject with the location fields AMD's KDS certificates
// carry (go-sev-guest checks them), plus a serialNumber attribute that
// marks the certificate as simulated for anyone who reads it.
func amdName(cn string) pkix.Name {
	return pkix.Name{
		CommonName:         cn,
		Country:            []string{"US"},
		Locality:           []string{"Santa Clara"},
		Province:           []string{"CA"},
		Organization:       []string{"Advanced Micro Devices"},
		OrganizationalUnit: []string{"Engineering"},
		SerialNumber:       "sealroot simulated secure processor",
	}
}

// vcekExtensions are the KDS extensions of a VCEK certificate, in AMD's
// order: structure version, product name, each SPL of the TCB, and the
// chip id (as raw bytes, the way KDS writes it). Turin's (structure
// version 1, 8-byte chip id) add the FMC SPL and drop the reserved SPL 4.
func vcekExtensions(productName string, tcb attest.TCB, hwid []byte) ([]pkix.Extension, error) {
	name, err := asn1.MarshalWithParams(productName, "ia5")
	if err != nil {
		return nil, fmt.Errorf("sim: product name extension: %w", err)
	}
	type ext struct {
		oid asn1.ObjectIdentifier
		v   any // uint8 as an INTEGER, or raw bytes
	}
	var list []ext
	if len(hwid) == 8 {
		list = []ext{
			{kds.OidStructVersion, uint8(1)}, {kds.OidProductName1, name},
			{oidFmcSpl, tcb.FMC}, {kds.OidBlSpl, tcb.Bootloader}, {kds.OidTeeSpl, tcb.TEE}, {kds.OidSnpSpl, tcb.SNP},
			{kds.OidSpl5, uint8(0)}, {kds.OidSpl6, uint8(0)}, {kds.OidSpl7, uint8(0)},
			{kds.OidUcodeSpl, tcb.Microcode}, {kds.OidHwid, hwid},
		}
	} else {
		list = []ext{
			{kds.OidStructVersion, uint8(0)}, {kds.OidProductName1, name},
			{kds.OidBlSpl, tcb.Bootloader}, {kds.OidTeeSpl, tcb.TEE},
			{kds.OidSpl4, uint8(0)}, {kds.OidSpl5, uint8(0)}, {kds.OidSpl6, uint8(0)}, {kds.OidSpl7, uint8(0)},
			{kds.OidSnpSpl, tcb.SNP}, {kds.OidUcodeSpl, tcb.Microcode}, {kds.OidHwid, hwid},
		}
	}
	out := make([]pkix.Extension, 0, len(list))
	for _, e := range list {
		switch v := e.v.(type) {
		case uint8:
			b, err := asn1.Marshal(int(v))
			if err != nil {
				return nil, fmt.Errorf("sim: VCEK extension %v: %w", e.oid, err)
			}
			out = append(out, pkix.Extension{Id: e.oid, Value: b})
		case []byte:
			out = append(out, pkix.Extension{Id: e.oid, Value: v})
		}
	}
	return out, nil
}

// oidFmcSpl is the FMC SPL extension of Turin certificates (KDS structure
// version 1), which go-sev-guest v0.15.0 does not define.
var oidFmcSpl = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1, 3, 9}

// issue signs tmpl with the parent's key and parses the result, which the
// next certificate down the chain names as its issuer.
func issue(r io.Reader, what string, tmpl, parent *x509.Certificate, pub *rsa.PublicKey, parentKey *rsa.PrivateKey) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(r, tmpl, parent, pub, parentKey)
	if err != nil {
		return nil, fmt.Errorf("sim: %s certificate: %w", what, err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sim: %s certificate: %w", what, err)
	}
	return c, nil
}

func serial(r io.Reader) (*big.Int, error) {
	n, err := rand.Int(r, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("sim: certificate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeFileAtomic writes data to path through a synced temporary file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Authority is a loaded simulated secure processor. It is immutable and
// safe for concurrent use.
type Authority struct {
	info    Info
	chipID  []byte
	ark     *x509.Certificate
	ask     *x509.Certificate
	vcek    *x509.Certificate
	vcekKey *ecdsa.PrivateKey
	prod    struct{ family, model, stepping byte }
	table   []byte // certificate table: ARK, ASK, VCEK
	pre     presignPool
}

// Load reads and checks the simulated secure processor in dir: the chain
// ARK → ASK → VCEK verifies now, the VCEK key matches its certificate and
// is not readable by group or others, and the VCEK's extensions agree with
// sim.json.
func Load(dir string) (*Authority, error) {
	a := &Authority{}
	infoJSON, err := os.ReadFile(filepath.Join(dir, InfoFile))
	if err != nil {
		return nil, fmt.Errorf("sim: %w (create one with 'sealroot sim init --dir %s')", err, dir)
	}
	if err := json.Unmarshal(infoJSON, &a.info); err != nil {
		return nil, fmt.Errorf("sim: %s: %w", InfoFile, err)
	}
	if a.info.Format != 1 {
		return nil, fmt.Errorf("sim: %s: format %d is not supported (want 1)", InfoFile, a.info.Format)
	}
	prod, ok := products[a.info.ProductLine]
	if !ok {
		return nil, fmt.Errorf("sim: %s: product line %q: want Milan, Genoa or Turin", InfoFile, a.info.ProductLine)
	}
	a.prod.family, a.prod.model, a.prod.stepping = prod.family, prod.model, prod.stepping
	if a.chipID, err = hex.DecodeString(a.info.ChipID); err != nil || len(a.chipID) != abi.ChipIDSize {
		return nil, fmt.Errorf("sim: %s: chip_id is not %d bytes of hex", InfoFile, abi.ChipIDSize)
	}
	for _, c := range []struct {
		name string
		dst  **x509.Certificate
	}{{ARKFile, &a.ark}, {ASKFile, &a.ask}, {VCEKFile, &a.vcek}} {
		if *c.dst, err = readCert(filepath.Join(dir, c.name)); err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
	}
	if a.vcekKey, err = readKey(filepath.Join(dir, VCEKKeyFile)); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if !a.vcekKey.PublicKey.Equal(a.vcek.PublicKey) {
		return nil, fmt.Errorf("sim: %s does not match the key in %s", VCEKKeyFile, VCEKFile)
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.ark)
	inter := x509.NewCertPool()
	inter.AddCert(a.ask)
	if _, err := a.vcek.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		return nil, fmt.Errorf("sim: %s does not chain to %s through %s: %w", VCEKFile, ARKFile, ASKFile, err)
	}
	e, err := snp.ParseEndorsement(a.vcek)
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", VCEKFile, err)
	}
	if e.ProductName != prod.name || e.HWID == nil || !bytes.Equal(e.HWID, a.chipID[:len(e.HWID)]) || e.TCB != a.info.TCB {
		return nil, fmt.Errorf("sim: %s does not certify the product, chip id and TCB of %s", VCEKFile, InfoFile)
	}
	a.table = snp.MarshalCertTable([]snp.CertEntry{
		{GUID: snp.GUIDARK, Data: a.ark.Raw},
		{GUID: snp.GUIDASK, Data: a.ask.Raw},
		{GUID: snp.GUIDVCEK, Data: a.vcek.Raw},
	})
	return a, nil
}

func readCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s: want exactly one PEM CERTIFICATE", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is accessible by group or others (mode %04o); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: want a PEM PRIVATE KEY (PKCS#8)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		// The parser's message never includes key material.
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P384() {
		return nil, fmt.Errorf("%s: not an ECDSA P-384 key", path)
	}
	return ek, nil
}

// Info returns the simulated platform's description.
func (a *Authority) Info() Info { return a.info }

// VCEK returns the VCEK certificate (DER).
func (a *Authority) VCEK() []byte { return bytes.Clone(a.vcek.Raw) }

// CertTable returns the GHCB certificate table with the ARK, ASK and VCEK.
func (a *Authority) CertTable() []byte { return bytes.Clone(a.table) }

// Roots returns the simulated root as snp.Options.Roots wants it.
func (a *Authority) Roots() map[string][]*trust.AMDRootCerts {
	r := trust.AMDRootCertsProduct(a.info.ProductLine)
	r.ProductCerts = &trust.ProductCerts{Ark: a.ark, Ask: a.ask}
	return map[string][]*trust.AMDRootCerts{a.info.ProductLine: {r}}
}

// ReportParams are the guest-specific fields of a report.
type ReportParams struct {
	ReportData  [64]byte
	Measurement [48]byte
	HostData    [32]byte
	// Policy is the SNP guest policy; 0 means DefaultPolicy.
	Policy uint64
	// VMPL is the privilege level the report was requested at (0 to 3).
	VMPL     uint32
	GuestSVN uint32
	FamilyID [16]byte
	ImageID  [16]byte
	// ReportID identifies the guest; zero is allowed.
	ReportID [32]byte
	// Version is the report format version, 2 to 5; 0 means 3. Version 2
	// has no CPUID fields, so its product line comes from the VCEK alone.
	Version uint32
}

// DefaultPolicy is the guest policy reports carry unless told otherwise:
// SMT allowed (bit 16), the must-be-one bit 17, debugging off, ABI 0.0.
const DefaultPolicy uint64 = 1<<16 | 1<<17

// Sign returns an SNP report (version 3 unless p says otherwise) over p,
// signed by the simulated VCEK, and the certificate table (ARK, ASK, VCEK)
// that goes with it.
func (a *Authority) Sign(p ReportParams) (report []byte, certTable []byte, err error) {
	if p.Policy == 0 {
		p.Policy = DefaultPolicy
	}
	if p.Version == 0 {
		p.Version = abi.ReportVersion3
	}
	if p.Version < abi.ReportVersion2 || p.Version > abi.ReportVersion5 {
		return nil, nil, fmt.Errorf("sim: report version %d: want 2 to 5", p.Version)
	}
	if _, err := abi.ParseSnpPolicy(p.Policy); err != nil {
		return nil, nil, fmt.Errorf("sim: guest policy %#x: %w", p.Policy, err)
	}
	if p.VMPL > 3 {
		return nil, nil, fmt.Errorf("sim: vmpl %d: want 0 to 3", p.VMPL)
	}
	tcb := ts.TCBToUint64(a.info.TCB, a.info.ProductLine == "Turin")
	r := make([]byte, ts.ReportSize)
	le32 := binary.LittleEndian.PutUint32
	le64 := binary.LittleEndian.PutUint64
	le32(r[ts.OffVersion:], p.Version)
	le32(r[ts.OffGuestSVN:], p.GuestSVN)
	le64(r[ts.OffPolicy:], p.Policy)
	copy(r[ts.OffFamilyID:], p.FamilyID[:])
	copy(r[ts.OffImageID:], p.ImageID[:])
	le32(r[ts.OffVMPL:], p.VMPL)
	le32(r[ts.OffSigAlgo:], abi.SignEcdsaP384Sha384)
	le64(r[ts.OffCurrentTCB:], tcb)
	le64(r[ts.OffPlatInfo:], 1) // SMT enabled
	le32(r[ts.OffKeyInfo:], 0)  // signer VCEK, chip id not masked, no author key
	copy(r[ts.OffReportData:], p.ReportData[:])
	copy(r[ts.OffMeasurement:], p.Measurement[:])
	copy(r[ts.OffHostData:], p.HostData[:])
	copy(r[ts.OffReportID:], p.ReportID[:])
	copy(r[ts.OffReportIDMA:], bytes.Repeat([]byte{0xff}, 32)) // no migration agent
	le64(r[ts.OffReportedTCB:], tcb)
	if p.Version >= abi.ReportVersion3 {
		r[ts.OffCPUIDFam], r[ts.OffCPUIDMod], r[ts.OffCPUIDStep] = a.prod.family, a.prod.model, a.prod.stepping
	}
	copy(r[ts.OffChipID:], a.chipID)
	le64(r[ts.OffCommittedTCB:], tcb)
	fw := a.info.Firmware
	for _, off := range []int{ts.OffCurrentBuild, ts.OffCommittedBuild} {
		r[off], r[off+1], r[off+2] = fw.Build, fw.Minor, fw.Major
	}
	le64(r[ts.OffLaunchTCB:], tcb)

	digest := sha512.Sum384(r[:ts.SignedSize])
	sr, ss, err := a.signDigest(digest[:])
	if err != nil {
		return nil, nil, fmt.Errorf("sim: signing report: %w", err)
	}
	if err := abi.SetSignature(sr, ss, r); err != nil {
		return nil, nil, fmt.Errorf("sim: signing report: %w", err)
	}
	return r, a.CertTable(), nil
}
