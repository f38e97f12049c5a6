package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// runImageInspect is `sealroot image inspect`: a read-only view of a disk
// image (cryptsetup.Inspect).
func runImageInspect(cmd *cobra.Command, path string, asJSON bool) error {
	info, err := cryptsetup.Inspect(path)
	if err != nil {
		return withStatus(1, err)
	}
	if info.Footer == nil && !info.Encrypted {
		what := "no KRUN footer and no LUKS header"
		if info.Filesystem != nil {
			what += ", only a bare " + info.Filesystem.Type + " filesystem"
		}
		return withStatus(1, fmt.Errorf("%s is not a disk image: %s (`sealroot image build` makes one)", path, what))
	}
	if asJSON {
		return printLUKSJSON(cmd.OutOrStdout(), info)
	}
	printImageInfo(cmd.OutOrStdout(), info)
	return nil
}

// imageCheckFlags are the flags of `sealroot image check`.
type imageCheckFlags struct {
	passFile string
	keyslots []int
	asJSON   bool
	memLimit uint64
}

// runImageCheck is `sealroot image check`: unlock the image in user space
// (cryptsetup.Check) and verify a verity root's tree.
func runImageCheck(cmd *cobra.Command, path string, f *imageCheckFlags) error {
	if f.passFile == "" {
		return checkWithoutPassphrase(cmd, path, f.asJSON)
	}
	pass, err := readPassphrase(f.passFile, cmd.InOrStdin())
	if err != nil {
		return withStatus(1, err)
	}
	defer cryptsetup.Wipe(pass)
	v, err := cryptsetup.Open(path)
	if err != nil {
		return withStatus(1, err)
	}
	defer v.Close()
	uo := cryptsetup.UnlockOptions{Keyslots: f.keyslots, MemoryLimitKiB: f.memLimit}
	res, err := v.Check(pass, uo)
	if err != nil {
		return withStatus(1, err)
	}
	vc, verr := checkEncryptedVerity(v, pass, uo)
	if f.asJSON {
		if err := printLUKSJSON(cmd.OutOrStdout(), struct {
			*cryptsetup.CheckResult
			Verity *VerityCheck `json:"verity,omitempty"`
		}{res, vc}); err != nil {
			return err
		}
	} else {
		if verr != nil {
			vc = nil
		}
		printImageCheck(cmd.OutOrStdout(), res, vc, verr == nil)
	}
	if verr != nil {
		return withStatus(1, verr)
	}
	return nil
}

func printLUKSJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return withStatus(1, err)
	}
	return nil
}

func kibToMiB(kib uint32) string { return fmt.Sprintf("%d MiB", (kib+1023)/1024) }

func printImageInfo(out io.Writer, info *cryptsetup.Info) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "image:\t%s (%d bytes)\n", info.Path, info.Size)
	switch f := info.Footer; {
	case f == nil:
		fmt.Fprintf(w, "footer:\tnone\n")
	case f.Error != "":
		fmt.Fprintf(w, "footer:\tdamaged: %s\n", f.Error)
	default:
		fmt.Fprintf(w, "footer:\tconfig of %d bytes at offset %d\n", f.Length, f.Offset)
		c, err := diskconfig.Parse(f.Config)
		if err != nil {
			fmt.Fprintf(w, "config:\tinvalid: %v\n", err)
			var compact bytes.Buffer
			if json.Compact(&compact, f.Config) == nil {
				fmt.Fprintf(w, "\t%s\n", compact.String())
			}
			break
		}
		fmt.Fprintf(w, "config:\ttee=%s workload_id=%s cpus=%d ram_mib=%d\n", c.TEE, c.WorkloadID, c.CPUs, c.RAMMiB)
		if c.TEEData != "" {
			fmt.Fprintf(w, "\ttee_data=%s\n", c.TEEData)
		}
		if c.AttestationURL != "" {
			fmt.Fprintf(w, "\tattestation_url=%s (%s dialect)\n", c.AttestationURL, c.Dialect())
		}
		printBinding(w, c, info)
		printIntegrity(w, c)
	}
	if !info.Encrypted {
		if fs := info.Filesystem; fs != nil {
			fmt.Fprintf(w, "payload:\tunencrypted %s, %d bytes (filesystem %d bytes)\n", fs.Type, info.PayloadSize, fs.Size)
		} else {
			fmt.Fprintf(w, "payload:\tnot LUKS and no known filesystem\n")
		}
		return
	}
	h := info.LUKS
	fmt.Fprintf(w, "encryption:\tLUKS%d, %s, %d-bit key, %d-byte sectors\n", h.Version, h.Cipher, h.KeyBits, h.SectorSize)
	fmt.Fprintf(w, "uuid:\t%s\n", h.UUID)
	if h.Label != "" || h.Subsystem != "" {
		fmt.Fprintf(w, "label:\t%q subsystem %q\n", h.Label, h.Subsystem)
	}
	if info.PayloadError != "" {
		fmt.Fprintf(w, "payload:\tERROR: %s\n", info.PayloadError)
	} else {
		extent := "to the end of the device"
		if h.PayloadSize > 0 {
			extent = "fixed size"
		}
		fmt.Fprintf(w, "payload:\t%d bytes at offset %d (%s)\n", info.PayloadSize, info.PayloadOffset, extent)
	}
	if len(h.Flags) > 0 {
		fmt.Fprintf(w, "flags:\t%s\n", strings.Join(h.Flags, ", "))
	}
	if len(h.Requirements) > 0 {
		fmt.Fprintf(w, "requirements:\t%s\n", strings.Join(h.Requirements, ", "))
	}
	if mods, err := cryptsetup.KernelModules(h.Cipher); err == nil {
		fmt.Fprintf(w, "kernel modules:\t%s\n", strings.Join(mods, " "))
	}
	for _, ks := range h.Keyslots {
		line := fmt.Sprintf("%s, priority %s", ks.KDF, ks.Priority)
		if ks.Type != "luks1" && ks.Type != "luks2" {
			line = fmt.Sprintf("%s keyslot (holds no passphrase)", ks.Type)
		} else if ks.KDF.Type == cryptsetup.KDFArgon2i || ks.KDF.Type == cryptsetup.KDFArgon2id {
			line += ", needs " + kibToMiB(ks.KDF.MemoryKiB) + " to unlock"
		}
		fmt.Fprintf(w, "keyslot %d:\t%s\n", ks.ID, line)
	}
	if info.Unusable != "" {
		fmt.Fprintf(w, "unusable:\t%s\n", info.Unusable)
	}
	for _, warn := range h.Warnings {
		fmt.Fprintf(w, "warning:\t%s\n", warn)
	}
}

