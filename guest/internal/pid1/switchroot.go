package pid1

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/u-root/u-root/pkg/mount"
	"golang.org/x/sys/unix"
)

// Filesystem magic numbers of an initramfs root (statfs f_type).
const (
	ramfsMagic = 0x858458f6
	tmpfsMagic = 0x01021994
)

// SwitchRoot makes newRoot the root of the calling process and frees the
// initramfs, with the safety checks of booster and busybox's switch_root:
//   - the current root must be ramfs or tmpfs (never delete a real disk);
//   - newRoot must be a mount point on a different device than "/";
//   - deletion never descends into another mount.
//
// Unlike u-root's mount.SwitchRoot it does not exec a new init: the sealroot
// init stays PID 1 to supervise the workload and report its exit status. The
// pseudo-filesystems (/dev, /proc, /sys, /run) are moved along.
func SwitchRoot(newRoot string) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return fmt.Errorf("switch_root: statfs /: %w", err)
	}
	if st.Type != ramfsMagic && st.Type != tmpfsMagic {
		return fmt.Errorf("switch_root: / is not an initramfs (filesystem type 0x%x), refusing to delete it", st.Type)
	}
	same, err := mount.SameFilesystem("/", newRoot)
	if err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	if same {
		return fmt.Errorf("switch_root: %s is not a separate mount", newRoot)
	}
	for _, m := range []string{"/dev", "/proc", "/sys", "/run"} {
		if same, err := mount.SameFilesystem("/", m); err != nil || same {
			continue // not a mount: nothing to move
		}
		target := filepath.Join(newRoot, m)
		// A symlink here would be resolved in the initramfs, before the
		// chroot: the mount could land outside the new root.
		if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
			return fmt.Errorf("switch_root: %s in the new root is not a directory (%s)", m, fi.Mode().Type())
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("switch_root: creating %s: %w", target, err)
		}
		if err := mount.MoveMount(m, target); err != nil {
			return fmt.Errorf("switch_root: moving %s: %w", m, err)
		}
	}
	oldRoot, err := os.Open("/")
	if err != nil {
		return fmt.Errorf("switch_root: %w", err)
	}
	defer oldRoot.Close()
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("switch_root: chdir %s: %w", newRoot, err)
	}
	if err := mount.MoveMount(".", "/"); err != nil {
		return fmt.Errorf("switch_root: moving %s to /: %w", newRoot, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("switch_root: chroot: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("switch_root: chdir /: %w", err)
	}
	// Free the initramfs. Best effort: a failure leaves memory in use but
	// the system is already running from the new root.
	RemoveTree(int(oldRoot.Fd()))
	return nil
}

// RemoveTree deletes everything below the directory open as dirfd that is
// on the same device, without following symlinks or crossing mounts.
func RemoveTree(dirfd int) {
	var st unix.Stat_t
	if unix.Fstat(dirfd, &st) != nil {
		return
	}
	removeBelow(dirfd, st.Dev)
}

func removeBelow(dirfd int, dev uint64) {
	dup, err := unix.Dup(dirfd)
	if err != nil {
		return
	}
	d := os.NewFile(uintptr(dup), "dir")
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, name := range names {
		var st unix.Stat_t
		if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			unix.Unlinkat(dirfd, name, 0)
			continue
		}
		if st.Dev != dev {
			continue // a mount point: leave it and everything under it
		}
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		removeBelow(fd, dev)
		unix.Close(fd)
		unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
	}
}
