package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sealroot/sealroot/host/initramfs"
)

// newInitramfsCmd builds `sealroot initramfs`, the initrd commands.
func newInitramfsCmd(log *slog.Logger) *cobra.Command {
	c := &cobra.Command{
		Use:   "initramfs",
		Short: "Build the guest initrd",
	}
	c.AddCommand(newInitramfsBuildCmd(log))
	return c
}

type initramfsBuildFlags struct {
	output        string
	compress      string
	kernelModules string
	debug         bool
	init          string
	modules       []string
	noDefaults    bool
	files         []string
	json          bool
	quiet         bool
	target        string
}

func newInitramfsBuildCmd(log *slog.Logger) *cobra.Command {
	var f initramfsBuildFlags
	cmd := &cobra.Command{
		Use:   "build -o FILE [--compress gzip|xz|zstd|none] [--kernel-modules DIR] [--debug]",
		Short: "Build a reproducible initrd holding the sealroot init and the kernel modules it needs",
		Long: `Build a reproducible initrd (newc cpio, optionally compressed) whose /init is the
sealroot guest init. The same inputs always give a byte-identical file.

Without --init, ./guest/init of the sealroot checkout containing the working directory is
compiled (static, -trimpath, stripped); the Go toolchain must be installed.

--kernel-modules DIR is one kernel's module tree (lib/modules/<release>, as unpacked
from a kernel package). Its modules.dep is used when present; otherwise dependencies
are computed from the modules' own .modinfo metadata (Debian's package ships no
modules.dep). The default modules are: ` + strings.Join(initramfs.DefaultModules(), ", ") + `.
Those the kernel builds in or lacks are skipped with a note; a module named with
--module that the kernel lacks is an error. Compressed modules (.ko.xz, .ko.zst,
.ko.gz) are stored decompressed. The load order is written to ` + initramfs.ModulesOrderPath + `.

--debug adds u-root's shell and core tools (/bin/sh, /bbin/*); it needs the Go
toolchain and fetches u-root's dependencies through the Go module proxy if they are
not cached. Never use a debug initrd for a production workload.`,
		Example: `  # initrd for the Debian cloud kernel unpacked by 'make deps'
  sealroot initramfs build -o bin/initrd.cpio.gz --kernel-modules .cache/kernel/modules

  # xz-compressed, with a prebuilt init and one more module, as JSON
  sealroot initramfs build -o initrd.xz --compress xz --init bin/init \
      --kernel-modules /lib/modules/$(uname -r) --module virtio_rng --json

  # for a kernel with everything built in (libkrunfw): no modules at all
  sealroot initramfs build -o initrd.cpio --compress none

  # to bake into libkrunfw (its initrd/initrd.gz): checked against its limits
  sealroot initramfs build -o initrd.gz --target krunfw`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInitramfsBuild(cmd, log, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.output, "output", "o", "", "file to write (required)")
	fl.StringVar(&f.compress, "compress", initramfs.CompressGzip, "compression: "+strings.Join(initramfs.Compressions, ", "))
	fl.StringVar(&f.kernelModules, "kernel-modules", "", "one kernel's module tree (lib/modules/<release>); none when empty")
	fl.BoolVar(&f.debug, "debug", false, "add a shell and tools (u-root core commands)")
	fl.StringVar(&f.init, "init", "", "prebuilt static init binary (default: build ./guest/init of this checkout)")
	fl.StringArrayVar(&f.modules, "module", nil, "also carry this module (repeatable; name or alias)")
	fl.BoolVar(&f.noDefaults, "no-default-modules", false, "carry only the modules named with --module")
	fl.StringArrayVar(&f.files, "file", nil, "add a host file as IMAGE_PATH=HOST_FILE (repeatable)")
	fl.StringVar(&f.target, "target", "any", "kernel the initrd is for: any, or krunfw (libkrunfw's: gzip only, no modules, at most 6 MiB padded to 64 KiB)")
	fl.BoolVar(&f.json, "json", false, "print the result as JSON")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "do not print notes and progress on stderr")
	return cmd
}

func runInitramfsBuild(cmd *cobra.Command, log *slog.Logger, f *initramfsBuildFlags) error {
	if f.output == "" {
		return usageError("initramfs build: -o FILE is required")
	}
	if !slices.Contains(initramfs.Compressions, f.compress) {
		return usageError("initramfs build: --compress %q: want one of %s", f.compress, strings.Join(initramfs.Compressions, ", "))
	}
	if !slices.Contains(initramfs.Targets, f.target) {
		return usageError("initramfs build: --target %q: want one of %s", f.target, strings.Join(initramfs.Targets, ", "))
	}
	if f.target == initramfs.TargetKrunfw && !initramfs.GzipFormat(f.compress) {
		return usageError("initramfs build: --target krunfw needs --compress gzip or zopfli: libkrunfw's kernels decompress nothing but gzip")
	}
	if f.target == initramfs.TargetKrunfw && f.kernelModules != "" {
		return usageError("initramfs build: --target krunfw takes no --kernel-modules: libkrunfw's kernels have no module support")
	}
	if f.noDefaults && len(f.modules) == 0 {
		return usageError("initramfs build: --no-default-modules needs at least one --module")
	}
	if (len(f.modules) > 0 || f.noDefaults) && f.kernelModules == "" {
		return usageError("initramfs build: --module needs --kernel-modules DIR")
	}
	opts := initramfs.Options{
		Output:        f.output,
		Compression:   f.compress,
		KernelModules: f.kernelModules,
		InitBinary:    f.init,
		Debug:         f.debug,
	}
	if f.target != "any" {
		opts.Target = f.target
	}
	if len(f.modules) > 0 {
		if !f.noDefaults {
			opts.Modules = initramfs.DefaultModules()
		}
		opts.Modules = append(opts.Modules, f.modules...)
	}
	if len(f.files) > 0 {
		opts.ExtraFiles = map[string]string{}
		for _, spec := range f.files {
			dst, src, ok := strings.Cut(spec, "=")
			if !ok || dst == "" || src == "" {
				return usageError("initramfs build: --file %q: want IMAGE_PATH=HOST_FILE", spec)
			}
			if _, dup := opts.ExtraFiles[dst]; dup {
				return usageError("initramfs build: --file: %s given twice", dst)
			}
			opts.ExtraFiles[dst] = src
		}
	}
	if !f.quiet {
		opts.Logger = log
	}
	// -o out/initrd.cpio.gz in a fresh checkout: make out/ as image build does.
	if err := os.MkdirAll(filepath.Dir(f.output), 0o755); err != nil {
		return withStatus(1, fmt.Errorf("-o %s: %w", f.output, err))
	}
	res, err := initramfs.Build(opts)
	if err != nil {
		if errors.Is(err, initramfs.ErrNoInitMain) {
			err = fmt.Errorf("%w (pass a prebuilt init with --init FILE)", err)
		}
		return withStatus(1, err)
	}
	out := cmd.OutOrStdout()
	if f.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(out, "%s: %d bytes (%.2f MiB, %s; cpio %d bytes), %d records, %d modules\n",
		res.Output, res.Size, float64(res.Size)/(1<<20), res.Compression, res.CPIOSize, res.Records, len(res.Modules))
	if res.KernelRelease != "" {
		fmt.Fprintf(out, "kernel %s: %s\n", res.KernelRelease, strings.Join(res.Modules, " "))
	}
	fmt.Fprintf(out, "sha256 %s\n", res.SHA256)
	return nil
}
