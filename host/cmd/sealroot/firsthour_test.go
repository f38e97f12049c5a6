package main

import (
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealroot/sealroot/internal/syncbuf"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// footerDisk writes a file holding only a KRUN footer with cfg: enough for
// the launcher's checks, which run before QEMU.
func footerDisk(t *testing.T, cfg string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	if _, err := diskconfig.AppendFooter(f, 4096, []byte(cfg)); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLaunchChecksBeforeBooting runs `sealroot launch` with inputs whose
// failure the launcher can know before QEMU starts: each fails at once with
// one line naming the flag, and usage errors exit 2.
func TestLaunchChecksBeforeBooting(t *testing.T) {
	simDisk := footerDisk(t, `{"tee":"sim","tee_data":"","workload_id":"w","cpus":1,"ram_mib":512,"attestation_url":"http://10.0.2.100:8000"}`)
	snpDisk := footerDisk(t, `{"tee":"snp","tee_data":"","workload_id":"w","cpus":1,"ram_mib":512,"attestation_url":"http://10.0.2.100:8000"}`)
	luksDisk, _ := luksTestImage(t) // argon2id of 8 MiB: a guest needs 136 MiB
	kernel := filepath.Join(t.TempDir(), "no-kernel")
	base := []string{"launch", "--kernel", kernel, "--initrd", kernel, "--accel", "tcg", "--qemu", "/nonexistent/qemu"}

	// A port where nothing listens: bind, note, close.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	// A broker that is up, named as localhost.
	up, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	_, port, _ := net.SplitHostPort(up.Addr().String())
	// An https broker that is up: probing it must not make it log a
	// failed TLS handshake.
	var tlsLog syncbuf.Buffer
	tlsBroker := httptest.NewUnstartedServer(http.NotFoundHandler())
	tlsBroker.Config.ErrorLog = log.New(&tlsLog, "", 0)
	// The log is read once the server has finished with every connection
	// (the probe's handshake included): closing it earlier would cut a
	// handshake short and log that instead.
	var tlsConns sync.WaitGroup
	tlsBroker.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			tlsConns.Add(1)
		case http.StateClosed, http.StateHijacked:
			tlsConns.Done()
		}
	}
	tlsBroker.StartTLS()
	defer tlsBroker.Close()

	for _, tc := range []struct {
		name string
		args []string
		code int
		errs string
		not  string
	}{
		{"tee sim without --sim-dir", []string{"--disk", simDisk, "--tee", "sim"}, 2, "--tee sim needs --sim-dir DIR", ""},
		{"unknown --tee", []string{"--disk", simDisk, "--tee", "sgx"}, 2, `--tee "sgx"`, ""},
		{"--sim-dir without --tee sim", []string{"--disk", simDisk, "--sim-dir", "x"}, 2, "--sim-dir needs --tee sim", ""},
		{"tee sim disk launched without --tee sim", []string{"--disk", simDisk}, 2, "the disk config's tee is sim: launch with --tee sim --sim-dir DIR", ""},
		{"TEE disk without --broker", []string{"--disk", snpDisk}, 2, "give --broker URL", ""},
		{"broker down", []string{"--disk", snpDisk, "--broker", down}, 206, "the broker is not reachable", ""},
		{"broker off loopback", []string{"--disk", snpDisk, "--broker", "http://192.0.2.1:8000"}, 2, "must be on this host's loopback", ""},
		// localhost is loopback: the launch gets past the broker checks
		// and fails only on the missing kernel.
		{"broker as localhost", []string{"--disk", snpDisk, "--broker", "http://localhost:" + port}, 200, "no-kernel", "loopback"},
		{"https broker", []string{"--disk", snpDisk, "--broker", tlsBroker.URL}, 200, "no-kernel", "not reachable"},
		{"memory below the KDF's", []string{"--disk", luksDisk, "--memory", "100"}, 200, "--memory 100 MiB is too little to unlock", ""},
		{"memory enough for the KDF", []string{"--disk", luksDisk, "--memory", "136"}, 200, "no-kernel", "too little"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			code, _, errs := runCLI(t, append(append([]string{}, base...), tc.args...)...)
			if code != tc.code || !strings.Contains(errs, tc.errs) || tc.not != "" && strings.Contains(errs, tc.not) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code, tc.errs)
			}
			if n := strings.Count(strings.TrimSpace(errs), "\n"); n != 0 {
				t.Errorf("stderr has %d lines, want one: %q", n+1, errs)
			}
			if d := time.Since(t0); d > 10*time.Second {
				t.Errorf("took %v: the check must come before any slow work", d)
			}
		})
	}
	tlsConns.Wait()
	tlsBroker.Close()
	if s := tlsLog.String(); strings.Contains(s, "handshake error") {
		t.Errorf("the https broker logged: %s", s)
	}
}

