package measure

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pattern returns n deterministic, non-repeating bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

// buildKrunfw compiles a synthetic libkrunfw-sev with gcc: the three
// bundles as 64 KiB-aligned C strings and their getters, as libkrunfw's
// bundle generator lays them out, then strips it. It returns the
// library's path.
func buildKrunfw(t *testing.T, dir string, qboot, kernel, initrd []byte) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("prerequisite missing under CI: gcc (tests/deps.sh installs it)")
		}
		t.Skip("gcc not found")
	}
	var src strings.Builder
	src.WriteString("#include <stddef.h>\n")
	for _, b := range []struct {
		name string
		data []byte
	}{{"QBOOT", qboot}, {"KERNEL", kernel}, {"INITRD", initrd}} {
		fmt.Fprintf(&src, "__attribute__ ((aligned (65536))) char %s_BUNDLE[] =\n\"", b.name)
		for i, c := range b.data {
			fmt.Fprintf(&src, "\\%03o", c)
			if i%64 == 63 {
				src.WriteString("\"\n\"")
			}
		}
		src.WriteString("\";\n")
	}
	src.WriteString(`char *krunfw_get_qboot(size_t *size) { *size = sizeof(QBOOT_BUNDLE) - 1; return QBOOT_BUNDLE; }
char *krunfw_get_initrd(size_t *size) { *size = sizeof(INITRD_BUNDLE) - 1; return INITRD_BUNDLE; }
char *krunfw_get_kernel(size_t *load_addr, size_t *entry_addr, size_t *size) {
	*load_addr = 0x1000000; *entry_addr = 0x1000000; *size = sizeof(KERNEL_BUNDLE) - 1; return KERNEL_BUNDLE; }
int krunfw_get_version(void) { return 4; }
`)
	c := filepath.Join(dir, "krunfw.c")
	if err := os.WriteFile(c, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	so := filepath.Join(dir, "libkrunfw-sev.so.4")
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-O2", "-o", so, c).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	if strip, err := exec.LookPath("strip"); err == nil {
		if out, err := exec.Command(strip, so).CombinedOutput(); err != nil {
			t.Fatalf("strip: %v\n%s", err, out)
		}
	}
	return so
}

