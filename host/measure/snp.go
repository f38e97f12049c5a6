package measure

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// SNP page types of a launch update (docs/measurement.md).
const (
	pageNormal     = 1
	pageVMSA       = 2
	pageZero       = 3
	pageUnmeasured = 4
	pageSecrets    = 5
	pageCPUID      = 6
)

// vmsaGPA is the guest-physical address recorded for every VMSA page.
const vmsaGPA = 0xFFFFFFFFF000

// LaunchDigest is the SNP launch digest as the secure processor extends
// it: 48 bytes, each measured page replacing it with SHA-384 of a 0x70-byte
// PAGE_INFO record (the digest so far, the page's contents digest, the
// record length, the page type, and the page's guest-physical address).
type LaunchDigest struct {
	ld [48]byte
}

// Seed starts the digest from an intermediate value instead of zeros.
func (d *LaunchDigest) Seed(v [48]byte) { d.ld = v }

// Sum returns the digest so far.
func (d *LaunchDigest) Sum() [48]byte { return d.ld }

func (d *LaunchDigest) update(typ byte, gpa uint64, contents *[48]byte) {
	var info [0x70]byte
	copy(info[0x00:], d.ld[:])
	if contents != nil {
		copy(info[0x30:], contents[:])
	}
	binary.LittleEndian.PutUint16(info[0x60:], 0x70)
	info[0x62] = typ
	// 0x63 is_imi, 0x64-0x66 VMPL permissions, 0x67 reserved: all zero.
	binary.LittleEndian.PutUint64(info[0x68:], gpa)
	d.ld = sha512.Sum384(info[:])
}

// NormalPages measures data (a multiple of 4096 bytes) page by page from
// gpa.
func (d *LaunchDigest) NormalPages(gpa uint64, data []byte) {
	for off := 0; off < len(data); off += 4096 {
		h := sha512.Sum384(data[off : off+4096])
		d.update(pageNormal, gpa+uint64(off), &h)
	}
}

func (d *LaunchDigest) pages(typ byte, gpa, size uint64) {
	for off := uint64(0); off < size; off += 4096 {
		d.update(typ, gpa+off, nil)
	}
}

// ZeroPages, UnmeasuredPages: pages whose contents are not hashed.
func (d *LaunchDigest) ZeroPages(gpa, size uint64)       { d.pages(pageZero, gpa, size) }
func (d *LaunchDigest) UnmeasuredPages(gpa, size uint64) { d.pages(pageUnmeasured, gpa, size) }
func (d *LaunchDigest) SecretsPage(gpa uint64)           { d.update(pageSecrets, gpa, nil) }
func (d *LaunchDigest) CPUIDPage(gpa uint64)             { d.update(pageCPUID, gpa, nil) }

// VMSAPage measures one vCPU's save area.
func (d *LaunchDigest) VMSAPage(page []byte) {
	h := sha512.Sum384(page)
	d.update(pageVMSA, vmsaGPA, &h)
}

// SNP VMMs whose initial vCPU state is known.
const (
	VMMQEMU = "qemu"
	VMMEC2  = "ec2"
	VMMGCE  = "gce"
)

// CPUSigs maps QEMU -cpu model names to the CPUID(1).EAX signature QEMU
// puts into RDX of each vCPU's initial state.
var CPUSigs = map[string]uint32{
	"EPYC": cpuSig(23, 1, 2), "EPYC-v1": cpuSig(23, 1, 2), "EPYC-v2": cpuSig(23, 1, 2),
	"EPYC-v3": cpuSig(23, 1, 2), "EPYC-v4": cpuSig(23, 1, 2), "EPYC-IBPB": cpuSig(23, 1, 2),
	"EPYC-Rome": cpuSig(23, 49, 0), "EPYC-Rome-v1": cpuSig(23, 49, 0), "EPYC-Rome-v2": cpuSig(23, 49, 0),
	"EPYC-Rome-v3": cpuSig(23, 49, 0), "EPYC-Rome-v4": cpuSig(23, 49, 0),
	"EPYC-Milan": cpuSig(25, 1, 1), "EPYC-Milan-v1": cpuSig(25, 1, 1), "EPYC-Milan-v2": cpuSig(25, 1, 1),
	"EPYC-Genoa": cpuSig(25, 17, 0), "EPYC-Genoa-v1": cpuSig(25, 17, 0),
	"EPYC-Turin": cpuSig(26, 0, 0), "EPYC-Turin-v1": cpuSig(26, 0, 0),
}

