package cryptsetup

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// Filesystem is what a superblock says about the filesystem it starts.
type Filesystem struct {
	// Type is ext2, ext3, ext4, xfs, btrfs, squashfs, erofs, vfat,
	// iso9660 or swap.
	Type  string `json:"type"`
	UUID  string `json:"uuid,omitempty"`
	Label string `json:"label,omitempty"`
	// BlockSize is the filesystem block size, when the superblock has one.
	BlockSize int `json:"block_size,omitempty"`
	// Size is the length the filesystem claims, or 0 when unknown.
	Size int64 `json:"size,omitempty"`
}

// fsProbeSize is how much of a device detectFS wants to see: enough for
// the btrfs superblock at 64 KiB and the ISO 9660 descriptor at 32 KiB.
const fsProbeSize = 128 << 10

// detectFS recognises a filesystem from the first bytes of a device. It
// returns nil when nothing matches. b may be shorter than fsProbeSize.
func detectFS(b []byte) *Filesystem {
	le := binary.LittleEndian
	at := func(off, n int) []byte {
		if off < 0 || n < 0 || off+n > len(b) {
			return nil
		}
		return b[off : off+n]
	}
	// ext2/3/4: superblock at 1024, magic 0xEF53 at 1024+56.
	if s := at(1024, 1024); s != nil && le.Uint16(s[56:]) == 0xEF53 {
		fs := &Filesystem{Type: "ext2", UUID: formatUUID(s[0x68:0x78]), Label: cString(s[0x78:0x88])}
		compat, incompat, roCompat := le.Uint32(s[0x5C:]), le.Uint32(s[0x60:]), le.Uint32(s[0x64:])
		switch {
		case incompat&(0x40|0x80|0x200) != 0 || roCompat&(0x8|0x10|0x20|0x40|0x400) != 0:
			fs.Type = "ext4" // extents, 64bit, flex_bg; huge_file, gdt_csum, dir_nlink, extra_isize, metadata_csum
		case compat&0x4 != 0:
			fs.Type = "ext3" // has_journal
		}
		if lg := le.Uint32(s[24:]); lg <= 6 {
			fs.BlockSize = 1024 << lg
			blocks := uint64(le.Uint32(s[4:]))
			if incompat&0x80 != 0 {
				blocks |= uint64(le.Uint32(s[0x150:])) << 32
			}
			if blocks < 1<<50 {
				fs.Size = int64(blocks) * int64(fs.BlockSize)
			}
		}
		return fs
	}
	be := binary.BigEndian
	if s := at(0, 120); s != nil && string(s[:4]) == "XFSB" {
		fs := &Filesystem{Type: "xfs", UUID: formatUUID(s[32:48]), Label: cString(s[108:120])}
		bs, blocks := be.Uint32(s[4:]), be.Uint64(s[8:])
		if bs >= 512 && bs <= 65536 && blocks < 1<<48 {
			fs.BlockSize, fs.Size = int(bs), int64(blocks)*int64(bs)
		}
		return fs
	}
	if s := at(0x10000, 0x22b); s != nil && string(s[0x40:0x48]) == "_BHRfS_M" {
		fs := &Filesystem{Type: "btrfs", UUID: formatUUID(s[0x20:0x30]), Label: cString(s[0x12b:0x22b])}
		if total := le.Uint64(s[0x70:]); total < 1<<60 {
			fs.Size = int64(total)
		}
		if ss := le.Uint32(s[0x90:]); ss >= 512 && ss <= 65536 {
			fs.BlockSize = int(ss)
		}
		return fs
	}
	if s := at(0, 48); s != nil && string(s[:4]) == "hsqs" {
		fs := &Filesystem{Type: "squashfs"}
		if bs := le.Uint32(s[12:]); bs <= 1<<20 {
			fs.BlockSize = int(bs)
		}
		if used := le.Uint64(s[40:]); used < 1<<60 {
			fs.Size = int64(used)
		}
		return fs
	}
	if s := at(1024, 128); s != nil && le.Uint32(s) == 0xE0F5E1E2 {
		fs := &Filesystem{Type: "erofs", UUID: formatUUID(s[48:64]), Label: cString(s[64:80])}
		if bits := s[12]; bits >= 9 && bits <= 16 {
			fs.BlockSize = 1 << bits
			fs.Size = int64(le.Uint32(s[36:])) << bits
		}
		return fs
	}
	if s := at(0x8001, 5); s != nil && string(s) == "CD001" {
		return &Filesystem{Type: "iso9660"}
	}
	if s := at(0, 512); s != nil && s[510] == 0x55 && s[511] == 0xAA &&
		(bytes.HasPrefix(s[54:], []byte("FAT")) || bytes.HasPrefix(s[82:], []byte("FAT32"))) {
		return &Filesystem{Type: "vfat", BlockSize: int(le.Uint16(s[11:]))}
	}
	for _, page := range []int{4096, 8192, 16384, 65536} {
		if s := at(page-10, 10); s != nil && (string(s) == "SWAPSPACE2" || string(s) == "SWAP-SPACE") {
			return &Filesystem{Type: "swap", BlockSize: page}
		}
	}
	return nil
}

// formatUUID renders 16 bytes as a UUID, or "" for all zeros.
func formatUUID(b []byte) string {
	if len(b) != 16 || bytes.Equal(b, make([]byte, 16)) {
		return ""
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
