package cryptsetup

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unsafe"

	"github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"
)

// dmLoadCrypt loads a one-target crypt table into the (created, suspended)
// device-mapper device name. It builds the DM_TABLE_LOAD ioctl itself
// rather than through devmapper.Load because devmapper.go renders the key
// into an immutable Go string; here the key's hex form lives only in a byte
// buffer that is wiped after the ioctl, and DM_SECURE_DATA_FLAG asks the
// kernel to wipe its copy of the ioctl data too.
func dmLoadCrypt(name string, readOnly bool, lengthSectors uint64, params []byte) error {
	const align = 8
	specLen := (len(params) + 1 + align - 1) / align * align
	size := unix.SizeofDmIoctl + unix.SizeofDmTargetSpec + specLen
	data := make([]byte, size)
	defer wipe(data)

	dmio := (*unix.DmIoctl)(unsafe.Pointer(&data[0]))
	dmio.Version = [3]uint32{4, 0, 0}
	dmio.Data_size = uint32(size)
	dmio.Data_start = unix.SizeofDmIoctl
	dmio.Target_count = 1
	dmio.Flags = unix.DM_SECURE_DATA_FLAG
	if readOnly {
		dmio.Flags |= unix.DM_READONLY_FLAG
	}
	if len(name) >= len(dmio.Name) {
		return fmt.Errorf("device-mapper name %q is longer than %d bytes", name, len(dmio.Name)-1)
	}
	copy(dmio.Name[:], name)

	spec := (*unix.DmTargetSpec)(unsafe.Pointer(&data[unix.SizeofDmIoctl]))
	spec.Sector_start = 0
	spec.Length = lengthSectors
	spec.Next = uint32(unix.SizeofDmTargetSpec + specLen)
	copy(spec.Target_type[:], "crypt")
	copy(data[unix.SizeofDmIoctl+unix.SizeofDmTargetSpec:], params)

	ctl, err := os.Open("/dev/mapper/control")
	if err != nil {
		return fmt.Errorf("opening device-mapper control (is dm-mod loaded?): %w", err)
	}
	defer ctl.Close()
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), unix.DM_TABLE_LOAD, uintptr(unsafe.Pointer(&data[0])))
	if errno != 0 {
		hint := ""
		if errno == unix.ENOENT || errno == unix.EINVAL {
			hint = " (dm-crypt or the cipher's kernel modules may be missing: see KernelModules and dmesg)"
		}
		return fmt.Errorf("loading the crypt table: %w%s", errno, hint)
	}
	return nil
}

// findNode returns a device node for a block device number without udev:
// the /dev/<DEVNAME> that devtmpfs creates (DEVNAME from sysfs), waiting up
// to timeout for it, or else /dev/mapper/<name> made with mknod. created is
// the node this call made, if any. With mapperNode the /dev/mapper node is
// made in any case.
func findNode(name string, major, minor uint32, timeout time.Duration, mapperNode bool) (dev, created string, err error) {
	want := unix.Mkdev(major, minor)
	isNode := func(p string) bool {
		var st unix.Stat_t
		return unix.Stat(p, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFBLK && uint64(st.Rdev) == want
	}
	if b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/uevent", major, minor)); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if d, ok := strings.CutPrefix(line, "DEVNAME="); ok && d != "" && !strings.Contains(d, "..") {
				p := filepath.Join("/dev", d)
				for deadline := time.Now().Add(timeout); ; time.Sleep(5 * time.Millisecond) {
					if isNode(p) {
						dev = p
						break
					}
					if time.Now().After(deadline) {
						break
					}
				}
			}
		}
	}
	if dev != "" && !mapperNode {
		return dev, "", nil
	}
	mp := filepath.Join("/dev/mapper", name)
	if isNode(mp) {
		if dev == "" {
			dev = mp
		}
		return dev, "", nil
	}
	if err := os.MkdirAll("/dev/mapper", 0o755); err != nil {
		return dev, "", fmt.Errorf("creating /dev/mapper: %w", err)
	}
	os.Remove(mp) // a stale node of another device
	if err := unix.Mknod(mp, unix.S_IFBLK|0o600, int(want)); err != nil {
		if dev != "" {
			return dev, "", nil // the /dev/dm-N node is enough
		}
		return "", "", fmt.Errorf("no /dev/dm-%d from devtmpfs and mknod %s failed: %w", minor, mp, err)
	}
	if dev == "" {
		dev = mp
	}
	return dev, mp, nil
}

// dmRemove removes a device-mapper device (cryptsetup close).
func dmRemove(name string) error { return devmapper.Remove(name) }

// dmTableOptions reads back the crypt table of a mapping through
// DM_TABLE_STATUS and returns its optional parameters (allow_discards,
// sector_size:4096, ...), so that tests can see what the kernel applied.
// The table text holds the key in hex; the buffer is wiped and only the
// options are returned.
func dmTableOptions(name string) ([]string, error) {
	const size = 16 << 10
	data := make([]byte, size)
	defer wipe(data)
	dmio := (*unix.DmIoctl)(unsafe.Pointer(&data[0]))
	dmio.Version = [3]uint32{4, 0, 0}
	dmio.Data_size = size
	dmio.Data_start = unix.SizeofDmIoctl
	dmio.Flags = unix.DM_STATUS_TABLE_FLAG | unix.DM_SECURE_DATA_FLAG
	copy(dmio.Name[:], name)
	ctl, err := os.Open("/dev/mapper/control")
	if err != nil {
		return nil, err
	}
	defer ctl.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), unix.DM_TABLE_STATUS, uintptr(unsafe.Pointer(&data[0]))); errno != 0 {
		return nil, fmt.Errorf("reading the table of %q: %w", name, errno)
	}
	if dmio.Target_count != 1 || dmio.Flags&unix.DM_BUFFER_FULL_FLAG != 0 {
		return nil, fmt.Errorf("table of %q has %d targets", name, dmio.Target_count)
	}
	spec := (*unix.DmTargetSpec)(unsafe.Pointer(&data[dmio.Data_start]))
	if cString(spec.Target_type[:]) != "crypt" {
		return nil, fmt.Errorf("table of %q is a %q target", name, cString(spec.Target_type[:]))
	}
	params := data[int(dmio.Data_start)+unix.SizeofDmTargetSpec:]
	if i := bytes.IndexByte(params, 0); i >= 0 {
		params = params[:i]
	}
	// <cipher> <key> <iv_offset> <device> <offset> [<#opts> <opts>...]
	// Work on sub-slices of the wiped buffer: no string holds the key.
	f := bytes.Fields(params)
	if len(f) < 5 {
		return nil, fmt.Errorf("table of %q has %d fields", name, len(f))
	}
	var opts []string
	for _, o := range f[min(6, len(f)):] {
		opts = append(opts, string(o))
	}
	return opts, nil
}
