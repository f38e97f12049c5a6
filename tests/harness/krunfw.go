package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sealroot/sealroot/host/initramfs"
	"github.com/sealroot/sealroot/host/launch"
)

// The krunfw environment: the libkrunfw-shaped kernel of `make
// kernel-krunfw` (SEALROOT_KRUNFW_KERNEL, default .cache/krunfw/bzImage),
// an initrd without modules built for the krunfw target, and QEMU's microvm
// machine. Its Env shares Dir (and so the sealroot binary and the simulated
// secure processor) with Setup's.
var (
	krunfwOnce sync.Once
	krunfwEnv  *Env
	krunfwErr  error
	krunfwSkip string
)

// KrunfwKernel is the kernel the microvm tests boot.
func KrunfwKernel() string {
	if k := os.Getenv("SEALROOT_KRUNFW_KERNEL"); k != "" {
		return k
	}
	return filepath.Join(RepoRoot(), ".cache/krunfw/bzImage")
}

// SetupKrunfw returns the krunfw environment. A missing kernel skips t, or
// fails it under CI=true.
func SetupKrunfw(t testing.TB) *Env {
	t.Helper()
	base := Setup(t)
	krunfwOnce.Do(func() {
		k := KrunfwKernel()
		if _, err := os.Stat(k); err != nil {
			krunfwSkip = fmt.Sprintf("krunfw kernel not found: %v", err)
			return
		}
		e := *base
		e.Kernel, e.Modules, e.Machine = k, "", launch.MachineMicrovm
		e.Initrd = filepath.Join(base.Dir, "initrd-krunfw.cpio.gz")
		if _, err := initramfs.Build(initramfs.Options{Output: e.Initrd, Compression: initramfs.CompressZopfli, Target: initramfs.TargetKrunfw, ModuleRoot: base.Root}); err != nil {
			krunfwErr = fmt.Errorf("building the krunfw initrd: %w", err)
			return
		}
		krunfwEnv = &e
	})
	if krunfwSkip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("end-to-end prerequisites missing under CI: %s", krunfwSkip)
		}
		t.Skipf("%s (run `make kernel-krunfw`)", krunfwSkip)
	}
	if krunfwErr != nil {
		t.Fatal(krunfwErr)
	}
	return krunfwEnv
}
