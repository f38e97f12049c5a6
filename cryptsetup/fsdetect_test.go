package cryptsetup

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestDetectFSSynthetic(t *testing.T) {
	le, be := binary.LittleEndian, binary.BigEndian
	img := func(f func(b []byte)) []byte { b := make([]byte, fsProbeSize); f(b); return b }
	for _, tc := range []struct {
		name string
		b    []byte
		want Filesystem
	}{
		{"ext2", img(func(b []byte) {
			le.PutUint16(b[1080:], 0xEF53)
			le.PutUint32(b[1024+4:], 2048)
			copy(b[1024+0x78:], "boot")
		}), Filesystem{Type: "ext2", Label: "boot", BlockSize: 1024, Size: 2 << 20}},
		{"ext3", img(func(b []byte) {
			le.PutUint16(b[1080:], 0xEF53)
			le.PutUint32(b[1024+0x5C:], 0x4)
			le.PutUint32(b[1024+24:], 2)
			le.PutUint32(b[1024+4:], 256)
		}), Filesystem{Type: "ext3", BlockSize: 4096, Size: 1 << 20}},
		{"ext4 64bit", img(func(b []byte) {
			le.PutUint16(b[1080:], 0xEF53)
			le.PutUint32(b[1024+0x60:], 0x80)
			le.PutUint32(b[1024+24:], 2)
			le.PutUint32(b[1024+0x150:], 1)
			copy(b[1024+0x68:], []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
		}), Filesystem{Type: "ext4", UUID: "01020304-0506-0708-090a-0b0c0d0e0f10", BlockSize: 4096, Size: 1 << 32 * 4096}},
		{"xfs", img(func(b []byte) {
			copy(b, "XFSB")
			be.PutUint32(b[4:], 4096)
			be.PutUint64(b[8:], 100)
			copy(b[108:], "data")
		}), Filesystem{Type: "xfs", Label: "data", BlockSize: 4096, Size: 409600}},
		{"btrfs", img(func(b []byte) {
			copy(b[0x10040:], "_BHRfS_M")
			le.PutUint64(b[0x10070:], 1<<30)
			le.PutUint32(b[0x10090:], 4096)
		}), Filesystem{Type: "btrfs", BlockSize: 4096, Size: 1 << 30}},
		{"squashfs", img(func(b []byte) {
			copy(b, "hsqs")
			le.PutUint32(b[12:], 131072)
			le.PutUint64(b[40:], 5000)
		}), Filesystem{Type: "squashfs", BlockSize: 131072, Size: 5000}},
		{"erofs", img(func(b []byte) {
			le.PutUint32(b[1024:], 0xE0F5E1E2)
			b[1024+12] = 12
			le.PutUint32(b[1024+36:], 10)
		}), Filesystem{Type: "erofs", BlockSize: 4096, Size: 40960}},
		{"iso9660", img(func(b []byte) { copy(b[0x8001:], "CD001") }), Filesystem{Type: "iso9660"}},
		{"vfat", img(func(b []byte) { b[510], b[511] = 0x55, 0xAA; copy(b[82:], "FAT32   "); le.PutUint16(b[11:], 512) }), Filesystem{Type: "vfat", BlockSize: 512}},
		{"swap", img(func(b []byte) { copy(b[4096-10:], "SWAPSPACE2") }), Filesystem{Type: "swap", BlockSize: 4096}},
	} {
		got := detectFS(tc.b)
		if got == nil || *got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
	if fs := detectFS(make([]byte, fsProbeSize)); fs != nil {
		t.Errorf("zeros detected as %+v", fs)
	}
	if fs := detectFS(make([]byte, 100)); fs != nil {
		t.Errorf("short buffer detected as %+v", fs)
	}
}

// A real mkfs.ext4 image is recognised with its size, label and UUID.
func TestDetectFSRealExt4(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		if mkfs = "/usr/sbin/mkfs.ext4"; func() bool { _, err := os.Stat(mkfs); return err != nil }() {
			t.Skip("mkfs.ext4 is not installed")
		}
	}
	p := filepath.Join(t.TempDir(), "fs.img")
	uuid := "3f1e2d4c-5b6a-4798-8a9b-0c1d2e3f4a5b"
	if out, err := exec.Command(mkfs, "-q", "-F", "-L", "lbl", "-U", uuid, p, "6M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	b, _ := os.ReadFile(p)
	fs := detectFS(b[:fsProbeSize])
	if fs == nil || fs.Type != "ext4" || fs.Label != "lbl" || fs.UUID != uuid || fs.Size != 6<<20 {
		t.Fatalf("detected %+v", fs)
	}
}

func FuzzDetectFS(f *testing.F) {
	b := make([]byte, 2048)
	binary.LittleEndian.PutUint16(b[1080:], 0xEF53)
	f.Add(b)
	f.Add([]byte("XFSB\x00\x00\x10\x00"))
	f.Add([]byte("hsqs"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if fs := detectFS(b); fs != nil && (fs.Type == "" || fs.Size < 0 || fs.BlockSize < 0) {
			t.Fatalf("detected %+v", fs)
		}
	})
}
