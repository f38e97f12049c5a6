package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageBuildRegisterSNP builds an SNP image with --register and the
// launch's kernel, initrd and firmware: the broker then holds the
// measurement `sealroot measure --tee snp` computes for the disk, and the
// build printed it.
func TestImageBuildRegisterSNP(t *testing.T) {
	url, tok := testAdminBroker(t)
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	os.MkdirAll(rootfs, 0o755)
	os.WriteFile(filepath.Join(rootfs, "app"), []byte("#!/bin/sh\n"), 0o755)
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	os.WriteFile(kernel, []byte("a kernel"), 0o644)
	os.WriteFile(initrd, []byte("an initrd"), 0o644)
	out := filepath.Join(dir, "out")
	code, _, errOut := runCLI(t, "image", "build", "--rootfs", rootfs, "--tee", "snp", "--workload-id", "snp-reg",
		"--attestation-url", "http://10.0.2.100:8000", "--cpus", "2", "--cmd", "/app",
		"--register", "--broker", url, "--admin-token-file", tok,
		"--kernel", kernel, "--initrd", initrd, "--append", "loglevel=4", "--firmware", amdSevFixture, "--cpu-type", "EPYC-Genoa", "-o", out)
	if code != 0 {
		t.Fatalf("image build: exit %d: %s", code, errOut)
	}
	code, m, errM := runCLI(t, "measure", "--tee", "snp", "--firmware", amdSevFixture, "--kernel", kernel, "--initrd", initrd,
		"--append", "loglevel=4", "--cpu-type", "EPYC-Genoa", "--disk", filepath.Join(out, "disk.img"))
	m = strings.TrimSpace(m)
	if code != 0 || len(m) != 96 {
		t.Fatalf("measure: exit %d %q %s", code, m, errM)
	}
	if !strings.Contains(errOut, "expected SNP launch measurement: "+m) {
		t.Errorf("the build did not print the measurement %s: %s", m, errOut)
	}
	code, show, errShow := runCLI(t, "workloads", "show", "snp-reg", "--broker", url, "--admin-token-file", tok, "--json")
	var w struct {
		TEE    string `json:"tee"`
		Policy struct {
			Measurements []string `json:"measurements"`
		} `json:"policy"`
	}
	if err := json.Unmarshal([]byte(show), &w); err != nil || code != 0 {
		t.Fatalf("workloads show: exit %d %v %s", code, err, errShow)
	}
	if w.TEE != "snp" || len(w.Policy.Measurements) != 1 || w.Policy.Measurements[0] != m {
		t.Fatalf("registered %+v, want measurement %s", w, m)
	}
	for _, args := range [][]string{
		{"image", "build", "--rootfs", rootfs, "--tee", "snp", "--register", "--broker", url, "--kernel", kernel, "--initrd", initrd, "-o", out},
		{"image", "build", "--rootfs", rootfs, "--tee", "sim", "--register", "--broker", url, "--kernel", kernel, "--initrd", initrd, "--firmware", amdSevFixture, "-o", out},
		{"image", "build", "--rootfs", rootfs, "--tee", "snp", "--register", "--broker", url, "--kernel", kernel, "--initrd", initrd, "--firmware", amdSevFixture, "--cpu-type", "x", "-o", out},
	} {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
