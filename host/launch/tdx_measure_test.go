package launch

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sealroot/sealroot/host/measure"
)

// TestRTMRInputsMatchDryRun: the RTMR inputs of a TDX launch are the
// kernel, initrd and -append of its QEMU command line.
func TestRTMRInputsMatchDryRun(t *testing.T) {
	dir, o := teeFiles(t)
	o.TEE = &TEE{Kind: TEETDX, Firmware: filepath.Join(dir, "tdvf.fd")}
	if err := os.WriteFile(o.TEE.Firmware, tdvfImage(t), 0o644); err != nil {
		t.Fatal(err)
	}
	argv, err := DryRun(o)
	if err != nil {
		t.Fatal(err)
	}
	in, err := o.RTMRInputs(measure.TDVFEdk2202502)
	if err != nil {
		t.Fatal(err)
	}
	arg := func(flag string) string {
		i := slices.Index(argv, flag)
		if i < 0 || i+1 >= len(argv) {
			t.Fatalf("%s not in %q", flag, argv)
		}
		return argv[i+1]
	}
	if in.Kernel != arg("-kernel") || in.Initrd != arg("-initrd") || in.Cmdline != arg("-append") || in.Generation != measure.TDVFEdk2202502 {
		t.Fatalf("inputs %+v, command line %q", in, argv)
	}
	o.TEE.Kind = TEESNP
	if _, err := o.RTMRInputs(""); err == nil {
		t.Fatal("RTMRInputs of an SNP launch: no error")
	}
}
