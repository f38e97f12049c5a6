package pid1

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHaltCommand(t *testing.T) {
	defer func(d, c string) { ACPIDir, CmdlinePath = d, c }(ACPIDir, CmdlinePath)
	dir := t.TempDir()
	ACPIDir = dir
	CmdlinePath = filepath.Join(dir, "cmdline")
	os.WriteFile(CmdlinePath, []byte("console=ttyS0 panic=-1 quiet\n"), 0o644)
	if HaltCommand() != unix.LINUX_REBOOT_CMD_POWER_OFF {
		t.Fatal("with ACPI: want power off")
	}
	os.WriteFile(CmdlinePath, []byte("reboot=k panic=-1 console=hvc0 tsi_hijack init=/init.krun\n"), 0o644)
	if HaltCommand() != unix.LINUX_REBOOT_CMD_RESTART {
		t.Fatal("libkrunfw's command line with ACPI (its TDX kernels): want reboot")
	}
	ACPIDir = filepath.Join(dir, "absent")
	if HaltCommand() != unix.LINUX_REBOOT_CMD_RESTART {
		t.Fatal("without ACPI: want reboot (a power off would only halt the CPU)")
	}
}

func TestDisableModprobe(t *testing.T) {
	defer func(p string) { ModprobePath = p }(ModprobePath)
	dir := t.TempDir()
	ModprobePath = filepath.Join(dir, "absent") // a kernel without module support
	if err := DisableModprobe(); err != nil {
		t.Fatalf("no modprobe setting: %v", err)
	}
	if _, err := os.Stat(ModprobePath); !os.IsNotExist(err) {
		t.Fatal("DisableModprobe created the setting")
	}
	ModprobePath = filepath.Join(dir, "modprobe")
	os.WriteFile(ModprobePath, []byte("/sbin/modprobe\n"), 0o644)
	if err := DisableModprobe(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(ModprobePath); string(b) != "\n" {
		t.Fatalf("modprobe setting %q, want empty", b)
	}
}
