package cryptsetup

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
)

// ErrVolumeMismatch means a volume is not the one a VolumeID names: its
// header differs, or the key a passphrase opened is not the bound volume
// key.
var ErrVolumeMismatch = errors.New("root volume does not match its binding")

// VolumeID names one LUKS volume (docs/threat-model.md, "The root volume
// binding"). Its core is the volume-key digest: PBKDF2 of the volume key
// under the digest's salt and iterations. Only a key that reproduces
// Digest.Value satisfies it, so whoever can write a header with these
// fields still cannot make any key but the bound one pass: a volume that
// unlocks under a VolumeID is unlocked with the volume key it was made
// for, whatever the rest of the header says. The other fields pin the
// header's description of the payload (cipher, key size, sector size,
// where the payload lies) so that the bound key is also applied the way
// it was when the image was built.
type VolumeID struct {
	// LUKS is the header version, 1 or 2.
	LUKS          int       `json:"luks"`
	UUID          string    `json:"uuid"`
	Cipher        string    `json:"cipher"`
	KeyBits       int       `json:"key_bits"`
	SectorSize    int       `json:"sector_size"`
	PayloadOffset int64     `json:"payload_offset"`
	PayloadSize   int64     `json:"payload_size,omitempty"`
	IVTweak       uint64    `json:"iv_tweak,omitempty"`
	Digest        KeyDigest `json:"digest"`
}

// KeyDigest is a LUKS volume-key digest: PBKDF2-Hash(key, Salt,
// Iterations) = Value. Salt and Value are base64 in JSON.
type KeyDigest struct {
	Hash       string `json:"hash"`
	Iterations uint32 `json:"iterations"`
	Salt       []byte `json:"salt"`
	Value      []byte `json:"value"`
}

// Validate checks a VolumeID read from untrusted JSON; errors name the
// field.
func (id *VolumeID) Validate() error {
	switch {
	case id.LUKS != 1 && id.LUKS != 2:
		return fmt.Errorf("luks: %d is not 1 or 2", id.LUKS)
	case !isUUID(id.UUID, true):
		return fmt.Errorf("uuid: %q is not a UUID", id.UUID)
	case id.Cipher == "":
		return errors.New("cipher is empty")
	case id.KeyBits <= 0 || id.KeyBits > 2048 || id.KeyBits%8 != 0:
		return fmt.Errorf("key_bits: %d", id.KeyBits)
	case id.SectorSize != 512 && id.SectorSize != 1024 && id.SectorSize != 2048 && id.SectorSize != 4096:
		return fmt.Errorf("sector_size: %d is not 512, 1024, 2048 or 4096", id.SectorSize)
	case id.PayloadOffset <= 0 || id.PayloadOffset%512 != 0:
		return fmt.Errorf("payload_offset: %d", id.PayloadOffset)
	case id.PayloadSize < 0:
		return fmt.Errorf("payload_size: %d", id.PayloadSize)
	}
	d := id.Digest
	if _, err := hashByName(d.Hash); err != nil {
		return fmt.Errorf("digest.hash: %w", err)
	}
	if d.Iterations == 0 || d.Iterations > maxReadPBKDF2Iterations {
		return fmt.Errorf("digest.iterations: %d is outside 1-%d", d.Iterations, maxReadPBKDF2Iterations)
	}
	if len(d.Salt) == 0 || len(d.Salt) > 256 {
		return fmt.Errorf("digest.salt: %d bytes", len(d.Salt))
	}
	if len(d.Value) < 16 || len(d.Value) > 64 {
		return fmt.Errorf("digest.value: %d bytes, want 16-64", len(d.Value))
	}
	return nil
}

// VolumeID returns the identity of the volume this header describes. Every
// keyslot that can open the data segment must be verified by one and the
// same digest (what cryptsetup writes); a header whose keyslots rely on
// different digests has no single identity and is refused.
func (h *Header) VolumeID() (*VolumeID, error) {
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
	id := &VolumeID{
		LUKS: h.Version, UUID: h.UUID, Cipher: h.Cipher, KeyBits: h.KeyBits,
		SectorSize: h.SectorSize, PayloadOffset: h.PayloadOffset, PayloadSize: h.PayloadSize, IVTweak: h.IVTweak,
		Digest: KeyDigest{Hash: d.hash, Iterations: d.iterations,
			Salt: bytes.Clone(d.salt), Value: bytes.Clone(d.value)},
	}
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	return id, nil
}

// ReadVolumeID reads the LUKS header of a device or image of the given
// size and returns its VolumeID.
func ReadVolumeID(r io.ReaderAt, size int64) (*VolumeID, error) {
	h, err := readHeader(r, size)
	if err != nil {
		return nil, err
	}
	return h.VolumeID()
}

// Match checks that h describes the volume id names: same header fields,
// and every keyslot that can open the data segment verified by id's
// digest. The error names the first field that differs. Match runs before
// any passphrase is requested; the key itself is checked against the
// digest after it is unsealed (UnlockOptions.VolumeID).
func (id *VolumeID) Match(h *Header) error {
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
	want := id.digest()
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
func (id *VolumeID) checkKey(ctx context.Context, key []byte, verified *digest) error {
	want := id.digest()
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

func (id *VolumeID) digest() *digest {
	return &digest{hash: id.Digest.Hash, iterations: id.Digest.Iterations, salt: id.Digest.Salt, value: id.Digest.Value}
}

func (d *digest) equal(o *digest) bool {
	return d.hash == o.hash && d.iterations == o.iterations &&
		bytes.Equal(d.salt, o.salt) && subtle.ConstantTimeCompare(d.value, o.value) == 1
}
