package tests

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/tests/harness"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

func plainConfig() diskconfig.Config {
	return diskconfig.Config{TEE: "none", WorkloadID: "e2e-plain", CPUs: 1, RAMMiB: 512}
}

func buildPlain(t *testing.T, rootfs string, w image.Workload) *image.Result {
	t.Helper()
	res, err := image.Build(image.Options{RootfsDir: rootfs, OutDir: t.TempDir(), Config: plainConfig(), Workload: w})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestPlainBootExitStatus is the foundation's acceptance test: a plain
// image whose workload prints a line and exits 7.
func TestPlainBootExitStatus(t *testing.T) {
	e := harness.Setup(t)
	img := buildPlain(t, e.HelloRootfs(t), image.Workload{Cmd: []string{"/hello"}})
	b := e.Boot(t, launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512})
	if b.Status != 7 {
		t.Fatalf("status %d (%s), want 7", b.Status, b.Reason)
	}
	if !strings.Contains(b.Console, "hello from the workload") {
		t.Fatal("workload line missing from the console")
	}
	for _, p := range []string{"mounts", "modules", "hostchan", "disk", "config", "mount", "switchroot", "workload", "run"} {
		if _, ok := b.Phase(p); !ok {
			t.Errorf("no event for phase %s", p)
		}
	}
	if ev, _ := b.Phase("hostchan"); ev.Detail["channel"] != "virtio-serial" {
		t.Errorf("host channel %q, want virtio-serial", ev.Detail["channel"])
	}
}

// TestWorkloadConfigShapes boots each /.krun_config.json shape and checks
// argv, env and working directory as the workload saw them.
func TestWorkloadConfigShapes(t *testing.T) {
	e := harness.Setup(t)
	for _, tc := range []struct {
		name, json string
		status     int
		want       string
	}{
		{"oci-image", `{"architecture":"amd64","config":{"Entrypoint":["/hello","ep"],"Cmd":["c1","11"],"Env":["FOO=nested"],"WorkingDir":"/srv"}}`,
			11, `args=["ep" "c1" "11"] cwd=/srv FOO=nested`},
		{"oci-runtime", `{"ociVersion":"1.0.2","process":{"args":["/hello","rt","12"],"env":["FOO=runtime"],"cwd":"/tmp/rt","user":{"uid":1234,"gid":1234}}}`,
			12, `args=["rt" "12"] cwd=/tmp/rt FOO=runtime uid=1234`},
		{"flat", `{"Entrypoint":["/hello"],"Cmd":["flat","13"],"Env":["FOO=flat"],"WorkingDir":"/opt"}`,
			13, `args=["flat" "13"] cwd=/opt FOO=flat`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := e.HelloRootfs(t)
			if err := os.WriteFile(filepath.Join(rootfs, ".krun_config.json"), []byte(tc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			img := buildPlain(t, rootfs, image.Workload{})
			b := e.Boot(t, launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512})
			if b.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", b.Status, b.Reason, tc.status)
			}
			if !strings.Contains(b.Console, tc.want) {
				t.Fatalf("console lacks %q", tc.want)
			}
			if ev, _ := b.Phase("workload"); ev.Detail["shape"] != tc.name {
				t.Fatalf("shape %q, want %q", ev.Detail["shape"], tc.name)
			}
		})
	}
}

