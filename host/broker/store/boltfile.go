package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// The checks in this file read a bbolt file's two meta pages before bbolt
// opens it: bbolt trusts them (a truncated file or a page number beyond its
// end makes it fault or panic), and their transaction ids are what the
// rollback check compares.
//
// A meta page is a 16-byte page header followed by, little-endian: magic
// u32, version u32, page size u32, flags u32, root bucket (root pgid u64,
// sequence u64), freelist pgid u64, high-water pgid u64, txid u64 and an
// FNV-64a checksum of the 56 bytes before it.

const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	boltMetaOffset = 16
	boltMetaLen    = 64 // up to and including the checksum
	noFreelist     = ^uint64(0)
)

// boltMeta is one decoded meta page.
type boltMeta struct {
	PageSize uint32
	Root     uint64
	Freelist uint64
	HighPgid uint64
	TxID     uint64
}

// parseBoltMeta decodes and checks the meta page in page (at least the
// header and the meta fields).
func parseBoltMeta(page []byte) (*boltMeta, error) {
	if len(page) < boltMetaOffset+boltMetaLen {
		return nil, errors.New("page shorter than a meta page")
	}
	m := page[boltMetaOffset : boltMetaOffset+boltMetaLen]
	le := binary.LittleEndian
	if le.Uint32(m[0:]) != boltMagic {
		return nil, errors.New("no bbolt magic")
	}
	if v := le.Uint32(m[4:]); v != boltVersion {
		return nil, fmt.Errorf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return nil, errors.New("checksum mismatch")
	}
	meta := &boltMeta{PageSize: le.Uint32(m[8:]), Root: le.Uint64(m[16:]), Freelist: le.Uint64(m[32:]),
		HighPgid: le.Uint64(m[40:]), TxID: le.Uint64(m[48:])}
	switch {
	case meta.PageSize < 1024 || meta.PageSize > 1<<16 || meta.PageSize&(meta.PageSize-1) != 0:
		return nil, fmt.Errorf("page size %d is not a power of two between 1 KiB and 64 KiB", meta.PageSize)
	case meta.HighPgid < 4 || meta.HighPgid > 1<<40:
		return nil, fmt.Errorf("high-water page %d out of range", meta.HighPgid)
	case meta.Root < 2 || meta.Root >= meta.HighPgid:
		return nil, fmt.Errorf("root page %d outside the file's %d pages", meta.Root, meta.HighPgid)
	case meta.Freelist != noFreelist && (meta.Freelist < 2 || meta.Freelist >= meta.HighPgid):
		return nil, fmt.Errorf("freelist page %d outside the file's %d pages", meta.Freelist, meta.HighPgid)
	}
	return meta, nil
}

// boltFileInfo is what the meta pages say about a file.
type boltFileInfo struct {
	Size int64
	// Meta is the meta page bbolt will use (the valid one with the higher
	// txid); Other is the other one, nil when damaged.
	Meta, Other *boltMeta
	// Damaged describes a damaged meta page, "" when both are valid.
	Damaged string
}

// inspectBoltFile checks a bbolt file's meta pages and its size against
// them. It fails on an empty file, on a file whose two meta pages are
// both damaged, and on a file shorter than its meta page says.
func inspectBoltFile(path string) (*boltFileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	info := &boltFileInfo{Size: fi.Size()}
	if info.Size == 0 {
		return info, fmt.Errorf("%s is empty (0 bytes): %w", path, ErrCorrupt)
	}
	buf := make([]byte, boltMetaOffset+boltMetaLen)
	read := func(off int64) (*boltMeta, error) {
		if _, err := f.ReadAt(buf, off); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("beyond the end of the file")
			}
			return nil, err
		}
		return parseBoltMeta(buf)
	}
	m0, err0 := read(0)
	// Meta page 1 sits one page further; without a valid page 0 try the
	// page sizes bbolt uses.
	var m1 *boltMeta
	var err1 error
	sizes := []int64{4096, 16384, 65536, 8192, 1024, 2048, 32768}
	if m0 != nil {
		sizes = []int64{int64(m0.PageSize)}
	}
	for _, ps := range sizes {
		if m1, err1 = read(ps); err1 == nil {
			break
		}
	}
	switch {
	case m0 == nil && m1 == nil:
		return info, fmt.Errorf("%s: both meta pages are damaged (page 0: %v; page 1: %v): %w", path, err0, err1, ErrCorrupt)
	case m0 == nil:
		info.Meta, info.Damaged = m1, fmt.Sprintf("meta page 0 is damaged (%v)", err0)
	case m1 == nil:
		info.Meta, info.Damaged = m0, fmt.Sprintf("meta page 1 is damaged (%v)", err1)
	case m1.TxID > m0.TxID:
		info.Meta, info.Other = m1, m0
	default:
		info.Meta, info.Other = m0, m1
	}
	need := int64(info.Meta.HighPgid) * int64(info.Meta.PageSize)
	if info.Size < need {
		return info, fmt.Errorf("%s is truncated: %d bytes, its meta page says %d pages of %d bytes (%d bytes): %w",
			path, info.Size, info.Meta.HighPgid, info.Meta.PageSize, need, ErrCorrupt)
	}
	return info, nil
}

// BoltFile describes a bbolt file as its meta pages do.
type BoltFile struct {
	Size     int64
	PageSize uint32
	// Pages is the high-water mark: the file holds at least this many.
	Pages    uint64
	Root     uint64
	Freelist uint64
	// TxID is the last transaction; it sits in meta page TxID % 2.
	TxID uint64
	// Damaged describes a damaged meta page, "" when both are sound.
	Damaged string
}

// InspectBolt reads a bbolt file's meta pages without opening it with
// bbolt; it fails as OpenBolt would on an empty, truncated or doubly
// damaged file.
func InspectBolt(path string) (*BoltFile, error) {
	info, err := inspectBoltFile(path)
	if info == nil || info.Meta == nil {
		return nil, err
	}
	m := info.Meta
	return &BoltFile{Size: info.Size, PageSize: m.PageSize, Pages: m.HighPgid, Root: m.Root, Freelist: m.Freelist,
		TxID: m.TxID, Damaged: info.Damaged}, err
}