// TestKrunSyntheticLibrary reads the bundles of a gcc-built library, and
// checks that the digest is the same from the library and from the raw
// bundle files, equal to what libkrunfw's krunfw_measurement printed for
// the same library, and equal to testdata/krun.py's (a separate Python
// implementation) when python3 is present.
func TestKrunSyntheticLibrary(t *testing.T) {
	dir := t.TempDir()
	qboot, kernel, initrd := pattern(0x10000, 1), pattern(0x20000, 2), pattern(0x10000, 3)
	so := buildKrunfw(t, dir, qboot, kernel, initrd)
	b, err := ReadKrunfw(so)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Qboot, qboot) || !bytes.Equal(b.Kernel, kernel) || !bytes.Equal(b.Initrd, initrd) {
		t.Fatalf("bundles read back wrong: %d %d %d bytes", len(b.Qboot), len(b.Kernel), len(b.Initrd))
	}
	// want: libkrunfw's own utils/krunfw_measurement.c (e0647fa7), built
	// with gcc -O0 and run on this same library (testdata/README.md).
	cases := []struct {
		cpus, mem int
		want      string
	}{
		{1, 512, "af5ad753e0a4e288c453dd6cb1fa04e8a5b0cb4f69afc706851727d0057225a7280a1a080649a0409f5374fc3e9f7452"},
		{2, 2048, "3c12b57239140dc546077ca8291dd28e2fe1d5c0021bad1878e0d096e1f2f0f166f2a5b9491de018e964c54cbe021e99"},
		{4, 4096, "56c18be9a3bfd1c02a69d927f34403ca5f7c6112cfddccae0b9f3f27f19d523c60d23790f3639f728c8dc4189ee31788"},
	}
	for _, tc := range cases {
		fromLib, err := Krun(KrunInputs{Qboot: b.Qboot, KernelBundle: b.Kernel, InitrdBundle: b.Initrd, CPUs: tc.cpus, MemoryMiB: tc.mem})
		if err != nil {
			t.Fatal(err)
		}
		fromRaw, _ := Krun(KrunInputs{Qboot: qboot, KernelBundle: kernel, InitrdBundle: initrd, KernelLoadAddr: DefaultKernelLoadAddr, CPUs: tc.cpus, MemoryMiB: tc.mem, VMSA: KrunVMSALibkrunfw})
		if fromLib != fromRaw {
			t.Fatalf("library %x, raw %x", fromLib, fromRaw)
		}
		if got := hex.EncodeToString(fromLib[:]); got != tc.want {
			t.Errorf("%d vCPUs %d MiB: digest %s, krunfw_measurement %s", tc.cpus, tc.mem, got, tc.want)
		}
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("python3 not found: no independent check")
		return
	}
	args := []string{"testdata/krun.py"}
	for i, d := range [][]byte{qboot, kernel, initrd} {
		p := filepath.Join(dir, strconv.Itoa(i))
		if err := os.WriteFile(p, d, 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	args = append(args, "0x1000000")
	for _, tc := range cases {
		args = append(args, fmt.Sprintf("%d:%d", tc.cpus, tc.mem))
	}
	out, err := exec.Command(py, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("krun.py: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, tc := range cases {
		if i >= len(lines) || lines[i] != tc.want {
			t.Errorf("%d vCPUs %d MiB: krun.py printed %q, want %s", tc.cpus, tc.mem, lines, tc.want)
		}
	}
}

// TestKrunfwVMSA pins the VMSA pages to the SHA-256 of libkrunfw's
// utils/vmsa.h arrays SNP_VMSA_BP and SNP_VMSA_AP (testdata/README.md).
func TestKrunfwVMSA(t *testing.T) {
	bsp, ap := krunfwVMSA()
	if h := sha256.Sum256(bsp.page()); hex.EncodeToString(h[:]) != "c0683ba3ea2e59a95fd97b0df41195c92aa37b5027e56451c95570cb6ff37c97" {
		t.Errorf("BSP VMSA sha256 %x", h)
	}
	if h := sha256.Sum256(ap.page()); hex.EncodeToString(h[:]) != "548ba9d1657cfe0cb7db3c80b712c1aa8cf6a0ee219ba6d59167a227dafdc81a" {
		t.Errorf("AP VMSA sha256 %x", h)
	}
}

func TestKrunInputs(t *testing.T) {
	ok := KrunInputs{Qboot: make([]byte, 0x10000), KernelBundle: make([]byte, 0x10000), InitrdBundle: make([]byte, 0x10000), CPUs: 1, MemoryMiB: 512}
	base, err := Krun(ok)
	if err != nil {
		t.Fatal(err)
	}
	changes := []func(*KrunInputs){
		func(in *KrunInputs) { in.CPUs = 2 },
		func(in *KrunInputs) { in.MemoryMiB = 513 },
		func(in *KrunInputs) { in.MemoryMiB = 4096 },
		func(in *KrunInputs) { in.KernelLoadAddr = 0x2000000 },
		func(in *KrunInputs) { in.VMSA = KrunVMSAKVMReset },
		func(in *KrunInputs) { in.InitrdBundle = make([]byte, 0x20000) },
	}
	for i, c := range changes {
		in := ok
		c(&in)
		if d, err := Krun(in); err != nil || d == base {
			t.Errorf("change %d: %x %v", i, d, err)
		}
	}
	bad := []struct {
		edit func(*KrunInputs)
		want string
	}{
		{func(in *KrunInputs) { in.Qboot = make([]byte, 4096) }, "qboot"},
		{func(in *KrunInputs) { in.KernelBundle = make([]byte, 100) }, "kernel bundle"},
		{func(in *KrunInputs) { in.InitrdBundle = make([]byte, 100) }, "initrd bundle"},
		{func(in *KrunInputs) { in.KernelLoadAddr = 0x1001 }, "load address"},
		{func(in *KrunInputs) { in.CPUs = 0 }, "vCPUs"},
		{func(in *KrunInputs) { in.VMSA = "x" }, "VMSA"},
	}
	for _, tt := range bad {
		in := ok
		tt.edit(&in)
		if _, err := Krun(in); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("want an error containing %q, got %v", tt.want, err)
		}
	}
	// Above 3328 MiB the E820 map splits around the PCI hole.
	p := krunZeroPage(1, 4096, 0)
	if p[0x1e8] != 3 || krunZeroPage(1, 3328, 0)[0x1e8] != 2 {
		t.Fatalf("e820 entries %d", p[0x1e8])
	}
}

func TestReadKrunfwRejects(t *testing.T) {
	dir := t.TempDir()
	notELF := filepath.Join(dir, "x.so")
	os.WriteFile(notELF, []byte("not an ELF file at all"), 0o644)
	if _, err := ReadKrunfw(notELF); err == nil || !strings.Contains(err.Error(), notELF) {
		t.Fatalf("not ELF: %v", err)
	}
	// A shared library with only one of the bundles.
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found")
	}
	c := filepath.Join(dir, "k.c")
	os.WriteFile(c, []byte(`char QBOOT_BUNDLE[] = "ab";`), 0o644)
	so := filepath.Join(dir, "k.so")
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-o", so, c).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	if _, err := ReadKrunfw(so); err == nil || !strings.Contains(err.Error(), "KERNEL_BUNDLE") && !strings.Contains(err.Error(), "INITRD_BUNDLE") {
		t.Fatalf("missing bundles: %v", err)
	}
}

// FuzzParseKrunfw feeds the ELF symbol reader hostile files.
func FuzzParseKrunfw(f *testing.F) {
	if gcc, err := exec.LookPath("gcc"); err == nil {
		dir := f.TempDir()
		c := filepath.Join(dir, "k.c")
		os.WriteFile(c, []byte(`char QBOOT_BUNDLE[] = "ab"; char KERNEL_BUNDLE[] = "cd"; char INITRD_BUNDLE[] = "ef";`), 0o644)
		so := filepath.Join(dir, "k.so")
		if exec.Command(gcc, "-shared", "-fPIC", "-o", so, c).Run() == nil {
			if b, err := os.ReadFile(so); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKrunfw(bytes.NewReader(b))
		if err == nil && (k.Qboot == nil || k.Kernel == nil || k.Initrd == nil) {
			t.Fatal("accepted a library without all three bundles")
		}
	})
}
