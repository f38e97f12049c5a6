package verity

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"runtime"
	"sync"
)

// Defaults of veritysetup format, which sealroot uses.
const (
	DefaultBlockSize = 4096
	DefaultAlgorithm = "sha256"
	DefaultSaltSize  = 32
)

// maxLevels is the kernel's limit on tree depth (DM_VERITY_MAX_LEVELS).
const maxLevels = 63

// Params describe one hash tree and where it lies.
type Params struct {
	// HashType is the format version: 1 (normal). 0 (Chrome OS, salt
	// after the data, digests unpadded) is refused.
	HashType int
	// Algorithm is the hash: only "sha256".
	Algorithm string
	// DataBlockSize and HashBlockSize are powers of two from 512 to 4096
	// (the kernel's limits on a 4 KiB-page machine).
	DataBlockSize int
	HashBlockSize int
	// DataBlocks is how many data blocks the tree covers, from offset 0 of
	// the data device.
	DataBlocks uint64
	// Salt is prepended to every hashed block (at most 256 bytes).
	Salt []byte
	// HashOffset is the byte offset of the superblock on the hash device;
	// the tree starts one hash block later. A multiple of HashBlockSize.
	HashOffset int64
}

// NewParams returns veritysetup's defaults (format 1, SHA-256, 4 KiB
// blocks, a fresh 32-byte salt) for dataSize bytes of data (a multiple of
// 4096) with the hash area at hashOffset.
func NewParams(dataSize, hashOffset int64) (Params, error) {
	salt := make([]byte, DefaultSaltSize)
	if _, err := io.ReadFull(rand.Reader, salt); err != nil {
		return Params{}, err
	}
	if dataSize <= 0 || dataSize%DefaultBlockSize != 0 {
		return Params{}, fmt.Errorf("verity data size %d is not a positive multiple of %d", dataSize, DefaultBlockSize)
	}
	p := Params{HashType: 1, Algorithm: DefaultAlgorithm, DataBlockSize: DefaultBlockSize, HashBlockSize: DefaultBlockSize,
		DataBlocks: uint64(dataSize / DefaultBlockSize), Salt: salt, HashOffset: hashOffset}
	return p, p.Check()
}

func validBlockSize(n int) bool { return n >= 512 && n <= 4096 && n&(n-1) == 0 }

// check validates everything but the hash offset (a superblock does not
// carry it).
func (p Params) check() error {
	switch {
	case p.HashType != 1:
		return fmt.Errorf("hash type %d is not supported (want 1)", p.HashType)
	case p.Algorithm != DefaultAlgorithm:
		return fmt.Errorf("hash algorithm %q is not supported (want sha256)", p.Algorithm)
	case !validBlockSize(p.DataBlockSize):
		return fmt.Errorf("data block size %d is not a power of two from 512 to 4096", p.DataBlockSize)
	case !validBlockSize(p.HashBlockSize):
		return fmt.Errorf("hash block size %d is not a power of two from 512 to 4096", p.HashBlockSize)
	case p.DataBlocks == 0:
		return errors.New("data blocks: 0 (an empty device has no tree)")
	case p.DataBlocks > (1<<63-1)/uint64(p.DataBlockSize):
		return fmt.Errorf("data blocks: %d is too many", p.DataBlocks)
	case len(p.Salt) > MaxSaltSize:
		return fmt.Errorf("salt of %d bytes is above %d", len(p.Salt), MaxSaltSize)
	}
	return nil
}

// Check validates the parameters.
func (p Params) Check() error {
	if err := p.check(); err != nil {
		return err
	}
	if p.HashOffset < 0 || p.HashOffset%int64(p.HashBlockSize) != 0 {
		return fmt.Errorf("hash offset %d is not a non-negative multiple of the hash block size %d", p.HashOffset, p.HashBlockSize)
	}
	_, _, err := p.layout()
	return err
}

// DataSize is the number of data bytes covered.
func (p Params) DataSize() int64 { return int64(p.DataBlocks) * int64(p.DataBlockSize) }

