// Package kmodtest makes synthetic kernel module trees for tests: tiny ELF
// relocatable objects that carry nothing but a .modinfo section, laid out
// like lib/modules/<release>, optionally compressed as the kernel's build
// compresses them. They exercise dependency resolution without a real
// kernel; they cannot be loaded.
package kmodtest

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Release is the kernel release synthetic modules are built for by default.
const Release = "6.6.6-test"

// ModuleELF returns a minimal ELF64 little-endian x86-64 relocatable object
// whose .modinfo section holds entries (each "key=value"), NUL-terminated.
func ModuleELF(entries ...string) []byte { return ModuleELFFor(elf.EM_X86_64, entries...) }

// ModuleELFFor is ModuleELF for another machine.
func ModuleELFFor(machine elf.Machine, entries ...string) []byte {
	var modinfo bytes.Buffer
	for _, e := range entries {
		modinfo.WriteString(e)
		modinfo.WriteByte(0)
	}
	shstrtab := []byte("\x00.modinfo\x00.shstrtab\x00")
	const ehsize, shentsize = 64, 64
	modinfoOff := uint64(ehsize)
	shstrOff := modinfoOff + uint64(modinfo.Len())
	shOff := (shstrOff + uint64(len(shstrtab)) + 7) &^ 7

	var b bytes.Buffer
	hdr := elf.Header64{
		Type:      uint16(elf.ET_REL),
		Machine:   uint16(machine),
		Version:   uint32(elf.EV_CURRENT),
		Shoff:     shOff,
		Ehsize:    ehsize,
		Shentsize: shentsize,
		Shnum:     3,
		Shstrndx:  2,
	}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	hdr.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	hdr.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	must(binary.Write(&b, binary.LittleEndian, hdr))
	b.Write(modinfo.Bytes())
	b.Write(shstrtab)
	for uint64(b.Len()) < shOff {
		b.WriteByte(0)
	}
	sections := []elf.Section64{
		{},
		{Name: 1, Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC), Off: modinfoOff, Size: uint64(modinfo.Len()), Addralign: 1},
		{Name: 10, Type: uint32(elf.SHT_STRTAB), Off: shstrOff, Size: uint64(len(shstrtab)), Addralign: 1},
	}
	for _, s := range sections {
		must(binary.Write(&b, binary.LittleEndian, s))
	}
	return b.Bytes()
}

func must(err error) {
	if err != nil {
		panic(err) // writes to a bytes.Buffer do not fail
	}
}

// Module describes one synthetic module file.
type Module struct {
	// Path is relative to the tree, e.g. "kernel/crypto/xts.ko.xz"; the
	// suffix (.ko, .ko.xz, .ko.zst, .ko.gz) picks the compression.
	Path string
	// Name is the name= entry; derived from Path when empty. Set it to
	// "-" to leave the entry out.
	Name string
	// Depends is the depends= list (module names as written).
	Depends []string
	// Softdeps are softdep= values, e.g. "pre: ecb".
	Softdeps []string
	// Aliases are alias= values.
	Aliases []string
	// Vermagic is the vermagic= value; Release plus flags when empty.
	Vermagic string
	// Machine is the ELF machine; x86-64 when zero.
	Machine elf.Machine
	// Pad adds this many bytes of non-modinfo payload, to give the file a
	// size.
	Pad int
}

// Entries returns the module's .modinfo entries.
func (m Module) Entries() []string {
	name := m.Name
	if name == "" {
		base := filepath.Base(m.Path)
		name = base[:strings.Index(base, ".ko")]
	}
	vermagic := m.Vermagic
	if vermagic == "" {
		vermagic = Release + " SMP preempt mod_unload modversions "
	}
	var e []string
	for _, a := range m.Aliases {
		e = append(e, "alias="+a)
	}
	for _, s := range m.Softdeps {
		e = append(e, "softdep="+s)
	}
	e = append(e, "depends="+strings.Join(m.Depends, ","))
	if name != "-" {
		e = append(e, "name="+name)
	}
	e = append(e, "vermagic="+vermagic)
	if m.Pad > 0 {
		e = append(e, "sealroot_pad="+strings.Repeat("x", m.Pad))
	}
	return e
}

// Image returns the module's uncompressed ELF bytes.
func (m Module) Image() []byte {
	if m.Machine == 0 {
		return ModuleELF(m.Entries()...)
	}
	return ModuleELFFor(m.Machine, m.Entries()...)
}

// Compress compresses image as the kernel's build does for suffix.
func Compress(suffix string, image []byte) ([]byte, error) {
	var b bytes.Buffer
	switch suffix {
	case ".ko":
		return image, nil
	case ".ko.xz":
		w, err := xz.WriterConfig{CheckSum: xz.CRC32}.NewWriter(&b)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(image); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case ".ko.zst":
		w, err := zstd.NewWriter(&b)
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(image); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	case ".ko.gz":
		w := gzip.NewWriter(&b)
		if _, err := w.Write(image); err != nil {
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown module suffix %q", suffix)
	}
	return b.Bytes(), nil
}

// suffixOf returns the module suffix of p.
func suffixOf(p string) string {
	for _, s := range []string{".ko.xz", ".ko.zst", ".ko.gz", ".ko"} {
		if strings.HasSuffix(p, s) {
			return s
		}
	}
	return ""
}

// WriteTree writes mods under dir, and modules.builtin listing builtin
// (paths such as "kernel/fs/ext4/ext4.ko") when builtin is not nil.
func WriteTree(dir string, mods []Module, builtin []string) error {
	for _, m := range mods {
		data, err := Compress(suffixOf(m.Path), m.Image())
		if err != nil {
			return fmt.Errorf("module %s: %w", m.Path, err)
		}
		p := filepath.Join(dir, filepath.FromSlash(m.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return err
		}
	}
	if builtin != nil {
		s := strings.Join(builtin, "\n")
		if s != "" {
			s += "\n"
		}
		if err := os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(s), 0o644); err != nil {
			return err
		}
	}
	return nil
}
