package measure

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// debianKernel is the Debian kernel tests/deps.sh puts in the checkout's
// .cache: a real bzImage with an EFI stub (a PE32+ image with trailing data
// after its last section).
var debianKernel = filepath.Join("..", "..", ".cache", "kernel", "vmlinuz")

func needDebianKernel(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("SEALROOT_KERNEL"); p != "" {
		return p
	}
	if _, err := os.Stat(debianKernel); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing under CI (make deps puts the kernel in .cache/kernel): %v", err)
		}
		t.Skip(err)
	}
	return debianKernel
}

// synthPE builds a PE32 or PE32+ image whose section headers are out of
// file order (and one has no raw data), with a non-zero CheckSum, trail
// bytes after the last section and, when cert > 0, a certificate table of
// cert bytes at the end. nrva (at most 16, more than 4 with a certificate
// table) is NumberOfRvaAndSizes, and sizes the optional header.
func synthPE(plus bool, nrva uint32, trail, cert int) []byte {
	const lfanew, soh = 0x40, 0x400
	img := make([]byte, 0xb00+trail+cert)
	for i := range img {
		img[i] = byte(i*7 + i>>8)
	}
	copy(img, "MZ")
	binary.LittleEndian.PutUint32(img[0x3c:], lfanew)
	copy(img[lfanew:], "PE\x00\x00")
	coff := lfanew + 4
	binary.LittleEndian.PutUint16(img[coff:], 0x8664)
	binary.LittleEndian.PutUint16(img[coff+2:], 4)
	clear(img[coff+8 : coff+16]) // no COFF symbol table
	opt := coff + 20
	fixed, magic := 96, uint16(peMagic32)
	if plus {
		fixed, magic = 112, peMagic64
	}
	optSize := fixed + int(nrva)*8
	binary.LittleEndian.PutUint16(img[coff+16:], uint16(optSize))
	binary.LittleEndian.PutUint16(img[opt:], magic)
	binary.LittleEndian.PutUint32(img[opt+60:], soh)
	binary.LittleEndian.PutUint32(img[opt+64:], 0xdeadbeef)
	binary.LittleEndian.PutUint32(img[opt+fixed-4:], nrva)
	sec := opt + fixed + peSecurityIndex*8
	if nrva > peSecurityIndex {
		binary.LittleEndian.PutUint32(img[sec:], 0)
		binary.LittleEndian.PutUint32(img[sec+4:], 0)
	}
	if cert > 0 {
		binary.LittleEndian.PutUint32(img[sec:], uint32(0xb00+trail))
		binary.LittleEndian.PutUint32(img[sec+4:], uint32(cert))
	}
	table := opt + optSize
	for i, s := range []struct {
		name      string
		ptr, size uint32
	}{{".data", 0x800, 0x200}, {".text", 0x400, 0x400}, {".bss", 0, 0}, {".reloc", 0xa00, 0x100}} {
		h := img[table+i*peSectionSize : table+(i+1)*peSectionSize]
		clear(h[:8])
		clear(h[24:36]) // no relocations or line numbers
		copy(h, s.name)
		binary.LittleEndian.PutUint32(h[16:], s.size)
		binary.LittleEndian.PutUint32(h[20:], s.ptr)
	}
	return img
}

// rtmrPy runs testdata/rtmr.py, the independent implementation, and
// returns its authenticode, rtmr1 and rtmr2 lines.
func rtmrPy(t *testing.T, kernel, initrd, cmdline, gen string) map[string]string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing under CI (tests/deps.sh installs python3): %v", err)
		}
		t.Skip("python3 not found: no independent check")
	}
	out, err := exec.Command(py, "testdata/rtmr.py", kernel, initrd, cmdline, gen).CombinedOutput()
	if err != nil {
		t.Fatalf("rtmr.py: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok {
			m[k] = v
		}
	}
	return m
}

