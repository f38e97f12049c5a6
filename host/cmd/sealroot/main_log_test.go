package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestDiagnosticsOnTheLogger: a command's diagnostic lines go through the
// root's logger to the stderr of the run (set after the tree is built), in
// the convention main.go describes, while its product stays on stdout.
func TestDiagnosticsOnTheLogger(t *testing.T) {
	img, pass := luksTestImage(t)
	code, out, errOut := runCLI(t, "image", "bind", img, "--passphrase-file", pass)
	if code != 0 {
		t.Fatalf("image bind: exit %d: %s", code, errOut)
	}
	if !regexp.MustCompile(`^host_data: [0-9a-f]{64}\n$`).MatchString(out) {
		t.Errorf("stdout %q, want only the host_data line", out)
	}
	line := regexp.MustCompile(`^time=\S+ level=INFO msg="root volume bound into the footer config" image=(\S+) luks=2 volume=[0-9a-f-]{36} already_bound=false\n$`)
	m := line.FindStringSubmatch(errOut)
	if m == nil || m[1] != img {
		t.Fatalf("stderr %q, want one Info line naming image %s", errOut, img)
	}
	// Bound twice: the second run says so, and nothing of the first run's
	// logger or output is seen.
	code, out2, errOut2 := runCLI(t, "image", "bind", img)
	if code != 0 || out2 != out || strings.Count(errOut2, "\n") != 1 || !strings.Contains(errOut2, "already_bound=true") {
		t.Fatalf("second bind: exit %d, stdout %q, stderr %q", code, out2, errOut2)
	}
}
