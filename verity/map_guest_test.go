//go:build linux

package verity_test

// In-guest dm-verity tests: they load real verity tables, so they run only
// in a VM as root (tests/verity_guest_test.go boots the compiled test
// binary with the disks attached). Contract:
//
//	SEALROOT_IN_GUEST=1                 enables the tests (skipped otherwise)
//	SEALROOT_VERITY_GOOD=/dev/vdb       data with a tree veritysetup format appended
//	SEALROOT_VERITY_BAD=/dev/vdc        the same with one bit flipped in data block BAD_BLOCK
//	SEALROOT_VERITY_ROOT, _SALT         hex root hash and salt veritysetup printed
//	SEALROOT_VERITY_BLOCKS, _OFFSET     data blocks and hash offset (bytes)
//	SEALROOT_VERITY_SHA256              SHA-256 of the good disk's data blocks
//	SEALROOT_VERITY_BAD_BLOCK           the damaged block of the bad disk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/sealroot/sealroot/verity"
	"golang.org/x/sys/unix"
)

func guestParams(t *testing.T) (verity.Params, []byte) {
	t.Helper()
	if os.Getenv("SEALROOT_IN_GUEST") != "1" {
		t.Skip("runs in the guest only (tests/verity_guest_test.go)")
	}
	root, err1 := hex.DecodeString(os.Getenv("SEALROOT_VERITY_ROOT"))
	salt, err2 := hex.DecodeString(os.Getenv("SEALROOT_VERITY_SALT"))
	blocks, err3 := strconv.ParseUint(os.Getenv("SEALROOT_VERITY_BLOCKS"), 10, 64)
	off, err4 := strconv.ParseInt(os.Getenv("SEALROOT_VERITY_OFFSET"), 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		t.Fatalf("guest test environment: %v", err)
	}
	return verity.Params{HashType: 1, Algorithm: "sha256", DataBlockSize: 4096, HashBlockSize: 4096,
		DataBlocks: blocks, Salt: salt, HashOffset: off}, root
}

// readBlock reads data block n with O_DIRECT (no readahead of the
// neighbours) into a page-aligned buffer.
func readBlock(dev string, n int64) error {
	f, err := os.OpenFile(dev, os.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(buf)
	_, err = f.ReadAt(buf, n*4096)
	return err
}

func TestGuestVerityMap(t *testing.T) {
	p, root := guestParams(t)
	good := os.Getenv("SEALROOT_VERITY_GOOD")
	bad := os.Getenv("SEALROOT_VERITY_BAD")
	badBlock, _ := strconv.ParseInt(os.Getenv("SEALROOT_VERITY_BAD_BLOCK"), 10, 64)

	t.Run("veritysetup tree", func(t *testing.T) {
		m, err := verity.Map("vt-good", good, good, p, root)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Remove()
		f, err := os.Open(m.Device)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil || n != p.DataSize() {
			t.Fatalf("read %d of %d bytes through dm-verity: %v", n, p.DataSize(), err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != os.Getenv("SEALROOT_VERITY_SHA256") {
			t.Fatalf("data through dm-verity hashes to %s", got)
		}
		if c, err := m.Corrupted(); c || err != nil {
			t.Fatalf("Corrupted after a clean read: %v, %v", c, err)
		}
	})
	t.Run("flipped bit", func(t *testing.T) {
		m, err := verity.Map("vt-bad", bad, bad, p, root)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Remove()
		if c, _ := m.Corrupted(); c {
			t.Fatal("corrupted before any read")
		}
		if err := readBlock(m.Device, badBlock-1); err != nil {
			t.Fatalf("the block before the damaged one: %v", err)
		}
		if err := readBlock(m.Device, badBlock); !errors.Is(err, unix.EIO) {
			t.Fatalf("reading the damaged block: %v, want EIO", err)
		}
		if c, err := m.Corrupted(); !c || err != nil {
			t.Fatalf("Corrupted after reading the damaged block: %v, %v", c, err)
		}
	})
	t.Run("another root hash", func(t *testing.T) {
		other := append([]byte(nil), root...)
		other[31] ^= 1
		m, err := verity.Map("vt-other", good, good, p, other)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Remove()
		if err := readBlock(m.Device, 0); !errors.Is(err, unix.EIO) {
			t.Fatalf("reading under another root hash: %v, want EIO", err)
		}
		f, _ := os.Open(good)
		defer f.Close()
		if err := verity.CheckRoot(f, f, p, other); !errors.Is(err, verity.ErrRootMismatch) {
			t.Fatalf("CheckRoot: %v", err)
		}
	})
}
