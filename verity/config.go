package verity

import (
	"encoding/hex"
	"fmt"

	"github.com/sealroot/sealroot/wire/diskconfig"
)

// FromConfig returns the tree parameters and root hash the disk config's
// "verity" key describes (diskconfig.Verity, the wire form and its rules),
// checked as Check checks any parameters. Every error names the key.
func FromConfig(v *diskconfig.Verity) (Params, []byte, error) {
	root, salt, err := v.Decode()
	if err != nil {
		return Params{}, nil, err
	}
	p := Params{HashType: 1, Algorithm: v.HashAlgorithm, DataBlockSize: v.DataBlockSize, HashBlockSize: v.HashBlockSize,
		DataBlocks: v.DataBlocks, Salt: salt, HashOffset: v.HashOffset}
	if err := p.Check(); err != nil {
		return p, nil, fmt.Errorf("config key \"verity\": %w", err)
	}
	return p, root, nil
}

// ToConfig records a built tree in the disk config's form.
func ToConfig(p Params, root []byte) *diskconfig.Verity {
	return &diskconfig.Verity{RootHash: hex.EncodeToString(root), Salt: hex.EncodeToString(p.Salt), HashAlgorithm: p.Algorithm,
		DataBlockSize: p.DataBlockSize, HashBlockSize: p.HashBlockSize, DataBlocks: p.DataBlocks, HashOffset: p.HashOffset}
}
