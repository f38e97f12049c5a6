package verity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// SuperblockSize is the size of veritysetup's superblock; it occupies the
// first hash block of the hash area.
const SuperblockSize = 512

// Signature starts every verity superblock.
var Signature = [8]byte{'v', 'e', 'r', 'i', 't', 'y', 0, 0}

// MaxSaltSize is the largest salt the superblock can hold.
const MaxSaltSize = 256

// ErrNoSuperblock means the bytes do not start with the verity signature.
var ErrNoSuperblock = errors.New("no verity superblock (signature \"verity\" missing)")

// Superblock is veritysetup's on-disk header of a hash area:
//
//	offset size field
//	0      8    signature "verity\0\0"
//	8      4    version (1)
//	12     4    hash type (0 = Chrome OS, 1 = normal)
//	16     16   UUID
//	32     32   hash algorithm name, NUL-padded
//	64     4    data block size
//	68     4    hash block size
//	72     8    number of data blocks
//	80     2    salt size
//	82     6    padding
//	88     256  salt, zero-padded
//	344    168  padding
//
// Integers are little-endian.
type Superblock struct {
	HashType      uint32
	UUID          [16]byte
	Algorithm     string
	DataBlockSize uint32
	HashBlockSize uint32
	DataBlocks    uint64
	Salt          []byte
}

// ParseSuperblock decodes and checks a superblock (at least SuperblockSize
// bytes). Every error names the field that is wrong.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperblockSize {
		return nil, fmt.Errorf("verity superblock: %d bytes, want %d", len(b), SuperblockSize)
	}
	if !bytes.Equal(b[:8], Signature[:]) {
		return nil, ErrNoSuperblock
	}
	le := binary.LittleEndian
	if v := le.Uint32(b[8:]); v != 1 {
		return nil, fmt.Errorf("verity superblock: version %d, want 1", v)
	}
	sb := &Superblock{
		HashType:      le.Uint32(b[12:]),
		DataBlockSize: le.Uint32(b[64:]),
		HashBlockSize: le.Uint32(b[68:]),
		DataBlocks:    le.Uint64(b[72:]),
	}
	copy(sb.UUID[:], b[16:32])
	alg := b[32:64]
	if i := bytes.IndexByte(alg, 0); i >= 0 {
		if bytes.IndexFunc(alg[i:], func(r rune) bool { return r != 0 }) >= 0 {
			return nil, errors.New("verity superblock: hash algorithm name has bytes after its NUL")
		}
		alg = alg[:i]
	}
	sb.Algorithm = string(alg)
	saltSize := le.Uint16(b[80:])
	if saltSize > MaxSaltSize {
		return nil, fmt.Errorf("verity superblock: salt size %d is above %d", saltSize, MaxSaltSize)
	}
	sb.Salt = append([]byte(nil), b[88:88+int(saltSize)]...)
	if err := sb.params().check(); err != nil {
		return nil, fmt.Errorf("verity superblock: %w", err)
	}
	return sb, nil
}

// Marshal encodes the superblock into SuperblockSize bytes.
func (sb *Superblock) Marshal() ([]byte, error) {
	if err := sb.params().check(); err != nil {
		return nil, err
	}
	b := make([]byte, SuperblockSize)
	le := binary.LittleEndian
	copy(b, Signature[:])
	le.PutUint32(b[8:], 1)
	le.PutUint32(b[12:], sb.HashType)
	copy(b[16:32], sb.UUID[:])
	copy(b[32:64], sb.Algorithm)
	le.PutUint32(b[64:], sb.DataBlockSize)
	le.PutUint32(b[68:], sb.HashBlockSize)
	le.PutUint64(b[72:], sb.DataBlocks)
	le.PutUint16(b[80:], uint16(len(sb.Salt)))
	copy(b[88:], sb.Salt)
	return b, nil
}

// params are the tree parameters the superblock describes.
func (sb *Superblock) params() Params {
	return Params{HashType: int(sb.HashType), Algorithm: sb.Algorithm, DataBlockSize: int(sb.DataBlockSize),
		HashBlockSize: int(sb.HashBlockSize), DataBlocks: sb.DataBlocks, Salt: sb.Salt}
}

// Params returns the tree parameters with the hash area at hashOffset
// (the superblock's own offset).
func (sb *Superblock) Params(hashOffset int64) Params {
	p := sb.params()
	p.HashOffset = hashOffset
	return p
}

// UUIDString formats the UUID as veritysetup prints it.
func (sb *Superblock) UUIDString() string {
	u := fmt.Sprintf("%x", sb.UUID[:])
	return strings.Join([]string{u[:8], u[8:12], u[12:16], u[16:20], u[20:]}, "-")
}
