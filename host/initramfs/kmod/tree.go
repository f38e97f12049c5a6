package kmod

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// Limits on what a module tree may make the builder read.
const (
	maxModuleFile  = 64 << 20  // one module file as stored
	maxModuleImage = 256 << 20 // one module after decompression
	maxIndexFile   = 64 << 20  // modules.dep, modules.builtin, modules.alias
)

// moduleSuffixes are the file name endings of module files, longest first.
var moduleSuffixes = []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"}

// moduleSuffix returns the module suffix of name, or "".
func moduleSuffix(name string) string {
	for _, s := range moduleSuffixes {
		if strings.HasSuffix(name, s) && len(name) > len(s) {
			return s
		}
	}
	return ""
}

// nameFromPath returns the normalized module name of a module file path.
func nameFromPath(p string) string {
	base := path.Base(p)
	return Normalize(strings.TrimSuffix(base, moduleSuffix(base)))
}

// Tree is one kernel's module directory (lib/modules/<version>).
type Tree struct {
	dir string
	// paths maps a normalized module name to its file, relative to dir
	// with '/' separators.
	paths map[string]string
	// builtin holds the normalized names listed in modules.builtin.
	builtin map[string]bool
	// builtinRaw is modules.builtin as found (nil when absent).
	builtinRaw []byte
	// builtinAliases maps an alias to the builtin modules declaring it, from
	// modules.builtin.modinfo.
	builtinAliases map[string][]string
	// dep holds modules.dep (relative path -> dependency paths); nil when
	// the tree has none.
	dep map[string][]string
	// aliases maps an alias pattern to the modules declaring it; filled from
	// modules.alias or, lazily, by reading every module's .modinfo.
	aliases map[string][]string
	// loaded caches modules read from disk, by normalized name.
	loaded map[string]*Module
	// notes collects remarks about the tree itself.
	notes []string
}

// OpenTree indexes the module tree at dir: the module files under it, and
// modules.dep, modules.builtin, modules.builtin.modinfo and modules.alias
// when present. Module files are not read until a plan needs them.
func OpenTree(dir string) (*Tree, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("kernel module tree: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("kernel module tree %s is not a directory", dir)
	}
	t := &Tree{
		dir:     dir,
		paths:   map[string]string{},
		builtin: map[string]bool{},
		loaded:  map[string]*Module{},
	}
	if err := t.walk(); err != nil {
		return nil, err
	}
	if err := t.readBuiltin(); err != nil {
		return nil, err
	}
	if err := t.readDep(); err != nil {
		return nil, err
	}
	if err := t.readAliases(); err != nil {
		return nil, err
	}
	return t, nil
}

// HasModulesDep reports whether the tree has a modules.dep file (and so
// dependencies come from it rather than from .modinfo).
func (t *Tree) HasModulesDep() bool { return t.dep != nil }

// Len returns the number of module files in the tree.
func (t *Tree) Len() int { return len(t.paths) }

// IsBuiltin reports whether modules.builtin lists name.
func (t *Tree) IsBuiltin(name string) bool { return t.builtin[Normalize(name)] }

// Has reports whether the tree has a module file for name.
func (t *Tree) Has(name string) bool { _, ok := t.paths[Normalize(name)]; return ok }

// walk finds every module file under the tree. When two files carry the same
// module name, depmod's search order decides: updates/ first, then extra/,
// then the rest; ties go to the lexically smaller path.
func (t *Tree) walk() error {
	err := filepath.WalkDir(t.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walking kernel module tree: %w", err)
		}
		if d.IsDir() || moduleSuffix(d.Name()) == "" {
			return nil
		}
		if !d.Type().IsRegular() {
			// A symlink (or other file) that resolves to a regular file
			// still counts; a dangling one is skipped.
			st, err := os.Stat(p)
			if err != nil || !st.Mode().IsRegular() {
				return nil
			}
		}
		rel, err := filepath.Rel(t.dir, p)
		if err != nil {
			return fmt.Errorf("walking kernel module tree: %w", err)
		}
		rel = filepath.ToSlash(rel)
		name := nameFromPath(rel)
		if !validName(name) {
			return nil // not something the kernel would load by name
		}
		if old, ok := t.paths[name]; ok {
			keep := preferPath(old, rel)
			t.notes = append(t.notes, fmt.Sprintf("module %s is in both %s and %s; using %s", name, old, rel, keep))
			t.paths[name] = keep
			return nil
		}
		t.paths[name] = rel
		return nil
	})
	return err
}

