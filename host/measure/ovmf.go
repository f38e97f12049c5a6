package measure

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// GUIDs of the firmware's footer table entries, as 16 bytes in the
// little-endian (EFI) byte order they are stored in.
var (
	guidFooterTable   = mustGUID("96b582de-1fb2-45f7-baea-a366c55a082d")
	guidSEVESReset    = mustGUID("00f771de-1a7e-4fcb-890e-68c77e2fb44e")
	guidSEVHashTable  = mustGUID("7255371f-3a3b-4b04-927b-1da6efa8d454")
	guidSEVMetadata   = mustGUID("dc886566-984a-4798-a75e-5585a7bf67cc")
	guidTDXMetadata   = mustGUID("e47a6535-984a-4798-865e-4685a7bf8ec2")
	footerEntryHeader = 2 + 16 // u16 size, GUID
)

// maxFirmware bounds a firmware image: it is mapped below 4 GiB, and real
// ones are a few MiB.
const maxFirmware = 64 << 20

// SEV metadata section types.
const (
	SectionSNPSecMem       = 1
	SectionSNPSecrets      = 2
	SectionCPUID           = 3
	SectionSVSMCAA         = 4
	SectionSNPKernelHashes = 0x10
)

// SEVSection is one item of the firmware's SEV metadata: a guest-physical
// range the firmware expects the launcher to prepare.
type SEVSection struct {
	GPA, Size, Type uint32
}

// TDVFSection is one item of the firmware's TDX metadata.
type TDVFSection struct {
	DataOffset, RawSize uint32
	MemAddr, MemSize    uint64
	Type, Attributes    uint32
}

// TDVF section types and attributes.
const (
	TDVFBFV     = 0
	TDVFCFV     = 1
	TDVFTDHOB   = 2
	TDVFTempMem = 3

	TDVFAttrMRExtend = 1
	TDVFAttrPageAug  = 2
)

// Firmware is a parsed OVMF/TDVF image: its bytes, the GUIDed footer
// table at its end, and the SEV and TDX metadata that table points at.
type Firmware struct {
	Data []byte
	// Table maps an entry's GUID (16 stored bytes) to its data.
	Table map[[16]byte][]byte
	// SEV is the SEV metadata (nil when the image has none).
	SEV []SEVSection
	// TDVF is the TDX metadata (nil when the image has none). Its data
	// ranges are checked against the image only when MRTD is computed:
	// the SNP test fixtures are the last 4 KiB of images whose TDX
	// sections point before it.
	TDVF []TDVFSection
}

// ReadFirmware reads and parses a firmware image file.
func ReadFirmware(path string) (*Firmware, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("firmware %s is not a regular file", path)
	}
	if fi.Size() > maxFirmware {
		return nil, fmt.Errorf("firmware %s: %d bytes, more than the %d a firmware image may have", path, fi.Size(), maxFirmware)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("firmware: %w", err)
	}
	fw, err := ParseFirmware(b)
	if err != nil {
		return nil, fmt.Errorf("firmware %s: %w", path, err)
	}
	return fw, nil
}

// ParseFirmware parses the footer table and the SEV and TDX metadata of a
// firmware image. An image without a footer table parses to a Firmware
// with an empty table; a table or metadata that is present but malformed
// is an error naming the offset at fault.
func ParseFirmware(b []byte) (*Firmware, error) {
	if len(b) == 0 || len(b)%4096 != 0 {
		return nil, fmt.Errorf("%d bytes: a firmware image is a non-empty multiple of 4096 bytes", len(b))
	}
	if len(b) > maxFirmware {
		return nil, fmt.Errorf("%d bytes: more than %d", len(b), maxFirmware)
	}
	fw := &Firmware{Data: b, Table: map[[16]byte][]byte{}}
	if err := fw.parseTable(); err != nil {
		return nil, err
	}
	if err := fw.parseSEV(); err != nil {
		return nil, err
	}
	if err := fw.parseTDVF(); err != nil {
		return nil, err
	}
	return fw, nil
}

