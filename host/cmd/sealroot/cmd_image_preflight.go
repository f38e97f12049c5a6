package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// preflightImageBuild refuses, before any slow work (copying the rootfs,
// mkfs, encryption), what `image build` would refuse late or what would
// build an image that can never boot.
func preflightImageBuild(f *imageBuildFlags, cfg diskconfig.Config) error {
	if _, err := image.FSSize(0, f.slop); err != nil {
		return usageError("--%v", err)
	}
	if err := cfg.Validate(); err != nil {
		// The disk config's keys and the flags that set them, so that a
		// refused value is reported in the command's vocabulary.
		configKeyFlags := map[string]string{
			"tee":             "--tee",
			"workload_id":     "--workload-id",
			"cpus":            "--cpus",
			"ram_mib":         "--memory",
			"attestation_url": "--attestation-url",
			"kbs_protocol":    "--kbs-protocol",
		}
		msg := err.Error()
		for key, flag := range configKeyFlags {
			msg = strings.ReplaceAll(msg, fmt.Sprintf("config key %q", key), flag)
		}
		return usageError("%s", msg)
	}
	if f.rootfs != "" {
		if fi, err := os.Stat(f.rootfs); err != nil || !fi.IsDir() {
			return withStatus(1, fmt.Errorf("--rootfs %s: not a directory (`make rootfs` creates a sample one)", f.rootfs))
		}
		prog := ""
		if len(f.entrypoint) > 0 {
			prog = f.entrypoint[0]
		} else if len(f.cmd) > 0 {
			prog = f.cmd[0]
		}
		if err := checkProgram(f.rootfs, prog); err != nil {
			return withStatus(1, err)
		}
	}
	return nil
}

// checkProgram refuses a workload program given by absolute path that the
// rootfs lacks, or that is dynamically linked against an ELF interpreter the
// rootfs lacks: the guest could only report 127. Programs found through PATH
// and rootfs symlinks are left to the guest.
func checkProgram(rootfs, prog string) error {
	if !strings.HasPrefix(prog, "/") {
		return nil
	}
	where := fmt.Sprintf("--rootfs %s", rootfs)
	p := filepath.Join(rootfs, prog)
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("workload program %s: %s has no %s (check --cmd/--entrypoint)", prog, where, prog)
	}
	if !fi.Mode().IsRegular() {
		return nil
	}
	ef, err := elf.Open(p)
	if err != nil {
		return nil // a script or another format: the guest's exec decides
	}
	defer ef.Close()
	for _, ph := range ef.Progs {
		if ph.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, ph.Filesz)
		if _, err := ph.ReadAt(b, 0); err != nil {
			return nil
		}
		interp := strings.TrimRight(string(b), "\x00")
		if _, err := os.Lstat(filepath.Join(rootfs, interp)); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("workload program %s is dynamically linked and needs %s, which %s lacks: build it static (CGO_ENABLED=0 go build, gcc -static) or copy its libc and libraries into the rootfs", prog, interp, where)
		}
	}
	return nil
}

// checkKDFFlags resolves the keyslot KDF the build would write and refuses,
// before any slow work, settings cryptsetup's limits exclude (naming the
// flag) and an argon2 memory cost the guest's --memory cannot afford.
func checkKDFFlags(f *imageBuildFlags, o cryptsetup.FormatOptions) error {
	version := 2
	if f.luks1 {
		version = 1
	}
	k, err := o.ResolveKDF(version)
	if err != nil {
		var pe *cryptsetup.KDFParamError
		if errors.As(err, &pe) {
			flag := map[string]string{"type": "--kdf", "hash": "--kdf", "iterations": "--kdf-iterations",
				"time": "--kdf-time", "memory": "--kdf-memory", "parallel": "--kdf-parallel"}[pe.Param]
			return usageError("%s: %v", flag, err)
		}
		return usageError("%v", err)
	}
	// A cost of the other KDF would be silently ignored.
	if k.Type == cryptsetup.KDFPBKDF2 && (f.kdfTime != 0 || f.kdfMemoryKiB != 0 || f.kdfParallel != 0) {
		return usageError("--kdf-time, --kdf-memory and --kdf-parallel are argon2 costs, but the keyslot uses pbkdf2 (give --kdf argon2id)")
	}
	if k.Type != cryptsetup.KDFPBKDF2 && f.kdfIterations != 0 {
		return usageError("--kdf-iterations is a pbkdf2 cost, but the keyslot uses %s (give --kdf pbkdf2, or --kdf-time)", k.Type)
	}
	// The policy sizes argon2 to the guest; only an explicit cost is checked.
	if need := k.MinGuestMiB(); f.kdfMemoryKiB != 0 && need > f.memory {
		return usageError("--kdf-memory %d KiB: a guest needs %d MiB to unlock it (the argon2 cost plus %d MiB for the kernel and initrd) but --memory is %d MiB: lower --kdf-memory to at most %d KiB or raise --memory",
			k.MemoryKiB, need, cryptsetup.GuestOverheadMiB, f.memory, max(f.memory-cryptsetup.GuestOverheadMiB, 0)*1024)
	}
	return nil
}
