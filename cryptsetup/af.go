package cryptsetup

import (
	"encoding/binary"
	"fmt"
	"hash"
	"io"
)

// The LUKS anti-forensic splitter (AF, "luks1" in LUKS2 JSON). A key of n
// bytes is stored as `stripes` blocks of n bytes: all but the last are
// random, and the last is the key XOR the diffusion of the others, so losing
// any one bit of the stored material loses the key. Diffusion hashes the
// buffer in digest-sized pieces, each piece prefixed with its big-endian
// 32-bit index.

// afDiffuse replaces buf with its diffusion under h. scratch must hold at
// least h.Size() bytes.
func afDiffuse(h hash.Hash, buf, scratch []byte) {
	ds := h.Size()
	var idx [4]byte
	for i, off := 0, 0; off < len(buf); i, off = i+1, off+ds {
		end := min(off+ds, len(buf))
		binary.BigEndian.PutUint32(idx[:], uint32(i))
		h.Reset()
		h.Write(idx[:])
		h.Write(buf[off:end])
		sum := h.Sum(scratch[:0])
		copy(buf[off:end], sum)
	}
	h.Reset()
}

// afMerge recovers the key from stripes*keyLen bytes of split material.
func afMerge(newHash func() hash.Hash, material []byte, keyLen, stripes int) ([]byte, error) {
	if keyLen <= 0 || stripes <= 0 || len(material) < keyLen*stripes {
		return nil, fmt.Errorf("%w: %d bytes of key material for %d stripes of %d bytes", ErrCorruptKeyslot, len(material), stripes, keyLen)
	}
	h := newHash()
	scratch := make([]byte, h.Size())
	defer wipe(scratch)
	key := make([]byte, keyLen)
	for i := 0; i < stripes-1; i++ {
		s := material[i*keyLen : (i+1)*keyLen]
		for j := range key {
			key[j] ^= s[j]
		}
		afDiffuse(h, key, scratch)
	}
	last := material[(stripes-1)*keyLen : stripes*keyLen]
	for j := range key {
		key[j] ^= last[j]
	}
	return key, nil
}

// afSplit spreads key over stripes blocks using randomness from rnd.
func afSplit(newHash func() hash.Hash, key []byte, stripes int, rnd io.Reader) ([]byte, error) {
	n := len(key)
	out := make([]byte, n*stripes)
	if _, err := io.ReadFull(rnd, out[:n*(stripes-1)]); err != nil {
		return nil, fmt.Errorf("reading random stripes: %w", err)
	}
	h := newHash()
	scratch := make([]byte, h.Size())
	defer wipe(scratch)
	acc := make([]byte, n)
	defer wipe(acc)
	for i := 0; i < stripes-1; i++ {
		s := out[i*n : (i+1)*n]
		for j := range acc {
			acc[j] ^= s[j]
		}
		afDiffuse(h, acc, scratch)
	}
	last := out[(stripes-1)*n:]
	for j := range last {
		last[j] = acc[j] ^ key[j]
	}
	return out, nil
}
