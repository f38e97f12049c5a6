// Package measure computes expected launch measurements on the host: the
// value a TEE will put into a guest's reports, so that it can be
// registered with a broker before the guest ever runs.
//
// Sim is the simulated secure processor's launch digest (docs/design.md, "The
// simulated TEE"). The launcher computes it over exactly what it boots and
// puts it into every report it signs; `sealroot measure --tee sim` computes
// the same value ahead of time.
//
// The digest is SHA-384 over this byte string:
//
//	"sealroot sim launch digest v1" 0x00
//	field("kernel",     kernel file bytes)
//	field("initrd",     initrd file bytes)
//	field("cmdline",    the full kernel command line, UTF-8)
//	field("cpus",       vCPU count as a big-endian uint32)
//	field("memory_mib", memory size in MiB as a big-endian uint64)
//	field("machine",    the QEMU machine, UTF-8; only when not "pc")
//
// where field(name, value) is len(name) as one byte, name, len(value) as a
// big-endian uint64, then value. The leading label separates this digest
// from any other SHA-384 use; the names and lengths make the encoding
// injective (no two different inputs give the same byte string), so moving
// bytes from the end of the kernel to the start of the initrd, or from
// the command line into a number, changes the digest. Files are streamed,
// never held in memory.
package measure

import (
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"unicode/utf8"
)

// simLabel is the domain separation label of the sim launch digest.
const simLabel = "sealroot sim launch digest v1"

// SimInputs are what the simulated launch digest covers.
type SimInputs struct {
	// Kernel and Initrd are file paths.
	Kernel, Initrd string
	// Cmdline is the complete kernel command line as passed to the VMM
	// (for sealroot launch: launch.Cmdline of its --append).
	Cmdline string
	// CPUs is the vCPU count and MemoryMiB the memory size; both must
	// equal what the VM is launched with.
	CPUs, MemoryMiB int
	// Machine is the QEMU machine (launch.MachinePC or MachineMicrovm).
	// "" and "pc" are measured alike (no field, the digest of older
	// launches); any other machine adds a field, so a digest computed for
	// one machine never matches a launch on another.
	Machine string
}

// Sim returns the simulated launch digest of in.
func Sim(in SimInputs) ([48]byte, error) {
	var out [48]byte
	switch {
	case in.Kernel == "":
		return out, errors.New("measure: no kernel")
	case in.Initrd == "":
		return out, errors.New("measure: no initrd")
	case in.CPUs < 1 || in.CPUs > 1<<16:
		return out, fmt.Errorf("measure: %d vCPUs: want 1 to 65536", in.CPUs)
	case in.MemoryMiB < 1:
		return out, fmt.Errorf("measure: %d MiB of memory: want at least 1", in.MemoryMiB)
	case !utf8.ValidString(in.Machine) || len(in.Machine) > 64:
		return out, fmt.Errorf("measure: machine %q is not a short UTF-8 name", in.Machine)
	case !utf8.ValidString(in.Cmdline):
		return out, errors.New("measure: kernel command line is not valid UTF-8")
	}
	h := sha512.New384()
	h.Write([]byte(simLabel))
	h.Write([]byte{0})
	if err := fileField(h, "kernel", in.Kernel); err != nil {
		return out, err
	}
	if err := fileField(h, "initrd", in.Initrd); err != nil {
		return out, err
	}
	field(h, "cmdline", []byte(in.Cmdline))
	field(h, "cpus", binary.BigEndian.AppendUint32(nil, uint32(in.CPUs)))
	field(h, "memory_mib", binary.BigEndian.AppendUint64(nil, uint64(in.MemoryMiB)))
	if in.Machine != "" && in.Machine != "pc" {
		field(h, "machine", []byte(in.Machine))
	}
	h.Sum(out[:0])
	return out, nil
}

// header writes a field's name and value length.
func header(h hash.Hash, name string, n uint64) {
	h.Write([]byte{byte(len(name))})
	h.Write([]byte(name))
	h.Write(binary.BigEndian.AppendUint64(nil, n))
}

func field(h hash.Hash, name string, value []byte) {
	header(h, name, uint64(len(value)))
	h.Write(value)
}

// fileField hashes a file as a field, streaming it. The length is taken
// from the open file and the read must match it, so a file that changes
// while it is read is an error rather than a wrong digest.
func fileField(h hash.Hash, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("measure: %s: %w", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("measure: %s: %w", name, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("measure: %s %s is not a regular file", name, path)
	}
	size := fi.Size()
	header(h, name, uint64(size))
	n, err := io.Copy(h, io.LimitReader(f, size+1))
	if err != nil {
		return fmt.Errorf("measure: reading %s %s: %w", name, path, err)
	}
	if n != size {
		return fmt.Errorf("measure: %s %s changed while it was read (%d bytes, then %d)", name, path, size, n)
	}
	return nil
}