// TreeOffset is the byte offset of the tree on the hash device.
func (p Params) TreeOffset() int64 { return p.HashOffset + int64(p.HashBlockSize) }

// HashStartBlock is the tree's first block in hash-block units, as the
// kernel's table wants it.
func (p Params) HashStartBlock() uint64 { return uint64(p.TreeOffset() / int64(p.HashBlockSize)) }

// HashAreaSize is the size of superblock plus tree.
func (p Params) HashAreaSize() int64 {
	_, sizes, _ := p.layout()
	var n uint64 = 1
	for _, s := range sizes {
		n += s
	}
	return int64(n) * int64(p.HashBlockSize)
}

// digestSize is SHA-256's; format 1 pads each digest to a power of two,
// which 32 already is.
const digestSize = sha256.Size

// layout returns, per level (0 = the level over the data), the index of
// its first block relative to the tree start and its size in blocks. The
// levels are stored top level first, as veritysetup and the kernel place
// them.
func (p Params) layout() (start, size []uint64, err error) {
	bits := uint(0)
	for n := p.HashBlockSize / digestSize; n > 1; n >>= 1 {
		bits++
	}
	levels := 0
	for bits*uint(levels) < 64 && (p.DataBlocks-1)>>(bits*uint(levels)) != 0 {
		levels++
	}
	if levels > maxLevels {
		return nil, nil, fmt.Errorf("tree of %d levels is too deep", levels)
	}
	start = make([]uint64, levels)
	size = make([]uint64, levels)
	var pos uint64
	for i := levels - 1; i >= 0; i-- {
		shift := uint(i+1) * bits
		if shift > 63 {
			return nil, nil, errors.New("tree level out of range")
		}
		s := (p.DataBlocks + (1 << shift) - 1) >> shift
		start[i], size[i] = pos, s
		pos += s
	}
	return start, size, nil
}

// Levels is the number of tree levels (0 when one data block is the tree).
func (p Params) Levels() int {
	s, _, _ := p.layout()
	return len(s)
}

// hashBlocks hashes each blockSize block of src into dst (digestSize per
// block), spreading the work over workers goroutines.
func hashBlocks(dst, src, salt []byte, blockSize, workers int) {
	n := len(src) / blockSize
	if workers < 1 {
		workers = 1
	}
	if workers > n {
		workers = n
	}
	var wg sync.WaitGroup
	per := (n + workers - 1) / max(workers, 1)
	for w := 0; w < workers; w++ {
		lo, hi := w*per, min((w+1)*per, n)
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := sha256.New()
			for i := lo; i < hi; i++ {
				saltedSum(h, salt, src[i*blockSize:(i+1)*blockSize], dst[i*digestSize:i*digestSize])
			}
		}()
	}
	wg.Wait()
}

func saltedSum(h hash.Hash, salt, block, dst []byte) []byte {
	h.Reset()
	h.Write(salt)
	h.Write(block)
	return h.Sum(dst)
}

// computed is a whole tree computed from the data.
type computed struct {
	levels [][]byte // level i's blocks, HashBlockSize each, zero-padded
	root   []byte
}

// chunkBlocks is how many data blocks are read and hashed at a time.
const chunkBlocks = 256

