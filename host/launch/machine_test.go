package launch

import (
	"strings"
	"testing"
)

func TestMicrovmArgs(t *testing.T) {
	o := &Options{Machine: MachineMicrovm, Kernel: "k", Initrd: "i", Disk: "root.img", DataDisk: "data.img",
		RootDiskInterface: "virtio", CPUs: 1, MemoryMiB: 128,
		Forward: &Forward{GuestAddr: "10.0.2.100:8000", BrokerAddr: "127.0.0.1:9", RelayCommand: []string{"relay"}}}
	a, err := qemuArgs(o, "tcg", MachineCmdline(MachineMicrovm, ""), "/h.sock", "/s.sock", "/slots")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Join(a, " ")
	for _, want := range []string{"-M microvm,acpi=off,ioapic2=off", "virtconsole,bus=vser.0,chardev=con", "virtio-net-device,netdev=net0",
		"name=org.sealroot.host", "-append console=hvc0", "'--slot-dir' '/slots'"} {
		if !strings.Contains(s, want) {
			t.Errorf("args lack %q: %s", want, s)
		}
	}
	if strings.Contains(s, "pci") {
		t.Errorf("a PCI device on microvm: %s", s)
	}
	// The root disk is attached first (QEMU gives it the transport the
	// kernel probes first), then the data disk.
	if r, d := strings.Index(s, "root.img"), strings.Index(s, "data.img"); r < 0 || d < r {
		t.Errorf("disk order: %s", s)
	}
	o.TEE = &TEE{Kind: "snp"}
	if _, err := qemuArgs(o, "tcg", "", "/h", "", ""); err == nil || !strings.Contains(err.Error(), "snp") {
		t.Errorf("an SNP guest on microvm: %v", err)
	}
	o.TEE = nil
	o.ExtraDisks = []string{"a", "b", "c", "d", "e"}
	if _, err := qemuArgs(o, "tcg", "", "/h", "", ""); err == nil || !strings.Contains(err.Error(), "transports") {
		t.Errorf("9 devices: %v", err)
	}
	o.ExtraDisks, o.RootDiskInterface = nil, "ide"
	if _, err := qemuArgs(o, "tcg", "", "/h", "", ""); err == nil {
		t.Error("accepted an IDE root disk on microvm")
	}
}

func TestCheckMachine(t *testing.T) {
	for _, m := range []string{"", "pc", "microvm"} {
		if err := CheckMachine(m); err != nil {
			t.Errorf("%q: %v", m, err)
		}
	}
	if err := CheckMachine("q35"); err == nil || !strings.Contains(err.Error(), "q35") {
		t.Errorf("q35: %v", err)
	}
	if MachineCmdline("", "x=1") != Cmdline("x=1") {
		t.Error("the pc command line changed")
	}
}
