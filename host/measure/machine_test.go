package measure

import (
	"crypto/sha512"
	"encoding/binary"
	"os"
	"testing"
)

// TestSimMachineField: "pc" and "" measure as before the field existed;
// microvm appends the documented machine field.
func TestSimMachineField(t *testing.T) {
	in := baseInputs(t)
	plain, err := Sim(in)
	if err != nil {
		t.Fatal(err)
	}
	in.Machine = "pc"
	if pc, _ := Sim(in); pc != plain {
		t.Fatal(`machine "pc" changed the digest of a launch without a machine`)
	}
	in.Machine = "microvm"
	got, err := Sim(in)
	if err != nil {
		t.Fatal(err)
	}
	kernel, _ := os.ReadFile(in.Kernel)
	initrd, _ := os.ReadFile(in.Initrd)
	var b []byte
	b = append(b, "sealroot sim launch digest v1\x00"...)
	fld := func(name string, v []byte) {
		b = append(b, byte(len(name)))
		b = append(b, name...)
		b = binary.BigEndian.AppendUint64(b, uint64(len(v)))
		b = append(b, v...)
	}
	fld("kernel", kernel)
	fld("initrd", initrd)
	fld("cmdline", []byte(in.Cmdline))
	fld("cpus", []byte{0, 0, 0, 2})
	fld("memory_mib", []byte{0, 0, 0, 0, 0, 0, 2, 0})
	fld("machine", []byte("microvm"))
	if want := sha512.Sum384(b); got != want {
		t.Fatalf("digest %x, want %x", got, want)
	}
	in.Machine = "\xff"
	if _, err := Sim(in); err == nil {
		t.Fatal("accepted a machine name that is not UTF-8")
	}
}
