package main

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// TestImageBuildRegisterTDX builds a TDX image with --register and the
// launch's TDVF, kernel, initrd and --append: the broker then holds the
// MRTD, RTMR1 and RTMR2 that `sealroot measure --tee tdx` computes for the
// same inputs, and the MRCONFIGID of the built config; the build printed
// the three values.
func TestImageBuildRegisterTDX(t *testing.T) {
	needTDVF(t)
	url, tok := testAdminBroker(t)
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	os.MkdirAll(rootfs, 0o755)
	os.WriteFile(filepath.Join(rootfs, "app"), []byte("#!/bin/sh\n"), 0o755)
	initrd := filepath.Join(dir, "initrd")
	os.WriteFile(initrd, []byte(goldenInitrd), 0o644)
	out := filepath.Join(dir, "out")
	code, _, errOut := runCLI(t, "image", "build", "--rootfs", rootfs, "--tee", "tdx", "--workload-id", "tdx-reg",
		"--attestation-url", "http://10.0.2.100:8000", "--cmd", "/app",
		"--register", "--broker", url, "--admin-token-file", tok,
		"--kernel", tdxKernel, "--initrd", initrd, "--append", "loglevel=4", "--firmware", tdvfFirmware, "-o", out)
	if code != 0 {
		t.Fatalf("image build: exit %d: %s", code, errOut)
	}
	code, m, errM := runCLI(t, "measure", "--tee", "tdx", "--firmware", tdvfFirmware, "--kernel", tdxKernel, "--initrd", initrd,
		"--append", "loglevel=4", "--json")
	var want map[string]string
	if err := json.Unmarshal([]byte(m), &want); err != nil || code != 0 {
		t.Fatalf("measure: exit %d %v %s", code, err, errM)
	}
	for _, line := range []string{"expected TDX MRTD: " + want["mrtd"], "expected TDX RTMR1: " + want["rtmr1"], "expected TDX RTMR2: " + want["rtmr2"]} {
		if !strings.Contains(errOut, line+"\n") {
			t.Errorf("the build did not print %q: %s", line, errOut)
		}
	}
	code, show, errShow := runCLI(t, "workloads", "show", "tdx-reg", "--broker", url, "--admin-token-file", tok, "--json")
	var w struct {
		TEE    string `json:"tee"`
		Policy struct {
			Measurements []string          `json:"measurements"`
			RTMRs        map[string]string `json:"rtmrs"`
			HostData     string            `json:"host_data"`
		} `json:"policy"`
	}
	if err := json.Unmarshal([]byte(show), &w); err != nil || code != 0 {
		t.Fatalf("workloads show: exit %d %v %s", code, err, errShow)
	}
	cfg, raw, err := diskConfig(filepath.Join(out, "disk.img"))
	if err != nil || cfg.TEE != "tdx" {
		t.Fatalf("disk config: %v %+v", err, cfg)
	}
	mrconfigid := launch.MRConfigID(diskconfig.HostData(raw))
	p := w.Policy
	if w.TEE != "tdx" || len(p.Measurements) != 1 || p.Measurements[0] != want["mrtd"] ||
		p.RTMRs["1"] != want["rtmr1"] || p.RTMRs["2"] != want["rtmr2"] || len(p.RTMRs) != 2 ||
		p.HostData != hex.EncodeToString(mrconfigid[:]) {
		t.Fatalf("registered %s, want MRTD %s, RTMR1 %s, RTMR2 %s, host_data %x", show, want["mrtd"], want["rtmr1"], want["rtmr2"], mrconfigid)
	}

	for _, args := range [][]string{
		{"image", "build", "--rootfs", rootfs, "--tee", "tdx", "--register", "--broker", url, "--kernel", tdxKernel, "--initrd", initrd, "-o", out},
		{"image", "build", "--rootfs", rootfs, "--tee", "tdx", "--register", "--broker", url, "--firmware", tdvfFirmware, "--measurement", want["mrtd"], "-o", out},
		{"image", "build", "--rootfs", rootfs, "--tee", "tdx", "--register", "--broker", url, "--kernel", tdxKernel, "--initrd", initrd, "--firmware", tdvfFirmware, "--tdvf-generation", "x", "-o", out},
		{"image", "build", "--rootfs", rootfs, "--tee", "tdx", "--register", "--broker", url, "--kernel", tdxKernel, "--initrd", initrd, "--firmware", tdvfFirmware, "--tdx-page-order", "x", "-o", out},
		{"image", "build", "--rootfs", rootfs, "--tee", "tdx", "--register", "--broker", url, "--kernel", tdxKernel, "--initrd", initrd, "--firmware", tdvfFirmware, "--machine", "microvm", "-o", out},
	} {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
