package launch

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// cpuHasVirt reports whether /proc/cpuinfo shows vmx or svm.
func cpuHasVirt(cpuinfo string) bool {
	for _, line := range strings.Split(cpuinfo, "\n") {
		if !strings.HasPrefix(line, "flags") {
			continue
		}
		for _, f := range strings.Fields(line) {
			if f == "vmx" || f == "svm" {
				return true
			}
		}
	}
	return false
}

var (
	probeOnce   sync.Once
	probeResult bool
)

// ProbeTimeout bounds the KVM probe boot.
var ProbeTimeout = 20 * time.Second

// ChooseAccel resolves "auto" to kvm or tcg. KVM is chosen only when the CPU
// flags show vmx or svm, /dev/kvm opens, and a probe boot of the kernel
// (with no init, so it panics and reboots at once) finishes in time: on some
// hosts /dev/kvm exists but a KVM guest hangs.
func ChooseAccel(ctx context.Context, want, qemu, kernel string) (string, error) {
	switch want {
	case "tcg":
		return "tcg", nil
	case "kvm":
		if !kvmUsable() {
			return "", fmt.Errorf("--accel kvm: /dev/kvm is not usable or the CPU shows no vmx/svm")
		}
		return "kvm", nil
	}
	if !kvmUsable() {
		return "tcg", nil
	}
	probeOnce.Do(func() { probeResult = probeKVM(ctx, qemu, kernel) })
	if probeResult {
		return "kvm", nil
	}
	return "tcg", nil
}

func kvmUsable() bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil || !cpuHasVirt(string(b)) {
		return false
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

func probeKVM(ctx context.Context, qemu, kernel string) bool {
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	cmd := exec.Command(qemu, "-accel", "kvm", "-m", "128", "-nodefaults", "-no-user-config",
		"-no-reboot", "-display", "none", "-kernel", kernel,
		"-append", "panic=-1 rdinit=/sealroot-kvm-probe init=/sealroot-kvm-probe")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return false
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err == nil
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done //nolint:errcheck // the process was killed; its status says only that
		return false
	}
}
