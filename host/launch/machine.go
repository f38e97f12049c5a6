package launch

import (
	"fmt"
	"strconv"
	"strings"
)

// Machines the launcher boots guests on.
const (
	// MachinePC is QEMU's PC machine with PCI devices, the serial console
	// on ttyS0, and a kernel that takes the launcher's command line
	// (Debian's, with the initrd's modules).
	MachinePC = "pc"
	// MachineMicrovm is QEMU's microvm machine: virtio-mmio devices only,
	// no PCI, no ACPI, the console on hvc0 (virtio-console). It is the
	// shape of a libkrun guest, for a kernel with everything built in
	// (make kernel-krunfw); such a kernel ignores the command line.
	MachineMicrovm = "microvm"
)

// MicrovmBaseCmdline is the command line of a microvm launch. A kernel with
// a fixed built-in command line (CMDLINE_OVERRIDE, as libkrunfw's) ignores
// it; it is still measured, as the VMM passes it.
const MicrovmBaseCmdline = "console=hvc0 panic=-1 quiet"

// microvmTransports is how many virtio-mmio transports QEMU's microvm
// machine has with acpi=off (each device takes one).
const microvmTransports = 8

// CheckMachine says whether m names a machine the launcher knows.
func CheckMachine(m string) error {
	switch m {
	case "", MachinePC, MachineMicrovm:
		return nil
	}
	return fmt.Errorf("machine %q is not %s or %s", m, MachinePC, MachineMicrovm)
}

// MachineCmdline returns the kernel command line of a launch on machine
// with appendArgs: what the simulated TEE measures.
func MachineCmdline(machine, appendArgs string) string {
	if machine != MachineMicrovm {
		return Cmdline(appendArgs)
	}
	if s := strings.TrimSpace(appendArgs); s != "" {
		return MicrovmBaseCmdline + " " + s
	}
	return MicrovmBaseCmdline
}

// microvmArgs is qemuArgs for the microvm machine. Devices are attached in
// the order the built-in command line of the krunfw kernel probes QEMU's
// transports (QEMU hands them out from the last one down): the root disk
// first, so that it is /dev/vda.
func microvmArgs(o *Options, accel, cpu, cmdline, hostSock, simSock, slotDir string) ([]string, error) {
	if o.RootDiskInterface != "virtio" {
		return nil, fmt.Errorf("root disk interface %q: the microvm machine has virtio devices only", o.RootDiskInterface)
	}
	a := []string{
		"-M", "microvm,acpi=off,ioapic2=off",
		"-accel", accel,
		"-cpu", cpu,
		"-m", strconv.Itoa(o.MemoryMiB),
		"-smp", strconv.Itoa(o.CPUs),
		"-nodefaults", "-no-user-config", "-no-reboot",
		"-display", "none",
		"-serial", "none",
		"-monitor", "none",
		"-kernel", o.Kernel,
		"-initrd", o.Initrd,
		"-append", cmdline,
	}
	disks := append([]string{o.Disk}, o.ExtraDisks...)
	if o.DataDisk != "" {
		disks = append([]string{o.Disk, o.DataDisk}, o.ExtraDisks...)
	}
	devices := len(disks) + 1 // + virtio-serial
	if o.Forward != nil {
		devices++
	}
	if devices > microvmTransports {
		return nil, fmt.Errorf("%d virtio devices: the microvm machine has %d transports", devices, microvmTransports)
	}
	for i, d := range disks {
		id := "vd" + strconv.Itoa(i)
		a = append(a,
			"-drive", "file="+qemuOpt(d)+",if=none,id="+id+",format=raw,cache=unsafe",
			"-device", "virtio-blk-device,drive="+id)
	}
	a = append(a,
		"-device", "virtio-serial-device,id=vser",
		"-chardev", "stdio,id=con,signal=off",
		"-device", "virtconsole,bus=vser.0,chardev=con",
	)
	a = hostPorts(a, hostSock, simSock)
	if o.Forward != nil {
		relay := relayArgv(o.Forward, slotDir)
		a = append(a,
			"-netdev", "user,id=net0,restrict=on,guestfwd=tcp:"+qemuOpt(o.Forward.GuestAddr)+"-cmd:"+qemuOpt(shellJoin(relay)),
			"-device", "virtio-net-device,netdev=net0")
	}
	return a, nil
}
