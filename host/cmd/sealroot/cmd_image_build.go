package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/spf13/cobra"
)

type imageBuildFlags struct {
	rootfs, oci, out                string
	noEncrypt, luks1, luks2         bool
	tee, workloadID, attestationURL string
	kbsProtocol                     string
	cpus, memory                    int
	slop                            string
	passphraseFile, passphraseOut   string
	register                        bool
	adminTokenFile                  string
	entrypoint, cmd, env            []string
	workdir, user                   string
	jsonOut                         bool

	kdf                                  string
	kdfIterations, kdfTime, kdfMemoryKiB uint32
	kdfParallel                          uint32
	sectorSize, keyBits                  int
	integrity, overlaySize               string

	// reg are the flags of --register (cmd_image_register.go).
	reg imageRegisterFlags
}

// checkImageBuildFlags rejects flag combinations before anything is built
// and returns the TEE the image is for.
func checkImageBuildFlags(f *imageBuildFlags) (string, error) {
	if (f.rootfs == "") == (f.oci == "") {
		return "", usageError("give exactly one of --rootfs DIR or --oci DIR[:REF]")
	}
	if f.out == "" {
		return "", usageError("-o OUTDIR is required")
	}
	if f.luks1 && f.luks2 {
		return "", usageError("--luks1 and --luks2 exclude each other")
	}
	if f.noEncrypt && (f.luks1 || f.luks2 || f.passphraseFile != "" || f.passphraseOut != "" || f.register) {
		return "", usageError("--no-encrypt excludes --luks1/--luks2, passphrase flags and --register")
	}
	if f.passphraseFile != "" && f.passphraseOut != "" {
		return "", usageError("--passphrase-file and --passphrase-out exclude each other")
	}
	switch f.integrity {
	case "none", "verity":
	default:
		return "", usageError("--integrity %q: want none or verity", f.integrity)
	}
	if f.overlaySize != "" && f.integrity != "verity" {
		return "", usageError("--overlay-size applies to --integrity verity only")
	}
	if err := diskconfig.ValidateOverlaySize(f.overlaySize); err != nil {
		return "", usageError("--overlay-size: %v", err)
	}
	for _, kv := range f.env {
		if !strings.Contains(kv, "=") {
			return "", usageError("--env %q: want K=V", kv)
		}
	}
	tee := f.tee
	if tee == "" {
		tee = "snp"
		if f.noEncrypt {
			tee = "none"
		}
	}
	if f.noEncrypt && tee != "none" {
		return "", usageError("--no-encrypt builds an unprotected root: --tee must be none")
	}
	if !f.noEncrypt && tee == "none" {
		return "", usageError("--tee none needs --no-encrypt: an encrypted root needs a TEE to get its key")
	}
	if f.register {
		if err := checkRegisterFlags(&f.reg, tee); err != nil {
			return "", err
		}
	}
	return tee, nil
}

func runImageBuild(cmd *cobra.Command, log *slog.Logger, f *imageBuildFlags) error {
	tee, err := checkImageBuildFlags(f)
	if err != nil {
		return err
	}
	id := f.workloadID
	if id == "" {
		id = image.NewWorkloadID()
	}
	teeData := ""
	if tee == "snp" {
		teeData = `{"gen":"milan"}`
	}
	o := image.Options{
		RootfsDir: f.rootfs,
		OutDir:    f.out,
		Slop:      f.slop,
		Logger:    log,
		Config: diskconfig.Config{TEE: tee, TEEData: teeData, WorkloadID: id, CPUs: f.cpus, RAMMiB: f.memory,
			AttestationURL: f.attestationURL, KBSProtocol: f.kbsProtocol},
		Workload:  image.Workload{Entrypoint: f.entrypoint, Cmd: f.cmd, Env: f.env, WorkDir: f.workdir, User: f.user},
		Integrity: f.integrity, OverlaySize: f.overlaySize,
	}
	if f.oci != "" {
		o.OCIDir, o.OCIRef = splitRef(f.oci)
	}
	if err := preflightImageBuild(f, o.Config); err != nil {
		return err
	}
	var pass []byte
	generated := false
	if !f.noEncrypt {
		if pass, generated, err = buildPassphrase(cmd, f, &o); err != nil {
			return err
		}
		defer clear(pass)
	}
	if ef, ok := cmd.ErrOrStderr().(*os.File); ok && isTerminal(ef) {
		o.Progress = func(total int64, what string) io.Writer {
			return progressbar.DefaultBytes(total, what)
		}
	}
	res, err := image.Build(o)
	if err != nil {
		return withStatus(1, err)
	}
	if generated && f.passphraseOut != "" {
		if err := writeSecretFile(f.passphraseOut, pass); err != nil {
			return withStatus(1, fmt.Errorf("writing the passphrase to %s: %w", f.passphraseOut, err))
		}
	}
	if f.register {
		if err := registerBuiltImage(cmd, log, f, res, pass); err != nil {
			return withStatus(1, err)
		}
	}
	if f.jsonOut {
		return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
	}
	fmt.Fprintf(cmd.OutOrStdout(), "disk:       %s (%d bytes, %s)\nconfig:     %s\nworkload:   %s (tee %s)\n",
		res.Disk, res.Size, map[bool]string{true: "encrypted", false: "plain"}[res.Encrypted], res.ConfigFile, res.Config.WorkloadID, res.Config.TEE)
	if res.RootHash != "" {
		fmt.Fprintf(cmd.OutOrStdout(), "integrity:  %s, root hash %s\n", res.Integrity, res.RootHash)
	}
	return nil
}

// splitRef splits DIR[:REF]; a colon inside the directory part (no ref)
// is kept when the whole string names an existing directory.
func splitRef(s string) (string, string) {
	if fi, err := os.Stat(s); err == nil && fi.IsDir() {
		return s, ""
	}
	if i := strings.LastIndex(s, ":"); i > 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// isTerminal reports whether f is a terminal (progress bars go only there;
// plain lines otherwise).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// buildPassphrase reads --passphrase-file or generates a passphrase, and
// sets o's encryptor. The caller clears the passphrase.
func buildPassphrase(cmd *cobra.Command, f *imageBuildFlags, o *image.Options) (pass []byte, generated bool, err error) {
	if f.passphraseFile != "" {
		if pass, err = readPassphrase(f.passphraseFile, cmd.InOrStdin()); err != nil {
			return nil, false, withStatus(1, err)
		}
	} else {
		if pass, err = cryptsetup.GeneratePassphrase(); err != nil {
			return nil, false, withStatus(1, err)
		}
		generated = true
	}
	if generated && f.passphraseOut == "" && !f.register {
		clear(pass)
		return nil, false, usageError("a generated passphrase must go somewhere: give --passphrase-out FILE or --register")
	}
	enc, err := luksEncryptor(f, generated)
	if err != nil {
		clear(pass)
		return nil, false, withStatus(1, err)
	}
	o.Encrypt, o.Passphrase = enc, pass
	return pass, generated, nil
}
