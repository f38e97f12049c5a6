// Command rewriteimports applies a list of package moves to Go files: it
// rewrites each import of an old path to the new one and, when the last path
// element changes (so the package name changes), the qualifier of every use
// of that import in the file. A file that lies in a moved package's new
// directory and still declares the old package name gets the new one.
//
// A line "sym OLDPKG.Name NEWPKG.Name" moves one identifier (OLDPKG is its
// package's path after the package moves): qualified uses become uses of
// the new package, whose import is added (the old one is dropped when
// nothing else uses it), and in a file of OLDPKG itself unqualified uses
// become qualified ones.
//
// Usage: rewriteimports -moves tools/arch-moves.txt file.go...
//
// File paths are taken relative to the module root (the current directory),
// so that a file's directory names its package. The edits are textual, at
// the offsets the parser reports, and the file is then gofmt'ed (which also
// re-sorts the import block); a file that needs no change is not written.
// Running it twice changes nothing the second time.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

const module = "github.com/sealroot/sealroot"

func main() {
	movesFile := flag.String("moves", "tools/arch-moves.txt", "file of `old new` import path pairs")
	flag.Parse()
	moves, err := readMoves(*movesFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rewriteimports:", err)
		os.Exit(1)
	}
	failed := false
	for _, name := range flag.Args() {
		if err := rewriteFile(name, moves); err != nil {
			fmt.Fprintln(os.Stderr, "rewriteimports:", err)
			failed = true
		}
	}
	if failed {
		os.Exit(1)
	}
}

// moves is a parsed moves file.
type moves struct {
	pkgs map[string]string // old import path -> new
	syms map[symbol]symbol // old identifier -> new
}

// symbol is an identifier of a package.
type symbol struct{ pkg, name string }

func parseSymbol(s string) (symbol, bool) {
	i := strings.LastIndex(s, ".")
	if i <= 0 || i == len(s)-1 || strings.Contains(s[i:], "/") {
		return symbol{}, false
	}
	return symbol{s[:i], s[i+1:]}, true
}

// readMoves reads `old new` package pairs and `sym old new` identifier
// moves, one a line; blank lines and lines starting with # are skipped.
func readMoves(name string) (*moves, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := &moves{pkgs: map[string]string{}, syms: map[symbol]symbol{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 3 && fields[0] == "sym" {
			from, ok1 := parseSymbol(fields[1])
			to, ok2 := parseSymbol(fields[2])
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("%s:%d: want `sym oldpkg.Name newpkg.Name`, got %q", name, n, line)
			}
			if _, dup := m.syms[from]; dup {
				return nil, fmt.Errorf("%s:%d: %s moved twice", name, n, fields[1])
			}
			m.syms[from] = to
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want `old new`, got %q", name, n, line)
		}
		if _, dup := m.pkgs[fields[0]]; dup {
			return nil, fmt.Errorf("%s:%d: %s moved twice", name, n, fields[0])
		}
		m.pkgs[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(m.pkgs) == 0 && len(m.syms) == 0 {
		return nil, errors.New(name + ": no moves")
	}
	return m, nil
}

type edit struct {
	start, end int
	text       string
}

func rewriteFile(name string, m *moves) error {
	src, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	out, err := rewrite(name, src, m)
	if err != nil {
		return err
	}
	if bytes.Equal(out, src) {
		return nil
	}
	return os.WriteFile(name, out, 0o644)
}

// rewrite returns src with the moves applied: packages first, then
// identifiers.
func rewrite(name string, src []byte, m *moves) ([]byte, error) {
	out, err := rewritePackages(name, src, m.pkgs)
	if err != nil || len(m.syms) == 0 {
		return out, err
	}
	return rewriteSymbols(name, out, m.syms)
}

// parse parses a Go file with comments and object resolution (which tells
// a package qualifier, unresolved in the file, from a local of its name).
func parse(name string, src []byte) (*ast.File, *token.File, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		return nil, nil, err
	}
	return f, fset.File(f.Pos()), nil
}

// rewritePackages applies the package moves.
func rewritePackages(name string, src []byte, moves map[string]string) ([]byte, error) {
	f, tf, err := parse(name, src)
	if err != nil {
		return nil, err
	}
	off := func(p token.Pos) int { return tf.Offset(p) }
	var edits []edit

	// The package clause of a file already in a moved package's new home.
	pkgPath := filePackage(name)
	for oldPath, newPath := range moves {
		if newPath != pkgPath || path.Base(oldPath) == path.Base(newPath) {
			continue
		}
		oldName, newName := path.Base(oldPath), path.Base(newPath)
		switch f.Name.Name {
		case oldName:
			edits = append(edits, edit{off(f.Name.Pos()), off(f.Name.End()), newName})
		case oldName + "_test":
			edits = append(edits, edit{off(f.Name.Pos()), off(f.Name.End()), newName + "_test"})
		}
	}

	// Imports, and the qualifiers of the ones whose package name changes.
	renames := map[string]string{}
	for _, spec := range f.Imports {
		p, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: import %s: %w", name, spec.Path.Value, err)
		}
		newPath, ok := moves[p]
		if !ok {
			continue
		}
		edits = append(edits, edit{off(spec.Path.Pos()), off(spec.Path.End()), strconv.Quote(newPath)})
		if spec.Name == nil && path.Base(p) != path.Base(newPath) {
			renames[path.Base(p)] = path.Base(newPath)
		}
	}
	if len(renames) > 0 {
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			// A package qualifier is an identifier the parser could not
			// resolve in the file: a local variable of the same name has
			// an Obj and is left alone.
			if id, ok := sel.X.(*ast.Ident); ok && id.Obj == nil {
				if newName, ok := renames[id.Name]; ok {
					edits = append(edits, edit{off(id.Pos()), off(id.End()), newName})
				}
			}
			return true
		})
	}
	if len(edits) == 0 {
		return src, nil
	}

	return applyEdits(name, src, edits)
}

