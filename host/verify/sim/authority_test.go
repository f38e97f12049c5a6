package sim

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/go-sev-guest/kds"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	"github.com/google/go-sev-guest/validate"
	"github.com/google/go-sev-guest/verify"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/snp"
)

// One simulated secure processor for the whole package: RSA-4096 key
// generation is the slow part of Init.
var (
	authOnce sync.Once
	authDir  string
	auth     *Authority
	authErr  error
)

func testAuthority(t testing.TB) (*Authority, string) {
	t.Helper()
	authOnce.Do(func() {
		authDir, authErr = os.MkdirTemp("", "sealroot-sim-test-")
		if authErr != nil {
			return
		}
		if authErr = Init(authDir); authErr != nil {
			return
		}
		auth, authErr = Load(authDir)
	})
	if authErr != nil {
		t.Fatalf("test authority: %v", authErr)
	}
	return auth, authDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if authDir != "" {
		os.RemoveAll(authDir)
	}
	os.Exit(code)
}

// copyDir copies the test authority's files so a test can damage them.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	for _, f := range []string{ARKFile, ASKFile, VCEKFile, VCEKKeyFile, InfoFile} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, f), b, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestInitFiles(t *testing.T) {
	a, dir := testAuthority(t)
	want := map[string]os.FileMode{ARKFile: 0o644, ASKFile: 0o644, VCEKFile: 0o644, VCEKKeyFile: 0o600, InfoFile: 0o644}
	for f, mode := range want {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o", f, fi.Mode().Perm(), mode)
		}
	}
	// The key is PKCS#8 PEM; no ARK or ASK private key is kept.
	b, _ := os.ReadFile(filepath.Join(dir, VCEKKeyFile))
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "PRIVATE KEY" {
		t.Errorf("%s is not a PKCS#8 PEM key", VCEKKeyFile)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(want) {
		t.Errorf("directory holds %d files, want %d", len(entries), len(want))
	}
	// The chain is shaped like AMD's.
	if a.ark.PublicKey.(interface{ Size() int }).Size() != 512 || a.ask.PublicKey.(interface{ Size() int }).Size() != 512 {
		t.Error("ARK and ASK keys are not RSA-4096")
	}
	for _, c := range []*x509.Certificate{a.ark, a.ask, a.vcek} {
		if c.SignatureAlgorithm != x509.SHA384WithRSAPSS {
			t.Errorf("%s signed with %v, want SHA384-RSAPSS", c.Subject.CommonName, c.SignatureAlgorithm)
		}
		if c.Subject.SerialNumber == "" {
			t.Errorf("%s does not say it is simulated", c.Subject.CommonName)
		}
	}
	if a.ark.Subject.CommonName != "ARK-Milan" || a.ask.Subject.CommonName != "SEV-Milan" || a.vcek.Subject.CommonName != "SEV-VCEK" {
		t.Errorf("names %q %q %q", a.ark.Subject.CommonName, a.ask.Subject.CommonName, a.vcek.Subject.CommonName)
	}
	info := a.Info()
	if info.ProductLine != "Milan" || len(info.ChipID) != 128 || info.TCB != defaultTCB {
		t.Errorf("info %+v", info)
	}
	if !bytes.Equal(a.VCEK(), a.vcek.Raw) {
		t.Error("VCEK() is not the VCEK's DER")
	}
}

func TestInitRefusesToReplaceKeys(t *testing.T) {
	_, dir := testAuthority(t)
	before, _ := os.ReadFile(filepath.Join(dir, VCEKKeyFile))
	err := Init(dir)
	if err == nil || !strings.Contains(err.Error(), "refusing to replace") {
		t.Fatalf("Init over an existing directory: %v", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, VCEKKeyFile))
	if !bytes.Equal(before, after) {
		t.Fatal("the key changed")
	}
	// One leftover file is enough to refuse.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, InfoFile), []byte("{}"), 0o644)
	if err := Init(dir2); err == nil {
		t.Fatal("Init with a leftover sim.json succeeded")
	}
	if err := InitWith(t.TempDir(), InitOptions{ProductLine: "Naples"}); err == nil {
		t.Fatal("unknown product line accepted")
	}
}

// editInfo returns a damage function that rewrites sim.json through edit.
func editInfo(edit func(*Info)) func(dir string) {
	return func(d string) {
		var info Info
		b, _ := os.ReadFile(filepath.Join(d, InfoFile))
		json.Unmarshal(b, &info)
		edit(&info)
		b, _ = json.Marshal(info)
		os.WriteFile(filepath.Join(d, InfoFile), b, 0o644)
	}
}

