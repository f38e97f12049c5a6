package diskconfig

import (
	"encoding/hex"
	"errors"
	"fmt"
)

// Integrity modes of the root (config key "integrity").
const (
	IntegrityNone   = "none"
	IntegrityVerity = "verity"
)

// Verity is the dm-verity tree of a verity root (config key "verity"). It
// lives in the config, not only on the disk, so that the config digest the
// launcher binds into the TEE's reports (HOST_DATA) covers the root hash:
// the guest maps the root with these values and never with the disk's own
// superblock. Offsets are in the root payload: the unlocked LUKS device, or
// the disk itself for a plain image.
type Verity struct {
	// RootHash is the tree's root hash, lower-case hex.
	RootHash string `json:"root_hash"`
	// Salt is hex ("" for none).
	Salt string `json:"salt"`
	// HashAlgorithm is "sha256".
	HashAlgorithm string `json:"hash_algorithm"`
	// DataBlockSize and HashBlockSize are in bytes (4096 as sealroot
	// builds; 512-4096 accepted).
	DataBlockSize int `json:"data_block_size"`
	HashBlockSize int `json:"hash_block_size"`
	// DataBlocks is the number of data blocks the tree covers, from the
	// payload's start: the filesystem.
	DataBlocks uint64 `json:"data_blocks"`
	// HashOffset is the byte offset of the verity superblock in the
	// payload; the tree starts one hash block after it (veritysetup's
	// --hash-offset).
	HashOffset int64 `json:"hash_offset"`
}

// DefaultOverlaySize is the tmpfs size of a verity root's writable layer
// when the config names none: the kernel's own tmpfs default.
const DefaultOverlaySize = "50%"

func (c *Config) validateIntegrity() error {
	switch c.Integrity {
	case "", IntegrityNone:
		if c.Verity != nil {
			return fmt.Errorf("config key \"verity\" is set but \"integrity\" is %q, not \"verity\"", c.Integrity)
		}
		if c.OverlaySize != "" {
			return fmt.Errorf("config key \"overlay_size\" applies to a verity root only (\"integrity\": \"verity\")")
		}
		return nil
	case IntegrityVerity:
	default:
		return fmt.Errorf("config key \"integrity\": %q is not none or verity", c.Integrity)
	}
	if c.Verity == nil {
		return fmt.Errorf("config key \"verity\" is missing but \"integrity\" is \"verity\"")
	}
	if err := ValidateOverlaySize(c.OverlaySize); err != nil {
		return err
	}
	_, _, err := c.Verity.Decode()
	return err
}

// VerityHashAlgorithm is the one tree hash accepted, and MaxVeritySalt
// the largest salt a verity superblock holds (verity checks that its own
// limits agree, verity/config_test.go).
const (
	VerityHashAlgorithm = "sha256"
	MaxVeritySalt       = 256
)

// Decode validates the tree description and returns the root hash and the
// salt as bytes. Every error names the key. The verity package turns the
// result into its tree parameters (verity.FromConfig).
func (v *Verity) Decode() (root, salt []byte, err error) {
	if !isRootHash(v.RootHash) {
		return nil, nil, fmt.Errorf("config key \"verity.root_hash\": %q is not 64 lower-case hex digits (a SHA-256 root hash)", v.RootHash)
	}
	root, _ = hex.DecodeString(v.RootHash)
	salt, err = hex.DecodeString(v.Salt)
	if err != nil || len(salt) > MaxVeritySalt {
		return nil, nil, fmt.Errorf("config key \"verity.salt\": want at most %d bytes in hex", MaxVeritySalt)
	}
	blockSize := func(n int) bool { return n >= 512 && n <= 4096 && n&(n-1) == 0 }
	var bad string
	switch {
	case v.HashAlgorithm != VerityHashAlgorithm:
		bad = fmt.Sprintf("hash_algorithm\": hash algorithm %q is not supported (want %s)", v.HashAlgorithm, VerityHashAlgorithm)
	case !blockSize(v.DataBlockSize):
		bad = fmt.Sprintf("data_block_size\": data block size %d is not a power of two from 512 to 4096", v.DataBlockSize)
	case !blockSize(v.HashBlockSize):
		bad = fmt.Sprintf("hash_block_size\": hash block size %d is not a power of two from 512 to 4096", v.HashBlockSize)
	case v.DataBlocks == 0 || v.DataBlocks > (1<<63-1)/uint64(v.DataBlockSize):
		bad = fmt.Sprintf("data_blocks\": data blocks: %d is 0 or too many for 64-bit offsets", v.DataBlocks)
	case v.HashOffset < 0 || v.HashOffset%int64(v.HashBlockSize) != 0:
		bad = fmt.Sprintf("hash_offset\": hash offset %d is not a non-negative multiple of the hash block size %d", v.HashOffset, v.HashBlockSize)
	case v.HashOffset < int64(v.DataBlocks)*int64(v.DataBlockSize):
		bad = fmt.Sprintf("hash_offset\": %d lies inside the %d bytes of data", v.HashOffset, int64(v.DataBlocks)*int64(v.DataBlockSize))
	default:
		return root, salt, nil
	}
	return nil, nil, errors.New("config key \"verity." + bad)
}

// Overlay returns the tmpfs size of the writable layer.
func (c *Config) Overlay() string {
	if c.OverlaySize == "" {
		return DefaultOverlaySize
	}
	return c.OverlaySize
}

// ValidateOverlaySize checks an overlay_size value ("" is the default).
func ValidateOverlaySize(s string) error {
	if s != "" && !isOverlaySize(s) {
		return fmt.Errorf("config key \"overlay_size\": %q is not a tmpfs size (bytes with an optional k, m or g, or 1%%-100%% of RAM)", s)
	}
	return nil
}