// applyEdits makes the edits (at most one at any offset) and gofmts the
// result.
func applyEdits(name string, src []byte, edits []edit) ([]byte, error) {
	sort.Slice(edits, func(i, j int) bool { return edits[i].start < edits[j].start })
	var b bytes.Buffer
	last := 0
	for _, e := range edits {
		if e.start < last {
			return nil, fmt.Errorf("%s: overlapping edits at offset %d", name, e.start)
		}
		b.Write(src[last:e.start])
		b.WriteString(e.text)
		last = e.end
	}
	b.Write(src[last:])
	out, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("%s: after rewriting: %w", name, err)
	}
	return out, nil
}

// filePackage is the import path of the package a file (named relative to
// the module root) belongs to.
func filePackage(name string) string {
	dir := filepath.ToSlash(filepath.Dir(filepath.Clean(name)))
	if dir == "." {
		return module
	}
	return module + "/" + dir
}

// rewriteSymbols applies the identifier moves.
func rewriteSymbols(name string, src []byte, syms map[symbol]symbol) ([]byte, error) {
	f, tf, err := parse(name, src)
	if err != nil {
		return nil, err
	}
	off := func(p token.Pos) int { return tf.Offset(p) }

	// The file's imports: path -> qualifier, and the specs.
	qual := map[string]string{}
	specs := map[string]*ast.ImportSpec{}
	for _, spec := range f.Imports {
		p, err := strconv.Unquote(spec.Path.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: import %s: %w", name, spec.Path.Value, err)
		}
		q := path.Base(p)
		if spec.Name != nil {
			q = spec.Name.Name
		}
		qual[p], specs[p] = q, spec
	}
	byQual := map[string]string{} // qualifier -> path
	for p, q := range qual {
		byQual[q] = p
	}
	self := filePackage(name)
	var edits []edit
	need := map[string]bool{} // new import paths used
	uses := map[string]int{}  // old import path -> uses left
	skip := map[*ast.Ident]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.SelectorExpr:
			id, ok := n.X.(*ast.Ident)
			if !ok || id.Obj != nil {
				return true
			}
			p, ok := byQual[id.Name]
			if !ok {
				return true
			}
			skip[n.Sel] = true
			to, moved := syms[symbol{p, n.Sel.Name}]
			if !moved {
				uses[p]++
				return true
			}
			edits = append(edits, edit{off(n.Pos()), off(n.End()), newQual(to.pkg, qual) + "." + to.name})
			need[to.pkg] = true
			uses[p] += 0
			return false
		case *ast.KeyValueExpr:
			if id, ok := n.Key.(*ast.Ident); ok {
				skip[id] = true // a field name, not the package-level identifier
			}
		case *ast.Ident:
			// An unqualified use, in a file of the package that held it.
			if n.Obj != nil || skip[n] {
				return true
			}
			to, moved := syms[symbol{self, n.Name}]
			if !moved || to.pkg == self {
				return true
			}
			edits = append(edits, edit{off(n.Pos()), off(n.End()), newQual(to.pkg, qual) + "." + to.name})
			need[to.pkg] = true
		}
		return true
	})
	if len(edits) == 0 {
		return src, nil
	}
	// Drop imports nothing uses any more; add the new ones.
	for p, n := range uses {
		if n == 0 && !need[p] {
			spec := specs[p]
			start := off(tf.LineStart(tf.Line(spec.Pos())))
			end := off(spec.End())
			if end < len(src) && src[end] == '\n' {
				end++
			}
			if single := importDeclOf(f, spec); single != nil {
				start, end = off(single.Pos()), off(single.End())
			}
			edits = append(edits, edit{start, end, ""})
		}
	}
	var add []string
	for p := range need {
		if p != self && qual[p] == "" {
			add = append(add, p)
		}
	}
	sort.Strings(add)
	if len(add) > 0 {
		var b strings.Builder
		at := off(f.Name.End())
		if block := importBlock(f); block != nil {
			// At the end of the first import block, where gofmt sorts
			// them into its last group.
			at = off(block.Rparen)
			for _, p := range add {
				b.WriteString("\t" + strconv.Quote(p) + "\n")
			}
		} else {
			b.WriteString("\n")
			for _, p := range add {
				b.WriteString("\nimport " + strconv.Quote(p))
			}
		}
		edits = append(edits, edit{at, at, b.String()})
	}
	return applyEdits(name, src, edits)
}

// newQual is the qualifier a file uses for package p.
func newQual(p string, qual map[string]string) string {
	if q, ok := qual[p]; ok {
		return q
	}
	return path.Base(p)
}

// importDeclOf returns spec's declaration when it is the only spec of an
// unparenthesized import declaration.
func importDeclOf(f *ast.File, spec *ast.ImportSpec) *ast.GenDecl {
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if ok && g.Tok == token.IMPORT && !g.Lparen.IsValid() && len(g.Specs) == 1 && g.Specs[0] == spec {
			return g
		}
	}
	return nil
}

// importBlock returns the file's first parenthesized import declaration.
func importBlock(f *ast.File) *ast.GenDecl {
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if ok && g.Tok == token.IMPORT && g.Lparen.IsValid() && len(g.Specs) > 0 {
			return g
		}
	}
	return nil
}
