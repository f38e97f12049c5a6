package cryptsetup

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"

	"github.com/sealroot/sealroot/wire/diskconfig"
)

// ErrVolumeMismatch means a volume is not the one a diskconfig.VolumeID
// names: its header differs, or the key a passphrase opened is not the
// bound volume key.
var ErrVolumeMismatch = errors.New("root volume does not match its binding")

// VolumeID returns the identity of the volume this header describes. Every
// keyslot that can open the data segment must be verified by one and the
// same digest (what cryptsetup writes); a header whose keyslots rely on
// different digests has no single identity and is refused.
func (h *Header) VolumeID() (*diskconfig.VolumeID, error) {
	var d *digest
	for i := range h.Keyslots {
		ks := &h.Keyslots[i]
		if ks.digest == nil {
			continue
		}
		if d != nil && !ks.digest.equal(d) {
			return nil, fmt.Errorf("%w: keyslots %d and %d are verified by different volume-key digests", ErrCorruptHeader, h.Keyslots[0].ID, ks.ID)
		}
		d = ks.digest
	}
	if d == nil {
		return nil, fmt.Errorf("%w: no keyslot with a pbkdf2 volume-key digest", ErrCorruptHeader)
	}
	id := &diskconfig.VolumeID{
		LUKS: h.Version, UUID: h.UUID, Cipher: h.Cipher, KeyBits: h.KeyBits,
		SectorSize: h.SectorSize, PayloadOffset: h.PayloadOffset, PayloadSize: h.PayloadSize, IVTweak: h.IVTweak,
		Digest: diskconfig.KeyDigest{Hash: d.hash, Iterations: d.iterations,
			Salt: bytes.Clone(d.salt), Value: bytes.Clone(d.value)},
	}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return id, nil
}

// ReadVolumeID reads the LUKS header of a device or image of the given
// size and returns its VolumeID.
func ReadVolumeID(r io.ReaderAt, size int64) (*diskconfig.VolumeID, error) {
	h, err := readHeader(r, size)
	if err != nil {
		return nil, err
	}
	return h.VolumeID()
}

// MatchVolume checks that h describes the volume id names: same header
// fields, and every keyslot that can open the data segment verified by
// id's digest. The error names the first field that differs. It runs
// before any passphrase is requested; the key itself is checked against
// the digest after it is unsealed (UnlockOptions.VolumeID).
func MatchVolume(id *diskconfig.VolumeID, h *Header) error {
	mismatch := func(field string, got, want any) error {
		return fmt.Errorf("%w: %s is %v, the disk config binds %v", ErrVolumeMismatch, field, got, want)
	}
	switch {
	case h.Version != id.LUKS:
		return mismatch("LUKS version", h.Version, id.LUKS)
	case h.UUID != id.UUID:
		return mismatch("LUKS UUID", h.UUID, id.UUID)
	case h.Cipher != id.Cipher:
		return mismatch("cipher", h.Cipher, id.Cipher)
	case h.KeyBits != id.KeyBits:
		return mismatch("key size", h.KeyBits, id.KeyBits)
	case h.SectorSize != id.SectorSize:
		return mismatch("sector size", h.SectorSize, id.SectorSize)
	case h.PayloadOffset != id.PayloadOffset:
		return mismatch("payload offset", h.PayloadOffset, id.PayloadOffset)
	case h.PayloadSize != id.PayloadSize:
		return mismatch("payload size", h.PayloadSize, id.PayloadSize)
	case h.IVTweak != id.IVTweak:
		return mismatch("IV tweak", h.IVTweak, id.IVTweak)
	}
	want := volumeDigest(id)
	n := 0
	for _, ks := range h.Keyslots {
		if ks.digest == nil {
			continue
		}
		if !ks.digest.equal(want) {
			return fmt.Errorf("%w: keyslot %d is verified by another volume-key digest than the one the disk config binds", ErrVolumeMismatch, ks.ID)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("%w: no keyslot is verified by the volume-key digest the disk config binds", ErrVolumeMismatch)
	}
	return nil
}

// checkKey proves that key is the bound volume key: PBKDF2 of it under
// id's digest parameters gives id's digest value. When the digest the
// keyslot was verified against is id's own (the case after Match), that
// computation has just been done by unseal and is not repeated.
func checkVolumeKey(ctx context.Context, id *diskconfig.VolumeID, key []byte, verified *digest) error {
	want := volumeDigest(id)
	if verified != nil && verified.equal(want) {
		return nil
	}
	h, err := hashByName(want.hash)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrVolumeMismatch, err)
	}
	got, err := pbkdf2KeyContext(ctx, h, key, want.salt, int(want.iterations), len(want.value))
	if err != nil {
		return fmt.Errorf("checking the volume key against its binding: %w", err)
	}
	defer wipe(got)
	if subtle.ConstantTimeCompare(got, want.value) != 1 {
		return fmt.Errorf("%w: the unlocked volume key is not the one the disk config binds", ErrVolumeMismatch)
	}
	return nil
}

func volumeDigest(id *diskconfig.VolumeID) *digest {
	return &digest{hash: id.Digest.Hash, iterations: id.Digest.Iterations, salt: id.Digest.Salt, value: id.Digest.Value}
}

func (d *digest) equal(o *digest) bool {
	return d.hash == o.hash && d.iterations == o.iterations &&
		bytes.Equal(d.salt, o.salt) && subtle.ConstantTimeCompare(d.value, o.value) == 1
}
