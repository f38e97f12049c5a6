package main

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/measure"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

const (
	amdSevFixture  = "../../measure/testdata/ovmf_AmdSev_suffix.bin"
	ovmfX64Fixture = "../../measure/testdata/ovmf_OvmfX64_suffix.bin"
)

func TestMeasureSNPCLI(t *testing.T) {
	// A published reference vector: 2 EPYC-Milan vCPUs, empty kernel and
	// initrd, the exact command line.
	const want = "f1ef6c0c669736182670ebd9f53ff4f2b9066d6ad72fcd0ca417e6f0326b76fb529d1ac9ce251d2a060f144410ae97b5"
	args := []string{"measure", "--tee", "snp", "--firmware", amdSevFixture, "--kernel", os.DevNull, "--initrd", os.DevNull,
		"--cmdline", "console=ttyS0 loglevel=7", "--cpus", "2", "--cpu-type", "EPYC-Milan"}
	code, out, errOut := runCLI(t, args...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || lines[len(lines)-1] != want {
		t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
	}
	code, out, _ = runCLI(t, append(args[:len(args)-2], "--cpu-sig", "0xa00f11", "--json")...)
	var j map[string]any
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 {
		t.Fatalf("--json: exit %d %v %s", code, err, out)
	}
	if j["measurement"] != want || j["tee"] != "snp" || j["vmm"] != "qemu" || j["cpus"] != 2.0 || j["cmdline"] != "console=ttyS0 loglevel=7" || j["cpu_sig"] != "0xa00f11" {
		t.Fatalf("--json: %v", j)
	}
	// --append means the launcher's command line, as for --tee sim.
	_, out1, _ := runCLI(t, "measure", "--tee", "snp", "--firmware", amdSevFixture, "--kernel", os.DevNull, "--append", "x=1")
	_, out2, _ := runCLI(t, "measure", "--tee", "snp", "--firmware", amdSevFixture, "--kernel", os.DevNull, "--cmdline", "console=ttyS0 panic=-1 quiet x=1")
	if out1 != out2 || out1 == "" {
		t.Fatalf("--append %q, --cmdline %q", out1, out2)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"measure", "--tee", "snp", "--firmware", ovmfX64Fixture, "--kernel", os.DevNull}, 1, "SNP_KERNEL_HASHES"},
		{[]string{"measure", "--tee", "snp", "--kernel", os.DevNull}, 2, "--firmware"},
		{[]string{"measure", "--tee", "snp", "--firmware", amdSevFixture, "--cpu-type", "Skylake"}, 2, "cpu type"},
		{[]string{"measure", "--tee", "snp", "--firmware", amdSevFixture, "--initrd", os.DevNull}, 2, "only with --kernel"},
		{[]string{"measure", "--tee", "snp", "--firmware", amdSevFixture, "--kernel", os.DevNull, "--cmdline", "a", "--append", "b"}, 2, "exclude"},
		{[]string{"measure", "--tee", "snp", "--firmware", amdSevFixture, "--guest-features", "x"}, 2, "guest-features"},
		{[]string{"measure", "--tee", "tdx"}, 2, "--firmware"},
		{[]string{"measure", "--tee", "tdx", "--firmware", amdSevFixture, "--kernel", os.DevNull}, 2, "needs --initrd"},
		{[]string{"measure", "--tee", "cca"}, 2, "want sim, snp or tdx"},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

func TestMeasureTDXCLI(t *testing.T) {
	const fw = "/usr/share/ovmf/OVMF.fd"
	if _, err := os.Stat(fw); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing under CI: %v", err)
		}
		t.Skip(err)
	}
	f, err := measure.ReadFirmware(fw)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := measure.MRTD(f, measure.TDXTwoPass)
	code, out, errOut := runCLI(t, "measure", "--tee", "tdx", "--firmware", fw, "--tdx-page-order", "two-pass", "--json")
	var j map[string]any
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 {
		t.Fatalf("exit %d %v %s %s", code, err, out, errOut)
	}
	if j["mrtd"] != hex.EncodeToString(want[:]) || j["tee"] != "tdx" || j["page_order"] != "two-pass" {
		t.Fatalf("%v", j)
	}
}

