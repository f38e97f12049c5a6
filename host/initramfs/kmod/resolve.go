package kmod

import (
	"fmt"
	"slices"
	"strings"
)

// Request names a module the initrd should carry.
type Request struct {
	// Name is a module name ('-' and '_' alike) or an alias.
	Name string
	// Optional requests are skipped with a note when the kernel has no such
	// module; a missing required module is an error. A module built into
	// the kernel is always skipped with a note.
	Optional bool
}

// Plan is the result of resolving requests against a tree.
type Plan struct {
	// Release is the kernel release the modules were built for (the first
	// word of their vermagic); "" when the plan has no modules.
	Release string
	// Modules are in load order: every module comes after its hard
	// dependencies and after its softdep pre: modules.
	Modules []*Module
	// Notes are remarks for the user: builtin or absent optional modules,
	// soft dependencies that could not be found, duplicate files.
	Notes []string
	// Builtin is the tree's modules.builtin, or nil.
	Builtin []byte
}

// Names returns the plan's module names in load order.
func (p *Plan) Names() []string {
	out := make([]string, len(p.Modules))
	for i, m := range p.Modules {
		out[i] = m.Name
	}
	return out
}

// ModulesDep renders a depmod-style modules.dep for the plan's modules:
// one line per module, in load order, "rel: dep dep ...", listing every
// module it needs directly or indirectly, those loaded last first (so a
// loader that walks the list from its end loads them in order). A module
// without dependencies gets "rel:" with nothing after the colon: u-root's
// kmodule reads a trailing space as a dependency on the directory itself.
func (p *Plan) ModulesDep() []byte {
	index := map[string]int{}
	byName := map[string]*Module{}
	for i, m := range p.Modules {
		index[m.Name] = i
		byName[m.Name] = m
	}
	var b strings.Builder
	for _, m := range p.Modules {
		seen := map[string]bool{}
		var closure func(*Module)
		closure = func(x *Module) {
			for _, d := range x.Depends {
				dm, ok := byName[d]
				if !ok || seen[d] {
					continue // builtin dependency
				}
				seen[d] = true
				closure(dm)
			}
		}
		closure(m)
		deps := make([]*Module, 0, len(seen))
		for d := range seen {
			deps = append(deps, byName[d])
		}
		slices.SortFunc(deps, func(a, b *Module) int { return index[b.Name] - index[a.Name] })
		b.WriteString(m.Rel)
		b.WriteByte(':')
		for _, d := range deps {
			b.WriteByte(' ')
			b.WriteString(d.Rel)
		}
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

// resolver holds the state of one Resolve call.
type resolver struct {
	t     *Tree
	plan  *Plan
	state map[string]int // 0 unvisited, 1 on the stack, 2 placed
	stack []string
	notes map[string]bool
}

const (
	unvisited = iota
	visiting
	placed
)

func (r *resolver) note(format string, a ...any) {
	s := fmt.Sprintf(format, a...)
	if !r.notes[s] {
		r.notes[s] = true
		r.plan.Notes = append(r.plan.Notes, s)
	}
}

// Resolve computes the plan for reqs: the requested modules and everything
// they need, in load order. Requests are placed in the order given; the
// dependencies of each are placed just before it.
func (t *Tree) Resolve(reqs []Request) (*Plan, error) {
	r := &resolver{
		t:     t,
		plan:  &Plan{Builtin: t.builtinRaw},
		state: map[string]int{},
		notes: map[string]bool{},
	}
	for _, req := range reqs {
		if !validRequest(req.Name) {
			return nil, fmt.Errorf("module name %q is not valid", truncate(req.Name))
		}
		name := Normalize(req.Name)
		switch {
		case t.Has(name):
			if err := r.visit(name); err != nil {
				return nil, err
			}
		case t.builtin[name]:
			r.note("%s: built into the kernel", name)
		default:
			mods, builtins, err := t.providers(req.Name)
			if err != nil {
				return nil, err
			}
			switch {
			case len(builtins) > 0:
				r.note("%s: provided by %s, built into the kernel", req.Name, strings.Join(builtins, ", "))
			case len(mods) > 0:
				for _, m := range mods {
					if err := r.visit(m); err != nil {
						return nil, err
					}
				}
			case req.Optional:
				r.note("%s: not in this kernel, skipped", req.Name)
			default:
				return nil, fmt.Errorf("module %s: not in %s and not built into the kernel", req.Name, t.dir)
			}
		}
	}
	for _, n := range t.notes {
		r.note("%s", n)
	}
	for _, m := range r.plan.Modules {
		rel := m.Info.Release()
		if rel == "" {
			return nil, fmt.Errorf("module %s: no vermagic", m.Path)
		}
		if !validRelease(rel) {
			// It becomes a directory name in the initrd.
			return nil, fmt.Errorf("module %s: vermagic release %q is not a kernel release", m.Path, truncate(rel))
		}
		if r.plan.Release == "" {
			r.plan.Release = rel
		} else if rel != r.plan.Release {
			return nil, fmt.Errorf("module %s is built for kernel %s, but %s is built for %s",
				m.Path, rel, r.plan.Modules[0].Path, r.plan.Release)
		}
	}
	return r.plan, nil
}

// validRelease accepts a kernel release usable as one path element:
// letters, digits and "._+-~", not starting with '.'.
func validRelease(s string) bool {
	if s == "" || len(s) > 64 || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', strings.IndexByte("._+-~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validRequest accepts a module name or an alias: 1 to 255 printable,
// non-space bytes without '/'.
func validRequest(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '/' {
			return false
		}
	}
	return true
}

// visit places module name after everything it needs.
func (r *resolver) visit(name string) error {
	switch r.state[name] {
	case placed:
		return nil
	case visiting:
		i := slices.Index(r.stack, name)
		return fmt.Errorf("module dependency cycle: %s", strings.Join(append(slices.Clone(r.stack[i:]), name), " -> "))
	}
	m, err := r.t.load(name)
	if err != nil {
		return err
	}
	r.state[name] = visiting
	r.stack = append(r.stack, name)
	for _, w := range m.Info.Warnings {
		r.note("%s: %s", m.Path, w)
	}

	for _, s := range m.Info.SoftPre {
		if err := r.soft(name, s, "pre"); err != nil {
			return err
		}
	}
	for _, d := range m.Depends {
		if r.t.Has(d) {
			if err := r.visit(d); err != nil {
				return err
			}
			continue
		}
		if !r.t.builtin[d] {
			return fmt.Errorf("module %s depends on %s, which is neither in %s nor built into the kernel", name, d, r.t.dir)
		}
	}
	r.plan.Modules = append(r.plan.Modules, m)
	r.state[name] = placed
	r.stack = r.stack[:len(r.stack)-1]

	for _, s := range m.Info.SoftPost {
		if err := r.soft(name, s, "post"); err != nil {
			return err
		}
	}
	return nil
}

// soft places a soft dependency. Soft dependencies are best effort, as in
// modprobe: one the kernel lacks is a note, and one that would close a cycle
// is dropped with a note.
func (r *resolver) soft(of, name, kind string) error {
	var targets []string
	switch n := Normalize(name); {
	case r.t.Has(n):
		targets = []string{n}
	case r.t.builtin[n]:
		return nil
	default:
		mods, builtins, err := r.t.providers(name)
		if err != nil {
			return err
		}
		if len(builtins) > 0 {
			return nil
		}
		if len(mods) == 0 {
			r.note("%s: soft dependency %s (%s) is not in this kernel, skipped", of, name, kind)
			return nil
		}
		targets = mods
	}
	for _, t := range targets {
		if r.state[t] == visiting {
			if kind == "post" {
				continue // an ancestor; it is placed after this module anyway
			}
			r.note("%s: soft dependency %s (%s) would form a cycle, skipped", of, t, kind)
			continue
		}
		if err := r.visit(t); err != nil {
			return err
		}
	}
	return nil
}
