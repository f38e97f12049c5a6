package kmod

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/initramfs/kmod/kmodtest"
)

// synthetic is a module tree exercising every resolution rule.
var synthetic = []kmodtest.Module{
	{Path: "kernel/drivers/virtio/virtio_ring.ko"},
	{Path: "kernel/drivers/virtio/virtio.ko", Depends: []string{"virtio_ring"}},
	{Path: "kernel/drivers/virtio/virtio_pci_modern_dev.ko.xz"},
	{Path: "kernel/drivers/virtio/virtio_pci.ko", Depends: []string{"virtio_ring", "virtio_pci_modern_dev", "virtio"}, Pad: 3000},
	{Path: "kernel/drivers/block/virtio_blk.ko.zst", Depends: []string{"virtio", "virtio_ring"}},
	{Path: "kernel/drivers/md/dm-mod.ko.gz", Name: "dm_mod"},
	{Path: "kernel/drivers/md/dm-crypt.ko", Name: "dm_crypt", Depends: []string{"dm-mod"}},
	{Path: "kernel/crypto/xts.ko", Softdeps: []string{"pre: ecb"}, Aliases: []string{"crypto-xts", "xts"}},
	{Path: "kernel/crypto/ecb.ko"},
	{Path: "kernel/lib/libcrc.ko", Softdeps: []string{"pre: crc-alias"}},
	{Path: "kernel/crypto/crc_impl.ko", Aliases: []string{"crc-alias", "pci:v00001AF4d*"}},
	{Path: "kernel/lib/uses_builtin_alias.ko", Softdeps: []string{"pre: crc32c"}},
	{Path: "kernel/misc/postdep.ko", Softdeps: []string{"post: after_me"}},
	{Path: "kernel/misc/after_me.ko"},
	{Path: "kernel/misc/needs_builtin.ko", Depends: []string{"builtin_thing"}},
	{Path: "kernel/misc/soft_missing.ko", Softdeps: []string{"pre: nowhere_soft"}},
	{Path: "kernel/misc/broken_dep.ko", Depends: []string{"nowhere"}},
	{Path: "kernel/misc/cyc_a.ko", Depends: []string{"cyc_b"}},
	{Path: "kernel/misc/cyc_b.ko", Depends: []string{"cyc_c"}},
	{Path: "kernel/misc/cyc_c.ko", Depends: []string{"cyc_a"}},
	{Path: "kernel/misc/soft_a.ko", Softdeps: []string{"pre: soft_b"}},
	{Path: "kernel/misc/soft_b.ko", Softdeps: []string{"pre: soft_a"}},
	{Path: "kernel/misc/dup.ko"},
	{Path: "updates/misc/dup.ko"},
	{Path: "kernel/misc/other_kernel.ko", Vermagic: "9.9.9 SMP"},
	{Path: "kernel/misc/no_vermagic.ko", Vermagic: " "},
	{Path: "kernel/misc/evil_vermagic.ko", Vermagic: "../../etc SMP"},
	{Path: "kernel/misc/liar.ko", Name: "truth"},
	{Path: "kernel/misc/garbled_softdep.ko", Softdeps: []string{"gcm"}},
	{Path: "kernel/odd dir/spaced.ko"},
}

var syntheticBuiltin = []string{"kernel/fs/ext4/ext4.ko", "kernel/misc/builtin-thing.ko", "kernel/crypto/crc32c_generic.ko"}

