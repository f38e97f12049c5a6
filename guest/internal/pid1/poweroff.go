package pid1

import (
	"time"

	"golang.org/x/sys/unix"
)

// PowerOff syncs and powers the machine off. As PID 1 it never returns; if
// the reboot call fails it sleeps forever rather than letting PID 1 exit
// (which would panic the kernel and lose the clean status).
func PowerOff() {
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF) // returns only on failure: see above
	for {
		time.Sleep(time.Hour)
	}
}
