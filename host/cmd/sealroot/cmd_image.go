package main

import (
	"log/slog"

	"github.com/spf13/cobra"
)

// newImageCmd builds `sealroot image`, the disk image commands: build,
// inspect, check and bind. Their work is done in cmd_image_build.go,
// cmd_image_luks.go, cmd_image_bind.go and the files they name.
func newImageCmd(log *slog.Logger) *cobra.Command {
	c := &cobra.Command{
		Use:   "image",
		Short: "Build, inspect and check confidential workload disk images",
	}
	c.AddCommand(newImageBuildCmd(log), newImageInspectCmd(), newImageCheckCmd(), newImageBindCmd(log))
	return c
}

// newImageBuildCmd builds `sealroot image build`.
func newImageBuildCmd(log *slog.Logger) *cobra.Command {
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
		RunE: func(cmd *cobra.Command, args []string) error { return runImageBuild(cmd, log, &f) },
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
	f.reg.registerFlags(fl)
	f.reg.registerSNPFlags(fl)
	return c
}

// newImageInspectCmd builds `sealroot image inspect`, a read-only view of a
// disk image (cryptsetup.Inspect).
func newImageInspectCmd() *cobra.Command {
	var inspectJSON bool
	inspect := &cobra.Command{
		Use:   "inspect IMAGE",
		Short: "Show a disk image's KRUN footer config and LUKS header",
		Long: `Show what a confidential workload disk holds without unlocking it: the config JSON of the
KRUN footer (checked as the guest init would), and the LUKS header: version, cipher, key and
sector size, where the encrypted payload lies, and each keyslot's key derivation with the
memory it needs to unlock. For an unencrypted image it shows the filesystem instead.
Works on images made by sealroot, buildah and cryptsetup. Nothing is written.`,
		Example: `  sealroot image inspect out/disk.img
  sealroot image inspect --json out/disk.img | jq .luks.keyslots`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runImageInspect(cmd, args[0], inspectJSON) },
	}
	inspect.Flags().BoolVar(&inspectJSON, "json", false, "print the description as JSON")
	return inspect
}

// newImageCheckCmd builds `sealroot image check`, which unlocks a disk image
// in user space (cryptsetup.Check).
func newImageCheckCmd() *cobra.Command {
	var f imageCheckFlags
	check := &cobra.Command{
		Use:   "check IMAGE --passphrase-file FILE",
		Short: "Check that a passphrase unlocks a disk image and that it holds a filesystem",
		Long: `Unlock a LUKS disk image in user space (no root, no device-mapper), decrypt the start of its
payload and confirm the filesystem the guest will mount: its type, size and that it fits
the payload. It reports which keyslot the passphrase opened and how long the key derivation
took here (expect several times longer in a TCG guest). Keyslots are tried by priority, as
the guest does; --key-slot names the ones to try, including "ignore" slots.

The passphrase file is read as is, except that one trailing newline is dropped; "-" reads
standard input. Nothing is written to the image.`,
		Example: `  sealroot image check out/disk.img --passphrase-file out/passphrase
  sealroot image check disk.img --passphrase-file - --key-slot 1 < pass.txt
  sealroot image check --json disk.img --passphrase-file pass.txt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runImageCheck(cmd, args[0], &f) },
	}
	check.Flags().StringVar(&f.passFile, "passphrase-file", "", `file holding the passphrase ("-" for standard input)`)
	check.Flags().IntSliceVar(&f.keyslots, "key-slot", nil, "try only these keyslots, in this order (repeatable)")
	check.Flags().BoolVar(&f.asJSON, "json", false, "print the result as JSON")
	check.Flags().Uint64Var(&f.memLimit, "memory-limit-kib", 0, "refuse argon2 keyslots needing more memory than this (default: MemAvailable)")
	return check
}

// newImageBindCmd builds `sealroot image bind`: add the root-volume binding
// to the footer config of an image made by another tool (image.Bind).
func newImageBindCmd(log *slog.Logger) *cobra.Command {
	var f imageBindFlags
	bind := &cobra.Command{
		Use:   "bind IMAGE",
		Short: "Bind a LUKS disk image's volume into its footer config (for buildah images)",
		Long: `Add root_volume to the KRUN footer config of a LUKS disk image, as ` + "`image build`" + ` does for its
own images: the guest init then refuses any other volume under this config, so a host that puts
its own disk behind the config gets no workload started (docs/threat-model.md). Only the config
and the footer are rewritten; the LUKS header and the ciphertext are not touched.

The config changes, so its SHA-256 (the HOST_DATA a launcher binds) changes too: the command
prints the new host_data; register it with ` + "`sealroot workloads set-policy ID --host-data HEX ...`" + `
(or ` + "`sealroot register`" + `) and use the new krun-sev.json (--config-out) wherever the old one was.
With --passphrase-file, the passphrase must first open the volume to the key being bound.
With --register, the workload's registration at the broker gets the new host_data in the form its
TEE carries it (SNP HOST_DATA, TDX MRCONFIGID, CCA RPV); the rest of its policy is kept.`,
		Example: `  sealroot image bind disk.img --config-out krun-sev.json
  sealroot image bind disk.img --passphrase-file pass.txt
  sealroot image bind disk.img --register --broker http://127.0.0.1:8000 --admin-token-file admin-token`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runImageBind(cmd, log, args[0], &f) },
	}
	bind.Flags().StringVar(&f.passFile, "passphrase-file", "", `check this passphrase opens the volume first ("-" for standard input)`)
	bind.Flags().StringVar(&f.configOut, "config-out", "", "also write the new config JSON here (krun-sev.json)")
	bind.Flags().BoolVar(&f.register, "register", false, "set the new host_data in the workload's registration at --broker")
	bind.Flags().StringVar(&f.admin.broker, "broker", "", "with --register: the broker's admin URL")
	bind.Flags().StringVar(&f.admin.tokenFile, "admin-token-file", "", "with --register: file holding the broker's admin token")
	bind.Flags().StringVar(&f.admin.caCert, "ca-cert", "", "with --register: PEM CA bundle for an https broker")
	return bind
}
