package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var testMoves = &moves{pkgs: map[string]string{
	module + "/init/config":       module + "/wire/diskconfig",
	module + "/init/event":        module + "/wire/event",
	module + "/attest/trusteesnp": module + "/wire/snpreport",
}}

const before = `package launch

import (
	"fmt"

	"github.com/sealroot/sealroot/attest/trusteesnp"
	"github.com/sealroot/sealroot/init/config"
	ev "github.com/sealroot/sealroot/init/event"
)

func f(c *config.Config) error {
	config := c.WorkloadID // a local of the same name is not the package
	_ = config
	_ = ev.StatusOK
	return fmt.Errorf("%d", trusteesnp.ReportSize)
}
`

const after = `package launch

import (
	"fmt"

	"github.com/sealroot/sealroot/wire/diskconfig"
	ev "github.com/sealroot/sealroot/wire/event"
	"github.com/sealroot/sealroot/wire/snpreport"
)

func f(c *diskconfig.Config) error {
	config := c.WorkloadID // a local of the same name is not the package
	_ = config
	_ = ev.StatusOK
	return fmt.Errorf("%d", snpreport.ReportSize)
}
`

func TestRewrite(t *testing.T) {
	got, err := rewrite("host/launch/x.go", []byte(before), testMoves)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != after {
		t.Fatalf("rewrite gave\n%s\nwant\n%s", got, after)
	}
	again, err := rewrite("host/launch/x.go", got, testMoves)
	if err != nil || string(again) != string(got) {
		t.Fatalf("a second rewrite changed the file (%v):\n%s", err, again)
	}
}

func TestRewritePackageClause(t *testing.T) {
	src := "package config_test\n\nimport \"testing\"\n\nfunc TestX(t *testing.T) {}\n"
	got, err := rewrite("wire/diskconfig/x_test.go", []byte(src), testMoves)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "package diskconfig_test\n") {
		t.Fatalf("package clause not renamed:\n%s", got)
	}
	// The same file elsewhere keeps its name.
	if got, _ := rewrite("somewhere/x_test.go", []byte(src), testMoves); string(got) != src {
		t.Fatalf("a file outside the moved package changed:\n%s", got)
	}
}

func TestReadMoves(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"ok":    "# comment\n\na b\nc d\nsym x/y.A z/w.B\n",
		"three": "a b c\n",
		"twice": "a b\na c\n",
		"empty": "# nothing\n",
		"sym":   "sym x/y z/w.B\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := readMoves(filepath.Join(dir, "ok")); err != nil || len(m.pkgs) != 2 || m.pkgs["c"] != "d" || len(m.syms) != 1 {
		t.Fatalf("ok: %v, %v", m, err)
	}
	for _, bad := range []string{"three", "twice", "empty", "sym"} {
		if _, err := readMoves(filepath.Join(dir, bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// The repository's own list parses, and no move's target is another's
// source (which would make the rewrite order matter).
func TestArchMovesFile(t *testing.T) {
	m, err := readMoves("../arch-moves.txt")
	if err != nil {
		t.Fatal(err)
	}
	for from, to := range m.pkgs {
		if _, ok := m.pkgs[to]; ok {
			t.Errorf("%s -> %s, and %s moves again", from, to, to)
		}
	}
}

var symMoves = &moves{pkgs: map[string]string{}, syms: map[symbol]symbol{
	{module + "/attest", "Clip"}:                {module + "/internal/textclip", "Clip"},
	{module + "/wire/kbs", "SNPReportSize"}:     {module + "/wire/snpreport", "ReportSize"},
	{module + "/host/broker", "PassphrasePath"}: {module + "/wire/kbs", "PassphrasePath"},
}}

func TestRewriteSymbols(t *testing.T) {
	for _, tc := range []struct{ name, file, src, want string }{
		{
			name: "qualified, old import still used",
			file: "host/x/x.go",
			src: `package x

import (
	"github.com/sealroot/sealroot/attest"
)

var a, b = attest.Clip("s", 3), attest.TEESNP
`,
			want: `package x

import (
	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/internal/textclip"
)

var a, b = textclip.Clip("s", 3), attest.TEESNP
`,
		},
		{
			name: "qualified, old import dropped, new one already there",
			file: "guest/agent/x.go",
			src: `package agent

import (
	"fmt"

	"github.com/sealroot/sealroot/wire/kbs"
	"github.com/sealroot/sealroot/wire/snpreport"
)

var n = fmt.Sprint(kbs.SNPReportSize, snpreport.ReportSize)
`,
			want: `package agent

import (
	"fmt"

	"github.com/sealroot/sealroot/wire/snpreport"
)

var n = fmt.Sprint(snpreport.ReportSize, snpreport.ReportSize)
`,
		},
		{
			name: "unqualified in the old package; a field key of that name stays",
			file: "host/broker/x_test.go",
			src: `package broker

import "testing"

type res struct{ PassphrasePath string }

func TestX(t *testing.T) {
	_ = res{PassphrasePath: PassphrasePath("tw")}
}
`,
			want: `package broker

import "github.com/sealroot/sealroot/wire/kbs"

import "testing"

type res struct{ PassphrasePath string }

func TestX(t *testing.T) {
	_ = res{PassphrasePath: kbs.PassphrasePath("tw")}
}
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := rewrite(tc.file, []byte(tc.src), symMoves)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Fatalf("got\n%s\nwant\n%s", got, tc.want)
			}
			again, err := rewrite(tc.file, got, symMoves)
			if err != nil || string(again) != string(got) {
				t.Fatalf("a second rewrite changed the file (%v):\n%s", err, again)
			}
		})
	}
}
