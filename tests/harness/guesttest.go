package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// GuestTest runs a package's Go tests as root inside a VM: the real guest
// kernel, its dm-crypt and devices. It compiles the package's test binary
// (`go test -c`), boots it as the workload of a plain image, with disks
// attached as /dev/vdb, /dev/vdc, ..., and returns the boot; the test
// binary's exit status is the boot's status (0: all passed).
type GuestTest struct {
	Package   string            // e.g. ./cryptsetup
	Run       string            // -test.run pattern
	Env       map[string]string // extra environment
	Disks     []string          // attached after the root disk, in order
	MemoryMiB int
	CPUs      int
	Timeout   time.Duration
	// Files are added to the rootfs: rootfs path → host path.
	Files map[string]string
}

// RunGuestTest boots g and fails t unless the guest's tests passed.
func (e *Env) RunGuestTest(t *testing.T, g GuestTest) *Boot {
	t.Helper()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(rootfs, "guest.test")
	cmd := exec.Command("go", "test", "-c", "-trimpath", "-o", bin, g.Package)
	cmd.Dir = e.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -c %s: %v\n%s", g.Package, err, out)
	}
	for dst, src := range g.Files {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(rootfs, dst)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"/guest.test", "-test.v", "-test.count=1"}
	if g.Run != "" {
		args = append(args, "-test.run", g.Run)
	}
	env := []string{"SEALROOT_IN_GUEST=1", "TMPDIR=/tmp", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	keys := make([]string, 0, len(g.Env))
	for k := range g.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+g.Env[k])
	}
	if g.MemoryMiB == 0 {
		g.MemoryMiB = 1024
	}
	if g.CPUs == 0 {
		g.CPUs = 1
	}
	img, err := image.Build(image.Options{RootfsDir: rootfs, OutDir: t.TempDir(), Slop: "64M",
		Config:   diskconfig.Config{TEE: "none", WorkloadID: "guest-test", CPUs: g.CPUs, RAMMiB: g.MemoryMiB},
		Workload: image.Workload{Cmd: args, Env: env, WorkDir: "/tmp"}})
	if err != nil {
		t.Fatal(err)
	}
	o := launch.Options{Disk: img.Disk, CPUs: g.CPUs, MemoryMiB: g.MemoryMiB, Timeout: g.Timeout}
	if len(g.Disks) > 0 {
		o.DataDisk, o.ExtraDisks = g.Disks[0], g.Disks[1:]
	}
	b := e.Boot(t, o)
	if b.Status != 0 {
		t.Fatalf("guest tests of %s: status %d %s", g.Package, b.Status, b.Reason)
	}
	return b
}
