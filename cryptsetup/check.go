package cryptsetup

import (
	"context"
	"fmt"
	"time"
)

// CheckResult is what Check found.
type CheckResult struct {
	Path        string `json:"path"`
	LUKSVersion int    `json:"luks_version"`
	UUID        string `json:"uuid"`
	Cipher      string `json:"cipher"`
	KeyBits     int    `json:"key_bits"`
	SectorSize  int    `json:"sector_size"`
	// Keyslot is the keyslot the passphrase opened.
	Keyslot int `json:"keyslot"`
	// KDF describes that keyslot's key derivation; KDFTime is how long it
	// took here.
	KDF     string        `json:"kdf"`
	KDFTime time.Duration `json:"kdf_ns"`
	// PayloadOffset and PayloadSize locate the encrypted payload.
	PayloadOffset int64 `json:"payload_offset"`
	PayloadSize   int64 `json:"payload_size"`
	// Filesystem is what the decrypted payload starts with.
	Filesystem *Filesystem `json:"filesystem"`
}

// Check unlocks a LUKS image or device in user space (no root, no
// device-mapper), decrypts the first 128 KiB of its payload and confirms
// that they hold a filesystem that fits the payload. The passphrase is not
// retained; the volume key is wiped before Check returns.
func Check(path string, passphrase []byte) (*CheckResult, error) {
	v, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer v.Close()
	return v.Check(passphrase, UnlockOptions{})
}

// Check is the user-space unlock and payload check of an opened volume.
// Of the options, Keyslots, MemoryLimitKiB and VolumeID apply. It is CheckContext
// without a deadline.
func (v *Volume) Check(passphrase []byte, o UnlockOptions) (*CheckResult, error) {
	return v.CheckContext(context.Background(), passphrase, o)
}

// CheckContext is Check that stops when ctx ends, even in the middle of a
// key derivation, with an error wrapping ctx.Err() (see UnlockContext).
func (v *Volume) CheckContext(ctx context.Context, passphrase []byte, o UnlockOptions) (*CheckResult, error) {
	off, length, err := v.Payload()
	if err != nil {
		return nil, err
	}
	if o.VolumeID != nil {
		if err := MatchVolume(o.VolumeID, v.hdr); err != nil {
			return nil, fmt.Errorf("%s: %w", v.path, err)
		}
	}
	u, err := unseal(ctx, v.f, v.size, v.hdr, passphrase, o.keyOptions())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.path, err)
	}
	defer wipe(u.key)
	if o.VolumeID != nil {
		if err := checkVolumeKey(ctx, o.VolumeID, u.key, u.slot.digest); err != nil {
			return nil, fmt.Errorf("%s: %w", v.path, err)
		}
	}
	h := v.hdr
	res := &CheckResult{
		Path: v.path, LUKSVersion: h.Version, UUID: h.UUID, Cipher: h.Cipher,
		KeyBits: h.KeyBits, SectorSize: h.SectorSize,
		Keyslot: u.slot.ID, KDF: u.slot.KDF.String(), KDFTime: u.kdfTime,
		PayloadOffset: off, PayloadSize: length,
	}
	n := min(int64(fsProbeSize), length)
	buf := make([]byte, n)
	defer wipe(buf)
	if err := v.readPlain(u.key, buf, 0); err != nil {
		return res, err
	}
	res.Filesystem = detectFS(buf)
	if res.Filesystem == nil {
		return res, fmt.Errorf("%s: %w (the key is right, so the payload was never written or is not a filesystem)", v.path, ErrNoFilesystem)
	}
	if fs := res.Filesystem; fs.Size > length {
		return res, fmt.Errorf("%s: %w: the %s filesystem is %d bytes but the payload holds only %d", v.path, ErrPayloadBeyondDevice, fs.Type, fs.Size, length)
	}
	return res, nil
}

// readPlain decrypts len(buf) bytes of payload starting at payload offset
// off; both must be multiples of the sector size.
func (v *Volume) readPlain(key, buf []byte, off int64) error {
	h := v.hdr
	ss := int64(h.SectorSize)
	if off%ss != 0 || int64(len(buf))%ss != 0 {
		return fmt.Errorf("payload read at %d+%d is not sector-aligned", off, len(buf))
	}
	c, err := parseCipher(h.Cipher)
	if err != nil {
		return err
	}
	sc, err := newSectorCipher(c, key)
	if err != nil {
		return err
	}
	if err := readAt(v.f, v.size, buf, h.PayloadOffset+off, "payload"); err != nil {
		return err
	}
	sc.decrypt(buf, h.IVTweak+uint64(off/512), h.SectorSize)
	return nil
}
