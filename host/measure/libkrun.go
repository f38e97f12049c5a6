package measure

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// libkrun's guest layout for SEV-SNP (docs/measurement.md, "libkrun").
const (
	krunQbootGPA    = 0xffff0000
	krunQbootSize   = 0x10000
	krunInitrdGPA   = 0xa00000
	krunZeroPageGPA = 0x7000
	krunCmdlineGPA  = 0x20000
	krunCmdlineSize = 0x200
	// DefaultKernelLoadAddr is where libkrun loads libkrunfw's kernel
	// bundle (the kernel's CONFIG_PHYSICAL_START).
	DefaultKernelLoadAddr = 0x1000000
	// maxBundle bounds a kernel or initrd bundle.
	maxBundle = 512 << 20
)

// VMSA choices for a libkrun guest.
const (
	// KrunVMSALibkrunfw is the vCPU state of libkrunfw's vmsa.h, the one
	// krunfw_measurement uses: what libkrun set up before it learned to
	// boot firmware.
	KrunVMSALibkrunfw = "libkrunfw"
	// KrunVMSAKVMReset is KVM's reset state, which newer libkrun builds
	// leave in place for SNP guests. Not verified on hardware.
	KrunVMSAKVMReset = "kvm-reset"
)

// KrunInputs are what the launch digest of a libkrun SEV-SNP guest covers.
type KrunInputs struct {
	// Qboot (exactly 64 KiB), KernelBundle and InitrdBundle are the
	// bundles as libkrunfw exports them (4 KiB multiples).
	Qboot, KernelBundle, InitrdBundle []byte
	// KernelLoadAddr is where the kernel bundle goes (0: the default).
	KernelLoadAddr  uint64
	CPUs, MemoryMiB int
	// VMSA is KrunVMSALibkrunfw (default) or KrunVMSAKVMReset; CPUSig is
	// the vCPU signature the latter puts in RDX.
	VMSA   string
	CPUSig uint32
}

// Krun returns the launch digest of a libkrun SEV-SNP guest.
func Krun(in KrunInputs) ([48]byte, error) {
	var zero [48]byte
	if in.KernelLoadAddr == 0 {
		in.KernelLoadAddr = DefaultKernelLoadAddr
	}
	switch {
	case len(in.Qboot) != krunQbootSize:
		return zero, fmt.Errorf("measure: qboot is %d bytes: libkrun takes exactly %d", len(in.Qboot), krunQbootSize)
	case len(in.KernelBundle) == 0 || len(in.KernelBundle)%4096 != 0:
		return zero, fmt.Errorf("measure: kernel bundle is %d bytes: want a non-empty multiple of 4096", len(in.KernelBundle))
	case len(in.InitrdBundle)%4096 != 0:
		return zero, fmt.Errorf("measure: initrd bundle is %d bytes: want a multiple of 4096", len(in.InitrdBundle))
	case len(in.InitrdBundle) > maxBundle || len(in.KernelBundle) > maxBundle:
		return zero, fmt.Errorf("measure: a bundle is larger than %d bytes", maxBundle)
	case in.KernelLoadAddr%4096 != 0 || in.KernelLoadAddr >= krunQbootGPA:
		return zero, fmt.Errorf("measure: kernel load address %#x is not a page-aligned address below qboot", in.KernelLoadAddr)
	case in.CPUs < 1 || in.CPUs > 255:
		return zero, fmt.Errorf("measure: %d vCPUs: want 1 to 255", in.CPUs)
	case in.MemoryMiB < 16 || in.MemoryMiB > 1<<20:
		return zero, fmt.Errorf("measure: %d MiB of memory: want 16 MiB to 1 TiB", in.MemoryMiB)
	}
	var bsp, ap []byte
	switch in.VMSA {
	case "", KrunVMSALibkrunfw:
		b, a := krunfwVMSA()
		bsp, ap = b.page(), a.page()
	case KrunVMSAKVMReset:
		bsp = resetVMSA(VMMQEMU, 0xfffffff0, in.CPUSig, 1).page()
		ap = bsp
	default:
		return zero, fmt.Errorf("measure: libkrun VMSA %q: want %s or %s", in.VMSA, KrunVMSALibkrunfw, KrunVMSAKVMReset)
	}
	var d LaunchDigest
	d.NormalPages(krunQbootGPA, in.Qboot)
	d.NormalPages(in.KernelLoadAddr, in.KernelBundle)
	d.NormalPages(krunInitrdGPA, in.InitrdBundle)
	d.NormalPages(krunZeroPageGPA, krunZeroPage(in.CPUs, in.MemoryMiB, len(in.InitrdBundle)))
	d.ZeroPages(0, 0x1000) // initial IDT
	d.SecretsPage(0x5000)
	d.CPUIDPage(0x6000)
	d.ZeroPages(0x8000, 0x7000) // firmware stack and page tables
	for i := 0; i < in.CPUs; i++ {
		if i == 0 {
			d.VMSAPage(bsp)
		} else {
			d.VMSAPage(ap)
		}
	}
	return d.Sum(), nil
}

