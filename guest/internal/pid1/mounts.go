// Package pid1 holds the small duties of a Linux PID 1 that the sealroot
// init strings together: the pseudo-filesystems, waiting for a device,
// switch_root with safety checks, and powering off. Each piece takes its
// paths as arguments so that it can be tested on a scratch directory.
package pid1

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Mount is one mount of the early boot.
type Mount struct {
	Source, Target, FSType string
	Flags                  uintptr
	Data                   string
	// Optional mounts may fail (the kernel may lack the filesystem).
	Optional bool
}

// EarlyMounts are the pseudo-filesystems the init needs before anything
// else. configfs is optional: only configfs-tsm attestation needs it.
var EarlyMounts = []Mount{
	{Source: "proc", Target: "/proc", FSType: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "sysfs", Target: "/sys", FSType: "sysfs", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
	{Source: "devtmpfs", Target: "/dev", FSType: "devtmpfs", Flags: unix.MS_NOSUID, Data: "mode=0755"},
	{Source: "tmpfs", Target: "/run", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=0755"},
	{Source: "devpts", Target: "/dev/pts", FSType: "devpts", Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "gid=5,mode=620,ptmxmode=666", Optional: true},
	{Source: "tmpfs", Target: "/dev/shm", FSType: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NODEV, Data: "mode=1777", Optional: true},
}

// MountAll mounts ms under root (normally "/"), creating targets. A target
// that is already a mount of the same type is left alone, so running twice
// is harmless.
func MountAll(root string, ms []Mount) error {
	for _, m := range ms {
		target := filepath.Join(root, m.Target)
		if err := os.MkdirAll(target, 0o755); err != nil {
			if m.Optional {
				continue
			}
			return fmt.Errorf("creating %s: %w", target, err)
		}
		err := unix.Mount(m.Source, target, m.FSType, m.Flags, m.Data)
		if errors.Is(err, unix.EBUSY) {
			continue
		}
		if err != nil && !m.Optional {
			return fmt.Errorf("mounting %s on %s: %w", m.FSType, target, err)
		}
	}
	return nil
}

// ModprobePath is the kernel's modprobe helper setting; a variable for tests.
var ModprobePath = "/proc/sys/kernel/modprobe"

// DisableModprobe empties the modprobe helper setting so the kernel never
// tries to run a usermode helper that the initrd does not have. A kernel
// built without module support has no such setting and nothing to disable.
func DisableModprobe() error {
	f, err := os.OpenFile(ModprobePath, os.O_WRONLY|os.O_TRUNC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = f.Write([]byte("\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
