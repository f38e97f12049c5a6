// Package harness is the QEMU end-to-end test harness. It builds what a
// boot needs once per test binary (the initrd from this checkout, the test
// workloads), makes disk images with host/image, and boots them through
// host/launch: the same code `sealroot launch` runs. Tests assert on the
// structured events and exit status, not on scraped console text alone.
//
// The kernel comes from SEALROOT_KERNEL / SEALROOT_KMODULES (exported by the
// Makefile) or the checkout's .cache/kernel (made by `make deps`). When
// they or QEMU are missing the tests skip with a message saying so, except
// under CI=true, where a skip would hide a broken setup and is a failure.
package harness

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/initramfs"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/wire/event"
)

// Env is what every boot shares.
type Env struct {
	Root    string // the checkout
	Kernel  string
	Modules string
	Initrd  string
	Dir     string // scratch space for this test binary
	// Machine is the QEMU machine boots use unless told otherwise ("" is
	// pc; SetupKrunfw's is microvm).
	Machine string
}

var (
	envOnce sync.Once
	envVal  *Env
	envErr  error
	skipMsg string
)

// RepoRoot finds the checkout from this source file's location.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Setup returns the shared environment, building the initrd on first use.
// It skips t (or fails it under CI) when QEMU or the kernel is missing.
func Setup(t testing.TB) *Env {
	t.Helper()
	envOnce.Do(func() { envVal, skipMsg, envErr = setup() })
	if skipMsg != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("end-to-end prerequisites missing under CI: %s", skipMsg)
		}
		t.Skipf("%s (run `make deps`)", skipMsg)
	}
	if envErr != nil {
		t.Fatal(envErr)
	}
	return envVal
}

func setup() (*Env, string, error) {
	root := RepoRoot()
	e := &Env{Root: root, Kernel: os.Getenv("SEALROOT_KERNEL"), Modules: os.Getenv("SEALROOT_KMODULES")}
	if e.Kernel == "" {
		e.Kernel = filepath.Join(root, ".cache/kernel/vmlinuz")
	}
	if e.Modules == "" {
		e.Modules = filepath.Join(root, ".cache/kernel/modules")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return nil, "qemu-system-x86_64 not installed", nil
	}
	for _, p := range []string{e.Kernel, e.Modules} {
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Sprintf("kernel not found: %v", err), nil
		}
	}
	for _, tool := range []string{"mkfs.ext4", "debugfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, tool + " not installed", nil
		}
	}
	dir, err := os.MkdirTemp("", "sealroot-e2e-")
	if err != nil {
		return nil, "", err
	}
	e.Dir = dir
	e.Initrd = filepath.Join(dir, "initrd.cpio.gz")
	if _, err := initramfs.Build(initramfs.Options{Output: e.Initrd, Compression: "gzip", KernelModules: e.Modules, ModuleRoot: root}); err != nil {
		return nil, "", fmt.Errorf("building the initrd: %w", err)
	}
	return e, "", nil
}

// GoBuild builds a static Go program of this module into dst.
func (e *Env) GoBuild(t testing.TB, pkg, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", dst, pkg)
	cmd.Dir = e.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
}

// HelloRootfs returns a fresh rootfs directory holding only the static
// hello workload at /hello.
func (e *Env) HelloRootfs(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	e.GoBuild(t, "./tests/testprogs/hello", filepath.Join(dir, "hello"))
	return dir
}

// Boot is one launch's outcome with its console text.
type Boot struct {
	*launch.Result
	Console string
}

// Phase returns the event of the named phase, if any.
func (b *Boot) Phase(name string) (event.Event, bool) {
	for _, ev := range b.Events {
		if ev.Phase == name && (ev.Kind == event.KindPhase || ev.Kind == event.KindError) {
			return ev, true
		}
	}
	return event.Event{}, false
}

// Error returns the error event, if the boot failed in a phase.
func (b *Boot) Error() (event.Event, bool) {
	for _, ev := range b.Events {
		if ev.Kind == event.KindError {
			return ev, true
		}
	}
	return event.Event{}, false
}

// Boot launches o (kernel and initrd filled in) and logs the console.
func (e *Env) Boot(t testing.TB, o launch.Options) *Boot {
	t.Helper()
	return e.BootContext(context.Background(), t, o)
}

// BootContext is Boot with a context that interrupts the launch.
func (e *Env) BootContext(ctx context.Context, t testing.TB, o launch.Options) *Boot {
	t.Helper()
	if o.Kernel == "" {
		o.Kernel = e.Kernel
	}
	if o.Initrd == "" {
		o.Initrd = e.Initrd
	}
	if o.Machine == "" {
		o.Machine = e.Machine
	}
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	if o.Accel == "" {
		o.Accel = "tcg"
	}
	var console bytes.Buffer
	o.Console = &console
	var logBuf bytes.Buffer
	o.Logger = slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	res, err := launch.Run(ctx, o)
	t.Logf("console:\n%s", indent(console.String()))
	if logBuf.Len() > 0 {
		t.Logf("launcher:\n%s", indent(logBuf.String()))
	}
	if err != nil {
		t.Fatalf("launch: %v", err)
	}
	return &Boot{Result: res, Console: console.String()}
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Sealroot returns the path of a `sealroot` binary built from this checkout
// (QEMU runs it as the guestfwd relay).
func (e *Env) Sealroot(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binPath = filepath.Join(e.Dir, "sealroot")
		cmd := exec.Command("go", "build", "-trimpath", "-o", binPath, "./host/cmd/sealroot")
		cmd.Dir = e.Root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build sealroot: %w\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}
