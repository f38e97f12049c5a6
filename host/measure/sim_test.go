package measure

import (
	"bytes"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func baseInputs(t *testing.T) SimInputs {
	dir := t.TempDir()
	return SimInputs{
		Kernel:    writeFile(t, dir, "vmlinuz", bytes.Repeat([]byte("kernel"), 1000)),
		Initrd:    writeFile(t, dir, "initrd", bytes.Repeat([]byte("initrd"), 1000)),
		Cmdline:   "console=ttyS0 panic=-1 quiet",
		CPUs:      2,
		MemoryMiB: 512,
	}
}

// TestSimEncoding recomputes the digest from the documented encoding, so
// the package comment and the code cannot drift apart.
func TestSimEncoding(t *testing.T) {
	in := baseInputs(t)
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
	if want := sha512.Sum384(b); got != want {
		t.Fatalf("digest %x, want %x", got, want)
	}
}

func TestSimChangesWithEveryInput(t *testing.T) {
	base := baseInputs(t)
	ref, err := Sim(base)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Sim(base)
	if again != ref {
		t.Fatal("digest is not deterministic")
	}
	flipByte := func(path string, off int) string {
		b, _ := os.ReadFile(path)
		b[off] ^= 1
		return writeFile(t, t.TempDir(), filepath.Base(path), b)
	}
	tests := []struct {
		name string
		edit func(in *SimInputs)
	}{
		{"one initrd byte", func(in *SimInputs) { in.Initrd = flipByte(in.Initrd, 3000) }},
		{"last kernel byte", func(in *SimInputs) { in.Kernel = flipByte(in.Kernel, 5999) }},
		{"cmdline", func(in *SimInputs) { in.Cmdline += " init=/bin/sh" }},
		{"cpus", func(in *SimInputs) { in.CPUs = 1 }},
		{"memory", func(in *SimInputs) { in.MemoryMiB = 513 }},
		{"kernel and initrd swapped", func(in *SimInputs) { in.Kernel, in.Initrd = in.Initrd, in.Kernel }},
		{"a byte moved from kernel to initrd", func(in *SimInputs) {
			k, _ := os.ReadFile(in.Kernel)
			i, _ := os.ReadFile(in.Initrd)
			d := t.TempDir()
			in.Kernel = writeFile(t, d, "k", k[:len(k)-1])
			in.Initrd = writeFile(t, d, "i", append([]byte{k[len(k)-1]}, i...))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.edit(&in)
			got, err := Sim(in)
			if err != nil {
				t.Fatal(err)
			}
			if got == ref {
				t.Fatalf("digest unchanged: %s", hex.EncodeToString(got[:]))
			}
		})
	}
}

func TestSimRejects(t *testing.T) {
	base := baseInputs(t)
	tests := []struct {
		name string
		edit func(in *SimInputs)
		want string
	}{
		{"no kernel", func(in *SimInputs) { in.Kernel = "" }, "no kernel"},
		{"no initrd", func(in *SimInputs) { in.Initrd = "" }, "no initrd"},
		{"missing kernel", func(in *SimInputs) { in.Kernel = "/nonexistent/vmlinuz" }, "kernel"},
		{"directory initrd", func(in *SimInputs) { in.Initrd = t.TempDir() }, "not a regular file"},
		{"zero cpus", func(in *SimInputs) { in.CPUs = 0 }, "vCPUs"},
		{"zero memory", func(in *SimInputs) { in.MemoryMiB = 0 }, "MiB"},
		{"bad utf-8", func(in *SimInputs) { in.Cmdline = "\xff" }, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.edit(&in)
			if _, err := Sim(in); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Sim = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