// DefaultCPUType is the vCPU model sealroot launch gives QEMU for SNP.
const DefaultCPUType = "EPYC-v4"

// cpuSig encodes family, model and stepping as CPUID(1).EAX: families
// above 0xf are 0xf plus an extended family.
func cpuSig(family, model, stepping uint32) uint32 {
	famLo, famHi := family, uint32(0)
	if family > 0xf {
		famLo, famHi = 0xf, (family-0xf)&0xff
	}
	return famHi<<20 | (model>>4&0xf)<<16 | famLo<<8 | (model&0xf)<<4 | stepping&0xf
}

// CPUSig resolves a QEMU CPU model name.
func CPUSig(cpuType string) (uint32, error) {
	if s, ok := CPUSigs[cpuType]; ok {
		return s, nil
	}
	names := make([]string, 0, len(CPUSigs))
	for n := range CPUSigs {
		names = append(names, n)
	}
	sort.Strings(names)
	return 0, fmt.Errorf("cpu type %q is unknown: want one of %s, or give the signature", cpuType, strings.Join(names, ", "))
}

// ParseUint parses a decimal or 0x-prefixed number of at most bits bits.
func ParseUint(s string, bits int) (uint64, error) {
	return strconv.ParseUint(s, 0, bits)
}

// segment is a VMCB segment register: selector, attributes, limit, base.
type segment struct {
	sel, attrib uint16
	limit       uint32
	base        uint64
}

// vmsaState is the part of a save area that differs between VMMs and
// vCPUs; every other field of the 4 KiB page is zero.
type vmsaState struct {
	cs, ss, tr, es, ds, fs, gs, gdtr, ldtr, idtr segment
	efer, cr4, cr0, dr7, dr6, rflags, rip        uint64
	rsp, rbp, rsi, rdx, gPAT, sevFeatures, xcr0  uint64
	mxcsr                                        uint32
	fcw                                          uint16
}

// page lays the state out as a VMSA (docs/measurement.md has the offsets).
func (s *vmsaState) page() []byte {
	p := make([]byte, 4096)
	le := binary.LittleEndian
	for i, sg := range []segment{s.es, s.cs, s.ss, s.ds, s.fs, s.gs, s.gdtr, s.ldtr, s.idtr, s.tr} {
		o := i * 16
		le.PutUint16(p[o:], sg.sel)
		le.PutUint16(p[o+2:], sg.attrib)
		le.PutUint32(p[o+4:], sg.limit)
		le.PutUint64(p[o+8:], sg.base)
	}
	for _, f := range []struct {
		off int
		v   uint64
	}{
		{0xd0, s.efer}, {0x148, s.cr4}, {0x158, s.cr0}, {0x160, s.dr7}, {0x168, s.dr6},
		{0x170, s.rflags}, {0x178, s.rip}, {0x1d8, s.rsp}, {0x268, s.gPAT}, {0x310, s.rdx},
		{0x328, s.rbp}, {0x330, s.rsi}, {0x3b0, s.sevFeatures}, {0x3e8, s.xcr0},
	} {
		le.PutUint64(p[f.off:], f.v)
	}
	le.PutUint32(p[0x408:], s.mxcsr)
	le.PutUint16(p[0x410:], s.fcw)
	return p
}

// resetVMSA is a vCPU's state at reset, about to run eip in real mode,
// as the VMM sets it up.
func resetVMSA(vmm string, eip uint32, sig uint32, features uint64) *vmsaState {
	s := &vmsaState{
		es: segment{0, 0x93, 0xffff, 0}, ds: segment{0, 0x93, 0xffff, 0},
		fs: segment{0, 0x93, 0xffff, 0}, gs: segment{0, 0x93, 0xffff, 0},
		cs:   segment{0xf000, 0x9b, 0xffff, uint64(eip & 0xffff0000)},
		ss:   segment{0, 0x93, 0xffff, 0},
		tr:   segment{0, 0x8b, 0xffff, 0},
		gdtr: segment{0, 0, 0xffff, 0}, idtr: segment{0, 0, 0xffff, 0},
		ldtr: segment{0, 0x82, 0xffff, 0},
		efer: 0x1000, cr4: 0x40, cr0: 0x10, dr7: 0x400, dr6: 0xffff0ff0, rflags: 2,
		rip: uint64(eip & 0xffff), gPAT: 0x0007040600070406, sevFeatures: features, xcr0: 1,
	}
	switch vmm {
	case VMMQEMU:
		s.rdx, s.mxcsr, s.fcw = uint64(sig), 0x1f80, 0x37f
	case VMMEC2:
		if eip == 0xfffffff0 {
			s.cs.attrib = 0x9a
		}
		s.ss.attrib, s.tr.attrib, s.rdx = 0x92, 0x83, 0x600
	case VMMGCE:
		s.gPAT, s.rdx = 0x00070106, 0x600
	}
	return s
}