// TestImageBuildChecksBeforeBuilding runs `sealroot image build` with flags
// it must refuse before copying the rootfs or running mkfs: the error names
// the flag, and the output directory is never created.
func TestImageBuildChecksBeforeBuilding(t *testing.T) {
	rootfs := t.TempDir()
	if err := os.WriteFile(filepath.Join(rootfs, "app"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A dynamically linked program without its interpreter in the rootfs.
	dynRootfs := t.TempDir()
	if path, err := exec.LookPath("true"); err == nil {
		if data, err := os.ReadFile(path); err == nil {
			os.WriteFile(filepath.Join(dynRootfs, "app"), data, 0o755)
		}
	}
	base := func(out string) []string {
		return []string{"image", "build", "--rootfs", rootfs, "--cmd", "/app", "-o", out}
	}
	pass := filepath.Join(t.TempDir(), "passphrase")
	userPass := filepath.Join(t.TempDir(), "user-passphrase")
	if err := os.WriteFile(userPass, []byte("a user passphrase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sim := []string{"--tee", "sim", "--attestation-url", "http://10.0.2.100:8000"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		errs string
	}{
		{"slop without a unit", []string{"--no-encrypt", "--slop", "5"}, 2, `--slop "5": a number needs its unit: 5% or 5M`},
		{"kdf iterations above what the guest unlocks", append([]string{"--kdf-iterations", "100000000", "--passphrase-out", pass}, sim...), 2, "--kdf-iterations: pbkdf2 iterations 100000000: the guest unlocks at most"},
		{"kdf memory above --memory", append([]string{"--kdf", "argon2id", "--kdf-memory", "786432", "--memory", "512", "--passphrase-out", pass}, sim...), 2, "--kdf-memory 786432 KiB: a guest needs 896 MiB to unlock it"},
		{"kdf memory above --memory, user passphrase", append([]string{"--passphrase-file", userPass, "--kdf-memory", "786432", "--memory", "512"}, sim...), 2, "--kdf-memory 786432 KiB: a guest needs 896 MiB to unlock it"},
		{"argon2 cost for a pbkdf2 keyslot", append([]string{"--kdf-memory", "65536", "--passphrase-out", pass}, sim...), 2, "are argon2 costs, but the keyslot uses pbkdf2"},
		{"pbkdf2 cost for an argon2 keyslot", append([]string{"--kdf", "argon2id", "--kdf-iterations", "5000", "--passphrase-out", pass}, sim...), 2, "--kdf-iterations is a pbkdf2 cost, but the keyslot uses argon2id"},
		{"kdf parallel", append([]string{"--kdf", "argon2id", "--kdf-parallel", "9", "--passphrase-out", pass}, sim...), 2, "--kdf-parallel: argon2id parallel cost 9"},
		{"missing --attestation-url", []string{"--tee", "sim", "--passphrase-out", pass}, 2, `--attestation-url is empty but tee "sim" needs a broker`},
		{"bad --memory", []string{"--no-encrypt", "--memory", "8"}, 2, "--memory: 8 is outside"},
		{"rootfs missing", []string{"--no-encrypt", "--rootfs", filepath.Join(rootfs, "nope")}, 1, "not a directory (`make rootfs` creates a sample one)"},
		{"program missing", []string{"--no-encrypt", "--cmd", "/bin/app"}, 1, "workload program /bin/app: --rootfs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := append(base(out), tc.args...)
			if tc.name == "program missing" {
				args = append([]string{"image", "build", "--rootfs", rootfs, "-o", out}, tc.args...)
			}
			code, _, errs := runCLI(t, args...)
			if code != tc.code || !strings.Contains(errs, tc.errs) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errs, tc.code, tc.errs)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("the output directory was created: the check came after the build started")
			}
		})
	}
	t.Run("dynamic program without its libc", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(dynRootfs, "app")); err != nil {
			t.Skip("no dynamically linked true(1) on this host")
		}
		out := filepath.Join(t.TempDir(), "out")
		code, _, errs := runCLI(t, "image", "build", "--rootfs", dynRootfs, "--cmd", "/app", "--no-encrypt", "-o", out)
		if code != 1 || !strings.Contains(errs, "is dynamically linked and needs /lib64/ld-linux-x86-64.so.2") || !strings.Contains(errs, "build it static") {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
	})
}

func TestImageInspectNotAnImage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(p, []byte("not a disk image\n"), 0o644)
	code, out, errs := runCLI(t, "image", "inspect", p)
	if code != 1 || out != "" || !strings.Contains(errs, "is not a disk image: no KRUN footer and no LUKS header") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
