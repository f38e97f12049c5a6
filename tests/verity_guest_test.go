package tests

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/tests/harness"
)

// TestVerityMapInGuest runs the verity package's in-guest tests as root in
// a VM: a tree made by the real veritysetup format is mapped through the
// guest kernel's dm-verity with verity.Map, read back whole, and a flipped
// bit and a wrong root hash give EIO and the corrupted status.
func TestVerityMapInGuest(t *testing.T) {
	e := harness.Setup(t)
	if _, err := exec.LookPath("veritysetup"); err != nil {
		t.Fatal("veritysetup not installed (make deps)")
	}
	const blocks, badBlock = 1024, 600
	dir := t.TempDir()
	data := make([]byte, blocks*4096)
	rand.Read(data)
	good := filepath.Join(dir, "good.img")
	if err := os.WriteFile(good, data, 0o644); err != nil {
		t.Fatal(err)
	}
	off := int64(len(data))
	out, err := exec.Command("veritysetup", "format", good, good, "--hash-offset="+strconv.FormatInt(off, 10),
		"--data-blocks="+strconv.Itoa(blocks)).CombinedOutput()
	if err != nil {
		t.Fatalf("veritysetup format: %v\n%s", err, out)
	}
	root, salt := veritysetupRoot.FindSubmatch(out), veritysetupSalt.FindSubmatch(out)
	if root == nil || salt == nil {
		t.Fatalf("no root hash or salt in:\n%s", out)
	}
	// Pad to a whole MiB so that the virtio disk has the full tree.
	padded, _ := os.ReadFile(good)
	padded = append(padded, make([]byte, (1<<20-len(padded)%(1<<20))%(1<<20))...)
	os.WriteFile(good, padded, 0o644)
	badData := append([]byte(nil), padded...)
	badData[badBlock*4096+77] ^= 0x02
	bad := filepath.Join(dir, "bad.img")
	if err := os.WriteFile(bad, badData, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	b := e.RunGuestTest(t, harness.GuestTest{
		Package: "./verity",
		Run:     "Guest",
		Disks:   []string{good, bad},
		Env: map[string]string{
			"SEALROOT_VERITY_GOOD": "/dev/vdb", "SEALROOT_VERITY_BAD": "/dev/vdc",
			"SEALROOT_VERITY_ROOT": string(root[1]), "SEALROOT_VERITY_SALT": string(salt[1]),
			"SEALROOT_VERITY_BLOCKS": strconv.Itoa(blocks), "SEALROOT_VERITY_OFFSET": strconv.FormatInt(off, 10),
			"SEALROOT_VERITY_SHA256": hex.EncodeToString(sum[:]), "SEALROOT_VERITY_BAD_BLOCK": strconv.Itoa(badBlock),
		},
		MemoryMiB: 512,
	})
	for _, sub := range []string{"veritysetup_tree", "flipped_bit", "another_root_hash"} {
		if !strings.Contains(b.Console, "--- PASS: TestGuestVerityMap/"+sub) {
			t.Errorf("%s did not pass in the guest", sub)
		}
	}
}