// preferPath picks between two files of the same module.
func preferPath(a, b string) string {
	rank := func(p string) int {
		switch {
		case strings.HasPrefix(p, "updates/"):
			return 0
		case strings.HasPrefix(p, "extra/"):
			return 1
		}
		return 2
	}
	if ra, rb := rank(a), rank(b); ra != rb {
		if ra < rb {
			return a
		}
		return b
	}
	return min(a, b)
}

// readIndex reads one of the tree's index files; nil, nil when absent.
func (t *Tree) readIndex(name string) ([]byte, error) {
	f, err := os.Open(filepath.Join(t.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kernel module tree: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxIndexFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	if len(b) > maxIndexFile {
		return nil, fmt.Errorf("%s exceeds %d bytes", f.Name(), maxIndexFile)
	}
	return b, nil
}

// readBuiltin reads modules.builtin (one path per line) and the aliases in
// modules.builtin.modinfo ("module.key=value" strings separated by NULs).
func (t *Tree) readBuiltin() error {
	b, err := t.readIndex("modules.builtin")
	if err != nil {
		return err
	}
	t.builtinRaw = b
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if name := nameFromPath(line); validName(name) {
			t.builtin[name] = true
		}
	}
	mi, err := t.readIndex("modules.builtin.modinfo")
	if err != nil {
		return err
	}
	t.builtinAliases = map[string][]string{}
	for _, entry := range bytes.Split(mi, []byte{0}) {
		mod, kv, ok := strings.Cut(string(entry), ".")
		if !ok {
			continue
		}
		if alias, ok := strings.CutPrefix(kv, "alias="); ok && validName(mod) {
			t.builtinAliases[alias] = append(t.builtinAliases[alias], Normalize(mod))
		}
	}
	return nil
}

// cleanRel checks that p is a clean relative path inside the tree.
func cleanRel(p string) bool {
	return p != "" && !path.IsAbs(p) && path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// readDep reads modules.dep when present: lines "path: dep dep ...".
func (t *Tree) readDep() error {
	b, err := t.readIndex("modules.dep")
	if err != nil || b == nil {
		return err
	}
	dep, err := ParseModulesDep(b)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(t.dir, "modules.dep"), err)
	}
	t.dep = dep
	// modules.dep names the file depmod chose for each module.
	for p := range dep {
		t.paths[nameFromPath(p)] = p
	}
	return nil
}

// ParseModulesDep parses a depmod modules.dep file into a map from module
// path to dependency paths (relative to the module tree).
func ParseModulesDep(b []byte) (map[string][]string, error) {
	dep := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: no colon", n)
		}
		mod = strings.TrimSpace(mod)
		if !cleanRel(mod) || moduleSuffix(mod) == "" {
			return nil, fmt.Errorf("line %d: %q is not a module path", n, truncate(mod))
		}
		deps := strings.Fields(rest)
		for _, d := range deps {
			if !cleanRel(d) || moduleSuffix(d) == "" {
				return nil, fmt.Errorf("line %d: dependency %q is not a module path", n, truncate(d))
			}
		}
		dep[mod] = deps
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return dep, nil
}

// readAliases reads modules.alias when present: lines "alias PATTERN module".
func (t *Tree) readAliases() error {
	b, err := t.readIndex("modules.alias")
	if err != nil || b == nil {
		return err
	}
	t.aliases = map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 3 && f[0] == "alias" && validName(f[2]) {
			t.aliases[f[1]] = append(t.aliases[f[1]], Normalize(f[2]))
		}
	}
	return nil
}

// scanAliases fills t.aliases from every module's .modinfo. It runs at most
// once, and only when a soft dependency names neither a module nor a builtin.
func (t *Tree) scanAliases() error {
	t.aliases = map[string][]string{}
	names := make([]string, 0, len(t.paths))
	for n := range t.paths {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		info, err := t.modinfo(n)
		if err != nil {
			// One unreadable module must not stop a lookup that is
			// almost always about some other module.
			t.notes = append(t.notes, fmt.Sprintf("looking up aliases: %v", err))
			continue
		}
		for _, a := range info.Aliases {
			t.aliases[a] = append(t.aliases[a], n)
		}
	}
	return nil
}

