package image

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"github.com/sealroot/sealroot/verity"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// VerityFormat writes a dm-verity hash area (superblock and tree) for the
// first dataSize bytes of f at hashOffset of f and returns the tree as the
// config records it. BuildVerity is the default; a test can format with
// the real veritysetup instead.
type VerityFormat func(f *os.File, dataSize, hashOffset int64) (*diskconfig.Verity, error)

// BuildVerity builds the tree with sealroot's own builder: format 1,
// SHA-256, 4 KiB blocks, a fresh 32-byte salt.
func BuildVerity(f *os.File, dataSize, hashOffset int64) (*diskconfig.Verity, error) {
	p, err := verity.NewParams(dataSize, hashOffset)
	if err != nil {
		return nil, err
	}
	root, err := verity.Build(f, f, p, verity.BuildOptions{})
	if err != nil {
		return nil, err
	}
	return verity.ToConfig(p, root), nil
}

// checkIntegrity validates the integrity options and says whether the root
// gets a verity tree.
func checkIntegrity(o Options) (bool, error) {
	switch o.Integrity {
	case "", diskconfig.IntegrityNone:
		if o.OverlaySize != "" {
			return false, errors.New("an overlay size applies to a verity root only (--integrity verity)")
		}
		return false, nil
	case diskconfig.IntegrityVerity:
		return true, diskconfig.ValidateOverlaySize(o.OverlaySize)
	}
	return false, fmt.Errorf("integrity %q: want none or verity", o.Integrity)
}

// mkfsFeatures are the extra mkfs.ext4 options of a root: a verity root is
// never written, so it carries no journal.
func mkfsFeatures(verityRoot bool) []string {
	if verityRoot {
		return []string{"-O", "^has_journal"}
	}
	return nil
}

// appendVerity marks the filesystem read-only (ext4's read-only feature:
// the kernel refuses to mount it writable) and appends the hash area right
// after it, so the payload is [filesystem][verity superblock][tree]. It
// returns the tree and the payload size, a multiple of 4096.
func appendVerity(fsPath string, fsSize int64, format VerityFormat, log *slog.Logger) (*diskconfig.Verity, int64, error) {
	if out, err := exec.Command("tune2fs", "-O", "read-only", fsPath).CombinedOutput(); err != nil {
		return nil, 0, fmt.Errorf("tune2fs -O read-only: %w: %s", err, strings.TrimSpace(string(out)))
	}
	f, err := os.OpenFile(fsPath, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if format == nil {
		format = BuildVerity
	}
	log.Info("building the dm-verity tree", "size_mib", fsSize>>20)
	v, err := format(f, fsSize, fsSize)
	if err != nil {
		return nil, 0, fmt.Errorf("building the verity tree: %w", err)
	}
	p, _, err := verity.FromConfig(v)
	if err != nil {
		return nil, 0, fmt.Errorf("the verity tree built: %w", err)
	}
	if p.DataSize() != fsSize {
		return nil, 0, fmt.Errorf("the verity tree covers %d bytes, the filesystem is %d", p.DataSize(), fsSize)
	}
	size := (p.HashOffset + p.HashAreaSize() + 4095) &^ 4095
	if err := f.Truncate(size); err != nil {
		return nil, 0, err
	}
	if err := f.Sync(); err != nil {
		return nil, 0, err
	}
	log.Info("built the dm-verity tree", "root_hash", v.RootHash, "tree_kib", p.HashAreaSize()>>10)
	return v, size, nil
}
