package initramfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBootQEMU boots the Debian cloud kernel under QEMU (TCG) with a gzip,
// a zopfli (gzip format), an xz and a zstd image whose /init loads every module of modules.order with
// finit_module. It proves the kernel unpacks each compressed form (xz with
// its CRC32 check, zstd, gzip) and that the computed order loads without a
// single failure. Each boot takes about 2 s here; it is skipped with -short
// or SEALROOT_TEST_BOOT=0, and when QEMU or the kernel is missing.
func TestBootQEMU(t *testing.T) {
	if testing.Short() || os.Getenv("SEALROOT_TEST_BOOT") == "0" {
		t.Skip("QEMU boot skipped (-short or SEALROOT_TEST_BOOT=0)")
	}
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		skipOrFail(t, "qemu-system-x86_64 not installed (make deps installs it)")
	}
	modules := realKernelModules(t)
	kernel := filepath.Join(filepath.Dir(modules), "vmlinuz")
	if os.Getenv("SEALROOT_KERNEL") != "" {
		kernel = os.Getenv("SEALROOT_KERNEL")
	}
	if _, err := os.Stat(kernel); err != nil {
		skipOrFail(t, "no kernel: %v", err)
	}
	// The uncompressed form is what each of these decompresses to (checked by
	// TestBuildReproducible); booting it too would only add time.
	for _, method := range []string{CompressGzip, CompressZopfli, CompressXZ, CompressZstd} {
		t.Run(method, func(t *testing.T) {
			needZopfli(t, method)
			out := filepath.Join(t.TempDir(), "initrd")
			res, err := Build(Options{Output: out, Compression: method, InitBinary: tinyInit(t), KernelModules: modules})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, qemu, "-accel", "tcg", "-m", "512", "-nographic", "-no-reboot",
				"-nodefaults", "-serial", "stdio", "-kernel", kernel, "-initrd", out, "-append", "console=ttyS0 panic=-1 quiet")
			var console bytes.Buffer
			cmd.Stdout, cmd.Stderr = &console, &console
			start := time.Now()
			err = cmd.Run()
			t.Logf("%s: %d bytes, boot %.1fs", method, res.Size, time.Since(start).Seconds())
			want := fmt.Sprintf("TINYINIT loaded %d failed 0", len(res.Modules))
			if err != nil || !strings.Contains(console.String(), want) {
				t.Fatalf("qemu: %v; console lacks %q:\n%s", err, want, console.String())
			}
		})
	}
}