// parseTable walks the footer table. Its last entry header sits 32 bytes
// before the image's end and carries the footer GUID with the size of the
// whole table; every entry is its data followed by {u16 size, GUID}, and
// the entries are read from the end towards the start.
func (fw *Firmware) parseTable() error {
	b := fw.Data
	foot := len(b) - 32 - footerEntryHeader
	if foot < 0 {
		return nil
	}
	if [16]byte(b[foot+2:foot+18]) != guidFooterTable {
		return nil
	}
	size := int(binary.LittleEndian.Uint16(b[foot:]))
	if size < footerEntryHeader || size-footerEntryHeader > foot {
		return fmt.Errorf("footer table at offset %#x: size %d does not fit the image", foot, size)
	}
	start := foot - (size - footerEntryHeader)
	table := b[start:foot]
	for len(table) > 0 {
		if len(table) < footerEntryHeader {
			return fmt.Errorf("footer table at offset %#x: %d stray bytes before its first entry", start, len(table))
		}
		h := table[len(table)-footerEntryHeader:]
		esize := int(binary.LittleEndian.Uint16(h))
		guid := [16]byte(h[2:18])
		if esize < footerEntryHeader || esize > len(table) {
			return fmt.Errorf("footer table entry %s at offset %#x: size %d is outside %d..%d", guidString(guid), start+len(table)-footerEntryHeader, esize, footerEntryHeader, len(table))
		}
		if _, dup := fw.Table[guid]; dup {
			return fmt.Errorf("footer table: entry %s appears twice", guidString(guid))
		}
		fw.Table[guid] = table[len(table)-esize : len(table)-footerEntryHeader]
		table = table[:len(table)-esize]
	}
	return nil
}

// tableU32 returns the first little-endian u32 of a table entry.
func (fw *Firmware) tableU32(guid [16]byte, what string) (uint32, bool, error) {
	d, ok := fw.Table[guid]
	if !ok {
		return 0, false, nil
	}
	if len(d) < 4 {
		return 0, true, fmt.Errorf("footer table entry %s (%s): %d bytes, want at least 4", guidString(guid), what, len(d))
	}
	return binary.LittleEndian.Uint32(d), true, nil
}

// metadataAt returns the metadata block whose u32 offset (from the image's
// end) the table entry guid holds, after checking its signature and
// version: the header is {signature, u32 length, u32 version, u32 count}.
func (fw *Firmware) metadataAt(guid [16]byte, sig, what string, itemSize int) ([]byte, int, error) {
	off, ok, err := fw.tableU32(guid, what)
	if err != nil || !ok {
		return nil, 0, err
	}
	n := len(fw.Data)
	if off < 16 || int64(off) > int64(n) {
		return nil, 0, fmt.Errorf("%s: offset %#x from the end is outside the %d-byte image", what, off, n)
	}
	start := n - int(off)
	h := fw.Data[start:]
	if string(h[:4]) != sig {
		return nil, 0, fmt.Errorf("%s at offset %#x: signature %q, want %q", what, start, h[:4], sig)
	}
	length := binary.LittleEndian.Uint32(h[4:])
	version := binary.LittleEndian.Uint32(h[8:])
	count := binary.LittleEndian.Uint32(h[12:])
	if version != 1 {
		return nil, 0, fmt.Errorf("%s at offset %#x: version %d, want 1", what, start, version)
	}
	if int64(length) > int64(len(h)) || length < 16 {
		return nil, 0, fmt.Errorf("%s at offset %#x: length %d does not fit the image", what, start, length)
	}
	if int64(count)*int64(itemSize) > int64(length)-16 {
		return nil, 0, fmt.Errorf("%s at offset %#x: %d items do not fit its %d bytes", what, start, count, length)
	}
	return h[16:length], int(count), nil
}

func (fw *Firmware) parseSEV() error {
	items, count, err := fw.metadataAt(guidSEVMetadata, "ASEV", "SEV metadata", 12)
	if err != nil || items == nil {
		return err
	}
	fw.SEV = make([]SEVSection, 0, count)
	for i := 0; i < count; i++ {
		d := items[i*12:]
		s := SEVSection{GPA: binary.LittleEndian.Uint32(d), Size: binary.LittleEndian.Uint32(d[4:]), Type: binary.LittleEndian.Uint32(d[8:])}
		switch s.Type {
		case SectionSNPSecMem, SectionSNPSecrets, SectionCPUID, SectionSVSMCAA, SectionSNPKernelHashes:
		default:
			return fmt.Errorf("SEV metadata section %d: unknown type %#x", i, s.Type)
		}
		if s.GPA%4096 != 0 || s.Size%4096 != 0 || s.Size == 0 || uint64(s.GPA)+uint64(s.Size) > 1<<32 {
			return fmt.Errorf("SEV metadata section %d (type %#x): gpa %#x size %#x is not a page-aligned range below 4 GiB", i, s.Type, s.GPA, s.Size)
		}
		fw.SEV = append(fw.SEV, s)
	}
	return nil
}

