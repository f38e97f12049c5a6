//go:build linux

package cryptsetup_test

// In-guest dm-crypt tests: they create real mappings, so they run only in
// a VM, as root, where the lead's harness boots the compiled test binary
// (`go test -c ./cryptsetup`) as the workload with the disks attached.
//
// Contract (also in docs/luks.md):
//
//	SEALROOT_IN_GUEST=1                       enables the tests (skipped otherwise)
//	SEALROOT_TEST_MANIFEST=/path/manifest.json the testdisks manifest, readable in the guest
//	SEALROOT_TEST_DISKS=/dev/vdb,/dev/vdc,...  block devices holding the manifest's images,
//	                                           in any order (matched by LUKS UUID)
//
// The guest must have /proc, /sys and devtmpfs mounted, device-mapper
// (dm-mod, dm-crypt, xts, ecb: see cryptsetup.KernelModules) loaded or built
// in, and ext4. udev is not needed and should be absent. The host makes the
// disks and the manifest with testdisks.Generate (or
// `SEALROOT_MAKE_DISKS=DIR go test -run TestMakeGuestDisks ./cryptsetup/testdisks`).
// Run with: ./cryptsetup.test -test.v -test.run Guest
//
// Every disk is unlocked with its passphrase; the mapped device must be a
// block device node with the mapping's number, named in sysfs with
// cryptsetup's dm UUID; its first fs_size bytes must hash to fs_sha256; the
// ext4 filesystem must mount read-only and hold file_path with
// file_content; the kernel's table must carry the disk's sector size and
// persistent flags; the mapping must go away on Remove. A wrong passphrase
// must fail with ErrWrongPassphrase and leave no mapping behind.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/cryptsetup/testdisks"
	"golang.org/x/sys/unix"
)

type guestDisk struct {
	dev  string
	disk *testdisks.Disk
}

// guestDisks reads the contract's environment and pairs devices with
// manifest entries.
func guestDisks(t *testing.T) []guestDisk {
	t.Helper()
	if os.Getenv("SEALROOT_IN_GUEST") != "1" {
		t.Skip("in-guest test: set SEALROOT_IN_GUEST=1 inside the test VM")
	}
	if os.Geteuid() != 0 {
		t.Fatal("in-guest tests need root")
	}
	mpath := os.Getenv("SEALROOT_TEST_MANIFEST")
	if mpath == "" {
		t.Fatal("SEALROOT_TEST_MANIFEST is not set")
	}
	m, err := testdisks.ReadManifest(mpath)
	if err != nil {
		t.Fatal(err)
	}
	var out []guestDisk
	for _, dev := range strings.Split(os.Getenv("SEALROOT_TEST_DISKS"), ",") {
		if dev == "" {
			continue
		}
		v, err := cryptsetup.Open(dev)
		if err != nil {
			t.Fatalf("opening %s: %v", dev, err)
		}
		uuid := v.UUID()
		v.Close()
		d := m.ByUUID(uuid)
		if d == nil {
			t.Fatalf("%s has LUKS UUID %s, which is not in %s", dev, uuid, mpath)
		}
		out = append(out, guestDisk{dev, d})
	}
	if len(out) == 0 {
		t.Fatal("SEALROOT_TEST_DISKS names no disk")
	}
	return out
}

