package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

func verityImage(t *testing.T, pass []byte) *image.Result {
	t.Helper()
	for _, tool := range []string{"mkfs.ext4", "debugfs", "tune2fs"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed", tool)
			}
			t.Skipf("%s not installed (make deps)", tool)
		}
	}
	rootfs := t.TempDir()
	os.WriteFile(filepath.Join(rootfs, "app"), []byte(strings.Repeat("app ", 50000)), 0o755)
	o := image.Options{RootfsDir: rootfs, OutDir: t.TempDir(), Integrity: "verity",
		Config: diskconfig.Config{TEE: "none", WorkloadID: "v", CPUs: 1, RAMMiB: 256}, Workload: image.Workload{Cmd: []string{"/app"}}}
	if pass != nil {
		o.Config.TEE, o.Config.AttestationURL, o.Passphrase = "sim", "http://10.0.2.100:8000", pass
		o.Encrypt = func(dst *os.File, src io.Reader, n int64, p []byte) (int64, error) {
			return cryptsetup.FormatLUKS2(dst, src, n, p, cryptsetup.FormatOptions{GeneratedPassphrase: true})
		}
	}
	res, err := image.Build(o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// flipPayloadBit flips one bit of the byte at payload offset off.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0x40
	f.WriteAt(b, off)
}

// TestImageVerityCLI: inspect shows the integrity mode and root hash;
// check verifies the whole tree offline, of a plain image without a
// passphrase and of an encrypted one after unlocking it in user space,
// and names the damaged block.
func TestImageVerityCLI(t *testing.T) {
	plain := verityImage(t, nil)
	pass := []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	enc := verityImage(t, pass)
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, pass, 0o600)
	for _, tc := range []struct {
		args      []string
		code      int
		out, errs string
	}{
		{args: []string{"image", "inspect", plain.Disk}, out: "integrity:  verity, root hash " + plain.RootHash},
		{args: []string{"image", "inspect", enc.Disk}, out: "integrity:       verity, root hash " + enc.RootHash},
		{args: []string{"image", "check", plain.Disk}, out: "match root hash " + plain.RootHash + " (veritysetup superblock matches"},
		{args: []string{"image", "check", "--json", plain.Disk}, out: `"root_hash": "` + plain.RootHash},
		{args: []string{"image", "check", enc.Disk, "--passphrase-file", passFile}, out: "match root hash " + enc.RootHash},
		{args: []string{"image", "check", enc.Disk}, code: 2, errs: "--passphrase-file is required"},
	} {
		code, out, errs := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.errs) {
			t.Errorf("sealroot %s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				strings.Join(tc.args, " "), code, out, errs, tc.code, tc.out, tc.errs)
		}
	}
	// Damage data block 7 of each image.
	flipByte(t, plain.Disk, 7*4096+3)
	v, err := cryptsetup.Open(enc.Disk)
	if err != nil {
		t.Fatal(err)
	}
	off, _, _ := v.Payload()
	v.Close()
	flipByte(t, enc.Disk, off+7*4096+3)
	for _, args := range [][]string{{"image", "check", plain.Disk}, {"image", "check", enc.Disk, "--passphrase-file", passFile}} {
		code, out, errs := runCLI(t, args...)
		if code != 1 || !strings.Contains(errs, "verity: data block 7 (byte 28672) does not match the hash tree") || strings.Contains(out, "OK") {
			t.Errorf("sealroot %s on a damaged image: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errs)
		}
	}
}

func TestImageBuildIntegrityUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		errs string
	}{
		{[]string{"image", "build", "--rootfs", ".", "-o", t.TempDir(), "--no-encrypt", "--integrity", "dm-integrity"}, `--integrity "dm-integrity": want none or verity`},
		{[]string{"image", "build", "--rootfs", ".", "-o", t.TempDir(), "--no-encrypt", "--overlay-size", "64m"}, "--overlay-size applies to --integrity verity only"},
		{[]string{"image", "build", "--rootfs", ".", "-o", t.TempDir(), "--no-encrypt", "--integrity", "verity", "--overlay-size", "lots"}, "is not a tmpfs size"},
	} {
		code, _, errs := runCLI(t, tc.args...)
		if code != 2 || !strings.Contains(errs, tc.errs) {
			t.Errorf("sealroot %s: exit %d, stderr %q; want 2 with %q", strings.Join(tc.args, " "), code, errs, tc.errs)
		}
	}
}
