package initramfs

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
	"github.com/u-root/u-root/pkg/kmodule"

	"github.com/sealroot/sealroot/host/initramfs/kmod/kmodtest"
)

// syntheticOptions builds with the tiny init, the synthetic module tree and
// one extra file.
func syntheticOptions(t *testing.T) Options {
	t.Helper()
	extra := filepath.Join(t.TempDir(), "hello.sh")
	if err := os.WriteFile(extra, []byte("#!/bin/sh\necho hello\n"), 0o750); err != nil {
		t.Fatal(err)
	}
	return Options{
		InitBinary:    tinyInit(t),
		KernelModules: writeSyntheticTree(t),
		Modules:       []string{"virtio_pci", "virtio_blk", "virtio_net", "dm-crypt", "xts", "ext4", "sev-guest"},
		ExtraFiles:    map[string]string{"/usr/share/sealroot/hello.sh": extra},
	}
}

var wantSyntheticOrder = []string{"virtio_ring", "virtio", "virtio_pci", "virtio_blk", "failover", "net_failover", "virtio_net", "dm_mod", "dm_crypt", "ecb", "xts"}

// TestBuildReproducible builds the same image twice per compression, into
// different directories, and wants identical bytes that decompress to the
// uncompressed image.
func TestBuildReproducible(t *testing.T) {
	base := syntheticOptions(t)
	var raw []byte
	for _, method := range []string{CompressNone, CompressGzip, CompressZopfli, CompressXZ, CompressZstd} {
		t.Run(method, func(t *testing.T) {
			needZopfli(t, method)
			var outs [2][]byte
			var results [2]*Result
			for i := range outs {
				opts := base
				opts.Compression = method
				opts.Output = filepath.Join(t.TempDir(), "initrd-"+string(rune('a'+i)))
				res, err := Build(opts)
				if err != nil {
					t.Fatal(err)
				}
				b, err := os.ReadFile(opts.Output)
				if err != nil {
					t.Fatal(err)
				}
				sum := sha256.Sum256(b)
				if res.SHA256 != hex.EncodeToString(sum[:]) || res.Size != int64(len(b)) {
					t.Errorf("result says %d bytes sha256 %s; file has %d bytes sha256 %x", res.Size, res.SHA256, len(b), sum)
				}
				if st, err := os.Stat(opts.Output); err != nil || st.Mode().Perm() != 0o644 {
					t.Errorf("output mode %v, %v; want 0644", st.Mode(), err)
				}
				outs[i], results[i] = b, res
			}
			if !bytes.Equal(outs[0], outs[1]) {
				t.Fatalf("two builds differ (%d and %d bytes)", len(outs[0]), len(outs[1]))
			}
			plain := decompress(t, method, outs[0])
			if method == CompressNone {
				raw = plain
			} else if raw != nil && !bytes.Equal(plain, raw) {
				t.Errorf("%s output does not decompress to the uncompressed image", method)
			}
			if results[0].CPIOSize != int64(len(plain)) {
				t.Errorf("CPIOSize = %d, archive has %d bytes", results[0].CPIOSize, len(plain))
			}
			if !slices.Equal(results[0].Modules, wantSyntheticOrder) {
				t.Errorf("Modules = %v, want %v", results[0].Modules, wantSyntheticOrder)
			}
			// The system tools agree, where installed.
			file := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(file, outs[0], 0o644); err != nil {
				t.Fatal(err)
			}
			switch tool := map[string]string{CompressGzip: "gzip", CompressZopfli: "gzip", CompressXZ: "xz", CompressZstd: "zstd"}[method]; {
			case tool == "":
			case havingTool(tool):
				runTool(t, nil, tool, "-t", file)
				if tool == "xz" {
					// The kernel's xz decoder verifies CRC32 or nothing.
					if out := runTool(t, nil, "xz", "--robot", "-lv", file); !strings.Contains(out, "CRC32") {
						t.Errorf("xz check is not CRC32:\n%s", out)
					}
				}
			default:
				t.Logf("%s not installed; decoded in Go only", tool)
			}
		})
	}
}