func writeSynthetic(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := kmodtest.WriteTree(dir, synthetic, syntheticBuiltin); err != nil {
		t.Fatal(err)
	}
	// A builtin declares the alias crc32c (as crc32c_generic does).
	if err := os.WriteFile(filepath.Join(dir, "modules.builtin.modinfo"),
		[]byte("crc32c_generic.alias=crypto-crc32c\x00crc32c_generic.alias=crc32c\x00crc32c_generic.license=GPL\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Unrelated files and directories must be ignored.
	if err := os.WriteFile(filepath.Join(dir, "modules.order"), []byte("kernel/crypto/xts.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/build", filepath.Join(dir, "build")); err != nil {
		t.Fatal(err)
	}
	for name, content := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func req(names ...string) []Request {
	var r []Request
	for _, n := range names {
		opt := strings.HasSuffix(n, "?")
		r = append(r, Request{Name: strings.TrimSuffix(n, "?"), Optional: opt})
	}
	return r
}

func TestResolveSynthetic(t *testing.T) {
	dir := writeSynthetic(t, nil)
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if tree.HasModulesDep() {
		t.Fatal("tree without modules.dep reports one")
	}
	if got, want := tree.Len(), len(synthetic)-1; got != want { // dup counted once
		t.Errorf("Len = %d, want %d", got, want)
	}
	tests := []struct {
		name      string
		reqs      []Request
		want      []string // load order
		wantNotes []string // substrings, each must appear in some note
		wantErr   string
	}{
		{
			name: "virtio, dm-crypt, xts with its softdep",
			reqs: req("virtio_pci", "virtio-blk", "dm-crypt", "xts"),
			want: []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk", "dm_mod", "dm_crypt", "ecb", "xts"},
		},
		{
			name: "'-' and '_' name the same module, listed once",
			reqs: req("dm_crypt", "dm-crypt", "dm-mod"),
			want: []string{"dm_mod", "dm_crypt"},
		},
		{
			name:      "builtin modules are noted, required or not",
			reqs:      req("ext4", "builtin_thing?"),
			want:      nil,
			wantNotes: []string{"ext4: built into the kernel", "builtin_thing: built into the kernel"},
		},
		{name: "missing optional module is a note", reqs: req("sev-guest?", "ecb"), want: []string{"ecb"}, wantNotes: []string{"sev-guest: not in this kernel, skipped"}},
		{name: "missing required module is an error", reqs: req("ecb", "sev-guest"), wantErr: "module sev-guest: not in"},
		{name: "request by alias", reqs: req("crypto-xts"), want: []string{"ecb", "xts"}},
		{name: "request by wildcard alias", reqs: req("pci:v00001AF4d00001042"), want: []string{"crc_impl"}},
		{name: "alias of a builtin", reqs: req("crypto-crc32c"), wantNotes: []string{"crypto-crc32c: provided by crc32c_generic, built into the kernel"}},
		{name: "softdep through an alias", reqs: req("libcrc"), want: []string{"crc_impl", "libcrc"}},
		{name: "softdep satisfied by a builtin alias", reqs: req("uses_builtin_alias"), want: []string{"uses_builtin_alias"}},
		{name: "softdep post comes after", reqs: req("postdep"), want: []string{"postdep", "after_me"}},
		{name: "builtin hard dependency is skipped", reqs: req("needs_builtin"), want: []string{"needs_builtin"}},
		{name: "missing soft dependency is a note", reqs: req("soft_missing"), want: []string{"soft_missing"}, wantNotes: []string{"soft_missing: soft dependency nowhere_soft (pre) is not in this kernel"}},
		{name: "missing hard dependency is an error", reqs: req("broken_dep"), wantErr: "depends on nowhere, which is neither"},
		{name: "hard cycle is an error", reqs: req("cyc_b"), wantErr: "cycle: cyc_b -> cyc_c -> cyc_a -> cyc_b"},
		{name: "soft cycle is broken with a note", reqs: req("soft_a"), want: []string{"soft_b", "soft_a"}, wantNotes: []string{"soft_b: soft dependency soft_a (pre) would form a cycle"}},
		{name: "updates/ wins over kernel/", reqs: req("dup"), want: []string{"dup"}, wantNotes: []string{"module dup is in both kernel/misc/dup.ko and updates/misc/dup.ko; using updates/misc/dup.ko"}},
		{name: "modules for two kernels", reqs: req("ecb", "other_kernel"), wantErr: "built for kernel 9.9.9"},
		{name: "module without vermagic", reqs: req("no_vermagic"), wantErr: "no vermagic"},
		{name: "vermagic that is not a release", reqs: req("evil_vermagic"), wantErr: `release "../../etc" is not a kernel release`},
		{name: "file named unlike its modinfo", reqs: req("liar"), wantErr: "names it truth"},
		{name: "garbled softdep is a note", reqs: req("garbled_softdep"), want: []string{"garbled_softdep"}, wantNotes: []string{`softdep "gcm"`}},
		{name: "module path with a space", reqs: req("spaced"), wantErr: `path "kernel/odd dir/spaced.ko" contains a space`},
		{name: "invalid request name", reqs: req("../x"), wantErr: "not valid"},
		{name: "empty request", reqs: nil, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tree, err := OpenTree(dir) // fresh state per case
			if err != nil {
				t.Fatal(err)
			}
			plan, err := tree.Resolve(tc.reqs)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := plan.Names(); !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("order = %v, want %v", got, tc.want)
			}
			for _, w := range tc.wantNotes {
				if !slices.ContainsFunc(plan.Notes, func(n string) bool { return strings.Contains(n, w) }) {
					t.Errorf("notes %q lack %q", plan.Notes, w)
				}
			}
			if len(plan.Modules) > 0 && plan.Release != kmodtest.Release {
				t.Errorf("Release = %q, want %q", plan.Release, kmodtest.Release)
			}
			if len(plan.Modules) == 0 && plan.Release != "" {
				t.Errorf("Release = %q without modules", plan.Release)
			}
		})
	}
}

func TestResolveImagesAndModulesDep(t *testing.T) {
	dir := writeSynthetic(t, nil)
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := tree.Resolve(req("virtio_pci", "virtio_blk", "dm-crypt", "xts"))
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]kmodtest.Module{}
	for _, m := range synthetic {
		byPath[m.Path] = m
	}
	for _, m := range plan.Modules {
		src, ok := byPath[m.Path]
		if !ok {
			t.Fatalf("module %s has unknown path %s", m.Name, m.Path)
		}
		if !bytes.Equal(m.Image, src.Image()) {
			t.Errorf("%s: image differs from the uncompressed module", m.Path)
		}
		if strings.Count(m.Rel, ".ko") != 1 || !strings.HasSuffix(m.Rel, ".ko") {
			t.Errorf("%s: stored as %s, want a plain .ko", m.Path, m.Rel)
		}
	}
	want := `kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/md/dm-mod.ko:
kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko
kernel/crypto/ecb.ko:
kernel/crypto/xts.ko:
`
	if got := string(plan.ModulesDep()); got != want {
		t.Errorf("modules.dep:\n%s\nwant:\n%s", got, want)
	}
	// The rendered file parses back to the same graph.
	dep, err := ParseModulesDep(plan.ModulesDep())
	if err != nil {
		t.Fatal(err)
	}
	if len(dep) != len(plan.Modules) || len(dep["kernel/drivers/virtio/virtio_pci.ko"]) != 3 {
		t.Errorf("round trip: %v", dep)
	}
}

// TestResolveWithModulesDep checks that a tree's modules.dep and
// modules.alias, when present, are used instead of .modinfo.
func TestResolveWithModulesDep(t *testing.T) {
	dir := writeSynthetic(t, map[string]string{
		// ecb.ko gains a dependency .modinfo does not have; the file
		// chosen for dup is kernel/ (depmod's choice), not updates/.
		"modules.dep": "kernel/crypto/ecb.ko: kernel/misc/after_me.ko\n" +
			"kernel/misc/after_me.ko:\n" +
			"kernel/crypto/xts.ko:\n" +
			"kernel/misc/dup.ko:\n",
		"modules.alias": "# Aliases extracted from modules themselves.\nalias only-in-alias-file ecb\n",
	})
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !tree.HasModulesDep() {
		t.Fatal("modules.dep not found")
	}
	plan, err := tree.Resolve(req("xts", "dup", "only-in-alias-file"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := plan.Names(), []string{"after_me", "ecb", "xts", "dup"}; !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
	if p := plan.Modules[3].Path; p != "kernel/misc/dup.ko" {
		t.Errorf("dup from %s, want depmod's kernel/misc/dup.ko", p)
	}
	// A module missing from modules.dep is an error: the file is stale.
	if _, err := tree.Resolve(req("virtio")); err == nil || !strings.Contains(err.Error(), "not listed in modules.dep") {
		t.Errorf("err = %v, want not listed in modules.dep", err)
	}
}

func TestParseModulesDep(t *testing.T) {
	good := "kernel/a.ko: kernel/b.ko.xz kernel/c.ko\n\n# comment\nkernel/b.ko.xz:\nkernel/c.ko:   \n"
	dep, err := ParseModulesDep([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dep["kernel/a.ko"], []string{"kernel/b.ko.xz", "kernel/c.ko"}) || len(dep["kernel/c.ko"]) != 0 || len(dep) != 3 {
		t.Errorf("parsed %v", dep)
	}
	for _, bad := range []string{
		"kernel/a.ko kernel/b.ko\n",
		"/abs/a.ko:\n",
		"../a.ko:\n",
		"kernel/../../a.ko:\n",
		"kernel/a.ko: ../../etc/passwd.ko\n",
		"kernel/a.txt:\n",
		"kernel/a.ko: kernel/b\n",
	} {
		if _, err := ParseModulesDep([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestOpenTreeErrors(t *testing.T) {
	if _, err := OpenTree(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("missing directory accepted")
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTree(f); err == nil {
		t.Error("regular file accepted")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "modules.dep"), []byte("no colon here.ko\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenTree(dir); err == nil {
		t.Error("broken modules.dep accepted")
	}
}

func TestDecompressErrors(t *testing.T) {
	for _, s := range []string{".ko.xz", ".ko.zst", ".ko.gz"} {
		if _, err := Decompress(s, []byte("definitely not compressed")); err == nil {
			t.Errorf("%s: garbage accepted", s)
		}
	}
	if _, err := Decompress(".ko.bz2", nil); err == nil {
		t.Error("unknown suffix accepted")
	}
}

// realTree returns the Debian kernel's module tree unpacked by `make deps`,
// or skips.
func realTree(t testing.TB) (dir, release string) {
	t.Helper()
	if d := os.Getenv("SEALROOT_KMODULES"); d != "" {
		dir = d
	} else {
		wd, _ := os.Getwd()
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dir = filepath.Join(d, ".cache", "kernel", "modules")
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if st, err := os.Stat(dir); dir == "" || err != nil || !st.IsDir() {
		skipOrFail(t, "no kernel module tree at %q (run `make deps` to unpack the Debian cloud kernel, or set SEALROOT_KMODULES)", dir)
	}
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), "version")); err == nil {
		release = strings.TrimSpace(string(b))
	}
	return dir, release
}

// TestResolveRealKernel resolves the init's modules against the real Debian
// kernel tree, which has no modules.dep.
func TestResolveRealKernel(t *testing.T) {
	dir, release := realTree(t)
	tree, err := OpenTree(dir)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := tree.Resolve(req("virtio_pci?", "virtio_blk?", "virtio_console?", "virtio_net?", "dm-mod?", "dm-crypt?",
		"xts?", "ecb?", "vsock?", "vmw_vsock_virtio_transport?", "vsock_loopback?", "configfs?", "tsm?", "sev-guest?", "tdx-guest?", "ext4?"))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("modules.dep in tree: %v; %d modules: %v", tree.HasModulesDep(), len(plan.Modules), plan.Names())
	t.Logf("notes: %q", plan.Notes)
	if release != "" && plan.Release != release {
		t.Errorf("Release = %q, want %q (from the kernel's version file)", plan.Release, release)
	}
	pos := map[string]int{}
	for i, m := range plan.Modules {
		pos[m.Name] = i
	}
	// Every module the init needs (docs/initramfs.md, "Default modules") is there.
	for _, n := range []string{"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev", "virtio_pci", "virtio_blk",
		"dm_mod", "dm_crypt", "xts", "ecb", "virtio_console", "failover", "net_failover", "virtio_net"} {
		if tree.IsBuiltin(n) {
			continue
		}
		if _, ok := pos[n]; !ok {
			t.Errorf("plan lacks %s", n)
		}
	}
	// Every module comes after its hard and pre-soft dependencies.
	for i, m := range plan.Modules {
		for _, d := range append(slices.Clone(m.Depends), m.Info.SoftPre...) {
			d = Normalize(d)
			if j, ok := pos[d]; ok && j > i {
				t.Errorf("%s (at %d) loads before its dependency %s (at %d)", m.Name, i, d, j)
			} else if !ok && tree.Has(d) && slices.Contains(m.Depends, d) {
				t.Errorf("%s needs %s, which the plan lacks", m.Name, d)
			}
		}
	}
	if pos["ecb"] > pos["xts"] {
		t.Error("ecb must load before xts (softdep pre)")
	}
	for _, line := range strings.Split(strings.TrimSuffix(string(plan.ModulesDep()), "\n"), "\n") {
		if strings.HasSuffix(line, " ") {
			t.Errorf("modules.dep line %q ends in a space", line)
		}
	}
}

func BenchmarkResolveReal(b *testing.B) {
	dir, _ := realTree(b)
	for b.Loop() {
		tree, err := OpenTree(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tree.Resolve(req("virtio_pci", "dm-crypt", "xts", "sev-guest?")); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseModulesDep: whatever a modules.dep holds, accepted paths are
// clean, relative module paths.
func FuzzParseModulesDep(f *testing.F) {
	f.Add([]byte("kernel/a.ko: kernel/b.ko.xz kernel/c.ko\nkernel/b.ko.xz:\nkernel/c.ko:\n"))
	f.Add([]byte("# comment\n\n"))
	f.Add([]byte("kernel/a.ko:kernel/../b.ko\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dep, err := ParseModulesDep(data)
		if err != nil {
			return
		}
		for mod, deps := range dep {
			for _, p := range append([]string{mod}, deps...) {
				if !cleanRel(p) || moduleSuffix(p) == "" {
					t.Fatalf("accepted path %q", p)
				}
			}
		}
	})
}

// skipOrFail skips a test whose prerequisite is missing, except under
// CI=true, where `make deps` has installed everything and a skip would hide
// a broken setup.
func skipOrFail(t testing.TB, format string, a ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("prerequisite missing under CI: "+format, a...)
	}
	t.Skipf(format, a...)
}