func TestMeasureLibkrunCLI(t *testing.T) {
	dir := t.TempDir()
	files := map[string]int{"qboot": 0x10000, "kernel": 0x20000, "initrd": 0x10000}
	data := map[string][]byte{}
	for name, n := range files {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i * len(name))
		}
		data[name] = b
		os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
	want, err := measure.Krun(measure.KrunInputs{Qboot: data["qboot"], KernelBundle: data["kernel"], InitrdBundle: data["initrd"], CPUs: 2, MemoryMiB: 1024})
	if err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI(t, "measure", "--tee", "snp", "--vmm", "libkrun", "--qboot", filepath.Join(dir, "qboot"),
		"--kernel-bundle", filepath.Join(dir, "kernel"), "--initrd", filepath.Join(dir, "initrd"), "--cpus", "2", "--memory", "1024")
	if code != 0 || strings.TrimSpace(out) != hex.EncodeToString(want[:]) {
		t.Fatalf("exit %d %q %q", code, out, errOut)
	}
	for _, args := range [][]string{
		{"measure", "--tee", "snp", "--vmm", "libkrun"},
		{"measure", "--tee", "snp", "--vmm", "libkrun", "--libkrunfw", "x", "--qboot", "y"},
		{"measure", "--tee", "snp", "--vmm", "libkrun", "--libkrunfw", "x", "--kernel", "k"},
	} {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

// teeDisk writes a disk image that holds only a KRUN footer with config,
// enough for launch to read its config.
func teeDisk(t *testing.T, config string) string {
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := diskconfig.AppendFooter(f, 1<<20, []byte(config)); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLaunchTEECLI(t *testing.T) {
	cfg := `{"tee":"snp","tee_data":"","workload_id":"w1","cpus":2,"ram_mib":768,"attestation_url":"http://10.0.2.100:8000"}`
	disk := teeDisk(t, cfg)
	dir := t.TempDir()
	kernel, initrd := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	os.WriteFile(kernel, []byte("k"), 0o644)
	os.WriteFile(initrd, []byte("i"), 0o644)
	// The disk needs its broker: something listening on loopback stands
	// for it (launch checks that it answers before it boots).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	base := []string{"launch", "--kernel", kernel, "--initrd", initrd, "--disk", disk, "--broker", "http://" + ln.Addr().String()}
	digest := sha256.Sum256([]byte(cfg))

	code, out, errOut := runCLI(t, append(base, "--tee", "snp", "--firmware", amdSevFixture, "--cbitpos", "51", "--reduced-phys-bits", "1", "--dry-run")...)
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("dry run: exit %d %q %q", code, out, errOut)
	}
	for _, w := range []string{" -smp 2 ", " -m 768 ", "size=768M", "host-data=" + base64.StdEncoding.EncodeToString(digest[:]) + ",kernel-hashes=on", "-bios " + amdSevFixture, "guestfwd=tcp:10.0.2.100:8000-cmd:"} {
		if !strings.Contains(out, w) {
			t.Errorf("dry run line lacks %q: %s", w, out)
		}
	}

	// This host has no SEV-SNP (and, here, QEMU 7.2): status 200 with one
	// line naming what was found and what is needed.
	if _, err := os.Stat("/sys/module/kvm_amd/parameters/sev_snp"); err == nil {
		t.Skip("this host may have SEV-SNP")
	}
	code, _, errOut = runCLI(t, append(base, "--tee", "snp", "--firmware", amdSevFixture)...)
	if code != 200 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "SEV-SNP") || !strings.Contains(errOut, "sev_snp") {
		t.Fatalf("launch --tee snp: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCLI(t, append(base, "--tee", "snp")...); code != 2 {
		t.Errorf("--tee snp without --firmware: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, append(base, "--tee", "sev")...); code != 2 {
		t.Errorf("--tee sev: exit %d, want 2", code)
	}
	if code, _, _ := runCLI(t, append(base, "--tee", "snp", "--firmware", amdSevFixture, "--accel", "tcg")...); code != 2 {
		t.Errorf("--tee snp --accel tcg: exit %d, want 2", code)
	}
	if code, _, errOut := runCLI(t, append(base, "--tee", "tdx", "--firmware", amdSevFixture)...); code != 200 || !strings.Contains(errOut, `built for tee "snp"`) {
		t.Errorf("--tee tdx on an snp disk: exit %d %s", code, errOut)
	}
}
