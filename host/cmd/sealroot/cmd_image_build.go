package main

import (
	"encoding/json"
	"fmt"
	"io"
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
}

func init() {
	var f imageBuildFlags
	c := &cobra.Command{
		Use:   "build (--rootfs DIR | --oci DIR[:REF]) -o OUTDIR",
		Short: "Build disk.img and krun-sev.json from a rootfs or an OCI image layout",
		Long: `Build a confidential workload disk in buildah's layout: OUTDIR/disk.img (LUKS + ext4 +
KRUN footer) and OUTDIR/krun-sev.json. The workload (/.krun_config.json) comes from the OCI image
config, or from the flags for a rootfs directory. The filesystem is sized like buildah's: the rootfs
plus --slop (25% by default), at least 10 MiB.`,
		Example: `  sealroot image build --rootfs ./rootfs --no-encrypt --cmd /app -o out/
  sealroot image build --oci ./layout:myapp --tee sim --attestation-url http://10.0.2.100:8000 \
      --passphrase-out out/passphrase -o out/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runImageBuild(cmd, &f) },
	}
	fl := c.Flags()
	fl.StringVar(&f.rootfs, "rootfs", "", "root filesystem directory")
	fl.StringVar(&f.oci, "oci", "", "OCI image layout directory, optionally :REF")
	fl.StringVarP(&f.out, "output", "o", "", "output directory (required)")
	fl.BoolVar(&f.noEncrypt, "no-encrypt", false, "build a plain ext4 payload (tee none)")
	fl.BoolVar(&f.luks1, "luks1", false, "encrypt with LUKS1 exactly as buildah does")
	fl.BoolVar(&f.luks2, "luks2", false, "encrypt with LUKS2 (default)")
	fl.StringVar(&f.tee, "tee", "", "TEE: none, sim, snp, tdx, cca (default snp, none with --no-encrypt)")
	fl.StringVar(&f.workloadID, "workload-id", "", "workload id at the broker (default: random)")
	fl.StringVar(&f.attestationURL, "attestation-url", "", "broker URL as the guest reaches it")
	fl.StringVar(&f.kbsProtocol, "kbs-protocol", "", "broker dialect the guest speaks: krun (default) or trustee")
	fl.IntVar(&f.cpus, "cpus", 2, "vCPUs recorded in the config")
	fl.IntVar(&f.memory, "memory", 512, "memory in MiB recorded in the config")
	fl.StringVar(&f.slop, "slop", "25%", "free space added to the filesystem: a percentage (25%) or a size with its unit (512M, 1G)")
	fl.StringVar(&f.passphraseFile, "passphrase-file", "", "read the LUKS passphrase from FILE (default: generate 32 random bytes)")
	fl.StringVar(&f.passphraseOut, "passphrase-out", "", "write the generated passphrase to FILE (mode 0600)")
	fl.BoolVar(&f.register, "register", false, "register the workload and its passphrase with the broker")
	fl.StringVar(&f.adminTokenFile, "admin-token-file", "", "broker admin token for --register")
	fl.StringArrayVar(&f.entrypoint, "entrypoint", nil, "workload entrypoint argument (repeat)")
	fl.StringArrayVar(&f.cmd, "cmd", nil, "workload command argument (repeat)")
	fl.StringArrayVar(&f.env, "env", nil, "workload environment K=V (repeat)")
	fl.StringVar(&f.workdir, "workdir", "", "workload working directory")
	fl.StringVar(&f.user, "user", "", "workload user (name, uid, uid:gid)")
	fl.BoolVar(&f.jsonOut, "json", false, "print the result as JSON")
	fl.StringVar(&f.kdf, "kdf", "", `keyslot KDF: pbkdf2, argon2i or argon2id. Default policy: a generated
passphrase (256 random bits) gets a minimal KDF (PBKDF2-SHA256, 1000 iterations), since stretching
a random secret adds no security and costs boot time; a user passphrase (--passphrase-file) gets
argon2id sized to --memory (a quarter of it, at most 1 GiB) for LUKS2, or PBKDF2 benchmarked to
about one second for LUKS1`)
	fl.Uint32Var(&f.kdfIterations, "kdf-iterations", 0, "PBKDF2 iterations (overrides the policy)")
	fl.Uint32Var(&f.kdfTime, "kdf-time", 0, "argon2 time cost (overrides the policy)")
	fl.Uint32Var(&f.kdfMemoryKiB, "kdf-memory", 0, "argon2 memory cost in KiB (overrides the policy)")
	fl.Uint32Var(&f.kdfParallel, "kdf-parallel", 0, "argon2 lanes (overrides the policy)")
	fl.IntVar(&f.sectorSize, "sector-size", 0, "LUKS2 encryption sector size: 512-4096 (default 4096)")
	fl.IntVar(&f.keyBits, "key-size", 0, "XTS key size in bits: 256 or 512 (default 512)")
	fl.StringVar(&f.integrity, "integrity", "none", "root integrity: none, or verity (a read-only root under a dm-verity tree whose root hash the config records; docs/integrity.md)")
	fl.StringVar(&f.overlaySize, "overlay-size", "", "verity root: tmpfs size of the workload's writable layer (64m, 1g, 25%; default 50% of RAM)")
	imageCmd.AddCommand(c)
}

// encryptorFor returns the LUKS encryptor for the flags; set by the LUKS
// wiring (cmd_image_encrypt.go).
var encryptorFor = luksEncryptor

func runImageBuild(cmd *cobra.Command, f *imageBuildFlags) error {
	if (f.rootfs == "") == (f.oci == "") {
		return usageError("give exactly one of --rootfs DIR or --oci DIR[:REF]")
	}
	if f.out == "" {
		return usageError("-o OUTDIR is required")
	}
	if f.luks1 && f.luks2 {
		return usageError("--luks1 and --luks2 exclude each other")
	}
	if f.noEncrypt && (f.luks1 || f.luks2 || f.passphraseFile != "" || f.passphraseOut != "" || f.register) {
		return usageError("--no-encrypt excludes --luks1/--luks2, passphrase flags and --register")
	}
	if f.passphraseFile != "" && f.passphraseOut != "" {
		return usageError("--passphrase-file and --passphrase-out exclude each other")
	}
	switch f.integrity {
	case "none", "verity":
	default:
		return usageError("--integrity %q: want none or verity", f.integrity)
	}
	if f.overlaySize != "" && f.integrity != "verity" {
		return usageError("--overlay-size applies to --integrity verity only")
	}
	if err := diskconfig.ValidateOverlaySize(f.overlaySize); err != nil {
		return usageError("--overlay-size: %v", err)
	}
	for _, kv := range f.env {
		if !strings.Contains(kv, "=") {
			return usageError("--env %q: want K=V", kv)
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
		return usageError("--no-encrypt builds an unprotected root: --tee must be none")
	}
	if !f.noEncrypt && tee == "none" {
		return usageError("--tee none needs --no-encrypt: an encrypted root needs a TEE to get its key")
	}
	if f.register {
		if err := checkRegisterFlags(tee); err != nil {
			return err
		}
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
		Log:       os.Stderr,
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
		var err error
		if f.passphraseFile != "" {
			if pass, err = readPassphrase(f.passphraseFile, cmd.InOrStdin()); err != nil {
				return withStatus(1, err)
			}
		} else {
			if pass, err = cryptsetup.GeneratePassphrase(); err != nil {
				return withStatus(1, err)
			}
			generated = true
		}
		defer clear(pass)
		enc, err := encryptorFor(f, generated)
		if err != nil {
			return withStatus(1, err)
		}
		o.Encrypt, o.Passphrase = enc, pass
		if generated && f.passphraseOut == "" && !f.register {
			return usageError("a generated passphrase must go somewhere: give --passphrase-out FILE or --register")
		}
	}
	if isTerminal(os.Stderr) {
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
		if err := registerBuiltImage(cmd, f, res, pass); err != nil {
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
