// Package verity builds and verifies dm-verity hash trees in pure Go, in
// the on-disk format veritysetup writes and the kernel's dm-verity target
// reads: hash format version 1, SHA-256, salted, with veritysetup's
// 512-byte superblock in the first hash block. Build makes a tree over a
// data image; Verify checks a data image against a tree and a root hash
// offline, naming the first block that does not match; Table renders the
// device-mapper table the guest loads (dm_linux.go maps it).
//
// The tree (format 1): each data block is hashed as SHA-256(salt || block);
// the digests, each padded to a power of two bytes (32 for SHA-256), are
// packed into hash blocks, zero-filled at the end; each upper level hashes
// the blocks of the level below the same way, until a level fits in one
// block, whose salted hash is the root hash. The levels are stored from the
// top (the single block under the root) down to the level over the data,
// starting one hash block after the superblock. docs/integrity.md describes
// the layout inside a sealroot image.
package verity
