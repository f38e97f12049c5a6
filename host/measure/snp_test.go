package measure

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	amdSev  = "testdata/ovmf_AmdSev_suffix.bin"
	ovmfX64 = "testdata/ovmf_OvmfX64_suffix.bin"
)

// TestSNPVectors reproduces every SNP launch digest published with the
// reference tool's fixtures (testdata/README.md), plus three computed with
// that tool for other vCPU types and counts.
func TestSNPVectors(t *testing.T) {
	epyc := CPUSigs["EPYC-v4"]
	const app = "console=ttyS0 loglevel=7"
	tests := []struct {
		name string
		in   SNPInputs
		want string
	}{
		{"empty kernel 0x21", SNPInputs{Firmware: amdSev, CPUs: 1, CPUSig: epyc, GuestFeatures: 0x21, Kernel: os.DevNull, Initrd: os.DevNull},
			"329c8ce0972ae52343b64d34a434a86f245dfd74f5ed7aae15d22efc78fb9683632b9b50e4e1d7fa41179ef98a7ef198"},
		{"empty kernel 0x1", SNPInputs{Firmware: amdSev, CPUs: 1, CPUSig: epyc, GuestFeatures: 0x1, Kernel: os.DevNull, Initrd: os.DevNull},
			"ddc5224521617a536ee7ce9dd6224d1b58a8d4fda1c741f3ac99fc4bfa04ba6e9fc98646d4a07a9079397fa3852819b5"},
		{"append 0x21", SNPInputs{Firmware: amdSev, CPUs: 1, CPUSig: epyc, GuestFeatures: 0x21, Kernel: os.DevNull, Initrd: os.DevNull, Cmdline: app},
			"803f691094946e42068aaa3a8f9e26a5c89f36f7b73ecfb28c653360fe4b3aba7e534442e7e1e17895dfe778d0228977"},
		{"append 0x1", SNPInputs{Firmware: amdSev, CPUs: 1, CPUSig: epyc, GuestFeatures: 0x1, Kernel: os.DevNull, Initrd: os.DevNull, Cmdline: app},
			"6d287813eb5222d770f75005c664e34c204f385ce832cc2ce7d0d6f354454362f390ef83a92046c042e706363b4b08fa"},
		{"no kernel 0x21", SNPInputs{Firmware: amdSev, CPUs: 1, CPUSig: epyc, GuestFeatures: 0x21},
			"e1e1ca029dd7973ab9513295be68198472dcd4fc834bd9af9b63f6e8a1674dbf281a9278a4a2ebe0eed9f22adbcd0e2b"},
		{"no kernel 0x1", SNPInputs{Firmware: amdSev, CPUs: 1, CPUSig: epyc, GuestFeatures: 0x1},
			"19358ba9a7615534a9a1e2f0dfc29384dcd4dcb7062ff9c6013b26869a5fc6ecabe033c48dd6f6db5d6d76e7c5df632d"},
		{"4 vCPUs 0x21", SNPInputs{Firmware: amdSev, CPUs: 4, CPUSig: epyc, GuestFeatures: 0x21, Kernel: os.DevNull, Initrd: os.DevNull},
			"4953b1fb416fa874980e8442b3706d345926d5f38879134e00813c5d7abcbe78eafe7b422907be0b4698e2414a631942"},
		{"4 vCPUs 0x1", SNPInputs{Firmware: amdSev, CPUs: 4, CPUSig: epyc, GuestFeatures: 0x1, Kernel: os.DevNull, Initrd: os.DevNull},
			"5061fffb019493a903613d56d54b94912a1a2f9e4502385f5c194616753720a92441310ba6c4933de877c36e23046ad5"},
		{"ec2 0x21", SNPInputs{Firmware: amdSev, VMM: VMMEC2, CPUs: 1, CPUSig: epyc, GuestFeatures: 0x21, Kernel: os.DevNull, Initrd: os.DevNull},
			"0ce9ccc06bab55eebe8abc234f3df6514883977a68a591b71052498ab52b2f1aa415db338033946ef93aa8278c0d67fb"},
		{"ec2 0x1", SNPInputs{Firmware: amdSev, VMM: VMMEC2, CPUs: 1, CPUSig: epyc, GuestFeatures: 0x1, Kernel: os.DevNull, Initrd: os.DevNull},
			"0883bd0eeb716e65b7b977a321c278d1e51b33b5c655fab985443bbcc65c086b9c15e8a0bd8811050dec7e24964e5056"},
		{"gce 1 vCPU", SNPInputs{Firmware: amdSev, VMM: VMMGCE, CPUs: 1, GuestFeatures: 0x1, Kernel: os.DevNull, Initrd: os.DevNull},
			"5da7106cf14cf46b1725ebab123eb9e53bd46a1e9f400cd0c08e7827b04b688ea8b4e403c8404efed4397ea5d5d0722e"},
		{"gce 4 vCPUs", SNPInputs{Firmware: amdSev, VMM: VMMGCE, CPUs: 4, GuestFeatures: 0x1, Kernel: os.DevNull, Initrd: os.DevNull},
			"5c5debf100fc339f90276e761ee1f1658d08922c3b20e2a2e6c7a6c3370b2452a15a00eae11886a93d6fd1e7ab81e29d"},
		{"OvmfX64 0x21", SNPInputs{Firmware: ovmfX64, CPUs: 1, CPUSig: epyc, GuestFeatures: 0x21},
			"28797ae0afaba4005a81e629acebfb59e6687949d6be44007cd5506823b0dd66f146aaae26ff291eed7b493d8a64c385"},
		{"OvmfX64 0x1", SNPInputs{Firmware: ovmfX64, CPUs: 1, CPUSig: epyc, GuestFeatures: 0x1},
			"da0296de8193586a5512078dcd719eccecbd87e2b825ad4148c44f665dc87df21e5b49e21523a9ad993afdb6a30b4005"},
		{"4 EPYC-v4 append", SNPInputs{Firmware: amdSev, CPUs: 4, CPUSig: epyc, GuestFeatures: 0x1, Kernel: os.DevNull, Initrd: os.DevNull, Cmdline: app},
			"ef493c232fc8fac47f485398e3873a84ac5c45570bcd8a34aba093c084060534d633824df94b9eba33dc3a3052ae565a"},
		{"2 EPYC-Milan append", SNPInputs{Firmware: amdSev, CPUs: 2, CPUSig: CPUSigs["EPYC-Milan"], GuestFeatures: 0x1, Kernel: os.DevNull, Initrd: os.DevNull, Cmdline: app},
			"f1ef6c0c669736182670ebd9f53ff4f2b9066d6ad72fcd0ca417e6f0326b76fb529d1ac9ce251d2a060f144410ae97b5"},
		{"2 EPYC-Genoa append", SNPInputs{Firmware: amdSev, CPUs: 2, CPUSig: CPUSigs["EPYC-Genoa"], GuestFeatures: 0x1, Kernel: os.DevNull, Initrd: os.DevNull, Cmdline: app},
			"cc9900376ed72eb2c52638b072725ea62cabee8f4dbd3d19a7b6b9714a51cf794867d9b586ee75d3e25e78e572602716"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SNP(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if h := hex.EncodeToString(got[:]); h != tt.want {
				t.Fatalf("digest %s\nwant   %s", h, tt.want)
			}
		})
	}
}

