package initramfs

import (
	"fmt"
)

// Targets accepted in Options.Target.
const (
	// TargetAny is the default: any kernel, any compression.
	TargetAny = ""
	// TargetKrunfw is an initrd to be baked into libkrunfw's confidential
	// (SEV/TDX) builds. Their kernels decompress only gzip initrds and
	// have no module support, and libkrun copies the initrd to guest
	// physical address 0xa00000 with the kernel at 16 MiB above it and
	// no overlap check, padded to 64 KiB by libkrunfw's bundler: an
	// initrd larger than KrunfwInitrdMax once padded silently overwrites
	// the kernel (docs/libkrunfw.md).
	TargetKrunfw = "krunfw"
)

// Targets lists the accepted targets by name ("" is TargetAny).
var Targets = []string{"any", TargetKrunfw}

// KrunfwInitrdMax is the room between libkrun's initrd address (0xa00000)
// and the kernel's load address (16 MiB): 6 MiB.
const KrunfwInitrdMax = 0x1000000 - 0xa00000

// krunfwPad is the size libkrunfw's bundler rounds the initrd up to.
const krunfwPad = 64 << 10

// KrunfwPaddedSize is n rounded up to 64 KiB, the size libkrun copies.
func KrunfwPaddedSize(n int64) int64 { return (n + krunfwPad - 1) / krunfwPad * krunfwPad }

// checkTarget rejects options the target cannot boot, before building.
func checkTarget(opts *Options, method string) error {
	switch opts.Target {
	case TargetAny, "any":
		return nil
	case TargetKrunfw:
		if !GzipFormat(method) {
			return fmt.Errorf("target krunfw: compression %q: libkrunfw's kernels accept only gzip initrds (CONFIG_RD_GZIP alone): use gzip or zopfli", method)
		}
		if opts.KernelModules != "" {
			return fmt.Errorf("target krunfw: --kernel-modules %s: libkrunfw's kernels have no module support; everything the init needs is built in", opts.KernelModules)
		}
		return nil
	}
	return fmt.Errorf("unknown target %q (want any or krunfw)", opts.Target)
}

// checkTargetSize rejects a written image the target cannot load; size is
// the compressed file's size.
func checkTargetSize(target string, size int64) error {
	if target != TargetKrunfw {
		return nil
	}
	if p := KrunfwPaddedSize(size); p > KrunfwInitrdMax {
		return fmt.Errorf("target krunfw: the initrd is %d bytes (%d padded to 64 KiB), more than the %d bytes (6 MiB) between libkrun's initrd address 0xa00000 and the kernel at 16 MiB: it would overwrite the kernel", size, p, KrunfwInitrdMax)
	}
	return nil
}