func TestGuestUnlockMatrix(t *testing.T) {
	for i, g := range guestDisks(t) {
		t.Run(g.disk.Name, func(t *testing.T) {
			name := fmt.Sprintf("sealroot-test-%d", i)
			v, err := cryptsetup.Open(g.dev)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()

			// A wrong passphrase fails cleanly and leaves nothing behind.
			if _, err := v.Unlock([]byte(g.disk.Passphrase+"x"), cryptsetup.UnlockOptions{Name: name}); !errors.Is(err, cryptsetup.ErrWrongPassphrase) {
				t.Fatalf("wrong passphrase: %v", err)
			}
			if _, err := os.Stat("/dev/mapper/" + name); err == nil {
				t.Fatal("a failed unlock left /dev/mapper/" + name)
			}

			m, err := v.Unlock([]byte(g.disk.Passphrase), cryptsetup.UnlockOptions{Name: name, ReadOnly: true})
			if err != nil {
				t.Fatalf("Unlock: %v", err)
			}
			removed := false
			defer func() {
				if !removed {
					m.Remove()
				}
			}()
			t.Logf("%s -> %s (%d:%d), keyslot %d, KDF %v", g.dev, m.Device, m.Major, m.Minor, m.Keyslot, m.KDFTime)
			if m.Keyslot != g.disk.Keyslot {
				t.Errorf("opened keyslot %d, want %d", m.Keyslot, g.disk.Keyslot)
			}

			var st unix.Stat_t
			if err := unix.Stat(m.Device, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || unix.Major(uint64(st.Rdev)) != m.Major || unix.Minor(uint64(st.Rdev)) != m.Minor {
				t.Fatalf("%s is not block device %d:%d (%v)", m.Device, m.Major, m.Minor, err)
			}
			sys := fmt.Sprintf("/sys/dev/block/%d:%d/dm/", m.Major, m.Minor)
			if b, _ := os.ReadFile(sys + "name"); strings.TrimSpace(string(b)) != name {
				t.Errorf("sysfs dm/name = %q, want %q", b, name)
			}
			if b, _ := os.ReadFile(sys + "uuid"); strings.TrimSpace(string(b)) != m.DMUUID {
				t.Errorf("sysfs dm/uuid = %q, want %q", b, m.DMUUID)
			}

			opts, err := cryptsetup.TableOptionsForTest(name)
			if err != nil {
				t.Fatal(err)
			}
			if g.disk.SectorSize != 512 && !slices.Contains(opts, fmt.Sprintf("sector_size:%d", g.disk.SectorSize)) {
				t.Errorf("table options %q lack sector_size:%d", opts, g.disk.SectorSize)
			}
			for _, f := range g.disk.Flags {
				if !slices.Contains(opts, strings.ReplaceAll(f, "-", "_")) {
					t.Errorf("table options %q lack the persistent flag %s", opts, f)
				}
			}

			// The plaintext is exactly the filesystem that was encrypted.
			f, err := os.Open(m.Device)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			_, err = io.CopyN(h, f, g.disk.FSSize)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != g.disk.FSSHA256 {
				t.Fatalf("plaintext sha256 %s, want %s", got, g.disk.FSSHA256)
			}

			dir := t.TempDir()
			if err := unix.Mount(m.Device, dir, g.disk.FSType, unix.MS_RDONLY, ""); err != nil {
				t.Fatalf("mount %s: %v", m.Device, err)
			}
			b, err := os.ReadFile(filepath.Join(dir, g.disk.FilePath))
			if uerr := unix.Unmount(dir, 0); uerr != nil {
				t.Errorf("unmount: %v", uerr)
			}
			if err != nil || string(b) != g.disk.FileContent {
				t.Fatalf("%s = %q, %v; want %q", g.disk.FilePath, b, err, g.disk.FileContent)
			}

			removed = true
			if err := m.Remove(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(sys); err == nil {
				t.Fatal("the mapping is still in sysfs after Remove")
			}
		})
	}
}

// One disk read-write with a /dev/mapper node and an extra flag; and the
// same name twice fails without harming the first mapping.
func TestGuestUnlockOptions(t *testing.T) {
	g := guestDisks(t)[0]
	v, err := cryptsetup.Open(g.dev)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	const name = "sealroot-test-opts"
	m, err := v.Unlock([]byte(g.disk.Passphrase), cryptsetup.UnlockOptions{Name: name, MapperNode: true, Flags: []string{"same-cpu-crypt"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Remove()
	var st unix.Stat_t
	if err := unix.Stat("/dev/mapper/"+name, &st); err != nil || unix.Minor(uint64(st.Rdev)) != m.Minor {
		t.Errorf("/dev/mapper/%s: %v", name, err)
	}
	if opts, err := cryptsetup.TableOptionsForTest(name); err != nil || !slices.Contains(opts, "same_cpu_crypt") {
		t.Errorf("table options %q, %v; want same_cpu_crypt", opts, err)
	}
	if _, err := v.Unlock([]byte(g.disk.Passphrase), cryptsetup.UnlockOptions{Name: name}); err == nil {
		t.Error("a second mapping with the same name was created")
	}
	if _, err := os.Stat(m.Device); err != nil {
		t.Errorf("the first mapping vanished: %v", err)
	}
	if err := m.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/dev/mapper/" + name); err == nil {
		t.Error("Remove left /dev/mapper/" + name)
	}
}

// Every disk (cryptsetup's own included) unlocks under the VolumeID of its
// header, with its LUKS2 persistent flags ignored as the init asks: the
// kernel's table then carries none of them. Another disk's VolumeID is
// refused before any key derivation.
func TestGuestBoundUnlock(t *testing.T) {
	disks := guestDisks(t)
	for i, g := range disks {
		t.Run(g.disk.Name, func(t *testing.T) {
			if strings.HasPrefix(g.disk.KDF, "argon2") && len(g.disk.Flags) == 0 {
				t.Skip("an argon2 cell without flags: its binding is checked like the pbkdf2 ones, at a few seconds more")
			}
			v, err := cryptsetup.Open(g.dev)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			id, err := v.Header().VolumeID()
			if err != nil {
				t.Fatal(err)
			}
			name := fmt.Sprintf("sealroot-bound-%d", i)
			m, err := v.Unlock([]byte(g.disk.Passphrase), cryptsetup.UnlockOptions{Name: name, ReadOnly: true, VolumeID: id, IgnoreHeaderFlags: true})
			if err != nil {
				t.Fatalf("bound unlock: %v", err)
			}
			defer m.Remove()
			opts, err := cryptsetup.TableOptionsForTest(name)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range g.disk.Flags {
				if slices.Contains(opts, strings.ReplaceAll(f, "-", "_")) {
					t.Errorf("table options %q carry the header flag %s", opts, f)
				}
				if !slices.Contains(m.IgnoredFlags, f) {
					t.Errorf("ignored flags %q lack %s", m.IgnoredFlags, f)
				}
			}
			if err := m.Remove(); err != nil {
				t.Fatal(err)
			}
			o := disks[(i+1)%len(disks)]
			ov, err := cryptsetup.Open(o.dev)
			if err != nil {
				t.Fatal(err)
			}
			oid, err := ov.Header().VolumeID()
			ov.Close()
			if err != nil || len(disks) < 2 {
				t.Skip("no second disk to bind to")
			}
			if _, err := v.Unlock([]byte(g.disk.Passphrase), cryptsetup.UnlockOptions{Name: name, VolumeID: oid}); !errors.Is(err, cryptsetup.ErrVolumeMismatch) {
				t.Fatalf("another disk's binding: %v, want ErrVolumeMismatch", err)
			}
		})
	}
}
