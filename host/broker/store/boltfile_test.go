package store

import (
	"encoding/binary"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// metaPage builds a meta page as bbolt writes one.
func metaPage(pageSize uint32, root, freelist, pages, txid uint64) []byte {
	b := make([]byte, pageSize)
	le := binary.LittleEndian
	le.PutUint64(b[0:], txid%2)
	le.PutUint16(b[8:], 0x04)
	m := b[boltMetaOffset:]
	le.PutUint32(m[0:], boltMagic)
	le.PutUint32(m[4:], boltVersion)
	le.PutUint32(m[8:], pageSize)
	le.PutUint64(m[16:], root)
	le.PutUint64(m[32:], freelist)
	le.PutUint64(m[40:], pages)
	le.PutUint64(m[48:], txid)
	h := fnv.New64a()
	h.Write(m[:56])
	le.PutUint64(m[56:], h.Sum64())
	return b
}

func TestParseBoltMetaOfRealFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	s, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	txid, _ := s.TxID()
	s.Close()
	info, err := InspectBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.TxID != txid || info.PageSize == 0 || info.Damaged != "" || int64(info.Pages)*int64(info.PageSize) > info.Size {
		t.Fatalf("inspect %+v, bbolt says txid %d", info, txid)
	}
}

func TestParseBoltMetaRefuses(t *testing.T) {
	good := metaPage(4096, 3, 2, 4, 7)
	if m, err := parseBoltMeta(good); err != nil || m.TxID != 7 || m.HighPgid != 4 {
		t.Fatalf("good page: %+v %v", m, err)
	}
	for name, tc := range map[string]struct {
		page []byte
		want string
	}{
		"short":         {good[:40], "shorter"},
		"magic":         {func() []byte { b := append([]byte{}, good...); b[16] ^= 1; return b }(), "magic"},
		"checksum":      {func() []byte { b := append([]byte{}, good...); b[16+48] ^= 1; return b }(), "checksum"},
		"page size":     {metaPage(4095, 3, 2, 4, 7), "page size"},
		"root beyond":   {metaPage(4096, 9, 2, 4, 7), "root page 9"},
		"freelist gone": {metaPage(4096, 3, 5, 4, 7), "freelist page 5"},
	} {
		if _, err := parseBoltMeta(tc.page); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

func TestInspectBoltFile(t *testing.T) {
	dir := t.TempDir()
	write := func(pages ...[]byte) string {
		p := filepath.Join(dir, "f.db")
		var b []byte
		for _, pg := range pages {
			b = append(b, pg...)
		}
		os.WriteFile(p, b, 0o600)
		return p
	}
	blank := make([]byte, 4096)
	// Both metas fine, newest is page 1; file as long as it says.
	info, err := inspectBoltFile(write(metaPage(4096, 3, 2, 4, 6), metaPage(4096, 3, 2, 4, 7), blank, blank))
	if err != nil || info.Meta.TxID != 7 || info.Other.TxID != 6 {
		t.Fatalf("%+v %v", info, err)
	}
	// The newest damaged: the older is used, and the damage reported.
	bad := metaPage(4096, 3, 2, 4, 7)
	bad[100] = 1 // past the checksum: harmless
	bad[16+50] ^= 0xff
	info, err = inspectBoltFile(write(metaPage(4096, 3, 2, 4, 6), bad, blank, blank))
	if err != nil || info.Meta.TxID != 6 || !strings.Contains(info.Damaged, "meta page 1") {
		t.Fatalf("%+v %v", info, err)
	}
	// Truncated.
	if _, err := inspectBoltFile(write(metaPage(4096, 3, 2, 8, 6), metaPage(4096, 3, 2, 8, 7), blank)); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated: %v", err)
	}
	// Empty.
	if _, err := inspectBoltFile(write()); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty: %v", err)
	}
}

// FuzzParseBoltMeta: meta pages are read from files that may be damaged.
func FuzzParseBoltMeta(f *testing.F) {
	f.Add(metaPage(4096, 3, 2, 4, 7)[:128])
	f.Add(make([]byte, 80))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseBoltMeta(b)
		if err != nil {
			return
		}
		if m.Root >= m.HighPgid || (m.Freelist != noFreelist && m.Freelist >= m.HighPgid) || m.PageSize < 1024 {
			t.Fatalf("accepted an inconsistent meta page: %+v", m)
		}
	})
}