func printImageCheck(out io.Writer, r *cryptsetup.CheckResult, vc *VerityCheck, ok bool) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "image:\t%s\n", r.Path)
	fmt.Fprintf(w, "unlocked:\tkeyslot %d (%s) in %v\n", r.Keyslot, r.KDF, r.KDFTime.Round(100*time.Microsecond))
	fmt.Fprintf(w, "payload:\tLUKS%d %s, %d-bit key, %d-byte sectors, %d bytes at offset %d\n",
		r.LUKSVersion, r.Cipher, r.KeyBits, r.SectorSize, r.PayloadSize, r.PayloadOffset)
	fs := r.Filesystem
	line := fmt.Sprintf("%s, %d bytes", fs.Type, fs.Size)
	if fs.Label != "" {
		line += fmt.Sprintf(", label %q", fs.Label)
	}
	if fs.UUID != "" {
		line += ", UUID " + fs.UUID
	}
	fmt.Fprintf(w, "filesystem:\t%s\n", line)
	if vc != nil {
		printVerityLine(w, vc)
	}
	if ok {
		fmt.Fprintf(w, "result:\tOK\n")
	}
}

// checkWithoutPassphrase is image check of a plain verity image.
func checkWithoutPassphrase(cmd *cobra.Command, path string, asJSON bool) error {
	if v, err := cryptsetup.Open(path); err == nil {
		v.Close()
		return usageError("%s is encrypted: --passphrase-file is required", path)
	}
	vc, err := checkPlainVerity(path)
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			return err
		}
		return withStatus(1, err)
	}
	if asJSON {
		return printLUKSJSON(cmd.OutOrStdout(), struct {
			Path   string       `json:"path"`
			Verity *VerityCheck `json:"verity"`
		}{path, vc})
	}
	printVerityCheck(cmd.OutOrStdout(), path, vc)
	return nil
}

// printBinding says whether the config binds the root volume, and whether
// this image's header is the bound one.
func printBinding(w io.Writer, c *diskconfig.Config, info *cryptsetup.Info) {
	id := c.RootVolume
	switch {
	case id == nil && info.Encrypted:
		fmt.Fprintf(w, "root volume:\tNOT BOUND: any LUKS volume is accepted under this config (sealroot image bind)\n")
	case id == nil:
	case info.LUKS == nil:
		fmt.Fprintf(w, "root volume:\tbound to LUKS%d %s, but this image is not LUKS\n", id.LUKS, id.UUID)
	default:
		if err := cryptsetup.MatchVolume(id, info.LUKS); err != nil {
			fmt.Fprintf(w, "root volume:\tbound to LUKS%d %s; DOES NOT MATCH this header: %v\n", id.LUKS, id.UUID, err)
		} else {
			fmt.Fprintf(w, "root volume:\tbound to LUKS%d %s, matches this header\n", id.LUKS, id.UUID)
		}
	}
}
