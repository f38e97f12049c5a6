package tests

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup/testdisks"
	"github.com/sealroot/sealroot/tests/harness"
)

// TestLUKSMatrixInGuest runs cryptsetup's in-guest tests as root in a VM:
// every cell of the compatibility matrix (volumes made by the real
// cryptsetup and by our own format) is unlocked through the guest kernel's
// dm-crypt, its ext4 mounted and a known file read back.
func TestLUKSMatrixInGuest(t *testing.T) {
	e := harness.Setup(t)
	dir := t.TempDir()
	m, err := testdisks.Generate(dir, testdisks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var disks, devs []string
	for i, d := range m.Disks {
		disks = append(disks, filepath.Join(dir, d.File))
		devs = append(devs, fmt.Sprintf("/dev/vd%c", 'b'+i))
	}
	b := e.RunGuestTest(t, harness.GuestTest{
		Package: "./cryptsetup",
		Run:     "Guest",
		Disks:   disks,
		Env: map[string]string{
			"SEALROOT_TEST_MANIFEST": "/manifest.json",
			"SEALROOT_TEST_DISKS":    strings.Join(devs, ","),
		},
		Files:     map[string]string{"/manifest.json": filepath.Join(dir, testdisks.ManifestName)},
		MemoryMiB: 1024,
	})
	for _, d := range m.Disks {
		if !strings.Contains(b.Console, "--- PASS: TestGuestUnlockMatrix/"+d.Name) {
			t.Errorf("cell %s did not pass in the guest", d.Name)
		}
		skipped := strings.HasPrefix(d.KDF, "argon2") && len(d.Flags) == 0 // the guest test's own rule
		if !skipped && !strings.Contains(b.Console, "--- PASS: TestGuestBoundUnlock/"+d.Name) {
			t.Errorf("cell %s did not unlock under its root_volume binding in the guest", d.Name)
		}
	}
}
