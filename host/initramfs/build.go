// Package initramfs builds sealroot's initrd: a newc cpio archive holding the
// guest init as /init, the kernel modules the init needs with their load
// order worked out at build time, and nothing else unless asked.
//
// # Reproducibility
//
// The same inputs give a byte-identical image, compressed or not, so that a
// launch measurement computed over the initrd can be predicted and audited.
// The archive is written with u-root's pkg/cpio writer from records built
// here in a canonical form: entries sorted by path (parents first), every
// directory an explicit record with mode 0755 (u-root's helper that adds
// parent directories makes them 0777), inode numbers assigned in that order,
// owner 0:0, mtime 0, no device numbers, and the trailer. Compressors are
// configured so their output depends only on their input (see compressor).
// The init, when built here, is compiled with -trimpath, -buildvcs=false and
// a stripped symbol table, so it depends only on the source and toolchain.
//
// # Layout
//
//	/init                               the guest init (static ELF, 0755)
//	/dev /proc /sys /run /tmp /newroot  mount points (0755, /tmp 1777)
//	/etc/sealroot/modules.order         modules to load, one initrd path a
//	                                    line, dependencies first (always
//	                                    present; empty when none are needed)
//	/lib/modules/<release>/...          the modules, decompressed to .ko, at
//	                                    their path in the kernel's tree
//	/lib/modules/<release>/modules.dep  depmod format, for u-root's kmodule
//	/lib/modules/<release>/modules.builtin  copied from the tree when present
//
// The init loads the files of modules.order in order with finit_module. The
// modules are stored uncompressed so that works on kernels built without
// CONFIG_MODULE_DECOMPRESS, and so the initrd's own compression sees the
// raw bytes.
package initramfs

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sealroot/sealroot/host/initramfs/kmod"
	"github.com/u-root/u-root/pkg/cpio"
)

// ModulesOrderPath is where the image lists the modules the init must load.
const ModulesOrderPath = "/etc/sealroot/modules.order"

// SkeletonDirs are the directories every image has.
var SkeletonDirs = []string{"/dev", "/proc", "/sys", "/run", "/tmp", "/newroot", "/etc", "/lib/modules"}

// DefaultModules returns the modules the init needs on a distribution
// kernel: block and console virtio, virtio-net, device-mapper and dm-crypt
// with the XTS mode (its ecb softdep is also listed because nothing in the
// initrd can load it on demand), vsock for libkrun, the TEE guest drivers
// and configfs for TSM reports, and ext4. Each is optional: a kernel that
// builds one in, or lacks it, gets a note, not an error. Dependencies such
// as virtio_ring, failover or jbd2 are found by resolution.
func DefaultModules() []string {
	return []string{
		"virtio_pci", "virtio_blk", "virtio_console", "virtio_net",
		"dm_mod", "dm_crypt", "xts", "ecb",
		"vsock", "vmw_vsock_virtio_transport", "vsock_loopback",
		"configfs", "tsm", "sev_guest", "tdx_guest",
		"ext4",
		"dm_verity", "overlay",
	}
}

// Options say what to build.
type Options struct {
	// Output is the file to write. It is replaced atomically.
	Output string
	// Compression is gzip (the default when empty), xz, zstd or none.
	Compression string
	// KernelModules is one kernel's module tree (lib/modules/<release>, as
	// unpacked from a kernel package). Empty means no modules: the kernel
	// must have what the init needs built in.
	KernelModules string
	// Modules lists the modules to carry (names or aliases; '-' and '_'
	// alike); nil means DefaultModules. A name from DefaultModules that the
	// kernel lacks is a note; any other missing name is an error. Ignored
	// when KernelModules is empty.
	Modules []string
	// InitBinary is a prebuilt /init. Empty means: build ./guest/init of the Go
	// module at ModuleRoot with CGO_ENABLED=0 -trimpath -ldflags="-s -w"
	// -buildvcs=false.
	InitBinary string
	// ModuleRoot is the checkout whose ./guest/init is built. Empty means: search
	// from the working directory upwards for the go.mod of this binary's
	// own module.
	ModuleRoot string
	// Debug adds a shell and tools (u-root's commands in one busybox-style
	// binary under /bbin, with /bin/sh). It needs the Go toolchain and
	// u-root's module (fetched through the Go module proxy if not cached).
	Debug bool
	// ExtraFiles maps image paths to host files to add (regular files;
	// their permission bits are kept).
	ExtraFiles map[string]string
	// Target is TargetAny ("") or TargetKrunfw, which allows only gzip, no
	// modules, and an image that fits libkrun's initrd room (target.go).
	Target string
	// TempDir is where the init and debug tools are built; empty means the
	// system default.
	TempDir string
	// Logger receives a record per build step and one per note
	// (docs/design.md, "Logging"); nil discards them.
	Logger *slog.Logger
}