func (fw *Firmware) parseTDVF() error {
	items, count, err := fw.metadataAt(guidTDXMetadata, "TDVF", "TDX metadata", 32)
	if err != nil || items == nil {
		return err
	}
	fw.TDVF = make([]TDVFSection, 0, count)
	var total uint64
	for i := 0; i < count; i++ {
		d := items[i*32:]
		s := TDVFSection{
			DataOffset: binary.LittleEndian.Uint32(d), RawSize: binary.LittleEndian.Uint32(d[4:]),
			MemAddr: binary.LittleEndian.Uint64(d[8:]), MemSize: binary.LittleEndian.Uint64(d[16:]),
			Type: binary.LittleEndian.Uint32(d[24:]), Attributes: binary.LittleEndian.Uint32(d[28:]),
		}
		if s.Type > TDVFTempMem {
			return fmt.Errorf("TDX metadata section %d: unknown type %d", i, s.Type)
		}
		if s.MemAddr%4096 != 0 || s.MemSize%4096 != 0 || s.MemSize > 1<<32 || s.MemAddr > 1<<52 {
			return fmt.Errorf("TDX metadata section %d: memory %#x+%#x is not a page-aligned range", i, s.MemAddr, s.MemSize)
		}
		if s.Attributes&TDVFAttrMRExtend != 0 && uint64(s.RawSize) > s.MemSize {
			return fmt.Errorf("TDX metadata section %d: %d data bytes do not fit its %d bytes of memory", i, s.RawSize, s.MemSize)
		}
		total += s.MemSize
		if total > 1<<32 {
			return fmt.Errorf("TDX metadata section %d: the sections cover more than 4 GiB", i)
		}
		fw.TDVF = append(fw.TDVF, s)
	}
	return nil
}

// GPA is where the image is mapped: it ends at 4 GiB.
func (fw *Firmware) GPA() uint64 { return 1<<32 - uint64(len(fw.Data)) }

// ResetEIP is the SEV-ES reset block's AP entry point (0 when absent).
func (fw *Firmware) ResetEIP() (uint32, error) {
	v, _, err := fw.tableU32(guidSEVESReset, "SEV-ES reset block")
	return v, err
}

// HashTableGPA is where QEMU puts the kernel hashes table (0 when the
// image has no place for it).
func (fw *Firmware) HashTableGPA() (uint32, error) {
	v, _, err := fw.tableU32(guidSEVHashTable, "SEV hash table")
	return v, err
}

// KernelHashes reports whether the firmware has a SNP_KERNEL_HASHES
// section, which measured direct kernel boot needs.
func (fw *Firmware) KernelHashes() bool { return fw.hasSection(SectionSNPKernelHashes) }

// hasSection reports whether the SEV metadata has a section of type t.
func (fw *Firmware) hasSection(t uint32) bool {
	for _, s := range fw.SEV {
		if s.Type == t {
			return true
		}
	}
	return false
}

// mustGUID converts the text form of a GUID to its stored bytes: the
// first three groups little-endian, the last two as written.
func mustGUID(s string) [16]byte {
	var g [16]byte
	hexes := make([]byte, 0, 32)
	for i := 0; i < len(s); i++ {
		if s[i] != '-' {
			hexes = append(hexes, s[i])
		}
	}
	if len(hexes) != 32 {
		panic("bad GUID " + s)
	}
	var raw [16]byte
	for i := range raw {
		var v byte
		for _, c := range hexes[2*i : 2*i+2] {
			switch {
			case c >= '0' && c <= '9':
				v = v<<4 | (c - '0')
			case c >= 'a' && c <= 'f':
				v = v<<4 | (c - 'a' + 10)
			default:
				panic("bad GUID " + s)
			}
		}
		raw[i] = v
	}
	g[0], g[1], g[2], g[3] = raw[3], raw[2], raw[1], raw[0]
	g[4], g[5] = raw[5], raw[4]
	g[6], g[7] = raw[7], raw[6]
	copy(g[8:], raw[8:])
	return g
}

// guidString is the text form of stored GUID bytes.
func guidString(g [16]byte) string {
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", binary.LittleEndian.Uint32(g[:]), binary.LittleEndian.Uint16(g[4:]),
		binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

// ErrNoKernelHashes: a kernel is to be measured, but the firmware has no
// SNP_KERNEL_HASHES section.
var ErrNoKernelHashes = errors.New("the firmware's SEV metadata has no SNP_KERNEL_HASHES section, so it cannot measure a kernel given with --kernel (an OvmfPkg/AmdSev build has one)")
