package tests

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/tests/harness"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

// dataSize is the size of /data in the verity test images; the tests
// damage its block dataBlock, far from the blocks that probing and
// mounting the filesystem read, so that the workload is the one to read it.
const (
	dataSize  = 1 << 20
	dataBlock = 200
)

// dataOf is /data's content for an image version.
func dataOf(version string) []byte {
	return bytes.Repeat([]byte(fmt.Sprintf("%-16s", "version "+version)), dataSize/16)
}

// verityRootfs holds the rootcheck workload and /data of the version.
func verityRootfs(t testing.TB, e *harness.Env, version string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rootfs")
	e.GoBuild(t, "./tests/testprogs/rootcheck", filepath.Join(dir, "rootcheck"))
	if err := os.WriteFile(filepath.Join(dir, "data"), dataOf(version), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

var rootcheckWorkload = image.Workload{Cmd: []string{"/rootcheck"}}

// assertRootcheck checks a successful run of rootcheck over /data of the
// version: the lower root read, the overlay written.
func assertRootcheck(t *testing.T, b *harness.Boot, version string) {
	t.Helper()
	if b.Status != 5 {
		t.Fatalf("status %d (%s), want the workload's 5", b.Status, b.Reason)
	}
	want := fmt.Sprintf("rootcheck: /data sha256=%x", sha256.Sum256(dataOf(version)))
	for _, s := range []string{want, "rootcheck: / is overlay", `wrote /written="written by the workload" /data="replaced"`} {
		if !strings.Contains(b.Console, s) {
			t.Errorf("console lacks %q", s)
		}
	}
	if ev, ok := b.Phase("verity"); !ok || ev.Detail["integrity"] != "verity" {
		t.Errorf("verity phase %+v", ev)
	}
}

// assertIntegrityStop checks that the guest stopped with the integrity
// status, one console line saying so, and no workload output from /data.
func assertIntegrityStop(t *testing.T, b *harness.Boot, damaged int64) {
	t.Helper()
	if b.Status != event.StatusIntegrity {
		t.Fatalf("status %d (%s), want %d", b.Status, b.Reason, event.StatusIntegrity)
	}
	ev, ok := b.Error()
	if !ok || !strings.Contains(ev.Message, "does not match the attested hash tree") {
		t.Fatalf("error event %+v", ev)
	}
	if n := strings.Count(b.Console, "does not match the attested hash tree"); n != 1 {
		t.Errorf("%d console lines about the corruption, want 1", n)
	}
	if strings.Contains(b.Console, "rootcheck: /data sha256=") {
		t.Error("the workload printed a digest of corrupted data")
	}
	// The workload may print its I/O error before the init stops it, or
	// be stopped first; either way it printed nothing read from /data.
	if !strings.Contains(ev.Message, fmt.Sprintf("data block %d is corrupted", damaged)) {
		t.Errorf("the console line does not name the damaged block %d", damaged)
	}
}

// seededRand is a deterministic randomness source: two builds with the
// same seed share their LUKS volume key, as two versions of one image
// whose key the tenant kept.
func seededRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// encryptedVerityImage builds a LUKS2 verity image for the simulated TEE.
func encryptedVerityImage(t testing.TB, e *harness.Env, id, version string, seed byte, pass []byte) *image.Result {
	t.Helper()
	img, err := image.Build(image.Options{
		RootfsDir: verityRootfs(t, e, version), OutDir: t.TempDir(), Passphrase: pass,
		Encrypt: func(dst *os.File, src io.Reader, size int64, p []byte) (int64, error) {
			fo := cryptsetup.FormatOptions{GeneratedPassphrase: true, GuestRAMMiB: 512, GuestCPUs: 1, Rand: seededRand(seed)}
			return cryptsetup.FormatLUKS2(dst, src, size, p, fo)
		},
		Config: diskconfig.Config{TEE: "sim", WorkloadID: id, CPUs: 1, RAMMiB: 512,
			AttestationURL: "http://" + guestBroker},
		Workload:  rootcheckWorkload,
		Integrity: "verity", OverlaySize: "32m",
	})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// dataBlockOffset finds block dataBlock of /data in the decrypted payload
// of an encrypted image (debugfs on the plaintext) and returns its byte
// offset in the disk file and its filesystem block number.
func dataBlockOffset(t *testing.T, img *image.Result, pass []byte) (int64, int64) {
	t.Helper()
	v, err := cryptsetup.Open(img.Disk)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	r, err := v.OpenPayload(context.Background(), pass, cryptsetup.UnlockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	plain := filepath.Join(t.TempDir(), "fs")
	f, _ := os.Create(plain)
	_, err = io.Copy(f, io.NewSectionReader(r, 0, img.FSSize))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("debugfs", "-R", fmt.Sprintf("bmap /data %d", dataBlock), plain).Output()
	if err != nil {
		t.Fatalf("debugfs bmap: %v", err)
	}
	blk, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || blk <= 0 {
		t.Fatalf("debugfs bmap /data %d: %q", dataBlock, out)
	}
	off, _, err := v.Payload()
	if err != nil {
		t.Fatal(err)
	}
	return off + blk*4096, blk
}

func patchFile(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readBlock(t *testing.T, path string, off int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 4096)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// TestVerityAttestedRoot boots a sim-attested verity+LUKS2 image, then the
// same disk with one flipped ciphertext bit in a block of /data, then a
// newer build of the image (same volume key) with that block replayed
// from the older build. The first runs the workload on an overlay over
// the read-only root; the other two stop with the integrity status
// before the workload prints anything read from /data.
func TestVerityAttestedRoot(t *testing.T) {
	e := harness.Setup(t)
	pass, err := cryptsetup.GeneratePassphrase()
	if err != nil {
		t.Fatal(err)
	}
	v1 := encryptedVerityImage(t, e, "e2e-verity-v1", "1", 42, pass)
	v2 := encryptedVerityImage(t, e, "e2e-verity-v2", "2", 42, pass)
	br := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t))
	defer br.Stop()
	boot := func(t *testing.T, img *image.Result, disk string) *harness.Boot {
		o := simLaunch(t, e, img, br.Addr, 0)
		o.Disk = disk
		return e.Boot(t, o)
	}
	m := launchMeasurement(t, e, simLaunch(t, e, v1, br.Addr, 0))
	register(t, br, "e2e-verity-v1", v1, m, pass)
	register(t, br, "e2e-verity-v2", v2, m, pass)

	t.Run("intact", func(t *testing.T) {
		b := boot(t, v1, v1.Disk)
		assertRootcheck(t, b, "1")
		harness.AssertNoSecret(t, pass, map[string]string{"console": b.Console})
	})
	t.Run("flipped ciphertext bit", func(t *testing.T) {
		disk := copyFile(t, v1.Disk)
		off, fsBlock := dataBlockOffset(t, v1, pass)
		blk := readBlock(t, disk, off)
		blk[100] ^= 0x10
		patchFile(t, disk, off, blk)
		assertIntegrityStop(t, boot(t, v1, disk), fsBlock)
	})
	t.Run("block replayed from an older build", func(t *testing.T) {
		disk := copyFile(t, v2.Disk)
		off, fsBlock := dataBlockOffset(t, v2, pass)
		if old, _ := dataBlockOffset(t, v1, pass); off != old {
			t.Fatalf("/data moved between the builds; the replay would not hit it")
		}
		old := readBlock(t, v1.Disk, off)
		if bytes.Equal(old, readBlock(t, disk, off)) {
			t.Fatal("the two builds have the same ciphertext at /data: no replay to test")
		}
		patchFile(t, disk, off, old)
		assertIntegrityStop(t, boot(t, v2, disk), fsBlock)
	})
}

// TestVerityPlainRoot covers plain (public) verity images: a tree built by
// the real veritysetup format boots with its layout recorded in the
// config, and a config whose root hash does not match the disk's tree is
// refused before anything is mounted.
func TestVerityPlainRoot(t *testing.T) {
	e := harness.Setup(t)
	if _, err := exec.LookPath("veritysetup"); err != nil {
		t.Fatal("veritysetup not installed (make deps)")
	}
	build := func(t *testing.T, format image.VerityFormat) *image.Result {
		img, err := image.Build(image.Options{RootfsDir: verityRootfs(t, e, "plain"), OutDir: t.TempDir(),
			Config: plainConfig(), Workload: rootcheckWorkload, Integrity: "verity", VerityFormat: format})
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	t.Run("tree from veritysetup format", func(t *testing.T) {
		img := build(t, veritysetupFormat)
		b := e.Boot(t, launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512})
		assertRootcheck(t, b, "plain")
	})
	t.Run("config of another tree", func(t *testing.T) {
		img := build(t, nil)
		other := build(t, nil)
		cfg := *img.Config
		cfg.Verity = other.Config.Verity // a valid config, for another disk
		raw, err := cfg.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(img.Disk, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		end := img.Size - int64(len(img.ConfigJSON)) - 12
		total, err := diskconfig.AppendFooter(f, end, raw)
		if err == nil {
			err = f.Truncate(total)
		}
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		b := e.Boot(t, launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512})
		if b.Status != event.StatusIntegrity {
			t.Fatalf("status %d (%s), want %d", b.Status, b.Reason, event.StatusIntegrity)
		}
		if ev, _ := b.Error(); ev.Phase != "verity" || !strings.Contains(ev.Message, "does not match the hash tree") {
			t.Fatalf("error event %+v", ev)
		}
		if strings.Contains(b.Console, "rootcheck:") {
			t.Fatal("the workload ran")
		}
	})
}

var veritysetupRoot = regexp.MustCompile(`(?m)^Root hash:\s+([0-9a-f]{64})$`)
var veritysetupSalt = regexp.MustCompile(`(?m)^Salt:\s+([0-9a-f]+)$`)

// veritysetupFormat is an image.VerityFormat that runs the real
// veritysetup format in place, with 4 KiB blocks and its own salt.
func veritysetupFormat(f *os.File, dataSize, hashOffset int64) (*diskconfig.Verity, error) {
	out, err := exec.Command("veritysetup", "format", f.Name(), f.Name(),
		"--data-blocks="+strconv.FormatInt(dataSize/4096, 10), "--hash-offset="+strconv.FormatInt(hashOffset, 10)).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("veritysetup format: %w: %s", err, out)
	}
	root, salt := veritysetupRoot.FindSubmatch(out), veritysetupSalt.FindSubmatch(out)
	if root == nil || salt == nil {
		return nil, fmt.Errorf("veritysetup format printed no root hash or salt:\n%s", out)
	}
	if _, err := hex.DecodeString(string(salt[1])); err != nil {
		return nil, err
	}
	return &diskconfig.Verity{RootHash: string(root[1]), Salt: string(salt[1]), HashAlgorithm: "sha256",
		DataBlockSize: 4096, HashBlockSize: 4096, DataBlocks: uint64(dataSize / 4096), HashOffset: hashOffset}, nil
}
