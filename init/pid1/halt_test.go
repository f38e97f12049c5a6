package pid1

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHaltCommand(t *testing.T) {
	defer func(d string) { ACPIDir = d }(ACPIDir)
	dir := t.TempDir()
	ACPIDir = dir
	if HaltCommand() != unix.LINUX_REBOOT_CMD_POWER_OFF {
		t.Fatal("with ACPI: want power off")
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
