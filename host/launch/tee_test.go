package launch

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const amdSevFixture = "../measure/testdata/ovmf_AmdSev_suffix.bin"

// teeFiles makes a kernel, initrd and disk for a dry run.
func teeFiles(t *testing.T) (dir string, o Options) {
	dir = t.TempDir()
	for _, n := range []string{"vmlinuz", "initrd", "disk.img"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, Options{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd"), Disk: filepath.Join(dir, "disk.img"),
		CPUs: 2, MemoryMiB: 1024, Append: "loglevel=4"}
}

// plainArgs is the argument list every confidential launch of teeFiles'
// options starts with, with the vCPU model given.
func plainArgs(dir, accel, cpu string) []string {
	return []string{"qemu-system-x86_64", "-accel", accel, "-cpu", cpu, "-m", "1024", "-smp", "2",
		"-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con", "-monitor", "none",
		"-kernel", dir + "/vmlinuz", "-initrd", dir + "/initrd", "-append", "console=ttyS0 panic=-1 quiet loglevel=4",
		"-drive", "file=" + dir + "/disk.img,if=virtio,format=raw,cache=unsafe",
		"-device", "virtio-serial-pci,id=vser",
		"-chardev", "socket,id=host,path=$SEALROOT_RUNDIR/host.sock",
		"-device", "virtserialport,bus=vser.0,chardev=host,name=org.sealroot.host",
		"-nic", "none",
		"-global", "virtio-blk-pci.disable-legacy=on", "-global", "virtio-serial-pci.disable-legacy=on",
		"-global", "virtio-net-pci.disable-legacy=on", "-global", "virtio-device.iommu_platform=on"}
}

func TestDryRunSNP(t *testing.T) {
	dir, o := teeFiles(t)
	var hd [32]byte
	for i := range hd {
		hd[i] = byte(i)
	}
	o.TEE = &TEE{Kind: TEESNP, Firmware: amdSevFixture, CBitPos: 51, ReducedPhysBits: 1, HostData: hd, CPUType: "EPYC-Milan"}
	got, err := DryRun(o)
	if err != nil {
		t.Fatal(err)
	}
	want := append(plainArgs(dir, "kvm", "EPYC-Milan"),
		"-machine", "q35,confidential-guest-support=sev0,memory-backend=ram1",
		"-object", "memory-backend-memfd,id=ram1,size=1024M,share=true,prealloc=false",
		"-object", "sev-snp-guest,id=sev0,policy=0x30000,cbitpos=51,reduced-phys-bits=1,host-data=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,kernel-hashes=on",
		"-bios", amdSevFixture)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("argv\n%q\nwant\n%q", got, want)
	}
	// The measurement inputs are the command line's.
	in, err := o.SNPInputs(1)
	if err != nil {
		t.Fatal(err)
	}
	if in.CPUs != 2 || in.CPUSig != 0xa00f11 || in.Cmdline != "console=ttyS0 panic=-1 quiet loglevel=4" || in.Kernel != o.Kernel || in.Initrd != o.Initrd || in.Firmware != amdSevFixture {
		t.Fatalf("inputs %+v", in)
	}
}

func TestDryRunTDX(t *testing.T) {
	dir, o := teeFiles(t)
	var d [32]byte
	d[0], d[31] = 0xff, 0xee
	o.TEE = &TEE{Kind: TEETDX, Firmware: filepath.Join(dir, "tdvf.fd"), MRConfigID: MRConfigID(d), QuoteSocket: "vsock:2:4050"}
	if err := os.WriteFile(o.TEE.Firmware, tdvfImage(t), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := DryRun(o)
	if err != nil {
		t.Fatal(err)
	}
	want := append(plainArgs(dir, "kvm", "host"),
		"-machine", "q35,kernel-irqchip=split,confidential-guest-support=tdx0",
		"-object", `{"qom-type":"tdx-guest","id":"tdx0","mrconfigid":"/wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAO4AAAAAAAAAAAAAAAAAAAAA","quote-generation-socket":{"cid":"2","port":"4050","type":"vsock"}}`,
		"-bios", o.TEE.Firmware)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("argv\n%q\nwant\n%q", got, want)
	}
}

// tdvfImage is Debian's OVMF, which carries TDX metadata.
func tdvfImage(t *testing.T) []byte {
	if b, err := os.ReadFile("/usr/share/ovmf/OVMF.fd"); err == nil {
		return b
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("prerequisite missing under CI: /usr/share/ovmf/OVMF.fd (tests/deps.sh installs ovmf)")
	}
	t.Skip("no TDVF image: /usr/share/ovmf/OVMF.fd (package ovmf) is missing")
	return nil
}

