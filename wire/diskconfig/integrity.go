package diskconfig

import (
	"encoding/hex"
	"fmt"
	"regexp"

	"github.com/sealroot/sealroot/verity"
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

var (
	rootHashRe    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	overlaySizeRe = regexp.MustCompile(`^([1-9][0-9]{0,15}[kmg]?|[1-9][0-9]?%|100%)$`)
)

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
	_, _, err := c.Verity.Params()
	return err
}

// Params returns the tree parameters and root hash, validated. Every
// error names the key.
func (v *Verity) Params() (verity.Params, []byte, error) {
	if !rootHashRe.MatchString(v.RootHash) {
		return verity.Params{}, nil, fmt.Errorf("config key \"verity.root_hash\": %q is not 64 lower-case hex digits (a SHA-256 root hash)", v.RootHash)
	}
	root, _ := hex.DecodeString(v.RootHash)
	salt, err := hex.DecodeString(v.Salt)
	if err != nil || len(salt) > verity.MaxSaltSize {
		return verity.Params{}, nil, fmt.Errorf("config key \"verity.salt\": want at most %d bytes in hex", verity.MaxSaltSize)
	}
	p := verity.Params{HashType: 1, Algorithm: v.HashAlgorithm, DataBlockSize: v.DataBlockSize, HashBlockSize: v.HashBlockSize,
		DataBlocks: v.DataBlocks, Salt: salt, HashOffset: v.HashOffset}
	if err := p.Check(); err != nil {
		return p, nil, fmt.Errorf("config key \"verity\": %w", err)
	}
	if p.HashOffset < p.DataSize() {
		return p, nil, fmt.Errorf("config key \"verity.hash_offset\": %d lies inside the %d bytes of data", p.HashOffset, p.DataSize())
	}
	return p, root, nil
}

// VerityOf records a built tree in the config's form.
func VerityOf(p verity.Params, root []byte) *Verity {
	return &Verity{RootHash: hex.EncodeToString(root), Salt: hex.EncodeToString(p.Salt), HashAlgorithm: p.Algorithm,
		DataBlockSize: p.DataBlockSize, HashBlockSize: p.HashBlockSize, DataBlocks: p.DataBlocks, HashOffset: p.HashOffset}
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
	if s != "" && !overlaySizeRe.MatchString(s) {
		return fmt.Errorf("config key \"overlay_size\": %q is not a tmpfs size (bytes with an optional k, m or g, or 1%%-100%% of RAM)", s)
	}
	return nil
}
