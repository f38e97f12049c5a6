package image

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/wire/diskconfig"
)

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (make deps)", tool)
			}
			t.Skipf("%s not installed (run make deps)", tool)
		}
	}
}

// TestBuildVerityPlain builds a plain verity image and has the real
// veritysetup verify the tree in place, with the root hash and offset the
// config records; the filesystem carries ext4's read-only feature.
func TestBuildVerityPlain(t *testing.T) {
	needTools(t, "mkfs.ext4", "debugfs", "tune2fs", "dumpe2fs", "veritysetup")
	rootfs := t.TempDir()
	os.WriteFile(filepath.Join(rootfs, "app"), []byte("#!/bin/sh\necho hi\n"), 0o755)
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc", "data"), []byte(strings.Repeat("data ", 100000)), 0o644)
	out := t.TempDir()
	res, err := Build(Options{RootfsDir: rootfs, OutDir: out, Integrity: "verity", OverlaySize: "64m",
		Config:   diskconfig.Config{TEE: "none", WorkloadID: "v", CPUs: 1, RAMMiB: 256},
		Workload: Workload{Cmd: []string{"/app"}}})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := diskconfig.ReadFooterFile(res.Disk)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := diskconfig.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Integrity != "verity" || cfg.Verity == nil || cfg.Verity.RootHash != res.RootHash || cfg.OverlaySize != "64m" {
		t.Fatalf("config %s", raw)
	}
	v := cfg.Verity
	if v.HashOffset != res.FSSize || int64(v.DataBlocks)*4096 != res.FSSize || len(v.Salt) != 64 {
		t.Fatalf("layout %+v for a %d-byte filesystem", v, res.FSSize)
	}
	cmd := exec.Command("veritysetup", "verify", res.Disk, res.Disk, v.RootHash, "--hash-offset="+strconv.FormatInt(v.HashOffset, 10))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("veritysetup verify: %v\n%s", err, b)
	}
	b, err := exec.Command("dumpe2fs", "-h", res.Disk).CombinedOutput()
	if err != nil {
		t.Fatalf("dumpe2fs: %v\n%s", err, b)
	}
	features := string(b)
	if !strings.Contains(features, "read-only") || strings.Contains(features, "has_journal") {
		t.Fatalf("filesystem features: %s", features)
	}
	// A flipped bit in the filesystem: veritysetup refuses the disk.
	f, _ := os.OpenFile(res.Disk, os.O_RDWR, 0)
	one := []byte{0}
	f.ReadAt(one, 1024+40)
	one[0] ^= 4
	f.WriteAt(one, 1024+40)
	f.Close()
	if b, err := exec.Command("veritysetup", "verify", res.Disk, res.Disk, v.RootHash, "--hash-offset="+strconv.FormatInt(v.HashOffset, 10)).CombinedOutput(); err == nil {
		t.Fatalf("veritysetup verify accepted a flipped bit:\n%s", b)
	}
}

func TestBuildIntegrityFlags(t *testing.T) {
	for _, o := range []Options{
		{Integrity: "dm-integrity"},
		{OverlaySize: "64m"},
		{Integrity: "verity", OverlaySize: "lots"},
	} {
		if _, err := checkIntegrity(o); err == nil {
			t.Errorf("%+v accepted", o)
		}
	}
}
