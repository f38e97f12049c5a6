// Command probe is the trust tests' workload: a program the host would
// like to run inside the TEE after the boot. It tries every way it knows
// to reach the TEE's report interfaces and prints one line per attempt,
// "probe: <what>: refused (<why>)" or "probe: <what>: ALLOWED". It exits 0
// when every attempt was refused, 1 otherwise.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"os/exec"
	"syscall"

	"github.com/sealroot/sealroot/attest/simport"
	"golang.org/x/sys/unix"
)

var allowed int

func check(what string, err error) {
	if err == nil {
		allowed++
		fmt.Printf("probe: %s: ALLOWED\n", what)
		return
	}
	fmt.Printf("probe: %s: refused (%v)\n", what, err)
}

// checkPerm counts only EPERM as refused: any other error means the
// permission check passed and the call failed later (a bad descriptor).
func checkPerm(what string, err error) {
	if err != nil && !errors.Is(err, unix.EPERM) {
		allowed++
		fmt.Printf("probe: %s: ALLOWED (the permission check passed, then: %v)\n", what, err)
		return
	}
	check(what, err)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-noop" {
		return
	}
	for _, d := range []string{"/dev/sev-guest", "/dev/tdx_guest", "/dev/tdx-guest"} {
		f, err := os.OpenFile(d, os.O_RDWR, 0)
		if err == nil {
			f.Close()
		}
		check("open "+d, err)
	}
	// The simulated TEE's port, found by name as the init finds it.
	simDev := ""
	ents, _ := os.ReadDir("/sys/class/virtio-ports")
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join("/sys/class/virtio-ports", e.Name(), "name"))
		if strings.TrimSpace(string(b)) == simport.PortName {
			dev, _ := os.ReadFile(filepath.Join("/sys/class/virtio-ports", e.Name(), "dev"))
			simDev = strings.TrimSpace(string(dev))
			f, err := os.OpenFile("/dev/"+e.Name(), os.O_RDWR, 0)
			if err == nil {
				f.Close()
			}
			check("open the simulated TEE port /dev/"+e.Name(), err)
		}
	}
	if simDev == "" {
		fmt.Println("probe: no simulated TEE port in sysfs")
	}
	_, err := os.Stat("/sys/kernel/config/tsm/report")
	if err == nil {
		check("configfs-tsm at /sys/kernel/config/tsm/report", nil)
	} else {
		check("configfs-tsm at /sys/kernel/config/tsm/report", err)
	}
	os.MkdirAll("/tmp/cfg", 0o755)
	checkPerm("mount configfs", unix.Mount("configfs", "/tmp/cfg", "configfs", 0, ""))
	checkPerm("mount devtmpfs", unix.Mount("devtmpfs", "/tmp/cfg", "devtmpfs", 0, ""))
	// mknod the simulated port's node again (or /dev/sev-guest's usual
	// misc major 10 when there is no port).
	var maj, min uint32 = 10, 124
	if simDev != "" {
		fmt.Sscanf(simDev, "%d:%d", &maj, &min)
	}
	checkPerm(fmt.Sprintf("mknod a char device %d:%d", maj, min), unix.Mknod("/tmp/tee-node", unix.S_IFCHR|0o600, int(unix.Mkdev(maj, min))))
	// kexec_file_load with the running kernel's own command line: refused
	// before the file descriptors are looked at when CAP_SYS_BOOT is gone.
	_, _, e := unix.Syscall6(unix.SYS_KEXEC_FILE_LOAD, ^uintptr(0), ^uintptr(0), 1, 0, 0, 0)
	checkPerm("kexec_file_load", errnoErr(e))
	_, _, e = unix.Syscall6(unix.SYS_KEXEC_LOAD, 0, 0, 0, 0, 0, 0)
	checkPerm("kexec_load", errnoErr(e))
	checkPerm("finit_module", errnoErr(func() unix.Errno {
		_, _, e := unix.Syscall(unix.SYS_FINIT_MODULE, ^uintptr(0), 0, 0)
		return e
	}()))
	// A Go process has threads, and unshare(CLONE_NEWUSER) wants one: ask
	// for the namespace when starting a child instead.
	child := exec.Command("/proc/self/exe", "-noop")
	child.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER}
	if err := child.Run(); errors.Is(err, unix.ENOSPC) {
		check("unshare a user namespace", err) // max_user_namespaces is 0
	} else {
		checkPerm("unshare a user namespace", err)
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "CapBnd:") || strings.HasPrefix(l, "CapEff:") {
				fmt.Printf("probe: %s\n", l)
			}
		}
	}
	if b, err := os.ReadFile("/sys/kernel/security/lockdown"); err == nil {
		fmt.Printf("probe: lockdown: %s", b)
	}
	fmt.Printf("probe: %d allowed\n", allowed)
	if allowed > 0 {
		os.Exit(1)
	}
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