// krunfwVMSA is the BSP and AP state of libkrunfw's vmsa.h: real mode at
// the top of qboot, the BSP with its stack below the page tables and RSI
// pointing at the zero page, the AP at qboot's AP entry.
func krunfwVMSA() (bsp, ap *vmsaState) {
	s := vmsaState{
		es: segment{0, 0x93, 0xffff, 0}, ds: segment{0, 0x93, 0xffff, 0},
		fs: segment{0, 0x93, 0xffff, 0}, gs: segment{0, 0x93, 0xffff, 0},
		cs:   segment{0xf000, 0x9a, 0xffff, 0xffff0000},
		ss:   segment{0, 0x92, 0xffff, 0},
		tr:   segment{0, 0x83, 0xffff, 0},
		gdtr: segment{0, 0, 0xffff, 0}, idtr: segment{0, 0, 0xffff, 0},
		ldtr: segment{0, 0x82, 0xffff, 0},
		efer: 0x1000, cr4: 0x40, cr0: 0x10, dr7: 0x400, dr6: 0xffff0ff0, rflags: 2,
		gPAT: 0x0007040600070406, sevFeatures: 1, xcr0: 1,
	}
	b, a := s, s
	b.rip, b.rsp, b.rbp, b.rsi = 0xfff0, 0x8ff0, 0x8ff0, krunZeroPageGPA
	a.rip = 0xfff3
	return &b, &a
}

// krunZeroPage is the boot_params page libkrun writes at 0x7000: a
// bzImage-style header pointing at the command line and the initrd
// bundle, an E820 map of the guest's RAM, and the vCPU count in syssize.
func krunZeroPage(cpus, memMiB, initrdSize int) []byte {
	p := make([]byte, 4096)
	le := binary.LittleEndian
	le.PutUint32(p[0x1f4:], uint32(cpus))
	le.PutUint16(p[0x1fe:], 0xaa55)
	le.PutUint32(p[0x202:], 0x53726448)
	p[0x210] = 0xff
	le.PutUint32(p[0x218:], krunInitrdGPA)
	le.PutUint32(p[0x21c:], uint32(initrdSize))
	le.PutUint32(p[0x228:], krunCmdlineGPA)
	le.PutUint32(p[0x230:], 0x1000000)
	le.PutUint32(p[0x238:], krunCmdlineSize)
	const ebda, himem, mmio = 0x9fc00, 0x100000, 0xd0000000
	mem := uint64(memMiB) << 20
	e820 := [][2]uint64{{0, ebda}}
	if mem <= mmio {
		e820 = append(e820, [2]uint64{himem, mem - himem + 1})
	} else {
		e820 = append(e820, [2]uint64{himem, mmio - himem}, [2]uint64{1 << 32, mem - mmio + 1})
	}
	p[0x1e8] = byte(len(e820))
	for i, e := range e820 {
		o := 0x2d0 + 20*i
		le.PutUint64(p[o:], e[0])
		le.PutUint64(p[o+8:], e[1])
		le.PutUint32(p[o+16:], 1)
	}
	return p
}

// KrunfwBundles are the three bundles of a libkrunfw-sev library.
type KrunfwBundles struct {
	Qboot, Kernel, Initrd []byte
}

// ReadKrunfw reads the bundles from a libkrunfw-sev shared library
// through its dynamic symbols (QBOOT_BUNDLE, KERNEL_BUNDLE, INITRD_BUNDLE,
// which survive strip), without loading it. Each symbol's size counts the
// C string's terminating NUL, which is not part of the bundle.
func ReadKrunfw(path string) (*KrunfwBundles, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("libkrunfw: %w", err)
	}
	defer f.Close()
	b, err := ParseKrunfw(f)
	if err != nil {
		return nil, fmt.Errorf("libkrunfw %s: %w", path, err)
	}
	return b, nil
}

// ParseKrunfw is ReadKrunfw on an open ELF file.
func ParseKrunfw(r io.ReaderAt) (b *KrunfwBundles, err error) {
	defer func() {
		// debug/elf is not hardened against every hostile file.
		if p := recover(); p != nil {
			b, err = nil, fmt.Errorf("malformed ELF file (%v)", p)
		}
	}()
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	defer ef.Close()
	syms, err := ef.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("reading dynamic symbols: %w", err)
	}
	want := map[string]*[]byte{}
	b = &KrunfwBundles{}
	want["QBOOT_BUNDLE"], want["KERNEL_BUNDLE"], want["INITRD_BUNDLE"] = &b.Qboot, &b.Kernel, &b.Initrd
	for _, s := range syms {
		dst, ok := want[s.Name]
		if !ok || *dst != nil {
			continue
		}
		if elf.ST_TYPE(s.Info) != elf.STT_OBJECT || s.Section == elf.SHN_UNDEF || int(s.Section) >= len(ef.Sections) {
			return nil, fmt.Errorf("symbol %s is not a defined data object", s.Name)
		}
		sec := ef.Sections[s.Section]
		if s.Size < 1 || s.Size-1 > maxBundle || s.Value < sec.Addr || s.Value-sec.Addr > sec.Size || s.Size > sec.Size-(s.Value-sec.Addr) {
			return nil, fmt.Errorf("symbol %s (%d bytes at %#x) is not inside its section %s", s.Name, s.Size, s.Value, sec.Name)
		}
		if sec.Type != elf.SHT_PROGBITS {
			return nil, fmt.Errorf("symbol %s is in section %s, which holds no file data", s.Name, sec.Name)
		}
		data := make([]byte, s.Size-1)
		if _, err := sec.ReadAt(data, int64(s.Value-sec.Addr)); err != nil {
			return nil, fmt.Errorf("reading %s: %w", s.Name, err)
		}
		*dst = data
		delete(want, s.Name)
	}
	for name := range want {
		return nil, fmt.Errorf("no dynamic symbol %s: not a libkrunfw-sev library", name)
	}
	return b, nil
}