// TestBuildContents reads the image back with u-root's reader and checks
// every record.
func TestBuildContents(t *testing.T) {
	opts := syntheticOptions(t)
	opts.Compression = CompressNone
	opts.Output = filepath.Join(t.TempDir(), "initrd.cpio")
	var logs logCapture
	opts.Logger = logs.logger()
	res, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	archive, err := os.ReadFile(opts.Output)
	if err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, archive)
	if len(recs) != res.Records {
		t.Errorf("Records = %d, archive has %d", res.Records, len(recs))
	}
	if !bytes.HasSuffix(bytes.TrimRight(archive, "\x00"), []byte(cpio.Trailer)) {
		t.Error("archive does not end with the trailer")
	}

	byName := recordMap(recs)
	for i, r := range recs {
		if i > 0 && recs[i-1].Name >= r.Name {
			t.Errorf("records not sorted: %q before %q", recs[i-1].Name, r.Name)
		}
		if r.Ino != uint64(i+1) {
			t.Errorf("%s: ino %d, want %d", r.Name, r.Ino, i+1)
		}
		if r.UID != 0 || r.GID != 0 || r.MTime != 0 || r.Major != 0 || r.Minor != 0 || r.Rmajor != 0 || r.Rminor != 0 {
			t.Errorf("%s: not canonical: %+v", r.Name, r.Info)
		}
		if strings.HasPrefix(r.Name, "/") || r.Name == "." || strings.Contains(r.Name, "..") {
			t.Errorf("bad record name %q", r.Name)
		}
		if dir := path.Dir(r.Name); dir != "." {
			p, ok := byName[dir]
			if !ok || p.Mode&cpio.S_IFMT != cpio.S_IFDIR {
				t.Errorf("%s: parent %s is not a directory record", r.Name, dir)
			}
		}
		switch r.Mode & cpio.S_IFMT {
		case cpio.S_IFDIR:
			want := uint64(0o755)
			if r.Name == "tmp" {
				want = 0o1777
			}
			if r.Mode&0o7777 != want || r.NLink != 2 || r.FileSize != 0 {
				t.Errorf("directory %s: mode %o nlink %d size %d, want %o 2 0", r.Name, r.Mode&0o7777, r.NLink, r.FileSize, want)
			}
		case cpio.S_IFREG:
			if r.NLink != 1 {
				t.Errorf("%s: nlink %d", r.Name, r.NLink)
			}
		default:
			t.Errorf("%s: unexpected type %o", r.Name, r.Mode&cpio.S_IFMT)
		}
	}
	for _, d := range SkeletonDirs {
		if _, ok := byName[d[1:]]; !ok {
			t.Errorf("skeleton directory %s missing", d)
		}
	}

	initRec := byName["init"]
	want, _ := os.ReadFile(opts.InitBinary)
	if initRec.Mode != cpio.S_IFREG|0o755 || !bytes.Equal(recordData(t, initRec), want) {
		t.Errorf("/init: mode %o, contents equal %v", initRec.Mode, bytes.Equal(recordData(t, initRec), want))
	}
	if r := byName["usr/share/sealroot/hello.sh"]; r.Mode != cpio.S_IFREG|0o750 || string(recordData(t, r)) != "#!/bin/sh\necho hello\n" {
		t.Errorf("extra file: mode %o contents %q", r.Mode, recordData(t, r))
	}

	// The order file lists each module's initrd path, dependencies first.
	order := strings.Split(strings.TrimSuffix(string(recordData(t, byName[ModulesOrderPath[1:]])), "\n"), "\n")
	if len(order) != len(wantSyntheticOrder) {
		t.Fatalf("modules.order has %d lines, want %d: %q", len(order), len(wantSyntheticOrder), order)
	}
	srcByRel := map[string]kmodtest.Module{}
	for _, m := range syntheticModules {
		srcByRel[m.Path[:strings.Index(m.Path, ".ko")]+".ko"] = m
	}
	for i, line := range order {
		if !strings.HasPrefix(line, "/lib/modules/"+kmodtest.Release+"/kernel/") || !strings.HasSuffix(line, ".ko") {
			t.Errorf("order line %q is not a plain .ko under /lib/modules/%s", line, kmodtest.Release)
		}
		r, ok := byName[line[1:]]
		if !ok {
			t.Errorf("order line %q has no record", line)
			continue
		}
		name := strings.ReplaceAll(strings.TrimSuffix(path.Base(line), ".ko"), "-", "_")
		if name != wantSyntheticOrder[i] {
			t.Errorf("order line %d is %s, want %s", i, name, wantSyntheticOrder[i])
		}
		// Stored decompressed: the bytes are the module's ELF image.
		m, ok := srcByRel[strings.TrimPrefix(line, "/lib/modules/"+kmodtest.Release+"/")]
		if !ok || !bytes.Equal(recordData(t, r), m.Image()) {
			t.Errorf("%s: contents are not the decompressed module", line)
		}
		if r.Mode != cpio.S_IFREG|0o644 {
			t.Errorf("%s: mode %o", line, r.Mode)
		}
	}
	dep := string(recordData(t, byName["lib/modules/"+kmodtest.Release+"/modules.dep"]))
	if !strings.Contains(dep, "kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\n") ||
		!strings.Contains(dep, "kernel/crypto/ecb.ko:\n") {
		t.Errorf("modules.dep:\n%s", dep)
	}
	if _, ok := byName["lib/modules/"+kmodtest.Release+"/modules.builtin"]; !ok {
		t.Error("modules.builtin not copied")
	}
	for _, n := range []string{"ext4: built into the kernel", "sev-guest: not in this kernel"} {
		if !slices.ContainsFunc(res.Notes, func(s string) bool { return strings.Contains(s, n) }) {
			t.Errorf("notes %q lack %q", res.Notes, n)
		}
	}
	// Each note is also an info record on the Logger.
	notes := logs.records(t, "note")
	if len(notes) != len(res.Notes) {
		t.Errorf("%d note records for %d notes", len(notes), len(res.Notes))
	}
	for i, r := range notes {
		if i < len(res.Notes) && (r["note"] != res.Notes[i] || r["level"] != "INFO") {
			t.Errorf("note record %v, want %q at INFO", r, res.Notes[i])
		}
	}
	if res.KernelRelease != kmodtest.Release || res.ModulesSize == 0 || res.InitSize != int64(len(want)) {
		t.Errorf("result %+v", res)
	}

	// GNU cpio reads it too.
	if havingTool("cpio") {
		listed := strings.Fields(runTool(t, archive, "cpio", "-it", "--quiet"))
		var names []string
		for _, r := range recs {
			names = append(names, r.Name)
		}
		if !slices.Equal(listed, names) {
			t.Errorf("cpio -it lists %q, want %q", listed, names)
		}
		runTool(t, archive, "cpio", "-itv", "--quiet")
	}
}