// SNPInputs are what the launch digest of an SNP guest under QEMU (or EC2
// or GCE, which boot the same OVMF) covers.
type SNPInputs struct {
	// Firmware is the OVMF image file given to the VMM.
	Firmware string
	// FirmwareDigest, when set, replaces measuring the firmware's pages
	// with this intermediate digest (the firmware file is still parsed
	// for its metadata).
	FirmwareDigest *[48]byte
	// VMM is qemu (default), ec2 or gce.
	VMM string
	// CPUs is the vCPU count; CPUSig the vCPU signature (QEMU only).
	CPUs   int
	CPUSig uint32
	// GuestFeatures is the VMSA's SEV_FEATURES (0x1: SNP active).
	GuestFeatures uint64
	// Kernel, when set, is booted directly and measured through the
	// kernel hashes page together with Initrd (optional) and Cmdline,
	// the exact kernel command line.
	Kernel, Initrd, Cmdline string
}

// SNP returns the launch digest of in.
func SNP(in SNPInputs) ([48]byte, error) {
	var zero [48]byte
	switch in.VMM {
	case "":
		in.VMM = VMMQEMU
	case VMMQEMU, VMMEC2, VMMGCE:
	default:
		return zero, fmt.Errorf("measure: VMM %q: want qemu, ec2 or gce", in.VMM)
	}
	if in.CPUs < 1 || in.CPUs > 512 {
		return zero, fmt.Errorf("measure: %d vCPUs: want 1 to 512", in.CPUs)
	}
	if in.Kernel == "" && (in.Initrd != "" || in.Cmdline != "") {
		return zero, errors.New("measure: an initrd or command line is measured only with a kernel")
	}
	fw, err := ReadFirmware(in.Firmware)
	if err != nil {
		return zero, fmt.Errorf("measure: %w", err)
	}
	if fw.SEV == nil {
		return zero, fmt.Errorf("measure: firmware %s has no SEV metadata: it cannot boot an SNP guest", in.Firmware)
	}
	var hashPage []byte
	if in.Kernel != "" {
		if !fw.hasSection(SectionSNPKernelHashes) {
			return zero, fmt.Errorf("measure: firmware %s: %w", in.Firmware, ErrNoKernelHashes)
		}
		gpa, err := fw.HashTableGPA()
		if err != nil {
			return zero, fmt.Errorf("measure: firmware %s: %w", in.Firmware, err)
		}
		if hashPage, err = kernelHashesPage(in.Kernel, in.Initrd, in.Cmdline, gpa&0xfff); err != nil {
			return zero, err
		}
	}
	apEIP, err := fw.ResetEIP()
	if err != nil {
		return zero, fmt.Errorf("measure: firmware %s: %w", in.Firmware, err)
	}
	if in.CPUs > 1 && apEIP == 0 {
		return zero, fmt.Errorf("measure: firmware %s has no SEV-ES reset block, so it cannot start %d vCPUs", in.Firmware, in.CPUs)
	}

	var d LaunchDigest
	if in.FirmwareDigest != nil {
		d.Seed(*in.FirmwareDigest)
	} else {
		d.NormalPages(fw.GPA(), fw.Data)
	}
	for _, s := range fw.SEV {
		gpa, size := uint64(s.GPA), uint64(s.Size)
		switch s.Type {
		case SectionSNPSecMem:
			if in.VMM == VMMGCE {
				d.UnmeasuredPages(gpa, size)
			} else {
				d.ZeroPages(gpa, size)
			}
		case SectionSNPSecrets:
			d.SecretsPage(gpa)
		case SectionCPUID:
			if in.VMM != VMMEC2 {
				d.CPUIDPage(gpa)
			}
		case SectionSVSMCAA:
			d.ZeroPages(gpa, size)
		case SectionSNPKernelHashes:
			if hashPage == nil {
				d.ZeroPages(gpa, size)
				continue
			}
			if size != 4096 {
				return zero, fmt.Errorf("measure: firmware %s: kernel hashes section is %#x bytes, want one page", in.Firmware, size)
			}
			d.NormalPages(gpa, hashPage)
		}
	}
	if in.VMM == VMMEC2 { // EC2 measures the CPUID page after all others
		for _, s := range fw.SEV {
			if s.Type == SectionCPUID {
				d.CPUIDPage(uint64(s.GPA))
			}
		}
	}
	bsp := resetVMSA(in.VMM, 0xfffffff0, in.CPUSig, in.GuestFeatures).page()
	ap := resetVMSA(in.VMM, apEIP, in.CPUSig, in.GuestFeatures).page()
	for i := 0; i < in.CPUs; i++ {
		if i == 0 {
			d.VMSAPage(bsp)
		} else {
			d.VMSAPage(ap)
		}
	}
	return d.Sum(), nil
}

