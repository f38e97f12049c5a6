package tests

import (
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/tests/harness"
)

// The libkrunfw shape: the kernel of `make kernel-krunfw` (everything built
// in, no module support, a fixed built-in command line) with an initrd that
// carries no modules, on QEMU's microvm machine (virtio-mmio only, console
// on hvc0, no ACPI: the init reboots to end the VM).

// TestMicrovmPlainBoot: a plain image's workload runs and its status comes
// back; the init neither loads nor needs modules.
func TestMicrovmPlainBoot(t *testing.T) {
	e := harness.SetupKrunfw(t)
	img := buildPlain(t, e.HelloRootfs(t), image.Workload{Cmd: []string{"/hello"}})
	b := e.Boot(t, launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512})
	if b.Status != 7 {
		t.Fatalf("status %d (%s), want 7", b.Status, b.Reason)
	}
	if !strings.Contains(b.Console, "hello from the workload") {
		t.Fatal("workload line missing from the console (hvc0)")
	}
	if ev, ok := b.Phase("modules"); !ok || ev.Detail["loaded"] != "0" {
		t.Errorf("modules phase %v: want none loaded", ev.Detail)
	}
	if ev, _ := b.Phase("hostchan"); ev.Detail["channel"] != "virtio-serial" {
		t.Errorf("host channel %q, want virtio-serial", ev.Detail["channel"])
	}
}

// TestMicrovmAttestedBoot: sim-attested boots of encrypted images in both
// broker dialects, and a LUKS1 image with buildah's layout, measured for
// the microvm machine.
func TestMicrovmAttestedBoot(t *testing.T) {
	e := harness.SetupKrunfw(t)
	for _, tc := range []struct {
		name string
		c    attestedCase
	}{
		{"krun LUKS2", attestedCase{dialect: "krun"}},
		{"trustee LUKS2 EC key", attestedCase{dialect: "trustee"}},
		{"krun LUKS1 like buildah", attestedCase{dialect: "krun", luks1: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runAttestedOn(t, e, tc.c)
			if r.boot.Status != 5 {
				t.Fatalf("status %d (%s), want the workload's 5", r.boot.Status, r.boot.Reason)
			}
			if !strings.Contains(r.boot.Console, "hello from the workload") {
				t.Fatal("workload output missing")
			}
			if ev, _ := r.boot.Phase("unlock"); !strings.HasPrefix(ev.Detail["device"], "/dev/") {
				t.Errorf("unlock detail %v", ev.Detail)
			}
		})
	}
}
