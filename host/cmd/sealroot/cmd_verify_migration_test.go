package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyRefusesMigrationAgent: a report whose guest policy allows a
// migration agent (bit 18) fails `verify`'s policy unless
// --allow-migration-agent is given.
func TestVerifyRefusesMigrationAgent(t *testing.T) {
	dir := t.TempDir()
	if code, _, errOut := runCLI(t, "sim", "init", "--dir", dir); code != 0 {
		t.Fatalf("sim init: %d %s", code, errOut)
	}
	report := func(policy string) string {
		out := filepath.Join(t.TempDir(), "r.bin")
		if code, _, errOut := runCLI(t, "sim", "report", "--dir", dir, "-o", out, "--policy", policy); code != 0 {
			t.Fatalf("sim report --policy %s: %d %s", policy, code, errOut)
		}
		return out
	}
	ma, plain := report("0x70000"), report("0x30000")
	if code, _, errOut := runCLI(t, "verify", "--tee", "sim", "--sim-dir", dir, "--evidence", ma); code != 1 || !strings.Contains(errOut, "migration agent") {
		t.Fatalf("migration-agent report: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "verify", "--tee", "sim", "--sim-dir", dir, "--evidence", ma, "--allow-migration-agent"); code != 0 {
		t.Fatalf("with --allow-migration-agent: exit %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "verify", "--tee", "sim", "--sim-dir", dir, "--evidence", plain); code != 0 {
		t.Fatalf("report without a migration agent: exit %d %s", code, errOut)
	}
}