// TestBuildUrootProbe checks that u-root's kmodule prober, pointed at the
// unpacked image, finds every module through the generated modules.dep and
// loads dependencies first.
func TestBuildUrootProbe(t *testing.T) {
	t.Run("synthetic", func(t *testing.T) {
		opts := syntheticOptions(t)
		checkProbe(t, opts)
	})
	t.Run("debian", func(t *testing.T) {
		dir := realKernelModules(t)
		checkProbe(t, Options{InitBinary: tinyInit(t), KernelModules: dir})
	})
}

func checkProbe(t *testing.T, opts Options) {
	opts.Compression = CompressNone
	opts.Output = filepath.Join(t.TempDir(), "initrd.cpio")
	res, err := Build(opts)
	if err != nil {
		t.Fatal(err)
	}
	archive, _ := os.ReadFile(opts.Output)
	root := t.TempDir()
	for _, r := range readRecords(t, archive) {
		p := filepath.Join(root, filepath.FromSlash(r.Name))
		switch r.Mode & cpio.S_IFMT {
		case cpio.S_IFDIR:
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
		case cpio.S_IFREG:
			if err := os.WriteFile(p, recordData(t, r), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	order := strings.Fields(string(mustRead(t, filepath.Join(root, "etc/sealroot/modules.order"))))
	if len(order) == 0 {
		t.Fatal("no modules")
	}
	dep := string(mustRead(t, filepath.Join(root, "lib/modules", res.KernelRelease, "modules.dep")))
	for _, line := range strings.Split(strings.TrimSuffix(dep, "\n"), "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("modules.dep line %q ends in a space", line)
		}
	}
	for _, want := range order {
		var mu sync.Mutex
		var loaded []string
		popts := kmodule.ProbeOpts{
			RootDir:        root,
			KVer:           res.KernelRelease,
			IgnoreProcMods: true,
			DryRunCB: func(p string) {
				mu.Lock()
				defer mu.Unlock()
				loaded = append(loaded, strings.TrimPrefix(p, root))
			},
		}
		name := strings.TrimSuffix(path.Base(want), ".ko")
		if err := kmodule.ProbeOptions(name, "", popts); err != nil {
			t.Fatalf("kmodule probe %s: %v", name, err)
		}
		if len(loaded) == 0 || loaded[len(loaded)-1] != want {
			t.Errorf("probe %s loaded %q, want it to end with %s", name, loaded, want)
		}
		// Everything the prober loaded first must come earlier in the
		// order file too.
		for _, l := range loaded {
			if slices.Index(order, l) > slices.Index(order, want) {
				t.Errorf("probe %s loaded %s, which modules.order puts after it", name, l)
			}
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// realKernelModules returns the Debian kernel's module tree from `make
// deps`, or skips.
func realKernelModules(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("SEALROOT_KMODULES"); d != "" {
		return d
	}
	wd, _ := os.Getwd()
	root, err := FindModuleRoot(wd, DefaultModulePath)
	if err == nil {
		dir := filepath.Join(root, ".cache", "kernel", "modules")
		if st, err := os.Stat(dir); err == nil && st.IsDir() {
			return dir
		}
	}
	skipOrFail(t, "no Debian kernel module tree at .cache/kernel/modules (run `make deps`, or set SEALROOT_KMODULES)")
	return ""
}

// TestBuildRealKernel builds with the default module list against the
// Debian cloud kernel tree (no modules.dep).
func TestBuildRealKernel(t *testing.T) {
	dir := realKernelModules(t)
	res, err := Build(Options{InitBinary: tinyInit(t), KernelModules: dir, Output: filepath.Join(t.TempDir(), "initrd"), Compression: CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d bytes, %d records, modules %v, notes %q", res.Size, res.Records, res.Modules, res.Notes)
	for _, m := range []string{"virtio_ring", "virtio_pci", "virtio_blk", "virtio_console", "failover", "net_failover", "virtio_net",
		"dm_mod", "dm_crypt", "ecb", "xts", "vsock", "vmw_vsock_virtio_transport", "dm_bufio", "dm_verity", "overlay"} {
		if !slices.Contains(res.Modules, m) {
			t.Errorf("default modules lack %s", m)
		}
	}
	if slices.Index(res.Modules, "ecb") > slices.Index(res.Modules, "xts") {
		t.Error("ecb after xts")
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "version")); err == nil && strings.TrimSpace(string(b)) != res.KernelRelease {
		t.Errorf("KernelRelease %q, kernel version file says %q", res.KernelRelease, b)
	}
}

// TestBuildNoModules: a kernel with everything built in needs only the init.
func TestBuildNoModules(t *testing.T) {
	out := filepath.Join(t.TempDir(), "initrd")
	res, err := Build(Options{InitBinary: tinyInit(t), Output: out, Compression: CompressNone})
	if err != nil {
		t.Fatal(err)
	}
	recs := readRecords(t, mustRead(t, out))
	var names []string
	for _, r := range recs {
		names = append(names, r.Name)
	}
	want := []string{"dev", "etc", "etc/sealroot", "etc/sealroot/modules.order", "init", "lib", "lib/modules", "newroot", "proc", "run", "sys", "tmp"}
	if !slices.Equal(names, want) {
		t.Errorf("records %q, want %q", names, want)
	}
	if res.Records != len(want) || len(res.Modules) != 0 || res.KernelRelease != "" {
		t.Errorf("result %+v", res)
	}
	if r := recordMap(recs)["etc/sealroot/modules.order"]; r.FileSize != 0 {
		t.Errorf("modules.order has %d bytes, want 0", r.FileSize)
	}
}

func TestBuildErrors(t *testing.T) {
	tmp := t.TempDir()
	text := filepath.Join(tmp, "text")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	emptyTree := filepath.Join(tmp, "emptytree")
	if err := os.MkdirAll(emptyTree, 0o755); err != nil {
		t.Fatal(err)
	}
	good := func() Options {
		return Options{InitBinary: tinyInit(t), Output: filepath.Join(tmp, "out"), Compression: CompressNone}
	}
	synth := writeSyntheticTree(t)
	arm := filepath.Join(tmp, "armtree")
	if err := kmodtest.WriteTree(arm, []kmodtest.Module{{Path: "kernel/a.ko", Machine: elf.EM_AARCH64}}, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mod     func(*Options)
		wantErr string
	}{
		{"no output", func(o *Options) { o.Output = "" }, "no output"},
		{"bad compression", func(o *Options) { o.Compression = "bzip2" }, "unknown compression"},
		{"missing init", func(o *Options) { o.InitBinary = filepath.Join(tmp, "nope") }, "no such file"},
		{"init not ELF", func(o *Options) { o.InitBinary = text }, "not an ELF"},
		{"init is a directory", func(o *Options) { o.InitBinary = tmp }, "not a regular file"},
		{"unknown required module", func(o *Options) { o.KernelModules = synth; o.Modules = []string{"virtio_blk", "no_such_module"} }, "module no_such_module: not in"},
		{"init and modules for different machines", func(o *Options) { o.KernelModules = arm; o.Modules = []string{"a"} }, "built for EM_X86_64 but the kernel modules (kernel/a.ko) are for EM_AARCH64"},
		{"tree without modules", func(o *Options) { o.KernelModules = emptyTree }, "holds no module files"},
		{"missing tree", func(o *Options) { o.KernelModules = filepath.Join(tmp, "nope") }, "kernel module tree"},
		{"extra file over /init", func(o *Options) { o.ExtraFiles = map[string]string{"/init": text} }, "added twice"},
		{"extra file below a file", func(o *Options) { o.ExtraFiles = map[string]string{"/init/x": text} }, "not a directory"},
		{"extra file climbing out", func(o *Options) { o.ExtraFiles = map[string]string{"/../etc/x": text} }, "not clean"},
		{"extra file at the root", func(o *Options) { o.ExtraFiles = map[string]string{"/": text} }, "names the root"},
		{"extra file is a directory", func(o *Options) { o.ExtraFiles = map[string]string{"/x": tmp} }, "not a regular file"},
		{"output directory missing", func(o *Options) { o.Output = filepath.Join(tmp, "no", "dir", "out") }, "creating output"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := good()
			tc.mod(&o)
			_, err := Build(o)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
	// Failed builds leave nothing behind in the output directory.
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".out") {
			t.Errorf("leftover %s", e.Name())
		}
	}
}

// TestBuildRejectsDynamicInit uses a dynamically linked system binary.
func TestBuildRejectsDynamicInit(t *testing.T) {
	var dyn string
	for _, c := range []string{"/bin/ls", "/usr/bin/ls", "/bin/sh", "/usr/bin/env"} {
		f, err := elf.Open(c)
		if err != nil {
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				dyn = c
			}
		}
		f.Close()
		if dyn != "" {
			break
		}
	}
	if dyn == "" {
		t.Skip("no dynamically linked ELF binary found on this system")
	}
	_, err := Build(Options{InitBinary: dyn, Output: filepath.Join(t.TempDir(), "out")})
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") {
		t.Fatalf("err = %v, want dynamically linked", err)
	}
}

// TestBuildRealInit builds the project's own guest init (InitPackage) (static, reproducible)
// twice and wants identical images.
func TestBuildRealInit(t *testing.T) {
	wd, _ := os.Getwd()
	root, err := FindModuleRoot(wd, DefaultModulePath)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := hasMainPackage(filepath.Join(root, filepath.FromSlash(InitPackage)))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("%s/%s has no main package", root, InitPackage)
	}
	var images [2][]byte
	for i := range images {
		out := filepath.Join(t.TempDir(), "initrd")
		// The second build finds the module from the working directory.
		var logs logCapture
		opts := Options{Output: out, Compression: CompressNone, ModuleRoot: root, Logger: logs.logger()}
		if i == 1 {
			opts.ModuleRoot = ""
		}
		res, err := Build(opts)
		if err != nil {
			t.Fatal(err)
		}
		// The init build is a record naming the package and the module.
		if rs := logs.records(t, "building the init"); len(rs) != 1 || rs[0]["package"] != InitPackage || rs[0]["dir"] != root {
			t.Errorf("init build records %v, want one naming %s in %s", rs, InitPackage, root)
		}
		images[i] = mustRead(t, out)
		t.Logf("real init: %d bytes; image %d bytes", res.InitSize, res.Size)
	}
	if !bytes.Equal(images[0], images[1]) {
		t.Fatal("two builds of the real init give different images")
	}
	initRec := recordMap(readRecords(t, images[0]))["init"]
	if err := checkStaticELF(recordData(t, initRec)); err != nil {
		t.Errorf("/init: %v", err)
	}
}

func TestFindModuleRoot(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/x\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A nested module of another name is passed over.
	if err := os.WriteFile(filepath.Join(dir, "a", "go.mod"), []byte("module example.com/other\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := FindModuleRoot(sub, "example.com/x")
	if err != nil || got != dir {
		t.Errorf("FindModuleRoot = %q, %v; want %q", got, err, dir)
	}
	if _, err := FindModuleRoot(sub, "example.com/missing"); err == nil {
		t.Error("found a module that is not there")
	}
}

func TestBuildInitWithoutMain(t *testing.T) {
	root := t.TempDir()
	initDir := filepath.Join(root, filepath.FromSlash(InitPackage))
	if err := os.MkdirAll(filepath.Join(initDir, "config"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/x\n\ngo 1.26\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(initDir, "doc.go"), []byte("// Package init is not a command.\npackage init\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Build(Options{Output: filepath.Join(t.TempDir(), "out"), ModuleRoot: root})
	if !errors.Is(err, ErrNoInitMain) {
		t.Fatalf("err = %v, want ErrNoInitMain", err)
	}
}

func TestCleanName(t *testing.T) {
	for in, want := range map[string]string{
		"/init": "init", "etc/x": "etc/x", "/lib/modules/6.1/kernel/a.ko": "lib/modules/6.1/kernel/a.ko",
		"/": "", "": "", "/a/../b": "", "a//b": "", "a/": "", "./a": "", "..": "", "a\x00b": "",
	} {
		got, err := cleanName(in)
		if want == "" {
			if err == nil {
				t.Errorf("cleanName(%q) = %q, want an error", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestTreeAdd(t *testing.T) {
	tr := newTree()
	if err := tr.dir("/etc", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tr.dir("etc", 0o755); err != nil {
		t.Errorf("same directory twice: %v", err)
	}
	if err := tr.dir("/etc", 0o700); err == nil {
		t.Error("directory with two modes accepted")
	}
	if err := tr.file("/etc/f", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tr.file("/etc/f", nil, 0o644); err == nil {
		t.Error("file twice accepted")
	}
	if err := tr.symlink("/etc/f/g", "x"); err == nil {
		t.Error("entry below a file accepted")
	}
	if err := tr.symlink("/bin/sh", "../bbin/gosh"); err != nil {
		t.Fatal(err)
	}
	recs, err := tr.records()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Name)
	}
	// bin is created as a parent of bin/sh, with mode 0755.
	if want := []string{"bin", "bin/sh", "etc", "etc/f"}; !slices.Equal(got, want) {
		t.Errorf("records %q, want %q", got, want)
	}
	if recs[0].Mode != cpio.S_IFDIR|0o755 || recs[1].Mode != cpio.S_IFLNK|0o777 || recs[1].FileSize != uint64(len("../bbin/gosh")) {
		t.Errorf("modes %o %o", recs[0].Mode, recs[1].Mode)
	}
}

// TestBuildDebug builds a debug image: u-root's commands compiled into one
// busybox binary (about 20 s, and u-root's dependencies may be fetched from
// the Go module proxy), so it runs only when SEALROOT_TEST_DEBUG=1.
func TestBuildDebug(t *testing.T) {
	if os.Getenv("SEALROOT_TEST_DEBUG") != "1" {
		t.Skip("set SEALROOT_TEST_DEBUG=1 to build the debug tools (about 20 s)")
	}
	out := filepath.Join(t.TempDir(), "initrd")
	var logs logCapture
	if _, err := Build(Options{Output: out, Compression: CompressNone, InitBinary: tinyInit(t), Debug: true, Logger: logs.logger()}); err != nil {
		t.Fatal(err)
	}
	if rs := logs.records(t, "building the debug tools"); len(rs) != 1 || rs[0]["commands"] != float64(len(DebugCommands)) {
		t.Errorf("debug tools records %v, want one with commands %d", rs, len(DebugCommands))
	}
	recs := recordMap(readRecords(t, mustRead(t, out)))
	bb, ok := recs["bbin/bb"]
	if !ok || bb.Mode != cpio.S_IFREG|0o755 {
		t.Fatalf("no /bbin/bb (mode %o)", bb.Mode)
	}
	if err := checkStaticELF(recordData(t, bb)); err != nil {
		t.Errorf("/bbin/bb: %v", err)
	}
	if sh := recs["bin/sh"]; sh.Mode&cpio.S_IFMT != cpio.S_IFLNK || string(recordData(t, sh)) != "../bbin/gosh" {
		t.Errorf("/bin/sh: mode %o target %q", sh.Mode, recordData(t, sh))
	}
	for _, c := range DebugCommands {
		if l := recs["bbin/"+c]; string(recordData(t, l)) != "bb" {
			t.Errorf("/bbin/%s is not a link to bb", c)
		}
	}
	if _, ok := recs[DebugMarkerPath[1:]]; !ok {
		t.Error("debug marker missing")
	}
	// The shell runs (the host is Linux on the same architecture).
	dir := t.TempDir()
	bin := filepath.Join(dir, "gosh")
	if err := os.WriteFile(bin, recordData(t, bb), 0o755); err != nil {
		t.Fatal(err)
	}
	got := runTool(t, []byte("echo debug-shell-ok\n"), bin)
	if !strings.Contains(got, "debug-shell-ok") {
		t.Errorf("gosh printed %q", got)
	}
}

// skipOrFail skips a test whose prerequisite is missing, except under
// CI=true, where `make deps` has installed everything and a skip would hide
// a broken setup.
// needZopfli skips (or fails, under CI) a zopfli case without the program.
func needZopfli(t testing.TB, method string) {
	t.Helper()
	if method == CompressZopfli && !havingTool("zopfli") {
		skipOrFail(t, "zopfli not installed (make deps installs it)")
	}
}

func skipOrFail(t testing.TB, format string, a ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisite missing under CI: "+format, a...)
	}
	t.Skipf(format, a...)
}
