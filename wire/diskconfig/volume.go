package diskconfig

import (
	"errors"
	"fmt"
	"slices"
)

// VolumeID names one LUKS volume: the wire form of config key
// "root_volume" (docs/threat-model.md, "The root volume binding"). Its core
// is the volume-key digest: PBKDF2 of the volume key under the digest's
// salt and iterations. Only a key that reproduces Digest.Value satisfies
// it, so whoever can write a header with these fields still cannot make any
// key but the bound one pass: a volume that unlocks under a VolumeID is
// unlocked with the volume key it was made for, whatever the rest of the
// header says. The other fields pin the header's description of the
// payload (cipher, key size, sector size, where the payload lies) so that
// the bound key is also applied the way it was when the image was built.
//
// This package holds the type and its limits; reading one from a LUKS
// header and checking a header or an unlocked key against one is
// cryptsetup's (cryptsetup/volumeid.go).
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

// MaxKeyDigestIterations bounds the PBKDF2 iterations of a volume-key
// digest, the same bound cryptsetup's header reader puts on the digests it
// reads (a test there checks the two agree).
const MaxKeyDigestIterations = 1 << 26

// KeyDigestHashes are the hash names a volume-key digest may use: the ones
// cryptsetup's PBKDF2 computes (a test there checks each resolves).
var KeyDigestHashes = []string{
	"sha1", "sha224", "sha256", "sha384", "sha512",
	"sha3-224", "sha3-256", "sha3-384", "sha3-512",
	"ripemd160", "whirlpool",
	"blake2b-160", "blake2b-256", "blake2b-384", "blake2b-512", "blake2s-256",
}

// Validate checks a VolumeID read from untrusted JSON; errors name the
// field.
func (id *VolumeID) Validate() error {
	switch {
	case id.LUKS != 1 && id.LUKS != 2:
		return fmt.Errorf("luks: %d is not 1 or 2", id.LUKS)
	case !IsUUID(id.UUID, true):
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
	if !slices.Contains(KeyDigestHashes, d.Hash) {
		return fmt.Errorf("digest.hash: %q is not a supported hash", d.Hash)
	}
	if d.Iterations == 0 || d.Iterations > MaxKeyDigestIterations {
		return fmt.Errorf("digest.iterations: %d is outside 1-%d", d.Iterations, MaxKeyDigestIterations)
	}
	if len(d.Salt) == 0 || len(d.Salt) > 256 {
		return fmt.Errorf("digest.salt: %d bytes", len(d.Salt))
	}
	if len(d.Value) < 16 || len(d.Value) > 64 {
		return fmt.Errorf("digest.value: %d bytes, want 16-64", len(d.Value))
	}
	return nil
}

// ActivationFlags are the names config key "activation_flags" accepts: the
// LUKS2 activation flags dm-crypt has a parameter for (cryptsetup maps
// them, cryptsetup/format.go; a test there checks it knows each).
var ActivationFlags = []string{"allow-discards", "same-cpu-crypt", "submit-from-crypt-cpus", "no-read-workqueue", "no-write-workqueue"}

// KnownActivationFlag reports whether name is one of ActivationFlags.
func KnownActivationFlag(name string) bool { return slices.Contains(ActivationFlags, name) }
