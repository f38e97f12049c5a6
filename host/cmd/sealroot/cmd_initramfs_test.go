package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/initramfs"
)

// staticInit builds a trivial static program to stand in for /init.
func staticInit(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module tinyinit\n\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	out := filepath.Join(dir, "init")
	cmd := exec.Command("go", "build", "-o", out, "-trimpath", "-ldflags=-s -w", ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building a static init: %v\n%s", err, b)
	}
	return out
}

func TestInitramfsBuildCLI(t *testing.T) {
	init := staticInit(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "out", "initrd.gz") // out/ does not exist yet: it is made
	code, stdout, stderr := runCLI(t, "initramfs", "build", "-o", out, "--init", init, "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res initramfs.Result
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("--json output %q: %v", stdout, err)
	}
	st, err := os.Stat(out)
	if err != nil || res.Size != st.Size() || res.Compression != "gzip" || res.Records == 0 || len(res.SHA256) != 64 || res.Modules == nil {
		t.Errorf("result %+v, file %v %v", res, st, err)
	}
	for _, key := range []string{`"size"`, `"records"`, `"modules"`, `"sha256"`, `"cpio_size"`} {
		if !strings.Contains(stdout, key) {
			t.Errorf("JSON lacks %s", key)
		}
	}

	// Human output: bytes, MiB, records, modules.
	code, stdout, stderr = runCLI(t, "initramfs", "build", "-o", filepath.Join(dir, "initrd"), "--init", init, "--compress", "none",
		"--file", "/etc/motd="+init)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"bytes (", "MiB, none", "records", "0 modules", "sha256 "} {
		if !strings.Contains(stdout, w) {
			t.Errorf("output %q lacks %q", stdout, w)
		}
	}
}

func TestInitramfsBuildCLIErrors(t *testing.T) {
	init := staticInit(t)
	out := filepath.Join(t.TempDir(), "x")
	tests := []struct {
		args     []string
		code     int
		inStderr string
	}{
		{[]string{"initramfs", "build", "--init", init}, 2, "-o FILE is required"},
		{[]string{"initramfs", "build", "-o", out, "--compress", "lz4"}, 2, "want one of gzip, zopfli, xz, zstd, none"},
		{[]string{"initramfs", "build", "-o", out, "--module", "xts"}, 2, "needs --kernel-modules"},
		{[]string{"initramfs", "build", "-o", out, "--no-default-modules", "--kernel-modules", "/x"}, 2, "needs at least one --module"},
		{[]string{"initramfs", "build", "-o", out, "--file", "nohostfile"}, 2, "IMAGE_PATH=HOST_FILE"},
		{[]string{"initramfs", "build", "-o", out, "extra-arg"}, 2, ""},
		{[]string{"initramfs", "build", "-o", out, "--bogus"}, 2, "unknown flag"},
		{[]string{"initramfs", "build", "-o", out, "--init", filepath.Join(t.TempDir(), "missing")}, 1, "init binary"},
		{[]string{"initramfs", "build", "-o", out, "--init", init, "--kernel-modules", filepath.Join(t.TempDir(), "missing")}, 1, "kernel module tree"},
	}
	for _, tc := range tests {
		code, _, stderr := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.inStderr) {
			t.Errorf("%q: exit %d stderr %q; want exit %d with %q", tc.args, code, stderr, tc.code, tc.inStderr)
		}
	}
}

func TestInitramfsBuildHelp(t *testing.T) {
	code, stdout, stderr := runCLI(t, "initramfs", "build", "--help")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, w := range []string{"Examples:", "--compress", "--kernel-modules", "--debug", "--init", "--module", "--json", initramfs.ModulesOrderPath} {
		if !strings.Contains(stdout, w) {
			t.Errorf("help lacks %q", w)
		}
	}
}
