// Package seal closes the TEE to the workload before it starts
// (docs/threat-model.md, "The workload cannot attest as the boot").
//
// After the boot's attestation the init no longer needs the TEE, and a
// workload that could ask it for a report would carry the boot's identity
// (launch measurement, HOST_DATA) to a broker: a root the host substituted
// could then fetch the tenant's key. Seal removes the report interfaces
// (the vendor devices, the simulated TEE's virtio-serial port, the configfs
// mount that holds configfs-tsm), drops from the capability bounding set
// what would bring them back (mknod a node, mount configfs or devtmpfs,
// load a module, kexec a kernel that is not measured, raw I/O), forbids
// new user namespaces, and turns on kernel lockdown where the kernel has
// it. The bounding set is inherited by every process the init starts
// afterwards; the init itself keeps its effective capabilities (it powers
// the machine off at the end).
package seal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Capabilities dropped from the bounding set, by name.
var Capabilities = []struct {
	Name string
	Cap  uintptr
}{
	{"CAP_SYS_ADMIN", unix.CAP_SYS_ADMIN},   // mount configfs/devtmpfs/securityfs, lift lockdown paths
	{"CAP_MKNOD", unix.CAP_MKNOD},           // recreate a removed device node
	{"CAP_SYS_MODULE", unix.CAP_SYS_MODULE}, // load a TEE guest driver again
	{"CAP_SYS_BOOT", unix.CAP_SYS_BOOT},     // kexec another kernel
	{"CAP_SYS_RAWIO", unix.CAP_SYS_RAWIO},   // raw port and memory I/O
	{"CAP_SYS_PTRACE", unix.CAP_SYS_PTRACE}, // read the init's memory
	{"CAP_BPF", unix.CAP_BPF},               // kernel-memory probes
	{"CAP_PERFMON", unix.CAP_PERFMON},
	{"CAP_SETFCAP", unix.CAP_SETFCAP},                 // file capabilities in a user namespace
	{"CAP_SYS_RESOURCE", unix.CAP_SYS_RESOURCE},       // makes user.max_user_namespaces writable again
	{"CAP_DAC_READ_SEARCH", unix.CAP_DAC_READ_SEARCH}, // open_by_handle_at: reopen an unlinked device inode
}

// Options say what to seal. Paths are absolute on the running system; Root
// prefixes them (tests).
type Options struct {
	Root string
	// Devices are TEE report device nodes to remove.
	Devices []string
	// Ports are virtio-serial port names whose /dev nodes are removed
	// (the simulated TEE's report port).
	Ports []string
	// Configfs is where configfs may be mounted; it is unmounted.
	Configfs string
	// Securityfs is where securityfs is (or gets) mounted, for Lockdown.
	Securityfs string
	// Lockdown is the mode written to <Securityfs>/lockdown when the
	// kernel offers it ("integrity" or "confidentiality"; "" leaves it).
	Lockdown string

	// Hooks for tests; nil means the real system calls.
	unmount   func(target string, flags int) error
	mount     func(source, target, fstype string, flags uintptr, data string) error
	dropBound func(c uintptr) error
}

// Default is what the init seals.
func Default() Options {
	return Options{
		Devices:    []string{"/dev/sev-guest", "/dev/tdx_guest", "/dev/tdx-guest"},
		Configfs:   "/sys/kernel/config",
		Securityfs: "/sys/kernel/security",
		Lockdown:   "integrity",
	}
}

// Report is what Seal did, for the boot log.
type Report struct {
	Removed   []string // device nodes removed
	Unmounted []string
	Lockdown  string // the kernel's lockdown state after Seal, or "not offered"
	Dropped   []string
	UserNS    bool // new user namespaces forbidden
}

func (r *Report) String() string {
	return fmt.Sprintf("removed [%s], unmounted [%s], lockdown %s, dropped %s, user namespaces off=%v",
		strings.Join(r.Removed, " "), strings.Join(r.Unmounted, " "), r.Lockdown, strings.Join(r.Dropped, ","), r.UserNS)
}

