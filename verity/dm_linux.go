package verity

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"github.com/anatol/devmapper.go"
	"github.com/sealroot/sealroot/cryptsetup"
	"golang.org/x/sys/unix"
)

// Mapping is an active dm-verity device.
type Mapping struct {
	Name   string
	Device string // the node to mount
	Major  uint32
	Minor  uint32
}

// Map creates the read-only dm-verity device name over dataDev, with the
// tree on hashDev (which may be dataDev), the parameters p and the root
// hash root. The kernel checks every block read against the tree; a
// mismatch is an I/O error (the default mode: neither restart nor panic),
// visible afterwards in Corrupted. opts are extra optional table
// parameters (e.g. "ignore_zero_blocks"); sealroot passes none.
func Map(name, dataDev, hashDev string, p Params, root []byte, opts ...string) (*Mapping, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	if len(root) != digestSize {
		return nil, fmt.Errorf("root hash of %d bytes, want %d", len(root), digestSize)
	}
	devArg := func(path string) (string, error) {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil {
			return "", err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return "", fmt.Errorf("%s is not a block device", path)
		}
		return fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))), nil
	}
	data, err := devArg(dataDev)
	if err != nil {
		return nil, fmt.Errorf("verity data device: %w", err)
	}
	hash, err := devArg(hashDev)
	if err != nil {
		return nil, fmt.Errorf("verity hash device: %w", err)
	}
	salt := "-"
	if len(p.Salt) > 0 {
		salt = hex.EncodeToString(p.Salt)
	}
	var params []string
	if len(opts) > 0 {
		params = append([]string{fmt.Sprint(len(opts))}, opts...)
	}
	table := devmapper.VerityTable{
		Start: 0, Length: uint64(p.DataSize()), HashType: uint64(p.HashType),
		DataDevice: data, HashDevice: hash,
		DataBlockSize: uint64(p.DataBlockSize), HashBlockSize: uint64(p.HashBlockSize),
		NumDataBlocks: p.DataBlocks, HashStartBlock: p.HashStartBlock(),
		Algorithm: p.Algorithm, Digest: hex.EncodeToString(root), Salt: salt, Params: params,
	}
	uuid := "CRYPT-VERITY-" + hex.EncodeToString(root[:16]) + "-" + name
	if err := devmapper.CreateAndLoad(name, uuid, devmapper.ReadOnlyFlag, table); err != nil {
		hint := ""
		if strings.Contains(err.Error(), "no such") || strings.Contains(err.Error(), "invalid argument") {
			hint = " (is dm-verity loaded? dmesg names the table's fault)"
		}
		return nil, fmt.Errorf("mapping dm-verity %q over %s: %w%s", name, dataDev, err, hint)
	}
	info, err := devmapper.InfoByName(name)
	if err != nil {
		devmapper.Remove(name)
		return nil, fmt.Errorf("reading device-mapper device %q: %w", name, err)
	}
	m := &Mapping{Name: name, Major: unix.Major(info.DevNo), Minor: unix.Minor(info.DevNo)}
	if m.Device, err = cryptsetup.DeviceNode(name, m.Major, m.Minor, 2*time.Second); err != nil {
		devmapper.Remove(name)
		return nil, fmt.Errorf("finding the node of %q: %w", name, err)
	}
	return m, nil
}

// Corrupted asks the kernel whether the verity target has met a block that
// does not match the tree (its status "C"; "V" while all is verified).
func (m *Mapping) Corrupted() (bool, error) {
	st, err := targetStatus(m.Name)
	if err != nil {
		return false, err
	}
	f := strings.Fields(st)
	if len(f) == 0 {
		return false, fmt.Errorf("empty status of %q", m.Name)
	}
	switch f[0] {
	case "V":
		return false, nil
	case "C":
		return true, nil
	}
	return false, fmt.Errorf("status of %q is %q, not V or C", m.Name, st)
}

// Remove deletes the mapping.
func (m *Mapping) Remove() error { return devmapper.Remove(m.Name) }

// targetStatus returns the status text of a one-target verity device
// (DM_TABLE_STATUS without DM_STATUS_TABLE_FLAG).
func targetStatus(name string) (string, error) {
	const size = 4096
	data := make([]byte, size)
	dmio := (*unix.DmIoctl)(unsafe.Pointer(&data[0]))
	dmio.Version = [3]uint32{4, 0, 0}
	dmio.Data_size = size
	dmio.Data_start = unix.SizeofDmIoctl
	if len(name) >= len(dmio.Name) {
		return "", fmt.Errorf("device-mapper name %q is too long", name)
	}
	copy(dmio.Name[:], name)
	ctl, err := os.Open("/dev/mapper/control")
	if err != nil {
		return "", err
	}
	defer ctl.Close()
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, ctl.Fd(), unix.DM_TABLE_STATUS, uintptr(unsafe.Pointer(&data[0]))); errno != 0 {
		return "", fmt.Errorf("reading the status of %q: %w", name, errno)
	}
	if dmio.Target_count != 1 || int(dmio.Data_start)+unix.SizeofDmTargetSpec > size {
		return "", fmt.Errorf("status of %q has %d targets", name, dmio.Target_count)
	}
	spec := (*unix.DmTargetSpec)(unsafe.Pointer(&data[dmio.Data_start]))
	if t := string(bytes.TrimRight(spec.Target_type[:], "\x00")); t != "verity" {
		return "", fmt.Errorf("%q is a %q target, not verity", name, t)
	}
	st := data[int(dmio.Data_start)+unix.SizeofDmTargetSpec:]
	if i := bytes.IndexByte(st, 0); i >= 0 {
		st = st[:i]
	}
	return string(st), nil
}