// Result describes a written image.
type Result struct {
	// Output is the file written.
	Output string `json:"output"`
	// Compression is the compression used.
	Compression string `json:"compression"`
	// Size is the size of the written (compressed) file in bytes.
	Size int64 `json:"size"`
	// CPIOSize is the size of the uncompressed archive in bytes.
	CPIOSize int64 `json:"cpio_size"`
	// Records is the number of cpio records, not counting the trailer.
	Records int `json:"records"`
	// KernelRelease is the release the modules were built for, or "".
	KernelRelease string `json:"kernel_release,omitempty"`
	// Modules are the modules carried, in load order.
	Modules []string `json:"modules"`
	// ModulesSize is the total size of the module files carried.
	ModulesSize int64 `json:"modules_size"`
	// InitSize is the size of /init.
	InitSize int64 `json:"init_size"`
	// SHA256 is the hex SHA-256 of the written file.
	SHA256 string `json:"sha256"`
	// Notes are remarks: modules built in or absent, skipped soft
	// dependencies.
	Notes []string `json:"notes,omitempty"`
}

// logger returns o.Logger, or a logger that discards when it is nil.
func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Build writes the image described by opts.
func Build(opts Options) (*Result, error) {
	if opts.Output == "" {
		return nil, fmt.Errorf("no output file given")
	}
	method := opts.Compression
	if method == "" {
		method = Compressions[0]
	}
	if !slices.Contains(Compressions, method) {
		return nil, fmt.Errorf("unknown compression %q (want one of %s)", method, strings.Join(Compressions, ", "))
	}
	if err := checkTarget(&opts, method); err != nil {
		return nil, err
	}

	tmp, err := os.MkdirTemp(opts.TempDir, "sealroot-initramfs-")
	if err != nil {
		return nil, fmt.Errorf("creating build directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	t, res, err := assemble(&opts, tmp)
	if err != nil {
		return nil, err
	}
	recs, err := t.records()
	if err != nil {
		return nil, err
	}
	res.Output = opts.Output
	res.Compression = method
	res.Records = len(recs)

	size, cpioSize, sum, err := writeImage(opts.Output, method, recs, func(size int64) error {
		return checkTargetSize(opts.Target, size)
	})
	if err != nil {
		return nil, err
	}
	res.Size, res.CPIOSize, res.SHA256 = size, cpioSize, sum
	return res, nil
}

// assemble gathers every entry of the image.
func assemble(opts *Options, tmp string) (*tree, *Result, error) {
	res := &Result{Modules: []string{}}
	t := newTree()
	for _, d := range SkeletonDirs {
		perm := uint64(0o755)
		if d == "/tmp" {
			perm = 0o1777
		}
		if err := t.dir(d, perm); err != nil {
			return nil, nil, err
		}
	}

	initFile := opts.InitBinary
	if initFile == "" {
		root := opts.ModuleRoot
		if root == "" {
			wd, err := os.Getwd()
			if err != nil {
				return nil, nil, fmt.Errorf("finding the module to build the init from: %w", err)
			}
			if root, err = FindModuleRoot(wd, modulePath()); err != nil {
				return nil, nil, fmt.Errorf("finding the module to build the init from: %w", err)
			}
		}
		opts.logger().Info("building the init", "package", InitPackage, "dir", root)
		var err error
		if initFile, err = buildInit(root, tmp); err != nil {
			return nil, nil, err
		}
	}
	initImage, err := readInit(initFile)
	if err != nil {
		return nil, nil, err
	}
	if err := t.file("/init", initImage, 0o755); err != nil {
		return nil, nil, err
	}
	res.InitSize = int64(len(initImage))

	var order strings.Builder
	if opts.KernelModules != "" {
		plan, err := planModules(opts)
		if err != nil {
			return nil, nil, err
		}
		res.Notes = append(res.Notes, plan.Notes...)
		res.KernelRelease = plan.Release
		if err := checkSameMachine(initImage, plan); err != nil {
			return nil, nil, err
		}
		if len(plan.Modules) > 0 {
			base := path.Join("/lib/modules", plan.Release)
			for _, m := range plan.Modules {
				p := path.Join(base, m.Rel)
				if err := t.file(p, m.Image, 0o644); err != nil {
					return nil, nil, err
				}
				order.WriteString(p + "\n")
				res.Modules = append(res.Modules, m.Name)
				res.ModulesSize += int64(len(m.Image))
			}
			if err := t.file(path.Join(base, "modules.dep"), plan.ModulesDep(), 0o644); err != nil {
				return nil, nil, err
			}
			if plan.Builtin != nil {
				if err := t.file(path.Join(base, "modules.builtin"), plan.Builtin, 0o644); err != nil {
					return nil, nil, err
				}
			}
		}
	}
	if err := t.file(ModulesOrderPath, []byte(order.String()), 0o644); err != nil {
		return nil, nil, err
	}

	if opts.Debug {
		if err := addDebugTools(opts, t, tmp, elfGOARCH(initImage)); err != nil {
			return nil, nil, err
		}
	}

	extra := make([]string, 0, len(opts.ExtraFiles))
	for p := range opts.ExtraFiles {
		extra = append(extra, p)
	}
	slices.Sort(extra)
	for _, p := range extra {
		if err := addHostFile(t, p, opts.ExtraFiles[p]); err != nil {
			return nil, nil, err
		}
	}
	for _, n := range res.Notes {
		opts.logger().Info("note", "note", n)
	}
	return t, res, nil
}

// planModules resolves the requested modules against the kernel's tree.
func planModules(opts *Options) (*kmod.Plan, error) {
	tree, err := kmod.OpenTree(opts.KernelModules)
	if err != nil {
		return nil, err
	}
	if tree.Len() == 0 {
		return nil, fmt.Errorf("kernel module tree %s holds no module files (.ko, .ko.xz, .ko.zst, .ko.gz)", opts.KernelModules)
	}
	names := opts.Modules
	if names == nil {
		names = DefaultModules()
	}
	optional := map[string]bool{}
	for _, n := range DefaultModules() {
		optional[kmod.Normalize(n)] = true
	}
	reqs := make([]kmod.Request, 0, len(names))
	for _, n := range names {
		reqs = append(reqs, kmod.Request{Name: n, Optional: optional[kmod.Normalize(n)]})
	}
	plan, err := tree.Resolve(reqs)
	if err != nil {
		return nil, fmt.Errorf("resolving kernel modules: %w", err)
	}
	return plan, nil
}

// checkSameMachine rejects an init built for another architecture than the
// kernel's modules: such an image could never boot.
func checkSameMachine(initImage []byte, plan *kmod.Plan) error {
	if len(plan.Modules) == 0 {
		return nil
	}
	im, err := elfMachine(initImage)
	if err != nil {
		return fmt.Errorf("init binary: %w", err)
	}
	m := plan.Modules[0]
	mm, err := elfMachine(m.Image)
	if err != nil {
		return fmt.Errorf("module %s: %w", m.Path, err)
	}
	if im != mm {
		return fmt.Errorf("the init binary is built for %v but the kernel modules (%s) are for %v", im, m.Path, mm)
	}
	return nil
}

// addHostFile adds the regular file src at image path p.
func addHostFile(t *tree, p, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("extra file for %s: %w", p, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("extra file %s for %s is not a regular file", src, p)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("extra file for %s: %w", p, err)
	}
	if err := t.file(p, b, uint64(st.Mode().Perm())); err != nil {
		return fmt.Errorf("extra file %s: %w", src, err)
	}
	return nil
}

// countWriter counts bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// writeImage writes the compressed archive to a temporary file beside out,
// syncs it and renames it into place. It returns the file's size, the
// uncompressed archive's size and the file's SHA-256.
func writeImage(out, method string, recs []cpio.Record, check func(size int64) error) (size, cpioSize int64, sum string, err error) {
	dir := filepath.Dir(out)
	f, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return 0, 0, "", fmt.Errorf("creating output: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	file := &countWriter{w: io.MultiWriter(f, h)}
	zw, err := compressor(method, file)
	if err != nil {
		return 0, 0, "", err
	}
	raw := &countWriter{w: zw}
	if err = writeCPIO(raw, recs); err != nil {
		return 0, 0, "", fmt.Errorf("writing %s: %w", out, err)
	}
	if err = zw.Close(); err != nil {
		return 0, 0, "", fmt.Errorf("compressing %s: %w", out, err)
	}
	if check != nil {
		if err = check(file.n); err != nil {
			return 0, 0, "", err
		}
	}
	if err = f.Chmod(0o644); err != nil {
		return 0, 0, "", fmt.Errorf("writing %s: %w", out, err)
	}
	if err = f.Sync(); err != nil {
		return 0, 0, "", fmt.Errorf("writing %s: %w", out, err)
	}
	if err = f.Close(); err != nil {
		return 0, 0, "", fmt.Errorf("writing %s: %w", out, err)
	}
	if err = os.Rename(f.Name(), out); err != nil {
		return 0, 0, "", fmt.Errorf("writing %s: %w", out, err)
	}
	return file.n, raw.n, hex.EncodeToString(h.Sum(nil)), nil
}
