package cryptsetup

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sealroot/sealroot/wire/diskconfig"
)

// Volume is an opened LUKS device or image file. It holds the device open
// read-only and the parsed header; it never writes to the device.
type Volume struct {
	path string
	f    *os.File
	size int64
	hdr  *Header
}

// Open reads and checks the LUKS1 or LUKS2 header of a block device or image
// file. Volumes with features this package cannot unlock (another cipher,
// integrity, an interrupted reencryption) still open, so that they can be
// inspected; Unlock and Check then report why they cannot be used.
func Open(devPath string) (*Volume, error) {
	f, err := os.Open(devPath)
	if err != nil {
		return nil, fmt.Errorf("opening LUKS device: %w", err)
	}
	v, err := openFile(devPath, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return v, nil
}

func openFile(path string, f *os.File) (*Volume, error) {
	// Seeking to the end gives the size of block devices and files alike.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("finding the size of %s: %w", path, err)
	}
	h, err := readHeader(f, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Volume{path: path, f: f, size: size, hdr: h}, nil
}

// Close releases the device.
func (v *Volume) Close() error { return v.f.Close() }

// Path is the device path given to Open.
func (v *Volume) Path() string { return v.path }

// Size is the device size in bytes.
func (v *Volume) Size() int64 { return v.size }

// UUID is the LUKS UUID.
func (v *Volume) UUID() string { return v.hdr.UUID }

// Header returns the parsed header. Treat it as read-only.
func (v *Volume) Header() *Header { return v.hdr }

// Payload returns the payload's offset and length on this device, or
// ErrPayloadBeyondDevice.
func (v *Volume) Payload() (offset, length int64, err error) {
	off, n, err := v.hdr.payloadSpan(v.size)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", v.path, err)
	}
	return off, n, nil
}

// KernelModules lists the kernel modules dm-crypt needs for this volume's
// data cipher (see the package function KernelModules).
func (v *Volume) KernelModules() ([]string, error) { return KernelModules(v.hdr.Cipher) }

// UnlockOptions tune Unlock and Check. The zero value tries keyslots by
// priority, maps read-write and bounds argon2 by MemAvailable.
type UnlockOptions struct {
	// Name is the device-mapper name; default "luks-<UUID>". Unlock only.
	Name string
	// Keyslots, when set, are the only keyslots tried, in this order,
	// including ones whose priority is "ignore".
	Keyslots []int
	// ReadOnly maps the device read-only. Unlock only.
	ReadOnly bool
	// Flags are extra LUKS2 activation flags (allow-discards,
	// same-cpu-crypt, submit-from-crypt-cpus, no-read-workqueue,
	// no-write-workqueue) added to the header's persistent flags.
	// Unlock only.
	Flags []string
	// MemoryLimitKiB, when non-zero, replaces /proc/meminfo's
	// MemAvailable as the memory an argon2 keyslot may use.
	MemoryLimitKiB uint64
	// NodeTimeout bounds the wait for devtmpfs to create /dev/dm-N before
	// Unlock makes /dev/mapper/<name> itself; default 2s. Unlock only.
	NodeTimeout time.Duration
	// MapperNode also creates /dev/mapper/<name> when udev is absent.
	// Unlock only.
	MapperNode bool
	// VolumeID, when set, binds the volume: the header must match it
	// before any keyslot is tried, and the key a passphrase opens must be
	// the bound volume key (MatchVolume, docs/threat-model.md). A
	// mismatch is ErrVolumeMismatch.
	VolumeID *diskconfig.VolumeID
	// IgnoreHeaderFlags applies only Flags, not the header's persistent
	// activation flags, which whoever writes the disk can set (a LUKS2
	// header has no keyed checksum). The header's flags are then listed
	// in Mapping.IgnoredFlags. Unlock only.
	IgnoreHeaderFlags bool
}

func (o UnlockOptions) keyOptions() keyOptions {
	return keyOptions{keyslots: o.Keyslots, memoryLimitKiB: o.MemoryLimitKiB}
}