// compute hashes the data and every level above it.
func (p Params) compute(data io.ReaderAt, workers int) (*computed, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	_, sizes, _ := p.layout()
	c := &computed{levels: make([][]byte, len(sizes))}
	if len(sizes) == 0 {
		blk := make([]byte, p.DataBlockSize)
		if _, err := data.ReadAt(blk, 0); err != nil {
			return nil, fmt.Errorf("reading data block 0: %w", err)
		}
		c.root = saltedSum(sha256.New(), p.Salt, blk, nil)
		return c, nil
	}
	// Level 0: the digests of the data blocks, packed and padded.
	perBlock := uint64(p.HashBlockSize / digestSize)
	lvl := make([]byte, sizes[0]*uint64(p.HashBlockSize))
	buf := make([]byte, chunkBlocks*p.DataBlockSize)
	digests := make([]byte, chunkBlocks*digestSize)
	for b := uint64(0); b < p.DataBlocks; b += chunkBlocks {
		n := min(uint64(chunkBlocks), p.DataBlocks-b)
		chunk := buf[:n*uint64(p.DataBlockSize)]
		if _, err := data.ReadAt(chunk, int64(b)*int64(p.DataBlockSize)); err != nil {
			return nil, fmt.Errorf("reading data blocks %d-%d: %w", b, b+n-1, err)
		}
		hashBlocks(digests, chunk, p.Salt, p.DataBlockSize, workers)
		for i := uint64(0); i < n; i++ {
			k := b + i
			off := (k/perBlock)*uint64(p.HashBlockSize) + (k%perBlock)*digestSize
			copy(lvl[off:off+digestSize], digests[i*digestSize:(i+1)*digestSize])
		}
	}
	c.levels[0] = lvl
	for i := 1; i < len(sizes); i++ {
		below := c.levels[i-1]
		nb := len(below) / p.HashBlockSize
		up := make([]byte, sizes[i]*uint64(p.HashBlockSize))
		d := make([]byte, nb*digestSize)
		hashBlocks(d, below, p.Salt, p.HashBlockSize, workers)
		for k := 0; k < nb; k++ {
			off := (k/int(perBlock))*p.HashBlockSize + (k%int(perBlock))*digestSize
			copy(up[off:off+digestSize], d[k*digestSize:(k+1)*digestSize])
		}
		c.levels[i] = up
	}
	c.root = saltedSum(sha256.New(), p.Salt, c.levels[len(sizes)-1], nil)
	return c, nil
}

// BuildOptions tune Build.
type BuildOptions struct {
	// UUID goes into the superblock; zero means a random one.
	UUID [16]byte
	// Workers hash in parallel; default GOMAXPROCS.
	Workers int
}

// Build computes the tree over p.DataBlocks blocks of data and writes the
// superblock at p.HashOffset and the tree after it to hash (which may be
// the same file as data, past the data). It returns the root hash.
func Build(data io.ReaderAt, hash io.WriterAt, p Params, o BuildOptions) ([]byte, error) {
	c, err := p.compute(data, o.Workers)
	if err != nil {
		return nil, err
	}
	uuid := o.UUID
	if uuid == [16]byte{} {
		if _, err := io.ReadFull(rand.Reader, uuid[:]); err != nil {
			return nil, err
		}
		uuid[6] = uuid[6]&0x0f | 0x40
		uuid[8] = uuid[8]&0x3f | 0x80
	}
	sb := Superblock{HashType: uint32(p.HashType), UUID: uuid, Algorithm: p.Algorithm,
		DataBlockSize: uint32(p.DataBlockSize), HashBlockSize: uint32(p.HashBlockSize), DataBlocks: p.DataBlocks, Salt: p.Salt}
	sbb, err := sb.Marshal()
	if err != nil {
		return nil, err
	}
	head := make([]byte, p.HashBlockSize)
	copy(head, sbb)
	if _, err := hash.WriteAt(head, p.HashOffset); err != nil {
		return nil, fmt.Errorf("writing the verity superblock: %w", err)
	}
	starts, _, _ := p.layout()
	for i, lvl := range c.levels {
		off := p.TreeOffset() + int64(starts[i])*int64(p.HashBlockSize)
		if _, err := hash.WriteAt(lvl, off); err != nil {
			return nil, fmt.Errorf("writing hash tree level %d: %w", i, err)
		}
	}
	return c.root, nil
}

// MismatchError is a block whose content does not match the tree.
type MismatchError struct {
	// Level is -1 for a data block, else the tree level of a hash block
	// (0 = the level over the data); Block is its index (data block
	// number, or block within the level).
	Level int
	Block uint64
	// Offset is the block's byte offset on its device.
	Offset int64
}

