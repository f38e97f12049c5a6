package verity

import (
	"bytes"
	"crypto/sha256"
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

// FuzzVerify: `image check` runs the verifier over a payload the host
// wrote. Whatever the bytes and the (valid) parameters, it returns an
// answer without panicking, and it accepts a tree Build made over the same
// bytes.
func FuzzVerify(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 4096*3), uint8(3), []byte("salt"), uint16(512))
	f.Add([]byte{}, uint8(1), []byte{}, uint16(4096))
	f.Fuzz(func(t *testing.T, disk []byte, blocks uint8, salt []byte, hashBlock uint16) {
		if blocks == 0 || len(salt) > MaxSaltSize || !validBlockSize(int(hashBlock)) {
			return
		}
		p := Params{HashType: 1, Algorithm: "sha256", DataBlockSize: 512, HashBlockSize: int(hashBlock),
			DataBlocks: uint64(blocks), Salt: salt}
		p.HashOffset = (p.DataSize() + int64(hashBlock) - 1) / int64(hashBlock) * int64(hashBlock)
		root := sha256Of(disk)
		_ = Verify(bytes.NewReader(disk), bytes.NewReader(disk), p, root[:])
		_ = CheckRoot(bytes.NewReader(disk), bytes.NewReader(disk), p, root[:])
		// A tree built over the bytes (zero-extended to the data size)
		// verifies.
		data := make([]byte, p.DataSize())
		copy(data, disk)
		var h bytes.Buffer
		got, err := Build(bytes.NewReader(data), &bufWriterAt{&h}, p, BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := Verify(bytes.NewReader(data), bytes.NewReader(h.Bytes()), p, got); err != nil {
			t.Fatalf("a tree Build made does not verify: %v", err)
		}
	})
}

func sha256Of(b []byte) [32]byte { return sha256.Sum256(b) }