// FirmwareDigest is the launch digest after the firmware's pages alone,
// for SNPInputs.FirmwareDigest.
func FirmwareDigest(path string) ([48]byte, error) {
	fw, err := ReadFirmware(path)
	if err != nil {
		return [48]byte{}, fmt.Errorf("measure: %w", err)
	}
	var d LaunchDigest
	d.NormalPages(fw.GPA(), fw.Data)
	return d.Sum(), nil
}

// Kernel hashes table GUIDs.
var (
	guidHashTableHeader = mustGUID("9438d606-4f22-4cc9-b479-a793d411fd21")
	guidHashCmdline     = mustGUID("97d02dd8-bd20-4c94-aa78-e7714d36ab2a")
	guidHashInitrd      = mustGUID("44baf731-3a2f-4bd7-9af1-41e29169781d")
	guidHashKernel      = mustGUID("4de79437-abd2-427f-b835-d5b172d2045b")
)

// KernelHashesTable is QEMU's table of SHA-256 digests of the command line
// (with its terminating NUL), the initrd (empty when none) and the kernel:
// a GUID and u16 length header, three {GUID, u16 50, digest} entries, and
// zero padding to a 16-byte multiple.
func KernelHashesTable(kernel, initrd, cmdline [32]byte) []byte {
	t := make([]byte, 0, 176)
	t = append(t, guidHashTableHeader[:]...)
	t = binary.LittleEndian.AppendUint16(t, 18+3*50)
	for _, e := range []struct {
		g [16]byte
		h [32]byte
	}{{guidHashCmdline, cmdline}, {guidHashInitrd, initrd}, {guidHashKernel, kernel}} {
		t = append(t, e.g[:]...)
		t = binary.LittleEndian.AppendUint16(t, 50)
		t = append(t, e.h[:]...)
	}
	return append(t, make([]byte, 176-len(t))...)
}

// kernelHashesPage is the 4 KiB page holding the table at offset.
func kernelHashesPage(kernel, initrd, cmdline string, offset uint32) ([]byte, error) {
	kh, err := sha256File("kernel", kernel)
	if err != nil {
		return nil, err
	}
	ih := sha256.Sum256(nil)
	if initrd != "" {
		if ih, err = sha256File("initrd", initrd); err != nil {
			return nil, err
		}
	}
	ch := sha256.Sum256(append([]byte(cmdline), 0))
	t := KernelHashesTable(kh, ih, ch)
	if int(offset)+len(t) > 4096 {
		return nil, fmt.Errorf("measure: the kernel hashes table at page offset %#x does not fit its page", offset)
	}
	page := make([]byte, 4096)
	copy(page[offset:], t)
	return page, nil
}

// sha256File hashes a file, streaming it.
func sha256File(what, path string) ([32]byte, error) {
	var out [32]byte
	f, err := os.Open(path)
	if err != nil {
		return out, fmt.Errorf("measure: %s: %w", what, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return out, fmt.Errorf("measure: reading %s %s: %w", what, path, err)
	}
	h.Sum(out[:0])
	return out, nil
}
