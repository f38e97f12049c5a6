package pid1

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ACPIDir exists when the kernel runs with ACPI; a variable for tests.
var ACPIDir = "/sys/firmware/acpi"

// HaltCommand is how the machine is stopped at the end of the boot: power
// off where the kernel can (ACPI), reboot otherwise. Without ACPI (libkrun's
// kernels boot with acpi=off; so does QEMU's microvm machine here) a power
// off only halts the CPU and the VMM never exits, while a reboot (reboot=k,
// or QEMU's -no-reboot) ends the VM.
func HaltCommand() int {
	if _, err := os.Stat(ACPIDir); err == nil {
		return unix.LINUX_REBOOT_CMD_POWER_OFF
	}
	return unix.LINUX_REBOOT_CMD_RESTART
}

// Halt syncs and stops the machine with HaltCommand. As PID 1 it never
// returns; if the reboot call fails it sleeps forever rather than letting
// PID 1 exit (which would panic the kernel and lose the clean status).
func Halt() {
	unix.Sync()
	unix.Reboot(HaltCommand())
	for {
		time.Sleep(time.Hour)
	}
}
