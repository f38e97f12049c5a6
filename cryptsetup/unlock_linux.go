package cryptsetup

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/anatol/devmapper.go"
	"golang.org/x/sys/unix"
)

// Unlock derives the volume key with the passphrase and maps the payload
// with dm-crypt through device-mapper ioctls: no cryptsetup binary, no udev,
// no libdevmapper. It needs root and a kernel with dm-mod, dm-crypt and the
// cipher (KernelModules), and devPath must be a block device. The volume
// key is wiped after the table load; the passphrase is the caller's to wipe.
//
// The mapping covers the data segment: its offset and size, or the rest of
// the device for LUKS1 and LUKS2 "dynamic" segments, in the segment's
// sector size, with the header's persistent flags (allow-discards,
// same-cpu-crypt, submit-from-crypt-cpus, no-read/write-workqueue) plus
// o.Flags.
//
// Unlock is UnlockContext without a deadline.
func (v *Volume) Unlock(passphrase []byte, o UnlockOptions) (*Mapping, error) {
	return v.UnlockContext(context.Background(), passphrase, o)
}

// UnlockContext is Unlock that gives up when ctx ends: between keyslots,
// within a few thousand PBKDF2 iterations, or at once during argon2, whose
// abandoned computation finishes in the background (x/crypto/argon2 cannot
// be interrupted; it then wipes what it holds). The error wraps ctx.Err()
// and names the keyslot. A hostile header can make each keyslot cost tens
// of seconds within the read limits, so an init should unlock under a
// deadline.
func (v *Volume) UnlockContext(ctx context.Context, passphrase []byte, o UnlockOptions) (*Mapping, error) {
	h := v.hdr
	if err := h.usable(); err != nil {
		return nil, fmt.Errorf("%s: %w", v.path, err)
	}
	off, length, err := v.Payload()
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(v.f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", v.path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, fmt.Errorf("%s is not a block device: dm-crypt maps block devices only (attach an image file to a loop device, or use Check for a user-space test)", v.path)
	}
	name := o.Name
	if name == "" {
		name = "luks-" + h.UUID
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/ \t\n") || len(name) > 127 {
		return nil, fmt.Errorf("device-mapper name %q: want up to 127 characters without '/' or spaces", name)
	}
	headerFlags, skipped := h.Flags, []string(nil)
	if o.IgnoreHeaderFlags {
		headerFlags, skipped = nil, h.Flags
	}
	flags, ignored, err := dmFlags(headerFlags, o.Flags)
	if err != nil {
		return nil, err
	}
	ignored = append(append([]string(nil), skipped...), ignored...)
	if o.VolumeID != nil {
		if err := MatchVolume(o.VolumeID, h); err != nil {
			return nil, fmt.Errorf("%s: %w", v.path, err)
		}
	}
	if h.SectorSize != 512 {
		flags = append(flags, "sector_size:"+strconv.Itoa(h.SectorSize))
	}

	if _, _, _, err := devmapper.GetVersion(); err != nil {
		return nil, fmt.Errorf("device-mapper is not available (load dm-mod and dm-crypt first): %w", err)
	}
	if _, err := devmapper.InfoByName(name); err == nil {
		return nil, fmt.Errorf("a device-mapper device named %q already exists", name)
	}

	u, err := unseal(ctx, v.f, v.size, h, passphrase, o.keyOptions())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.path, err)
	}
	defer wipe(u.key)
	if o.VolumeID != nil {
		if err := checkVolumeKey(ctx, o.VolumeID, u.key, u.slot.digest); err != nil {
			return nil, fmt.Errorf("%s: %w", v.path, err)
		}
	}

	// <cipher> <key hex> <iv_offset> <device> <offset sectors> [<#opts> <opts>...]
	devArg := fmt.Sprintf("%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	// Size the buffer so that it never grows: a grown slice would leave
	// the key behind in the abandoned array.
	params := make([]byte, 0, len(h.Cipher)+2*len(u.key)+96+len(strings.Join(flags, " ")))
	defer func() { wipe(params[:cap(params)]) }()
	params = append(params, h.Cipher...)
	params = append(params, ' ')
	params = hex.AppendEncode(params, u.key)
	params = fmt.Appendf(params, " %d %s %d", h.IVTweak, devArg, off/512)
	if len(flags) > 0 {
		params = fmt.Appendf(params, " %d %s", len(flags), strings.Join(flags, " "))
	}

	dmUUID := fmt.Sprintf("CRYPT-LUKS%d-%s-%s", h.Version, strings.ReplaceAll(h.UUID, "-", ""), name)
	if err := devmapper.Create(name, dmUUID); err != nil {
		return nil, fmt.Errorf("creating device-mapper device %q: %w", name, err)
	}
	if err := dmLoadCrypt(name, o.ReadOnly, uint64(length/512), params); err != nil {
		_ = dmRemove(name)
		return nil, fmt.Errorf("mapping %s as %q: %w", v.path, name, err)
	}
	if err := devmapper.Resume(name); err != nil {
		_ = dmRemove(name)
		return nil, fmt.Errorf("resuming device-mapper device %q: %w", name, err)
	}
	info, err := devmapper.InfoByName(name)
	if err != nil {
		_ = dmRemove(name)
		return nil, fmt.Errorf("reading device-mapper device %q: %w", name, err)
	}
	m := &Mapping{
		Name: name, Major: unix.Major(info.DevNo), Minor: unix.Minor(info.DevNo), DMUUID: dmUUID,
		Keyslot: u.slot.ID, KDFTime: u.kdfTime, Size: length, SectorSize: h.SectorSize, Cipher: h.Cipher,
		Flags: flags, IgnoredFlags: ignored, ReadOnly: o.ReadOnly,
	}
	timeout := o.NodeTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if m.Device, m.createdNode, err = findNode(name, m.Major, m.Minor, timeout, o.MapperNode); err != nil {
		_ = dmRemove(name)
		return nil, fmt.Errorf("finding the node of %q: %w", name, err)
	}
	return m, nil
}

// Remove deletes the mapping (cryptsetup close) and any /dev/mapper node
// Unlock created. It fails while the device is in use (mounted).
func (m *Mapping) Remove() error {
	if err := dmRemove(m.Name); err != nil {
		return fmt.Errorf("removing device-mapper device %q: %w", m.Name, err)
	}
	if m.createdNode != "" {
		os.Remove(m.createdNode)
	}
	return nil
}