func TestLoadRejects(t *testing.T) {
	_, dir := testAuthority(t)
	otherKey, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherDER, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	tests := []struct {
		name   string
		damage func(d string)
		want   string
	}{
		{"missing", func(d string) { os.Remove(filepath.Join(d, InfoFile)) }, "sealroot sim init"},
		{"key readable by others", func(d string) { os.Chmod(filepath.Join(d, VCEKKeyFile), 0o644) }, "chmod 600"},
		{"someone else's key", func(d string) {
			os.WriteFile(filepath.Join(d, VCEKKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherDER}), 0o600)
		}, "does not match"},
		{"ASK swapped for the ARK", func(d string) {
			b, _ := os.ReadFile(filepath.Join(d, ARKFile))
			os.WriteFile(filepath.Join(d, ASKFile), b, 0o644)
		}, "does not chain"},
		{"chip id edited", editInfo(func(info *Info) { info.ChipID = strings.Repeat("ab", 64) }), "does not certify"},
		{"tcb edited", editInfo(func(info *Info) { info.TCB.SNP++ }), "does not certify"},
		{"not PEM", func(d string) { os.WriteFile(filepath.Join(d, VCEKFile), []byte("junk"), 0o644) }, "PEM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := copyDir(t, dir)
			if _, err := Load(d); err != nil {
				t.Fatalf("undamaged copy: %v", err)
			}
			tt.damage(d)
			_, err := Load(d)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load = %v, want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "PRIVATE KEY-----") {
				t.Fatal("error shows key material")
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	a, _ := testAuthority(t)
	v := NewVerifier(a, snp.Options{Offline: true})
	var base ReportParams
	copy(base.ReportData[:], "nonce-binding")
	copy(base.Measurement[:], bytes.Repeat([]byte{0x6a}, 48))
	copy(base.HostData[:], "host data")
	tests := []struct {
		name   string
		edit   func(*ReportParams)
		check  func(*attest.Claims) string
		errSub string
	}{
		{"defaults", func(*ReportParams) {}, func(c *attest.Claims) string {
			if c.Policy != DefaultPolicy || c.Debug || c.VMPL != 0 || c.ReportVersion != 3 {
				return "default policy, debug off, vmpl 0, version 3"
			}
			return ""
		}, ""},
		{"debug policy", func(p *ReportParams) { p.Policy = DefaultPolicy | 1<<19 }, func(c *attest.Claims) string {
			if !c.Debug {
				return "debug"
			}
			return ""
		}, ""},
		{"vmpl 2", func(p *ReportParams) { p.VMPL = 2 }, func(c *attest.Claims) string {
			if c.VMPL != 2 {
				return "vmpl 2"
			}
			return ""
		}, ""},
		{"guest svn and ids", func(p *ReportParams) { p.GuestSVN = 7; p.FamilyID[0] = 1; p.ImageID[0] = 2 }, func(c *attest.Claims) string {
			if c.Extra["guest_svn"] != "7" || !strings.HasPrefix(c.Extra["family_id"], "01") || !strings.HasPrefix(c.Extra["image_id"], "02") {
				return "guest_svn 7, family 01.., image 02.."
			}
			return ""
		}, ""},
		{"version 2", func(p *ReportParams) { p.Version = 2 }, func(c *attest.Claims) string {
			if c.ReportVersion != 2 || c.ProductLine != "Milan" {
				return "version 2, Milan from the VCEK"
			}
			return ""
		}, ""},
		{"version 4", func(p *ReportParams) { p.Version = 4 }, nil, ""},
		{"version 5", func(p *ReportParams) { p.Version = 5 }, nil, ""},
		{"version 6", func(p *ReportParams) { p.Version = 6 }, nil, "want 2 to 5"},
		{"policy without bit 17", func(p *ReportParams) { p.Policy = 1 << 16 }, nil, "guest policy"},
		{"vmpl 4", func(p *ReportParams) { p.VMPL = 4 }, nil, "vmpl 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := base
			tt.edit(&p)
			report, table, err := a.Sign(p)
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("Sign = %v, want an error containing %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: table})
			if err != nil {
				t.Fatal(err)
			}
			if !c.Simulated || c.TEE != attest.TEESNP || c.ProductLine != "Milan" {
				t.Errorf("claims %+v", c)
			}
			if !bytes.Equal(c.Measurement, p.Measurement[:]) || !bytes.Equal(c.ReportData, p.ReportData[:]) ||
				!bytes.Equal(c.HostData, p.HostData[:]) || hex.EncodeToString(c.ChipID) != a.Info().ChipID ||
				c.ReportedTCB != a.Info().TCB || c.ReportVersion != cmp.Or(p.Version, 3) {
				t.Errorf("claims do not match the parameters: %+v", c)
			}
			if tt.check != nil {
				if want := tt.check(c); want != "" {
					t.Errorf("want %s; claims %+v", want, c)
				}
			}
		})
	}
}

// TestGoSevGuestAcceptsTheChain shows go-sev-guest's verify and validate,
// used directly, accept simulated reports once given the simulated root,
// including validate's chip id and TCB binding checks.
func TestGoSevGuestAcceptsTheChain(t *testing.T) {
	a, _ := testAuthority(t)
	var p ReportParams
	copy(p.ReportData[:], "rd")
	copy(p.Measurement[:], "m")
	report, table, err := a.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	att, err := abi.ReportCertsToProto(append(report, table...))
	if err != nil {
		t.Fatal(err)
	}
	if err := verify.SnpAttestation(att, &verify.Options{DisableCertFetching: true, TrustedRoots: a.Roots()}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := validate.SnpAttestation(att, &validate.Options{
		ReportData: p.ReportData[:], Measurement: p.Measurement[:],
		GuestPolicy: abi.SnpPolicy{SMT: true},
		MinimumTCB:  kdsParts(a.Info().TCB),
	}); err != nil {
		t.Fatalf("validate: %v", err)
	}
	// AMD's own roots refuse it.
	att2 := &spb.Attestation{Report: att.Report, CertificateChain: att.CertificateChain}
	if err := verify.SnpAttestation(att2, &verify.Options{DisableCertFetching: true}); err == nil {
		t.Fatal("AMD's embedded roots accepted a simulated report")
	}
}

func TestEvidenceWithoutCertificates(t *testing.T) {
	a, _ := testAuthority(t)
	report, table, err := a.Sign(ReportParams{})
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(a, snp.Options{Offline: true})
	// The krun dialect sends no certificates; an extended report may carry
	// only the ARK and ASK.
	arkAsk := snp.MarshalCertTable([]snp.CertEntry{{GUID: snp.GUIDARK, Data: a.ark.Raw}, {GUID: snp.GUIDASK, Data: a.ask.Raw}})
	for _, certs := range [][]byte{nil, arkAsk} {
		if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: certs}); err != nil {
			t.Fatalf("certs %d bytes: %v", len(certs), err)
		}
	}
	// AMD's roots refuse simulated evidence.
	_, err = snp.NewVerifier(snp.Options{Offline: true}).Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: table})
	if err == nil || !strings.Contains(err.Error(), "does not chain to a trusted Milan root") {
		t.Fatalf("AMD roots: %v", err)
	}
}

