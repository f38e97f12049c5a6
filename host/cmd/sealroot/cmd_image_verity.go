package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/verity"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// VerityCheck is what `image check` found about a verity root's tree.
type VerityCheck struct {
	RootHash   string        `json:"root_hash"`
	DataBlocks uint64        `json:"data_blocks"`
	HashOffset int64         `json:"hash_offset"`
	Superblock bool          `json:"superblock"` // the payload carries a matching veritysetup superblock
	Took       time.Duration `json:"took_ns"`
}

// footerConfig reads and parses an image's footer config.
func footerConfig(path string) (*diskconfig.Config, error) {
	raw, err := diskconfig.ReadFooterFile(path)
	if err != nil {
		return nil, err
	}
	return diskconfig.Parse(raw)
}

// checkVerityTree verifies the whole tree of a verity root offline over
// payload (the decrypted LUKS payload, or the plain disk) against the root
// hash of the config, as the guest's dm-verity would block by block.
func checkVerityTree(cfg *diskconfig.Config, payload io.ReaderAt) (*VerityCheck, error) {
	p, root, err := verity.FromConfig(cfg.Verity)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	res := &VerityCheck{RootHash: cfg.Verity.RootHash, DataBlocks: p.DataBlocks, HashOffset: p.HashOffset}
	if sb, err := verity.ReadSuperblock(payload, p.HashOffset); err == nil {
		q := sb.Params(p.HashOffset)
		res.Superblock = q.DataBlocks == p.DataBlocks && string(q.Salt) == string(p.Salt) &&
			q.DataBlockSize == p.DataBlockSize && q.HashBlockSize == p.HashBlockSize
	}
	if err := verity.Verify(payload, payload, p, root); err != nil {
		var me *verity.MismatchError
		if errors.As(err, &me) || errors.Is(err, verity.ErrRootMismatch) {
			return res, fmt.Errorf("verity: %w", err)
		}
		return res, fmt.Errorf("verity: verifying the tree: %w", err)
	}
	res.Took = time.Since(t0)
	return res, nil
}

// checkPlainVerity is `image check` of an unencrypted verity image: no
// passphrase, the tree is verified on the disk itself.
func checkPlainVerity(path string) (*VerityCheck, error) {
	cfg, err := footerConfig(path)
	if err != nil {
		return nil, err
	}
	if cfg.Integrity != diskconfig.IntegrityVerity {
		return nil, usageError("%s is neither encrypted nor a verity image: nothing to check without --passphrase-file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return checkVerityTree(cfg, f)
}

// checkEncryptedVerity verifies the tree inside an unlocked payload, when
// the image's config has one; nil otherwise.
func checkEncryptedVerity(v *cryptsetup.Volume, pass []byte, o cryptsetup.UnlockOptions) (*VerityCheck, error) {
	cfg, err := footerConfig(v.Path())
	if err != nil || cfg.Integrity != diskconfig.IntegrityVerity {
		return nil, nil // Check already judged the footer's absence
	}
	r, err := v.OpenPayload(context.Background(), pass, o)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return checkVerityTree(cfg, r)
}

func printVerityCheck(out io.Writer, path string, vc *VerityCheck) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "image:\t%s\n", path)
	printVerityLine(w, vc)
	fmt.Fprintf(w, "result:\tOK\n")
}

func printVerityLine(w io.Writer, vc *VerityCheck) {
	sb := "no veritysetup superblock"
	if vc.Superblock {
		sb = "veritysetup superblock matches"
	}
	fmt.Fprintf(w, "verity:\t%d data blocks and the tree at payload byte %d match root hash %s (%s; %v)\n",
		vc.DataBlocks, vc.HashOffset, vc.RootHash, sb, vc.Took.Round(time.Millisecond))
}

// printIntegrity adds the integrity lines of image inspect.
func printIntegrity(w io.Writer, c *diskconfig.Config) {
	if c.Integrity != diskconfig.IntegrityVerity || c.Verity == nil {
		fmt.Fprintf(w, "integrity:\tnone (a writable root)\n")
		return
	}
	v := c.Verity
	fmt.Fprintf(w, "integrity:\tverity, root hash %s\n", v.RootHash)
	fmt.Fprintf(w, "\t%s, %d data blocks of %d bytes, tree (%d-byte blocks) at payload byte %d, salt %s\n",
		v.HashAlgorithm, v.DataBlocks, v.DataBlockSize, v.HashBlockSize, v.HashOffset, orNone(v.Salt))
	fmt.Fprintf(w, "\twritable layer: tmpfs of %s\n", c.Overlay())
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