// TestBootFailures checks that each failure gives one clear line naming
// the phase, the documented status, and no hang.
func TestBootFailures(t *testing.T) {
	e := harness.Setup(t)
	good := buildPlain(t, e.HelloRootfs(t), image.Workload{Cmd: []string{"/hello"}})
	raw, err := os.ReadFile(good.Disk)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(t *testing.T, mutate func([]byte) []byte) string {
		p := filepath.Join(t.TempDir(), "disk.img")
		if err := os.WriteFile(p, mutate(append([]byte(nil), raw...)), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	setLen := func(b []byte, n uint64) []byte {
		binary.LittleEndian.PutUint64(b[len(b)-8:], n)
		return b
	}
	cfgLen := len(good.ConfigJSON)
	for _, tc := range []struct {
		name   string
		disk   func(t *testing.T) string
		iface  string
		append string
		status int
		phase  string
		msg    string
	}{
		{name: "no /dev/vda", disk: func(t *testing.T) string { return good.Disk }, iface: "ide", append: "sealroot.disk_timeout=3s",
			status: event.StatusNoRootDisk, phase: "disk", msg: "/dev/vda did not appear"},
		{name: "missing footer", disk: func(t *testing.T) string {
			return variant(t, func(b []byte) []byte { copy(b[len(b)-12:], "XXXX"); return b })
		}, status: event.StatusBadConfig, phase: "config", msg: "no KRUN footer"},
		{name: "footer length over 1 MiB", disk: func(t *testing.T) string {
			return variant(t, func(b []byte) []byte { return setLen(b, 1<<20) })
		}, status: event.StatusBadConfig, phase: "config", msg: "not below the 1 MiB limit"},
		{name: "corrupt footer length", disk: func(t *testing.T) string {
			return variant(t, func(b []byte) []byte { return setLen(b, uint64(cfgLen+40)) })
		}, status: event.StatusBadConfig, phase: "config", msg: "not a JSON object"},
		{name: "invalid JSON", disk: func(t *testing.T) string {
			return variant(t, func(b []byte) []byte {
				j := len(b) - 12 - cfgLen
				copy(b[j:], strings.Repeat("{", cfgLen))
				return b
			})
		}, status: event.StatusBadConfig, phase: "config", msg: "not a JSON object"},
		{name: "workload missing", disk: func(t *testing.T) string {
			return buildPlain(t, e.HelloRootfs(t), image.Workload{Cmd: []string{"/no/such/program"}}).Disk
		}, status: 127, phase: "run", msg: "/no/such/program"},
		{name: "unknown user", disk: func(t *testing.T) string {
			return buildPlain(t, e.HelloRootfs(t), image.Workload{Cmd: []string{"/hello"}, User: "nosuchuser"}).Disk
		}, status: event.StatusBadWorkload, phase: "workload", msg: `user "nosuchuser" not found`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := e.Boot(t, launch.Options{Disk: tc.disk(t), CPUs: 1, MemoryMiB: 512, RootDiskInterface: tc.iface, Append: tc.append})
			if b.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", b.Status, b.Reason, tc.status)
			}
			ev, ok := b.Error()
			if !ok {
				t.Fatal("no error event")
			}
			if ev.Phase != tc.phase || !strings.Contains(ev.Message, tc.msg) {
				t.Fatalf("error event %s: %q, want phase %s and %q", ev.Phase, ev.Message, tc.phase, tc.msg)
			}
			line := "sealroot: " + tc.phase + " failed: "
			if n := strings.Count(b.Console, line); n != 1 {
				t.Fatalf("console has %d lines starting %q, want 1", n, line)
			}
			if regexp.MustCompile(`sealroot: ` + tc.phase + `\s+ok`).MatchString(b.Console) {
				t.Fatalf("the console says %s failed and %s ok", tc.phase, tc.phase)
			}
		})
	}
}

// TestOCILayoutBoot builds from an OCI image layout (as skopeo and buildah
// push write it): the whole image config goes to /.krun_config.json nested
// as buildah writes it, and the workload runs with its argv, env and cwd.
func TestOCILayoutBoot(t *testing.T) {
	e := harness.Setup(t)
	layoutDir := filepath.Join(t.TempDir(), "layout")
	err := image.WriteOCILayout(layoutDir, "hello:1", e.HelloRootfs(t), v1.Config{
		Entrypoint: []string{"/hello"}, Cmd: []string{"oci", "9"}, Env: []string{"FOO=from-oci"}, WorkingDir: "/work"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := image.Build(image.Options{OCIDir: layoutDir, OCIRef: "hello:1", OutDir: t.TempDir(), Config: plainConfig()})
	if err != nil {
		t.Fatal(err)
	}
	b := e.Boot(t, launch.Options{Disk: res.Disk, CPUs: 1, MemoryMiB: 512})
	if b.Status != 9 {
		t.Fatalf("status %d (%s), want 9", b.Status, b.Reason)
	}
	if !strings.Contains(b.Console, `args=["oci" "9"] cwd=/work FOO=from-oci`) {
		t.Fatal("the OCI config's argv, env or cwd did not reach the workload")
	}
	if ev, _ := b.Phase("workload"); ev.Detail["shape"] != "oci-image" {
		t.Fatalf("shape %q, want oci-image", ev.Detail["shape"])
	}
}