// Seal closes the TEE's report interfaces. Any step that fails is an error
// naming it: the workload must not start half-sealed. Lockdown and the
// user-namespace limit are applied where the kernel offers them.
func Seal(o Options) (*Report, error) {
	if o.unmount == nil {
		o.unmount = unix.Unmount
	}
	if o.mount == nil {
		o.mount = unix.Mount
	}
	if o.dropBound == nil {
		o.dropBound = dropBound
	}
	r := &Report{}
	p := func(s string) string { return filepath.Join("/", o.Root, s) }

	nodes := append([]string(nil), o.Devices...)
	for _, name := range o.Ports {
		if n, err := portNode(p("/sys/class/virtio-ports"), name); err == nil {
			nodes = append(nodes, "/dev/"+n)
		}
	}
	for _, n := range nodes {
		err := os.Remove(p(n))
		switch {
		case err == nil:
			r.Removed = append(r.Removed, n)
		case errors.Is(err, fs.ErrNotExist):
		default:
			return r, fmt.Errorf("removing %s: %w", n, err)
		}
	}
	if o.Configfs != "" {
		switch err := o.unmount(p(o.Configfs), unix.MNT_DETACH); {
		case err == nil:
			r.Unmounted = append(r.Unmounted, o.Configfs)
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			// not mounted: without CAP_SYS_ADMIN nobody can mount it
		default:
			return r, fmt.Errorf("unmounting %s: %w", o.Configfs, err)
		}
	}
	var err error
	if r.Lockdown, err = lockdown(p(o.Securityfs), o.Lockdown, o.mount); err != nil {
		return r, err
	}
	// No new user namespaces: inside one, a process holds capabilities
	// the bounding set took away outside (over its own namespace only, but
	// fewer doors are better).
	if err := os.WriteFile(p("/proc/sys/user/max_user_namespaces"), []byte("0\n"), 0); err == nil {
		r.UserNS = true
	}
	for _, c := range Capabilities {
		if err := o.dropBound(c.Cap); err != nil {
			if errors.Is(err, unix.EINVAL) {
				continue // a capability this kernel does not know
			}
			return r, fmt.Errorf("dropping %s from the bounding set: %w", c.Name, err)
		}
		r.Dropped = append(r.Dropped, c.Name)
	}
	return r, nil
}

// portNode returns the /dev name of the virtio-serial port called name.
func portNode(class, name string) (string, error) {
	ents, err := os.ReadDir(class)
	if err != nil {
		return "", err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(class, e.Name(), "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return e.Name(), nil
		}
	}
	return "", fs.ErrNotExist
}

// lockdown turns on the lockdown LSM's mode when the kernel offers it and
// returns the state it is in ("not offered" without the LSM).
func lockdown(securityfs, mode string, mount func(string, string, string, uintptr, string) error) (string, error) {
	file := filepath.Join(securityfs, "lockdown")
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		if err := mount("securityfs", securityfs, "securityfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return "not offered (no securityfs)", nil
		}
	}
	cur, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return "not offered", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", file, err)
	}
	if mode != "" && !strings.Contains(string(cur), "["+mode+"]") && !strings.Contains(string(cur), "[confidentiality]") {
		if err := os.WriteFile(file, []byte(mode), 0); err != nil {
			return "", fmt.Errorf("setting kernel lockdown to %s: %w", mode, err)
		}
		if cur, err = os.ReadFile(file); err != nil {
			return "", err
		}
	}
	return selected(string(cur)), nil
}

// selected returns the bracketed word of a lockdown file ("none
// [integrity] confidentiality" → "integrity").
func selected(s string) string {
	if i := strings.IndexByte(s, '['); i >= 0 {
		if j := strings.IndexByte(s[i:], ']'); j > 0 {
			return s[i+1 : i+j]
		}
	}
	return strings.TrimSpace(s)
}

// dropBound removes c from the bounding set of every thread of the
// process: the bounding set is per thread, and Go starts a child from
// whichever thread runs the fork.
func dropBound(c uintptr) error {
	_, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c, 0)
	if errno != 0 {
		if errno == syscall.ENOTSUP {
			return fmt.Errorf("%w (the init must be built with CGO_ENABLED=0)", errno)
		}
		return errno
	}
	return nil
}
