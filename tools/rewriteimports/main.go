// Command rewriteimports applies a list of package moves to Go files: it
// rewrites each import of an old path to the new one and, when the last path
// element changes (so the package name changes), the qualifier of every use
// of that import in the file. A file that lies in a moved package's new
// directory and still declares the old package name gets the new one.
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

// readMoves reads `old new` pairs, one a line; blank lines and lines
// starting with # are skipped.
func readMoves(name string) (map[string]string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	moves := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("%s:%d: want `old new`, got %q", name, n, line)
		}
		if _, dup := moves[fields[0]]; dup {
			return nil, fmt.Errorf("%s:%d: %s moved twice", name, n, fields[0])
		}
		moves[fields[0]] = fields[1]
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(moves) == 0 {
		return nil, errors.New(name + ": no moves")
	}
	return moves, nil
}

type edit struct {
	start, end int
	text       string
}

func rewriteFile(name string, moves map[string]string) error {
	src, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	out, err := rewrite(name, src, moves)
	if err != nil {
		return err
	}
	if bytes.Equal(out, src) {
		return nil
	}
	return os.WriteFile(name, out, 0o644)
}

// rewrite returns src with the moves applied.
func rewrite(name string, src []byte, moves map[string]string) ([]byte, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	tf := fset.File(f.Pos())
	off := func(p token.Pos) int { return tf.Offset(p) }
	var edits []edit

	// The package clause of a file already in a moved package's new home.
	dir := filepath.ToSlash(filepath.Dir(filepath.Clean(name)))
	pkgPath := module
	if dir != "." {
		pkgPath = module + "/" + dir
	}
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
