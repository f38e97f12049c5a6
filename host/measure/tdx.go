package measure

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
)

// TDX page orders: how the VMM interleaves TDH.MEM.PAGE.ADD and
// TDH.MR.EXTEND within a TDVF section (docs/measurement.md).
const (
	// TDXSinglePass adds a page and extends its 16 chunks before the next
	// page: upstream KVM (Linux 6.16+) with QEMU 10.1+.
	TDXSinglePass = "single-pass"
	// TDXTwoPass adds every page of a section, then extends them: the
	// earlier out-of-tree KVM/QEMU TDX patch sets.
	TDXTwoPass = "two-pass"
)

// MRTD returns the TD's build-time measurement for a TDVF image: one
// running SHA-384 over, for each TDVF section and each of its pages, a
// 128-byte "MEM.PAGE.ADD" record with the page's GPA (unless the section
// is PAGE_AUG, added after boot) and, for MR_EXTEND sections, sixteen
// 128-byte "MR.EXTEND" records each followed by the 256 bytes of the
// image the chunk is loaded from. Memory size, vCPUs and the kernel do not
// enter MRTD.
func MRTD(fw *Firmware, order string) ([48]byte, error) {
	var out [48]byte
	if fw.TDVF == nil {
		return out, fmt.Errorf("measure: the firmware has no TDX metadata: it is not a TDVF image")
	}
	if order == "" {
		order = TDXSinglePass
	}
	if order != TDXSinglePass && order != TDXTwoPass {
		return out, fmt.Errorf("measure: TDX page order %q: want %s or %s", order, TDXSinglePass, TDXTwoPass)
	}
	for i, s := range fw.TDVF {
		if s.Attributes&TDVFAttrMRExtend != 0 && uint64(s.DataOffset)+s.MemSize > uint64(len(fw.Data)) {
			return out, fmt.Errorf("measure: TDX metadata section %d: its %#x measured bytes at offset %#x are outside the %d-byte image", i, s.MemSize, s.DataOffset, len(fw.Data))
		}
	}
	h := sha512.New384()
	var rec [128]byte
	add := func(s TDVFSection, page uint64) {
		if s.Attributes&TDVFAttrPageAug != 0 {
			return
		}
		clear(rec[:])
		copy(rec[:], "MEM.PAGE.ADD")
		binary.LittleEndian.PutUint64(rec[16:], s.MemAddr+page*4096)
		h.Write(rec[:])
	}
	extend := func(s TDVFSection, page uint64) {
		if s.Attributes&TDVFAttrMRExtend == 0 {
			return
		}
		for c := uint64(0); c < 4096; c += 256 {
			clear(rec[:])
			copy(rec[:], "MR.EXTEND")
			binary.LittleEndian.PutUint64(rec[16:], s.MemAddr+page*4096+c)
			h.Write(rec[:])
			off := uint64(s.DataOffset) + page*4096 + c
			h.Write(fw.Data[off : off+256])
		}
	}
	for _, s := range fw.TDVF {
		pages := s.MemSize / 4096
		if order == TDXTwoPass {
			for p := uint64(0); p < pages; p++ {
				add(s, p)
			}
			for p := uint64(0); p < pages; p++ {
				extend(s, p)
			}
			continue
		}
		for p := uint64(0); p < pages; p++ {
			add(s, p)
			extend(s, p)
		}
	}
	h.Sum(out[:0])
	return out, nil
}
