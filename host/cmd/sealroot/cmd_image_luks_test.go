package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// luksTestImage writes a LUKS2 image holding a minimal ext4 superblock,
// followed by a KRUN footer, and a passphrase file ending in a newline.
func luksTestImage(t *testing.T) (img, passFile string) {
	t.Helper()
	dir := t.TempDir()
	plain := make([]byte, 1<<20)
	sb := plain[1024:]
	binary.LittleEndian.PutUint32(sb[4:], 256)
	binary.LittleEndian.PutUint32(sb[24:], 2)
	binary.LittleEndian.PutUint16(sb[56:], 0xEF53)
	binary.LittleEndian.PutUint32(sb[0x60:], 0x40)
	img = filepath.Join(dir, "disk.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pass := []byte("a user passphrase")
	end, err := cryptsetup.FormatLUKS2(f, bytes.NewReader(plain), int64(len(plain)), pass,
		cryptsetup.FormatOptions{KDF: cryptsetup.KDFOptions{Type: "argon2id", MemoryKiB: 8192}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := `{"tee":"none","tee_data":"","workload_id":"wl-1","cpus":2,"ram_mib":512,"attestation_url":""}`
	if _, err := diskconfig.AppendFooter(f, end, []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	passFile = filepath.Join(dir, "pass")
	os.WriteFile(passFile, append(pass, '\n'), 0o600)
	return img, passFile
}

func TestImageInspectCheckCLI(t *testing.T) {
	img, passFile := luksTestImage(t)
	wrong := filepath.Join(t.TempDir(), "wrong")
	os.WriteFile(wrong, []byte("not it"), 0o600)
	empty := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)

	for _, tc := range []struct {
		args       []string
		code       int
		out, errs  string
		jsonOutput bool
	}{
		{args: []string{"image", "inspect", img}, out: "keyslot 0:       argon2id t=4 m=8192KiB p=1, priority normal, needs 8 MiB to unlock"},
		{args: []string{"image", "inspect", img}, out: "config:          tee=none workload_id=wl-1 cpus=2 ram_mib=512"},
		{args: []string{"image", "inspect", img}, out: "payload:         1048576 bytes at offset 2097152 (fixed size)"},
		{args: []string{"image", "inspect", "--json", img}, out: `"workload_id":"wl-1"`, jsonOutput: true},
		{args: []string{"image", "check", img, "--passphrase-file", passFile}, out: "result:      OK"},
		{args: []string{"image", "check", img, "--passphrase-file", passFile}, out: "filesystem:  ext4, 1048576 bytes"},
		{args: []string{"image", "check", "--json", img, "--passphrase-file", passFile, "--key-slot", "0"}, out: `"type": "ext4"`, jsonOutput: true},
		{args: []string{"image", "check", img, "--passphrase-file", wrong}, code: 1, errs: "no keyslot matches the passphrase (tried keyslot 0)"},
		{args: []string{"image", "check", img, "--passphrase-file", passFile, "--memory-limit-kib", "1024"}, code: 1, errs: "keyslot 0 needs 8 MiB for argon2id but only 1 MiB is free"},
		{args: []string{"image", "check", img, "--passphrase-file", passFile, "--key-slot", "3"}, code: 1, errs: "keyslot 3 is not active"},
		{args: []string{"image", "check", img, "--passphrase-file", empty}, code: 1, errs: "is empty"},
		{args: []string{"image", "check", img}, code: 2, errs: "is encrypted: --passphrase-file is required"},
		{args: []string{"image", "inspect"}, code: 2, errs: "accepts 1 arg"},
		{args: []string{"image", "inspect", filepath.Join(t.TempDir(), "missing.img")}, code: 1, errs: "no such file"},
	} {
		code, out, errs := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(out+strings.ReplaceAll(out, " ", ""), tc.out) || !strings.Contains(errs, tc.errs) {
			t.Errorf("sealroot %s: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				strings.Join(tc.args, " "), code, out, errs, tc.code, tc.out, tc.errs)
		}
		if tc.jsonOutput && !json.Valid([]byte(out)) {
			t.Errorf("sealroot %s: output is not JSON", strings.Join(tc.args, " "))
		}
		if strings.Contains(out+errs, "a user passphrase") {
			t.Errorf("sealroot %s printed the passphrase", strings.Join(tc.args, " "))
		}
	}
}

func TestReadLUKSPassphrase(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ content, want string }{
		{"secret", "secret"}, {"secret\n", "secret"}, {"secret\r\n", "secret"}, {"secret\n\n", "secret\n"}, {" spaced ", " spaced "},
	} {
		p := filepath.Join(dir, "p")
		os.WriteFile(p, []byte(tc.content), 0o600)
		got, err := readPassphrase(p, nil)
		if err != nil || string(got) != tc.want {
			t.Errorf("file %q: got %q, %v; want %q", tc.content, got, err, tc.want)
		}
	}
	got, err := readPassphrase("-", strings.NewReader("from stdin\n"))
	if err != nil || string(got) != "from stdin" {
		t.Errorf("stdin: %q, %v", got, err)
	}
}