// TestAuthenticodeIndependent checks the Authenticode digest against
// testdata/rtmr.py on synthetic PE32 and PE32+ images (sections out of
// order, an empty section, trailing data, a certificate table, no
// certificate directory entry) and on the Debian kernel.
func TestAuthenticodeIndependent(t *testing.T) {
	dir := t.TempDir()
	var images []string
	for _, plus := range []bool{false, true} {
		for _, c := range []struct {
			nrva        uint32
			trail, cert int
		}{{16, 0, 0}, {16, 13, 0}, {16, 24, 0x48}, {4, 7, 0}} {
			p := filepath.Join(dir, "pe-"+hex.EncodeToString([]byte{btoi(plus), byte(c.nrva), byte(c.trail), byte(c.cert)}))
			os.WriteFile(p, synthPE(plus, c.nrva, c.trail, c.cert), 0o644)
			images = append(images, p)
		}
	}
	images = append(images, needDebianKernel(t))
	py, err := exec.LookPath("python3")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing under CI (tests/deps.sh installs python3): %v", err)
		}
		t.Skip("python3 not found: no independent check")
	}
	out, err := exec.Command(py, append([]string{"testdata/rtmr.py", "--pe"}, images...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("rtmr.py: %v\n%s", err, out)
	}
	fromPy := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if p, v, ok := strings.Cut(line, " "); ok {
			fromPy[p] = v
		}
	}
	seen := map[string]bool{}
	for _, p := range images {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AuthenticodeSHA384(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		h := hex.EncodeToString(got[:])
		if want := fromPy[p]; h != want {
			t.Errorf("%s: Authenticode %s, rtmr.py %s", p, h, want)
		}
		if seen[h] {
			t.Errorf("%s: the same digest as another image", p)
		}
		seen[h] = true
	}
}

func btoi(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// TestAuthenticodeOsslsigncode signs the Debian kernel with osslsigncode
// (a self-signed throwaway key) and checks that the digest osslsigncode
// computes and signs is the one AuthenticodeSHA384 gives for both the
// unsigned kernel and the signed one (whose certificate table it skips).
func TestAuthenticodeOsslsigncode(t *testing.T) {
	kernel := needDebianKernel(t)
	tool, err := exec.LookPath("osslsigncode")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing under CI (tests/deps.sh installs osslsigncode): %v", err)
		}
		t.Skip(err)
	}
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sealroot test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	certPEM, keyPEM := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600)
	signed := filepath.Join(dir, "signed.efi")
	if out, err := exec.Command(tool, "sign", "-h", "sha384", "-certs", certPEM, "-key", keyPEM, "-in", kernel, "-out", signed).CombinedOutput(); err != nil {
		t.Fatalf("osslsigncode sign: %v\n%s", err, out)
	}
	// verify fails on the self-signed chain but prints the digests.
	out, _ := exec.Command(tool, "verify", "-in", signed).CombinedOutput()
	m := regexp.MustCompile(`Calculated message digest\s*:\s*([0-9A-Fa-f]{96})`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("osslsigncode verify printed no SHA-384 digest:\n%s", out)
	}
	want := strings.ToLower(string(m[1]))
	for _, p := range []string{kernel, signed} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b)%8 != 0 && p == kernel {
			t.Skipf("%s is not a multiple of 8 bytes: osslsigncode pads it before hashing", p)
		}
		got, err := AuthenticodeSHA384(b)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if h := hex.EncodeToString(got[:]); h != want {
			t.Errorf("%s: Authenticode %s, osslsigncode %s", p, h, want)
		}
	}
}

// TestRTMRIndependent replays RTMR1 and RTMR2 for the Debian kernel with
// testdata/rtmr.py, for both TDVF generations, with an initrd and with an
// empty one.
func TestRTMRIndependent(t *testing.T) {
	kernel := needDebianKernel(t)
	dir := t.TempDir()
	initrd, empty := filepath.Join(dir, "initrd"), filepath.Join(dir, "empty")
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 13)
	}
	os.WriteFile(initrd, data, 0o644)
	os.WriteFile(empty, nil, 0o644)
	const cmdline = "console=ttyS0 panic=-1 quiet loglevel=4"
	seen := map[string]bool{}
	for _, gen := range TDVFGenerations {
		for _, rd := range []string{initrd, empty} {
			r1, r2, err := RTMRs(RTMRInputs{Kernel: kernel, Initrd: rd, Cmdline: cmdline, Generation: gen})
			if err != nil {
				t.Fatal(err)
			}
			want := rtmrPy(t, kernel, rd, cmdline, gen)
			if h := hex.EncodeToString(r1[:]); h != want["rtmr1"] {
				t.Errorf("%s %s: RTMR1 %s, rtmr.py %s", gen, rd, h, want["rtmr1"])
			}
			h2 := hex.EncodeToString(r2[:])
			if h2 != want["rtmr2"] {
				t.Errorf("%s %s: RTMR2 %s, rtmr.py %s", gen, rd, h2, want["rtmr2"])
			}
			if seen[h2] && rd != empty {
				t.Errorf("%s %s: RTMR2 %s repeats", gen, rd, h2)
			}
			seen[h2] = true
		}
	}
}

