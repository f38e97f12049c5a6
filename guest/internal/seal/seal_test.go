package seal

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSeal(t *testing.T) {
	root := t.TempDir()
	write(t, root+"/dev/sev-guest", "")
	write(t, root+"/dev/vport2p1", "")
	write(t, root+"/dev/vport2p2", "")
	write(t, root+"/sys/class/virtio-ports/vport2p1/name", "org.sealroot.sim\n")
	write(t, root+"/sys/class/virtio-ports/vport2p2/name", "org.sealroot.host\n")
	write(t, root+"/sys/kernel/security/lockdown", "[none] integrity confidentiality\n")
	write(t, root+"/proc/sys/user/max_user_namespaces", "15000\n")
	var unmounted []string
	var dropped []uintptr
	o := Default()
	o.Root = root
	o.Ports = []string{"org.sealroot.sim"}
	o.unmount = func(target string, flags int) error {
		if flags != unix.MNT_DETACH {
			t.Errorf("unmount flags %#x", flags)
		}
		unmounted = append(unmounted, target)
		return nil
	}
	o.mount = func(string, string, string, uintptr, string) error { t.Error("securityfs was mounted"); return nil }
	o.dropBound = func(c uintptr) error {
		dropped = append(dropped, c)
		if c == unix.CAP_BPF {
			return unix.EINVAL // an older kernel
		}
		return nil
	}
	r, err := Seal(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{"/dev/sev-guest", "/dev/vport2p1"} {
		if _, err := os.Stat(root + gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there", gone)
		}
	}
	if _, err := os.Stat(root + "/dev/vport2p2"); err != nil {
		t.Error("the host channel port was removed")
	}
	if len(unmounted) != 1 || unmounted[0] != root+"/sys/kernel/config" {
		t.Errorf("unmounted %v", unmounted)
	}
	// The fake lockdown file takes the written word as is.
	if b, _ := os.ReadFile(root + "/sys/kernel/security/lockdown"); string(b) != "integrity" || r.Lockdown != "integrity" {
		t.Errorf("lockdown file %q, report %q", b, r.Lockdown)
	}
	if b, _ := os.ReadFile(root + "/proc/sys/user/max_user_namespaces"); string(b) != "0\n" || !r.UserNS {
		t.Errorf("max_user_namespaces %q", b)
	}
	want := []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_MKNOD, unix.CAP_SYS_MODULE, unix.CAP_SYS_BOOT, unix.CAP_SYS_RAWIO}
	for i, c := range want {
		if dropped[i] != c {
			t.Fatalf("dropped %v, want %v first", dropped, want)
		}
	}
	if strings.Contains(strings.Join(r.Dropped, ","), "CAP_BPF") || !strings.Contains(r.String(), "CAP_SYS_ADMIN") {
		t.Errorf("report %s", r)
	}
}

func TestSealFailsClosed(t *testing.T) {
	root := t.TempDir()
	o := Default()
	o.Root = root
	o.unmount = func(string, int) error { return unix.EBUSY }
	o.mount = func(string, string, string, uintptr, string) error { return unix.ENODEV }
	o.dropBound = func(uintptr) error { return nil }
	if _, err := Seal(o); err == nil || !strings.Contains(err.Error(), "unmounting /sys/kernel/config") {
		t.Fatalf("a busy configfs: %v", err)
	}
	o.unmount = func(string, int) error { return unix.EINVAL }
	o.dropBound = func(uintptr) error { return unix.EPERM }
	r, err := Seal(o)
	if err == nil || !strings.Contains(err.Error(), "CAP_SYS_ADMIN") {
		t.Fatalf("a refused drop: %v", err)
	}
	if r.Lockdown != "not offered (no securityfs)" {
		t.Errorf("lockdown %q", r.Lockdown)
	}
}

func TestSelected(t *testing.T) {
	for in, want := range map[string]string{"none [integrity] confidentiality\n": "integrity", "[none] integrity": "none", "odd": "odd"} {
		if got := selected(in); got != want {
			t.Errorf("%q: %q", in, got)
		}
	}
}
