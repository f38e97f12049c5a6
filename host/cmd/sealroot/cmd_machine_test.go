package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMeasureMachine: --machine microvm measures another launch than pc
// (and the default), and an unknown machine is a usage error.
func TestMeasureMachine(t *testing.T) {
	dir := t.TempDir()
	k, i := filepath.Join(dir, "k"), filepath.Join(dir, "i")
	os.WriteFile(k, []byte("kernel"), 0o644)
	os.WriteFile(i, []byte("initrd"), 0o644)
	measure := func(extra ...string) (int, string, string) {
		return runCLI(t, append([]string{"measure", "--tee", "sim", "--kernel", k, "--initrd", i}, extra...)...)
	}
	_, def, _ := measure()
	_, pc, _ := measure("--machine", "pc")
	code, mvm, errOut := measure("--machine", "microvm")
	if code != 0 || len(strings.TrimSpace(mvm)) != 96 {
		t.Fatalf("microvm: %d %q %s", code, mvm, errOut)
	}
	if def != pc || pc == mvm {
		t.Fatalf("default %s, pc %s, microvm %s: want default = pc != microvm", def, pc, mvm)
	}
	if code, _, errOut := measure("--machine", "q35"); code != 2 || !strings.Contains(errOut, "q35") {
		t.Fatalf("q35: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "launch", "--machine", "q35", "--kernel", k, "--initrd", i, "--disk", k); code != 2 || !strings.Contains(errOut, "q35") {
		t.Fatalf("launch q35: %d %s", code, errOut)
	}
}

// TestInitramfsTargetFlag: --target krunfw takes gzip only and no modules.
func TestInitramfsTargetFlag(t *testing.T) {
	out := filepath.Join(t.TempDir(), "initrd")
	for _, args := range [][]string{
		{"--target", "krunfw", "--compress", "xz"},
		{"--target", "krunfw", "--kernel-modules", t.TempDir()},
		{"--target", "firecracker"},
	} {
		code, _, errOut := runCLI(t, append([]string{"initramfs", "build", "-o", out}, args...)...)
		if code != 2 || !strings.Contains(errOut, "--target") {
			t.Errorf("%v: status %d, %s", args, code, errOut)
		}
	}
}