func (e *MismatchError) Error() string {
	if e.Level < 0 {
		return fmt.Sprintf("data block %d (byte %d) does not match the hash tree", e.Block, e.Offset)
	}
	return fmt.Sprintf("hash block %d of tree level %d (byte %d of the hash area's device) does not match what the data below it hashes to", e.Block, e.Level, e.Offset)
}

// ErrRootMismatch means the tree's top does not hash to the root hash given.
var ErrRootMismatch = errors.New("the hash tree does not match the root hash (a different tree, salt or disk)")

// Verify checks the data and the tree on hash against root, as
// veritysetup verify does, reading everything once. The first mismatch is
// returned as a *MismatchError (the lowest level first, then the lowest
// block), or ErrRootMismatch when only the root differs.
func Verify(data, hash io.ReaderAt, p Params, root []byte) error {
	c, err := p.compute(data, 0)
	if err != nil {
		return err
	}
	starts, _, _ := p.layout()
	perBlock := p.HashBlockSize / digestSize
	for i, lvl := range c.levels {
		off := p.TreeOffset() + int64(starts[i])*int64(p.HashBlockSize)
		disk := make([]byte, len(lvl))
		if _, err := hash.ReadAt(disk, off); err != nil {
			return fmt.Errorf("reading hash tree level %d: %w", i, err)
		}
		if bytes.Equal(disk, lvl) {
			continue
		}
		for k := 0; k*p.HashBlockSize < len(lvl); k++ {
			a, b := disk[k*p.HashBlockSize:(k+1)*p.HashBlockSize], lvl[k*p.HashBlockSize:(k+1)*p.HashBlockSize]
			if bytes.Equal(a, b) {
				continue
			}
			// The first differing digest names the block below.
			for j := 0; j < perBlock; j++ {
				if !bytes.Equal(a[j*digestSize:(j+1)*digestSize], b[j*digestSize:(j+1)*digestSize]) {
					below := uint64(k*perBlock + j)
					if i == 0 {
						return &MismatchError{Level: -1, Block: below, Offset: int64(below) * int64(p.DataBlockSize)}
					}
					return &MismatchError{Level: i - 1, Block: below, Offset: p.TreeOffset() + int64(starts[i-1]+below)*int64(p.HashBlockSize)}
				}
			}
			// Only the padding differs: the hash block itself is bad.
			return &MismatchError{Level: i, Block: uint64(k), Offset: off + int64(k)*int64(p.HashBlockSize)}
		}
	}
	if !bytes.Equal(c.root, root) {
		return ErrRootMismatch
	}
	return nil
}

// CheckRoot checks only that the tree's top block (or, for a one-block
// device, the data block) hashes to root: one block read, which tells a
// config whose root hash belongs to another disk from a disk with a
// damaged block.
func CheckRoot(data, hash io.ReaderAt, p Params, root []byte) error {
	if err := p.Check(); err != nil {
		return err
	}
	starts, _, _ := p.layout()
	var blk []byte
	var err error
	if len(starts) == 0 {
		blk = make([]byte, p.DataBlockSize)
		_, err = data.ReadAt(blk, 0)
	} else {
		blk = make([]byte, p.HashBlockSize)
		_, err = hash.ReadAt(blk, p.TreeOffset()+int64(starts[len(starts)-1])*int64(p.HashBlockSize))
	}
	if err != nil {
		return fmt.Errorf("reading the tree's top block: %w", err)
	}
	if !bytes.Equal(saltedSum(sha256.New(), p.Salt, blk, nil), root) {
		return ErrRootMismatch
	}
	return nil
}

// ReadSuperblock reads and parses the superblock at off of r.
func ReadSuperblock(r io.ReaderAt, off int64) (*Superblock, error) {
	b := make([]byte, SuperblockSize)
	if _, err := r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("reading the verity superblock at byte %d: %w", off, err)
	}
	return ParseSuperblock(b)
}
