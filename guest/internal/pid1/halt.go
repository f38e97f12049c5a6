package pid1

import (
	"os"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ACPIDir exists when the kernel runs with ACPI; a variable for tests.
var ACPIDir = "/sys/firmware/acpi"

// CmdlinePath is the kernel command line; a variable for tests.
var CmdlinePath = "/proc/cmdline"

// HaltCommand is how the machine is stopped at the end of the boot: power
// off where the kernel can (ACPI) and the VMM handles it, reboot otherwise.
// Without ACPI (libkrun's SEV kernels boot with acpi=off; so does QEMU's
// microvm machine here) a power off only halts the CPU and the VMM never
// exits. libkrun ends a VM on reboot (its kernels' command line has
// reboot=k) and is not known to handle a power off, so a kernel with
// libkrunfw's command line (tsi_hijack) reboots even with ACPI (its TDX
// kernels keep it). QEMU runs with -no-reboot, so a reboot ends it too.
func HaltCommand() int {
	if _, err := os.Stat(ACPIDir); err != nil {
		return unix.LINUX_REBOOT_CMD_RESTART
	}
	if b, err := os.ReadFile(CmdlinePath); err == nil && slices.Contains(strings.Fields(string(b)), "tsi_hijack") {
		return unix.LINUX_REBOOT_CMD_RESTART
	}
	return unix.LINUX_REBOOT_CMD_POWER_OFF
}

// Halt syncs and stops the machine with HaltCommand. As PID 1 it never
// returns; if the reboot call fails it sleeps forever rather than letting
// PID 1 exit (which would panic the kernel and lose the clean status).
func Halt() {
	unix.Sync()
	_ = unix.Reboot(HaltCommand()) // returns only on failure: see above
	for {
		time.Sleep(time.Hour)
	}
}