func TestDryRunRejects(t *testing.T) {
	_, o := teeFiles(t)
	dir := t.TempDir()
	noHashes := filepath.Join(dir, "x64.fd")
	b, _ := os.ReadFile("../measure/testdata/ovmf_OvmfX64_suffix.bin")
	os.WriteFile(noHashes, b, 0o644)
	tests := []struct {
		name string
		tee  TEE
		want string
	}{
		{"no firmware", TEE{Kind: TEESNP, CBitPos: 51, ReducedPhysBits: 1}, "needs --firmware"},
		{"no kernel hashes", TEE{Kind: TEESNP, Firmware: noHashes, CBitPos: 51, ReducedPhysBits: 1}, "SNP_KERNEL_HASHES"},
		{"bad cpu type", TEE{Kind: TEESNP, Firmware: amdSevFixture, CBitPos: 51, ReducedPhysBits: 1, CPUType: "Skylake"}, "cpu type"},
		{"bad policy", TEE{Kind: TEESNP, Firmware: amdSevFixture, CBitPos: 51, ReducedPhysBits: 1, Policy: 0x10000}, "bit 17"},
		{"cbitpos out of range", TEE{Kind: TEESNP, Firmware: amdSevFixture, CBitPos: 5, ReducedPhysBits: 1}, "cbitpos"},
		{"tdx on an SNP-only firmware", TEE{Kind: TEETDX, Firmware: noHashes}, "outside"},
		{"bad quote socket", TEE{Kind: TEETDX, Firmware: amdSevFixture, QuoteSocket: "tcp:1"}, "quote generation socket"},
		{"comma in path", TEE{Kind: TEESNP, Firmware: dir + "/a,b"}, "comma"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oo := o
			tee := tt.tee
			oo.TEE = &tee
			_, err := DryRun(oo)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("DryRun = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestPreflight(t *testing.T) {
	files := func(m map[string]string) func(string) ([]byte, error) {
		return func(p string) ([]byte, error) {
			if v, ok := m[p]; ok {
				return []byte(v), nil
			}
			return nil, os.ErrNotExist
		}
	}
	ver := func(v string) func(context.Context, string) (string, error) {
		return func(context.Context, string) (string, error) { return v, nil }
	}
	snpOn := map[string]string{"/sys/module/kvm_amd/parameters/sev_snp": "Y\n"}
	tdxOn := map[string]string{"/sys/module/kvm_intel/parameters/tdx": "Y\n"}
	tests := []struct {
		name, kind string
		host       Host
		want       []string // empty: no error
	}{
		{"snp ready", TEESNP, Host{ReadFile: files(snpOn), QEMUVersion: ver("9.2.0")}, nil},
		{"snp 10.0", TEESNP, Host{ReadFile: files(snpOn), QEMUVersion: ver("10.0")}, nil},
		{"snp old qemu", TEESNP, Host{ReadFile: files(snpOn), QEMUVersion: ver("7.2.22")}, []string{"QEMU 7.2.22 found", "9.1 or later"}},
		{"snp off", TEESNP, Host{ReadFile: files(map[string]string{"/sys/module/kvm_amd/parameters/sev_snp": "N"}), QEMUVersion: ver("9.1.0")}, []string{`"N"`, "sev_snp=1"}},
		{"snp missing both", TEESNP, Host{ReadFile: files(nil), QEMUVersion: ver("7.2.22")}, []string{"7.2.22", "sev_snp missing"}},
		{"tdx ready", TEETDX, Host{ReadFile: files(tdxOn), QEMUVersion: ver("10.1.0")}, nil},
		{"tdx old qemu", TEETDX, Host{ReadFile: files(tdxOn), QEMUVersion: ver("9.2.0")}, []string{"QEMU 9.2.0 found", "10.1 or later"}},
		{"no qemu", TEETDX, Host{ReadFile: files(tdxOn), QEMUVersion: func(context.Context, string) (string, error) { return "", errors.New("not found") }}, []string{"did not report a version"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.host.Preflight(context.Background(), "qemu-system-x86_64", tt.kind)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("%q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestShellLine checks the quoting by letting a shell split the line.
func TestShellLine(t *testing.T) {
	argv := []string{"printf", `%s\n`, "plain", "two words", "it's", "", `{"a":"b"}`, "$HOME", "a,b=c:d/e"}
	line := ShellLine(argv)
	if strings.Contains(line, "\n") {
		t.Fatalf("not one line: %q", line)
	}
	out, err := exec.Command("/bin/sh", "-c", line).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !reflect.DeepEqual(got, argv[2:]) {
		t.Fatalf("shell split %q as %q", line, got)
	}
}

func TestVersionAtLeast(t *testing.T) {
	for v, want := range map[string]bool{"9.1": true, "9.0.5": false, "10.0.0": true, "8.2.2": false, "x": false, "11": false} {
		if got := versionAtLeast(v, [2]int{9, 1}); got != want {
			t.Errorf("%s: %v", v, got)
		}
	}
}

// TestDryRunPlain: without a TEE the dry run is the plain launch's
// command line, with no confidential-guest options.
func TestDryRunPlain(t *testing.T) {
	dir, o := teeFiles(t)
	o.Accel = "tcg"
	got, err := DryRun(o)
	if err != nil {
		t.Fatal(err)
	}
	want := plainArgs(dir, "tcg", "qemu64,+rdrand")
	want = want[:len(want)-8] // the -global options are the TEE's
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("argv\n%q\nwant\n%q", got, want)
	}
}