// TestRTMRReplay checks the replay itself on hand-made values: RTMR2 of a
// command line and an initrd is two extends of their SHA-384, with the
// LoadOptions of each generation spelled out.
func TestRTMRReplay(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "k"), filepath.Join(dir, "i")
	os.WriteFile(kernel, synthPE(true, 16, 8, 0), 0o644)
	os.WriteFile(initrd, []byte("an initrd"), 0o644)
	for gen, opts := range map[string]string{TDVFEdk2202508: "initrd=initrd a=1", TDVFEdk2202502: "a=1 initrd=initrd"} {
		wide := append(utf16le(opts), 0, 0)
		_, r2, err := RTMRs(RTMRInputs{Kernel: kernel, Initrd: initrd, Cmdline: "a=1", Generation: gen})
		if err != nil {
			t.Fatal(err)
		}
		var zero [48]byte
		b := append(zero[:], sha384(wide)...)
		mr := sha384(b)
		mr = sha384(append(mr, sha384([]byte("an initrd"))...))
		if !bytes.Equal(r2[:], mr) {
			t.Errorf("%s: RTMR2 %x, want %x", gen, r2, mr)
		}
	}
	pe, _ := AuthenticodeSHA384(synthPE(true, 16, 8, 0))
	r1, _, _ := RTMRs(RTMRInputs{Kernel: kernel, Initrd: initrd})
	mr := make([]byte, 48)
	for _, ev := range [][]byte{pe[:], sha384([]byte("Calling EFI Application from Boot Option")), sha384([]byte{0, 0, 0, 0}),
		sha384([]byte("Exit Boot Services Invocation")), sha384([]byte("Exit Boot Services Returned with Success"))} {
		mr = sha384(append(mr, ev...))
	}
	if !bytes.Equal(r1[:], mr) {
		t.Errorf("RTMR1 %x, want %x", r1, mr)
	}
}

func sha384(b []byte) []byte { s := sha512.Sum384(b); return s[:] }

func utf16le(s string) []byte {
	b := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		b = append(b, s[i], 0)
	}
	return b
}

func TestRTMRErrors(t *testing.T) {
	dir := t.TempDir()
	kernel, initrd, empty, notPE := filepath.Join(dir, "k"), filepath.Join(dir, "i"), filepath.Join(dir, "e"), filepath.Join(dir, "n")
	os.WriteFile(kernel, synthPE(true, 16, 0, 0), 0o644)
	os.WriteFile(initrd, []byte("i"), 0o644)
	os.WriteFile(empty, nil, 0o644)
	os.WriteFile(notPE, bytes.Repeat([]byte{0x90}, 4096), 0o644)
	for _, c := range []struct {
		in   RTMRInputs
		want string
	}{
		{RTMRInputs{Kernel: kernel, Initrd: initrd, Generation: "edk2-202411"}, "TDVF generation"},
		{RTMRInputs{Kernel: kernel}, "need the kernel and the initrd"},
		{RTMRInputs{Kernel: kernel, Initrd: empty}, "without a command line"},
		{RTMRInputs{Kernel: kernel, Initrd: initrd, Cmdline: "a\x00b"}, "NUL"},
		{RTMRInputs{Kernel: notPE, Initrd: initrd}, "EFI stub"},
		{RTMRInputs{Kernel: filepath.Join(dir, "missing"), Initrd: initrd}, "kernel"},
	} {
		if _, _, err := RTMRs(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error with %q", c.in, err, c.want)
		}
	}

	good := synthPE(false, 16, 0, 0x48)
	for name, c := range map[string]struct {
		mut  func(b []byte) []byte
		want string
	}{
		"short":         {func(b []byte) []byte { return b[:0x20] }, "DOS header"},
		"lfanew":        {func(b []byte) []byte { binary.LittleEndian.PutUint32(b[0x3c:], 1<<30); return b }, "e_lfanew"},
		"signature":     {func(b []byte) []byte { b[0x40] = 'X'; return b }, "signature"},
		"magic":         {func(b []byte) []byte { b[0x58] = 0; return b }, "magic"},
		"section past":  {func(b []byte) []byte { return b[:0xa80] }, "run past"},
		"headers small": {func(b []byte) []byte { binary.LittleEndian.PutUint32(b[0x58+60:], 0x100); return b }, "SizeOfHeaders"},
		"overlap": {func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[0x58+96+16*8+peSectionSize+16:], 0x700)
			return b
		}, "sections overlap"},
		"cert too big": {func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[0x58+96+4*8+4:], 0x1000)
			return b
		}, "certificate table"},
	} {
		b := c.mut(bytes.Clone(good))
		if _, err := AuthenticodeSHA384(b); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, c.want)
		}
	}
}
