package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	tdvfFirmware = "/usr/share/ovmf/OVMF.fd" // Debian 12's, with TDX metadata (tests/deps.sh)
	tdxKernel    = "testdata/tdx-kernel.efi"
	goldenInitrd = "an initrd for the golden test\n"
)

func needTDVF(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(tdvfFirmware); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing under CI: %v", err)
		}
		t.Skip(err)
	}
}

// TestMeasureTDXGolden checks `measure --tee tdx --json` with a kernel
// against testdata/measure-tdx.golden.json, whose values come from the
// independent Python implementations (testdata/README.md), and the plain
// output: RTMR1 and RTMR2 labelled, MRTD last.
func TestMeasureTDXGolden(t *testing.T) {
	needTDVF(t)
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd")
	os.WriteFile(initrd, []byte(goldenInitrd), 0o644)
	args := []string{"measure", "--tee", "tdx", "--firmware", tdvfFirmware, "--kernel", tdxKernel, "--initrd", initrd, "--append", "loglevel=4"}
	code, out, errOut := runCLI(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	golden, err := os.ReadFile("testdata/measure-tdx.golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.ReplaceAll(out, dir, "$DIR"); got != string(golden) {
		t.Fatalf("--json output differs from testdata/measure-tdx.golden.json:\n%s", got)
	}
	var g map[string]string
	json.Unmarshal(golden, &g)

	code, out, errOut = runCLI(t, args...)
	want := "rtmr1 " + g["rtmr1"] + "\nrtmr2 " + g["rtmr2"] + "\n" + g["mrtd"] + "\n"
	if code != 0 || out != want {
		t.Fatalf("exit %d: %q, want %q (%s)", code, out, want, errOut)
	}
	// --cmdline gives the same command line exactly; the other generation
	// measures another RTMR2 and the same RTMR1.
	_, out2, _ := runCLI(t, "measure", "--tee", "tdx", "--firmware", tdvfFirmware, "--kernel", tdxKernel, "--initrd", initrd,
		"--cmdline", "console=ttyS0 panic=-1 quiet loglevel=4")
	if out2 != want {
		t.Errorf("--cmdline: %q, want %q", out2, want)
	}
	_, out3, _ := runCLI(t, append(args, "--tdvf-generation", "edk2-202502")...)
	lines := strings.Split(out3, "\n")
	if len(lines) != 4 || lines[0] != "rtmr1 "+g["rtmr1"] || lines[1] == "rtmr2 "+g["rtmr2"] || lines[2] != g["mrtd"] {
		t.Errorf("--tdvf-generation edk2-202502: %q", out3)
	}

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"measure", "--tee", "tdx", "--firmware", tdvfFirmware, "--kernel", tdxKernel}, 2, "needs --initrd"},
		{[]string{"measure", "--tee", "tdx", "--firmware", tdvfFirmware, "--initrd", initrd}, 2, "only with --kernel"},
		{[]string{"measure", "--tee", "tdx", "--firmware", tdvfFirmware, "--append", "x"}, 2, "only with --kernel"},
		{append(args, "--cmdline", "x"), 2, "exclude"},
		{append(args, "--tdvf-generation", "edk2-202411"), 2, "--tdvf-generation"},
		{[]string{"measure", "--tee", "tdx", "--firmware", tdvfFirmware, "--kernel", initrd, "--initrd", initrd}, 1, "EFI stub"},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}
