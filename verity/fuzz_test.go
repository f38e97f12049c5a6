package verity

import (
	"bytes"
	"testing"
)

// FuzzParseSuperblock: the superblock comes from the disk, which the host
// controls. Parsing never panics, and whatever parses marshals back to the
// same fields.
func FuzzParseSuperblock(f *testing.F) {
	sb := Superblock{HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: 100, Salt: bytes.Repeat([]byte{0xab}, 32)}
	good, _ := sb.Marshal()
	f.Add(good)
	f.Add(make([]byte, SuperblockSize))
	f.Add(good[:SuperblockSize-1])
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err != nil {
			return
		}
		out, err := sb.Marshal()
		if err != nil {
			t.Fatalf("a parsed superblock does not marshal: %v", err)
		}
		again, err := ParseSuperblock(out)
		if err != nil || again.DataBlocks != sb.DataBlocks || !bytes.Equal(again.Salt, sb.Salt) || again.UUID != sb.UUID {
			t.Fatalf("round trip: %+v vs %+v (%v)", again, sb, err)
		}
		_ = sb.Params(0).HashAreaSize()
	})
}