// modinfo returns the .modinfo of module name without keeping its image:
// a plain .ko is read in place, a compressed one is decompressed.
func (t *Tree) modinfo(name string) (Modinfo, error) {
	if m, ok := t.loaded[name]; ok {
		return m.Info, nil
	}
	file := filepath.Join(t.dir, filepath.FromSlash(t.paths[name]))
	if moduleSuffix(file) != ".ko" {
		image, err := readModuleFile(file)
		if err != nil {
			return Modinfo{}, err
		}
		info, err := ReadModinfo(bytes.NewReader(image))
		if err != nil {
			return Modinfo{}, fmt.Errorf("module %s: %w", file, err)
		}
		return info, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return Modinfo{}, fmt.Errorf("reading module: %w", err)
	}
	defer f.Close()
	info, err := ReadModinfo(f)
	if err != nil {
		return Modinfo{}, fmt.Errorf("module %s: %w", file, err)
	}
	return info, nil
}

// providers returns the modules of the tree, and the builtins, that declare
// alias name (matched as modprobe does, the alias being a glob pattern).
func (t *Tree) providers(name string) (modules, builtins []string, err error) {
	if t.aliases == nil {
		if err := t.scanAliases(); err != nil {
			return nil, nil, err
		}
	}
	match := func(m map[string][]string) []string {
		var out []string
		for pat, mods := range m {
			if ok, _ := path.Match(pat, name); ok || pat == name {
				out = append(out, mods...)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return match(t.aliases), match(t.builtinAliases), nil
}

// Module is one module file chosen for the initrd.
type Module struct {
	// Name is the normalized module name.
	Name string
	// Path is the file's path in the tree, relative, '/'-separated.
	Path string
	// Rel is the path to store it at, relative to lib/modules/<version>:
	// Path without any compression suffix (the image is decompressed).
	Rel string
	// Image is the decompressed module (an ELF relocatable object).
	Image []byte
	// Info is the parsed .modinfo.
	Info Modinfo
	// Depends lists the hard dependencies (normalized names) this plan
	// used, from modules.dep when the tree has one, else from .modinfo.
	Depends []string
}

// load reads, decompresses and parses the module file for name.
func (t *Tree) load(name string) (*Module, error) {
	if m, ok := t.loaded[name]; ok {
		return m, nil
	}
	rel, ok := t.paths[name]
	if !ok {
		return nil, fmt.Errorf("module %s: no file in %s", name, t.dir)
	}
	if strings.IndexFunc(rel, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		// modules.dep and the order file separate fields with spaces.
		return nil, fmt.Errorf("module %s: path %q contains a space or control character", name, rel)
	}
	file := filepath.Join(t.dir, filepath.FromSlash(rel))
	image, err := readModuleFile(file)
	if err != nil {
		return nil, err
	}
	info, err := ReadModinfo(bytes.NewReader(image))
	if err != nil {
		return nil, fmt.Errorf("module %s: %w", file, err)
	}
	if info.Name != "" && info.Name != name {
		return nil, fmt.Errorf("module %s: its .modinfo names it %s", file, info.Name)
	}
	m := &Module{
		Name:  name,
		Path:  rel,
		Rel:   strings.TrimSuffix(rel, moduleSuffix(rel)) + ".ko",
		Image: image,
		Info:  info,
	}
	if t.dep != nil {
		deps, ok := t.dep[rel]
		if !ok {
			return nil, fmt.Errorf("module %s: not listed in modules.dep", rel)
		}
		for _, d := range deps {
			m.Depends = append(m.Depends, nameFromPath(d))
		}
	} else {
		m.Depends = slices.Clone(info.Depends)
	}
	slices.Sort(m.Depends)
	m.Depends = slices.Compact(m.Depends)
	t.loaded[name] = m
	return m, nil
}

// readModuleFile reads a module file and decompresses it by its suffix.
func readModuleFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading module: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxModuleFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading module %s: %w", file, err)
	}
	if len(raw) > maxModuleFile {
		return nil, fmt.Errorf("module %s exceeds %d bytes", file, maxModuleFile)
	}
	image, err := Decompress(moduleSuffix(file), raw)
	if err != nil {
		return nil, fmt.Errorf("decompressing module %s: %w", file, err)
	}
	return image, nil
}