// TestSNPFirmwareDigest checks the firmware-only intermediate digest and
// that seeding with it gives the full digest.
func TestSNPFirmwareDigest(t *testing.T) {
	fd, err := FirmwareDigest(amdSev)
	if err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(fd[:]); h != "086e2e9149ebf45abdc3445fba5b2da8270bdbb04094d7a2c37faaa4b24af3aa16aff8c374c2a55c467a50da6d466b74" {
		t.Fatalf("firmware digest %s", h)
	}
	in := SNPInputs{Firmware: amdSev, CPUs: 1, CPUSig: CPUSigs["EPYC-v4"], GuestFeatures: 0x21, Kernel: os.DevNull, Initrd: os.DevNull}
	full, _ := SNP(in)
	in.FirmwareDigest = &fd
	seeded, err := SNP(in)
	if err != nil || seeded != full {
		t.Fatalf("seeded %x (%v), full %x", seeded, err, full)
	}
}

func TestSNPErrors(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short.fd")
	os.WriteFile(short, make([]byte, 100), 0o644)
	blank := filepath.Join(dir, "blank.fd")
	os.WriteFile(blank, make([]byte, 8192), 0o644)
	epyc := CPUSigs["EPYC-v4"]
	tests := []struct {
		name string
		in   SNPInputs
		want string
	}{
		{"kernel without hashes section", SNPInputs{Firmware: ovmfX64, CPUs: 1, CPUSig: epyc, GuestFeatures: 1, Kernel: os.DevNull, Initrd: os.DevNull}, "no SNP_KERNEL_HASHES section"},
		{"missing firmware", SNPInputs{Firmware: filepath.Join(dir, "none"), CPUs: 1}, "no such file"},
		{"unaligned firmware", SNPInputs{Firmware: short, CPUs: 1}, "multiple of 4096"},
		{"no metadata", SNPInputs{Firmware: blank, CPUs: 1}, "no SEV metadata"},
		{"zero vCPUs", SNPInputs{Firmware: amdSev, CPUs: 0}, "vCPUs"},
		{"bad vmm", SNPInputs{Firmware: amdSev, CPUs: 1, VMM: "xen"}, "VMM"},
		{"cmdline without kernel", SNPInputs{Firmware: amdSev, CPUs: 1, Cmdline: "x"}, "only with a kernel"},
		{"missing kernel", SNPInputs{Firmware: amdSev, CPUs: 1, Kernel: filepath.Join(dir, "vmlinuz")}, "kernel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := SNP(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("SNP = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := SNP(tests[0].in); !errors.Is(err, ErrNoKernelHashes) {
		t.Fatalf("%v is not ErrNoKernelHashes", err)
	}
}

// TestFixtureMetadata checks the parsed metadata of the AmdSev fixture
// against its published layout.
func TestFixtureMetadata(t *testing.T) {
	fw, err := ReadFirmware(amdSev)
	if err != nil {
		t.Fatal(err)
	}
	eip, _ := fw.ResetEIP()
	ht, _ := fw.HashTableGPA()
	if eip != 0x80b004 || ht != 0x810c00 {
		t.Fatalf("reset eip %#x, hash table %#x", eip, ht)
	}
	want := []SEVSection{{0x800000, 0x9000, 1}, {0x80a000, 0x3000, 1}, {0x80d000, 0x1000, 2}, {0x80e000, 0x1000, 3},
		{0x80f000, 0x1000, 4}, {0x810000, 0x1000, 0x10}, {0x811000, 0xf000, 1}}
	if len(fw.SEV) != len(want) {
		t.Fatalf("sections %+v", fw.SEV)
	}
	for i := range want {
		if fw.SEV[i] != want[i] {
			t.Fatalf("section %d: %+v, want %+v", i, fw.SEV[i], want[i])
		}
	}
	tbl := KernelHashesTable([32]byte{}, [32]byte{}, [32]byte{})
	if h := hex.EncodeToString(tbl[:18]); h != "06d63894224fc94cb479a793d411fd21a800" {
		t.Fatalf("table header %s", h)
	}
}

func TestCPUSig(t *testing.T) {
	for name, want := range map[string]uint32{"EPYC-v4": 0x800f12, "EPYC-Rome": 0x830f10, "EPYC-Milan-v2": 0xa00f11, "EPYC-Genoa": 0xa10f10, "EPYC-Turin": 0xb00f00} {
		if got, err := CPUSig(name); err != nil || got != want {
			t.Errorf("%s: %#x %v, want %#x", name, got, err, want)
		}
	}
	if _, err := CPUSig("Skylake"); err == nil || !strings.Contains(err.Error(), "EPYC-Milan") {
		t.Fatalf("unknown type: %v", err)
	}
}

// debianOVMF is Debian 12's full OvmfPkgX64 build (package ovmf
// 2022.11-6+deb12u2, installed by tests/deps.sh): SEV metadata without a
// kernel hashes section, and TDX metadata.
const (
	debianOVMF       = "/usr/share/ovmf/OVMF.fd"
	debianOVMFSHA256 = "7b456907dd0786d415999e801a1ac4637b8ed4d7cf5378cfc6edbe5e574dd773"
)

// needDebianOVMF skips (fails under CI) when Debian's OVMF.fd is missing,
// and skips when it is another build than the one the vectors are for.
func needDebianOVMF(t *testing.T) {
	t.Helper()
	h, err := sha256File("firmware", debianOVMF)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing under CI (tests/deps.sh installs ovmf): %v", err)
		}
		t.Skip(err)
	}
	if got := hex.EncodeToString(h[:]); got != debianOVMFSHA256 {
		t.Skipf("%s is another build (sha256 %s) than the one the vectors were computed for", debianOVMF, got)
	}
}

// TestSNPDebianOVMF measures a whole 2 MiB firmware (512 pages) against
// the value the reference tool computes for it.
func TestSNPDebianOVMF(t *testing.T) {
	needDebianOVMF(t)
	got, err := SNP(SNPInputs{Firmware: debianOVMF, CPUs: 2, CPUSig: CPUSigs["EPYC-Milan"], GuestFeatures: 1})
	if err != nil {
		t.Fatal(err)
	}
	if h := hex.EncodeToString(got[:]); h != "a175292a4a09fcfb760c5bd80c93ed667dbaafce6247d0f21fc06638658b3ebf2804d3019e2abed05cb6a9efe0a7464e" {
		t.Fatalf("digest %s", h)
	}
	fd, _ := FirmwareDigest(debianOVMF)
	if h := hex.EncodeToString(fd[:]); h != "ba2c811512ef868474f239a21f7d7057d65a20de87a003c4f116e4fb1573183bfbcd75c3e99b2f558575a5d0094f73c6" {
		t.Fatalf("firmware digest %s", h)
	}
}
