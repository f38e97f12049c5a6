// Command probe is the trust tests' workload: a program the host would
// like to run inside the TEE after the boot. It tries every way it knows
// to reach the TEE's report interfaces and prints one line per attempt,
// "probe: <what>: refused (<why>)" or "probe: <what>: ALLOWED". It exits 0
// when every attempt was refused, 1 otherwise.
//
// With -runtime (a config with runtime_evidence), it also asks the init
// for a runtime report, and then runs the boot's broker handshake for its
// own workload id with runtime reports as its evidence, each asked for
// over exactly the report_data the handshake needs: the broker must refuse.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"os/exec"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/simport"
	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/guest/agent"
	"github.com/sealroot/sealroot/guest/runtimeev"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/kbs"
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
	// A node that came with the root image: the root is mounted nodev.
	if f, err := os.OpenFile("/shipped-node", os.O_RDWR, 0); err == nil {
		f.Close()
		check("open a device node shipped in the root image /shipped-node", nil)
	} else {
		check("open a device node shipped in the root image /shipped-node", err)
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
	if len(os.Args) > 1 && os.Args[1] == "-runtime" {
		runtime()
	} else {
		_, err := runtimeev.Request(context.Background(), runtimeev.SocketPath, []byte("probe"))
		check("runtime evidence without the opt-in", err)
	}
	fmt.Printf("probe: %d allowed\n", allowed)
	if allowed > 0 {
		os.Exit(1)
	}
}

// runtimeAttester gets its evidence from the init's runtime-evidence socket.
type runtimeAttester struct{ tee string }

func (a runtimeAttester) TEE() string { return a.tee }
func (a runtimeAttester) Attest(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	r, err := runtimeev.Request(ctx, runtimeev.SocketPath, rd[:])
	if err != nil {
		return nil, err
	}
	return &attest.Evidence{TEE: r.TEE, Report: r.Report, Certs: r.Certs}, nil
}

func runtime() {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := runtimeev.Request(ctx, runtimeev.SocketPath, []byte("probe"))
	if err != nil {
		allowed++ // the opt-in did not work: count it as a failure
		fmt.Printf("probe: runtime evidence: FAILED (%v)\n", err)
		return
	}
	want := kbs.RuntimeReportData([]byte("probe"))
	fmt.Printf("probe: runtime evidence: a %s report of %d bytes, report_data domain-separated: %v\n",
		r.TEE, len(r.Report), bytes.Equal(r.ReportData, want[:]) && bytes.Contains(r.Report, want[:]))
	raw, err := diskconfig.ReadFooterFile("/dev/vda")
	if err != nil {
		fmt.Printf("probe: reading the config: %v\n", err)
		allowed++
		return
	}
	cfg, err := diskconfig.Parse(raw)
	if err != nil {
		fmt.Printf("probe: reading the config: %v\n", err)
		allowed++
		return
	}
	ac := &agent.Config{TEE: cfg.TEE, TEEData: cfg.TEEData, WorkloadID: cfg.WorkloadID, AttestationURL: cfg.AttestationURL,
		KBSProtocol: cfg.KBSProtocol, CABundle: cfg.CABundle, AttestTimeout: 20 * time.Second}
	pass, err := agent.FetchPassphrase(ctx, agent.Options{Config: ac, Attester: runtimeAttester{cfg.TEE},
		ResourcePath: cfg.KBSResource, TrusteeKey: cfg.KBSKey, BackoffInitial: 200 * time.Millisecond})
	if err == nil {
		cryptsetup.Wipe(pass)
	}
	check("boot handshake with runtime evidence", err)
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}
