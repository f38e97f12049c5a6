package tests

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sealroot/sealroot/tests/harness"
)

// skipMarker before a ```sh block of README.md keeps it out of
// TestREADMEWalkthrough; it must say why.
const skipMarker = "<!-- readme-test: skip"

// readmeBlocks returns the ```sh blocks of a README, in order, without
// those marked with skipMarker on the line before.
func readmeBlocks(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []string
	var cur *strings.Builder
	skip, prev := false, ""
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &strings.Builder{}
			skip = strings.HasPrefix(prev, skipMarker)
		case cur != nil && strings.TrimSpace(line) == "```":
			if !skip {
				blocks = append(blocks, cur.String())
			}
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
		prev = strings.TrimSpace(line)
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// freshCheckout makes a directory that looks like a fresh clone of the
// repository at root: links to its top-level entries, without what a clone
// lacks (bin/, out/, ./rootfs), and .cache linked to the shared kernel.
func freshCheckout(t *testing.T, root string) string {
	t.Helper()
	dir := t.TempDir()
	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch e.Name() {
		case ".git", "bin", "out", "rootfs", "rootfs.tmp", ".cache":
			continue
		}
		if err := os.Symlink(filepath.Join(root, e.Name()), filepath.Join(dir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	cache, err := filepath.EvalSymlinks(filepath.Join(root, ".cache"))
	if err != nil {
		t.Skipf("no .cache in %s (run `make deps`)", root)
	}
	if err := os.Symlink(cache, filepath.Join(dir, ".cache")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestREADMEWalkthrough runs README.md's command blocks verbatim, in order,
// as one bash script in a fresh checkout, so that the walk-through cannot
// drift from what the tools do. The only change: the broker's loopback port
// 8000 becomes a free port, so that a broker already running elsewhere on
// this machine cannot interfere.
func TestREADMEWalkthrough(t *testing.T) {
	root := harness.RepoRoot()
	for _, p := range []string{"qemu-system-x86_64", "mkfs.ext4", "make", "go"} {
		if _, err := exec.LookPath(p); err != nil {
			prereqMissing(t, p+" not installed")
		}
	}
	if _, err := os.Stat(filepath.Join(root, ".cache/kernel/vmlinuz")); err != nil {
		prereqMissing(t, "kernel not found in .cache/kernel")
	}
	blocks := readmeBlocks(t, filepath.Join(root, "README.md"))
	script := strings.Join(blocks, "\n")
	if len(blocks) < 2 || strings.Count(script, "bin/sealroot launch") < 2 {
		t.Fatalf("README.md has %d runnable ```sh blocks and no two launches: the walk-through is not tested", len(blocks))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	script = strings.ReplaceAll(script, "127.0.0.1:8000", "127.0.0.1:"+strconv.Itoa(port))

	dir := freshCheckout(t, root)
	scriptFile := filepath.Join(t.TempDir(), "readme.sh")
	if err := os.WriteFile(scriptFile, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(t.TempDir(), "readme.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-ex", scriptFile)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: the broker it starts in the background is
	// stopped with it whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	t0 := time.Now()
	runErr := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	t.Logf("README walk-through: %d blocks in %.1f s", len(blocks), time.Since(t0).Seconds())
	out, _ := os.ReadFile(logFile.Name())
	if runErr != nil {
		t.Fatalf("the README's commands failed: %v (a sh block that cannot run verbatim here needs %q on the line before it)\n%s",
			runErr, skipMarker+" (why) -->", tail(string(out), 60))
	}
	if n := strings.Count(string(out), "hello from a confidential workload"); n != 2 {
		t.Fatalf("the workload ran %d times, want 2 (plain and attested boots)\n%s", n, tail(string(out), 60))
	}
	if !strings.Contains(string(out), "dm-crypt mapping") {
		t.Fatalf("the attested boot's root was not a dm-crypt mapping\n%s", tail(string(out), 60))
	}
	if fi, err := os.Stat(filepath.Join(dir, "out/admin-token")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("out/admin-token: %v, %v; want mode 0600", fi, err)
	}
	if strings.Contains(string(out), "token file is readable by group or others") {
		t.Fatal("the broker warned about the README's admin token file")
	}
}

// TestMakeCleanKeepsUserData: `make clean` removes bin/ and never out/ or
// ./rootfs, where the walk-through keeps passphrases, keys and broker state.
func TestMakeCleanKeepsUserData(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		prereqMissing(t, "make not installed")
	}
	dir := t.TempDir()
	if err := os.Symlink(filepath.Join(harness.RepoRoot(), "Makefile"), filepath.Join(dir, "Makefile")); err != nil {
		t.Fatal(err)
	}
	files := []string{"bin/sealroot", "out/broker/kek", "out/passphrase", "rootfs/app"}
	for _, f := range files {
		p := filepath.Join(dir, f)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("make", "-C", dir, "clean").CombinedOutput(); err != nil {
		t.Fatalf("make clean: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin")); err == nil {
		t.Error("make clean left bin/")
	}
	for _, f := range files[1:] {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("make clean deleted %s", f)
		}
	}
}

// TestDepsChecksGoVersion: `make deps` stops with what is missing when the
// Go on PATH is older than go.mod's, before installing anything.
func TestDepsChecksGoVersion(t *testing.T) {
	fake := t.TempDir()
	if err := os.WriteFile(filepath.Join(fake, "go"), []byte("#!/bin/sh\necho go version go1.19.8 linux/amd64\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(harness.RepoRoot(), "tests/deps.sh"))
	cmd.Env = append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"), "SEALROOT_CACHE="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "Go >= 1.26") || !strings.Contains(string(out), "found go1.19.8") {
		t.Fatalf("deps.sh with go1.19: %v\n%s", err, out)
	}
}

func prereqMissing(t *testing.T, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("end-to-end prerequisites missing under CI: %s", msg)
	}
	t.Skipf("%s (run `make deps`)", msg)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
