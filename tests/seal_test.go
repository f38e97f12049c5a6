package tests

import (
	"golang.org/x/sys/unix"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/tests/harness"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// probeImage builds an image whose workload is tests/testprogs/probe.
func probeImage(t *testing.T, e *harness.Env, id string, encrypted, runtime bool) (*image.Result, []byte) {
	t.Helper()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	e.GoBuild(t, "./tests/testprogs/probe", filepath.Join(rootfs, "probe"))
	// A device node shipped in the image, as a host that builds its own
	// root would ship one of the TEE's report device (here: /dev/null's
	// numbers; the root is mounted nodev, so no shipped node opens).
	if err := unix.Mknod(filepath.Join(rootfs, "shipped-node"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	o := image.Options{RootfsDir: rootfs, OutDir: t.TempDir(),
		Config:   diskconfig.Config{TEE: "none", WorkloadID: id, CPUs: 1, RAMMiB: 512},
		Workload: image.Workload{Cmd: []string{"/probe"}}}
	var pass []byte
	if encrypted {
		var err error
		if pass, err = cryptsetup.GeneratePassphrase(); err != nil {
			t.Fatal(err)
		}
		o.Passphrase = pass
		o.Encrypt = func(dst *os.File, src io.Reader, size int64, p []byte) (int64, error) {
			return cryptsetup.FormatLUKS2(dst, src, size, p, cryptsetup.FormatOptions{GeneratedPassphrase: true, GuestRAMMiB: 512, GuestCPUs: 1})
		}
		o.Config.TEE, o.Config.AttestationURL = "sim", "http://"+guestBroker
	}
	if runtime {
		o.Config.RuntimeEvidence = true
		o.Workload.Cmd = []string{"/probe", "-runtime"}
	}
	img, err := image.Build(o)
	if err != nil {
		t.Fatal(err)
	}
	return img, pass
}

// TestWorkloadCannotAttest runs the probe as the workload of an attested
// boot: after the seal phase it can open no TEE report interface (the
// simulated TEE's port included), mount neither configfs nor devtmpfs,
// mknod no device, kexec nothing, load no module, and make no user
// namespace. The same probe in an unattested plain boot (nothing to
// protect, nothing sealed) is allowed to mount and mknod, which shows the
// probe detects what it looks for.
func TestWorkloadCannotAttest(t *testing.T) {
	e := harness.Setup(t)
	t.Run("attested boot sealed", func(t *testing.T) {
		img, pass := probeImage(t, e, "e2e-probe", true, false)
		br := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t))
		o := simLaunch(t, e, img, br.Addr, 0)
		register(t, br, "e2e-probe", img, launchMeasurement(t, e, o), pass)
		b := e.Boot(t, o)
		br.Stop()
		if b.Status != 0 {
			t.Fatalf("probe status %d (%s): something was allowed", b.Status, b.Reason)
		}
		for _, want := range []string{"open the simulated TEE port", "mount configfs: refused", "mknod a char device", "kexec_file_load: refused", "open a device node shipped in the root image /shipped-node: refused", "runtime evidence without the opt-in: refused", "probe: 0 allowed"} {
			if !strings.Contains(b.Console, want) {
				t.Errorf("console lacks %q", want)
			}
		}
		if ev, ok := b.Phase("seal"); !ok || ev.Detail["sealed"] != "true" || !strings.Contains(ev.Detail["removed"], "vport") {
			t.Errorf("seal phase %+v", ev)
		}
		harness.AssertNoSecret(t, pass, map[string]string{"console": b.Console, "broker log": br.Log.String()})
	})
	// With runtime_evidence in its (attested) config, the sealed workload
	// gets reports through the init, domain-separated; running the boot
	// handshake with them, each asked for over the exact binding the
	// broker wants, is refused by the broker as runtime evidence.
	t.Run("runtime evidence opt-in", func(t *testing.T) {
		img, pass := probeImage(t, e, "e2e-probe-rt", true, true)
		br := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t))
		o := simLaunch(t, e, img, br.Addr, 0)
		register(t, br, "e2e-probe-rt", img, launchMeasurement(t, e, o), pass)
		b := e.Boot(t, o)
		br.Stop()
		if b.Status != 0 {
			t.Fatalf("probe status %d (%s)", b.Status, b.Reason)
		}
		for _, want := range []string{"open the simulated TEE port", "mount configfs: refused", "runtime evidence: a snp report", "domain-separated: true", "boot handshake with runtime evidence: refused", "probe: 0 allowed"} {
			if !strings.Contains(b.Console, want) {
				t.Errorf("console lacks %q", want)
			}
		}
		if !strings.Contains(br.Log.String(), `"check":"runtime_evidence"`) {
			t.Error("the broker's audit log has no runtime_evidence refusal")
		}
		harness.AssertNoSecret(t, pass, map[string]string{"console": b.Console, "broker log": br.Log.String()})
	})
	t.Run("plain boot not sealed", func(t *testing.T) {
		img, _ := probeImage(t, e, "e2e-probe-plain", false, false)
		b := e.Boot(t, launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512})
		if b.Status != 1 || !strings.Contains(b.Console, "mount configfs: ALLOWED") || !strings.Contains(b.Console, "mknod a char device 10:124: ALLOWED") {
			t.Fatalf("unsealed probe: status %d; the probe did not see what a sealed boot takes away", b.Status)
		}
	})
}