func kdsParts(t attest.TCB) kds.TCBParts {
	return kds.TCBParts{BlSpl: t.Bootloader, TeeSpl: t.TEE, SnpSpl: t.SNP, UcodeSpl: t.Microcode}
}

// resign signs an edited report with the simulated VCEK, as a VCEK holder
// could.
func resign(t *testing.T, a *Authority, r []byte) {
	t.Helper()
	digest := sha512.Sum384(r[:snp.SignedSize])
	sr, ss, err := ecdsa.Sign(rand.Reader, a.vcekKey, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := abi.SetSignature(sr, ss, r); err != nil {
		t.Fatal(err)
	}
}

// TestVerifierChecksVCEKBinding: a report correctly signed by the VCEK but
// claiming another chip or a higher TCB than the VCEK certifies is refused,
// so the reported TCB in claims is one the root vouched for.
func TestVerifierChecksVCEKBinding(t *testing.T) {
	a, _ := testAuthority(t)
	v := NewVerifier(a, snp.Options{Offline: true})
	tests := []struct {
		name string
		edit func(r []byte)
		want string
	}{
		{"other chip", func(r []byte) { r[0x1A0] ^= 1 }, "VCEK does not match the report: it is for chip"},
		{"higher snp spl", func(r []byte) { r[0x186]++ }, "VCEK does not match the report: it certifies TCB bl=4,tee=0,snp=22,ucode=213, the report claims bl=4,tee=0,snp=23"},
		{"cpuid of another product", func(r []byte) { r[0x189] = 0x11 }, `names product "Genoa" but the VCEK is Milan's`},
		{"signer says VLEK", func(r []byte) { r[0x48] = 1 << 2 }, "names signing key VLEK but carries a VCEK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, table, err := a.Sign(ReportParams{})
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(r)
			resign(t, a, r)
			_, err = v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: r, Certs: table})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Verify = %v\nwant an error containing %q", err, tt.want)
			}
		})
	}
	// A masked chip id is accepted (nothing to compare) when signer info
	// says so.
	r, table, _ := a.Sign(ReportParams{})
	r[0x48] = 2
	clear(r[0x1A0:0x1E0])
	resign(t, a, r)
	if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: r, Certs: table}); err != nil {
		t.Fatalf("masked chip id: %v", err)
	}
}
