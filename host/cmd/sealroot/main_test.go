package main

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runCLI runs sealroot with args as a user would, in this process, and
// returns the exit status, stdout and stderr. Each call builds a command
// tree of its own (run calls newRootCmd), so nothing a run sets is seen by
// the next; standard input is empty.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut strings.Builder
	code = run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// walkCommands calls fn for c and every command below it.
func walkCommands(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, s := range c.Commands() {
		walkCommands(s, fn)
	}
}

// visitFlags calls fn for every flag c declares, local and persistent.
func visitFlags(c *cobra.Command, fn func(*pflag.Flag)) {
	c.LocalNonPersistentFlags().VisitAll(fn)
	c.PersistentFlags().VisitAll(fn)
}

// otherValue is a value of f's type that differs from its default.
func otherValue(t *testing.T, f *pflag.Flag) string {
	switch f.Value.Type() {
	case "bool":
		if f.DefValue == "true" {
			return "false"
		}
		return "true"
	case "int", "uint32", "uint64", "int64", "intSlice", "float64":
		return "12345"
	case "duration":
		return "12345s"
	case "string", "stringArray", "stringSlice":
		return "leaked"
	}
	t.Fatalf("--%s: no test value for flag type %s", f.Name, f.Value.Type())
	return ""
}

// TestCommandTreesShareNoState sets every flag of every command of one tree
// and checks that a second tree still has every flag at its default, bound
// to a value of its own: flags bound to package-level variables, or one
// struct shared by two constructors' calls, would show up here.
func TestCommandTreesShareNoState(t *testing.T) {
	a := newRootCmd()
	values := map[pflag.Value]string{}
	n := 0
	walkCommands(a, func(c *cobra.Command) {
		visitFlags(c, func(f *pflag.Flag) {
			if err := f.Value.Set(otherValue(t, f)); err != nil {
				t.Fatalf("%s --%s: %v", c.CommandPath(), f.Name, err)
			}
			f.Changed = true
			values[f.Value] = c.CommandPath() + " --" + f.Name
			n++
		})
	})
	if n < 100 {
		t.Fatalf("only %d flags set: the walk misses commands", n)
	}
	b := newRootCmd()
	m := 0
	walkCommands(b, func(c *cobra.Command) {
		visitFlags(c, func(f *pflag.Flag) {
			m++
			if f.Value.String() != f.DefValue {
				t.Errorf("%s --%s = %q in a new tree, want its default %q", c.CommandPath(), f.Name, f.Value.String(), f.DefValue)
			}
			if f.Changed {
				t.Errorf("%s --%s is changed in a new tree", c.CommandPath(), f.Name)
			}
			if other, shared := values[f.Value]; shared {
				t.Errorf("%s --%s shares its value with %s of another tree", c.CommandPath(), f.Name, other)
			}
		})
	})
	if m != n {
		t.Errorf("the trees differ: %d flags, then %d", n, m)
	}
}

// TestNoStateBetweenRuns runs commands whose flags change what a later run
// without them does: the later run must behave as if it were the first.
func TestNoStateBetweenRuns(t *testing.T) {
	dir := t.TempDir()
	k, i := filepath.Join(dir, "k"), filepath.Join(dir, "i")
	os.WriteFile(k, []byte("kernel"), 0o644)
	os.WriteFile(i, []byte("initrd"), 0o644)
	measure := func(extra ...string) map[string]any {
		t.Helper()
		code, out, errOut := runCLI(t, append([]string{"measure", "--tee", "sim", "--kernel", k, "--initrd", i, "--json"}, extra...)...)
		if code != 0 {
			t.Fatalf("measure %v: exit %d: %s", extra, code, errOut)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("measure %v: %v: %s", extra, err, out)
		}
		return m
	}
	first := measure()
	if m := measure("--cpus", "3", "--memory", "1024", "--machine", "microvm"); m["cpus"] != float64(3) || m["measurement"] == first["measurement"] {
		t.Fatalf("--cpus 3 --machine microvm: %v", m)
	}
	if again := measure(); again["measurement"] != first["measurement"] || again["cpus"] != float64(defaultMeasureCPUs) || again["machine"] != "pc" {
		t.Fatalf("after a run with --cpus 3 --machine microvm, a run without them gives %v, first %v", again, first)
	}

	// --sim-dir applies to --tee sim only: a run after one that gave it
	// must not see it.
	if code, _, errOut := runCLI(t, "verify", "--tee", "snp", "--evidence", k, "--sim-dir", dir); code != 2 || !strings.Contains(errOut, "--sim-dir is only for --tee sim") {
		t.Fatalf("verify --tee snp --sim-dir: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "verify", "--tee", "snp", "--evidence", k, "--offline"); code != 1 || strings.Contains(errOut, "--sim-dir") {
		t.Fatalf("verify --tee snp after a run with --sim-dir: exit %d: %s", code, errOut)
	}
}

// TestNoPackageState: the command tree is built by constructors only, so
// the package has no init functions and no package-level variables.
func TestNoPackageState(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil && d.Name.Name == "init" {
					t.Errorf("%s: func init: build commands in a newXCmd constructor", fset.Position(d.Pos()))
				}
			case *ast.GenDecl:
				if d.Tok == token.VAR {
					t.Errorf("%s: package-level var: keep state in the constructor that needs it", fset.Position(d.Pos()))
				}
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d files checked", checked)
	}
}
