package measure

import (
	"crypto/sha512"
	"encoding/binary"
	"fmt"
	"hash"
	"sort"
)

// PE/COFF layout used by the Authenticode image hash (docs/measurement.md).
const (
	peMagic32       = 0x10b // PE32 optional header
	peMagic64       = 0x20b // PE32+ optional header
	peSectionSize   = 40
	peSecurityIndex = 4 // the certificate table's data directory entry
)

// AuthenticodeSHA384 returns the Authenticode SHA-384 digest of a PE/COFF
// image (for a Linux kernel, its EFI stub view of the bzImage), as the
// firmware computes it when it measures an EFI application it loads: the
// headers without the CheckSum field and the certificate table's data
// directory entry, then every section with raw data in file-offset order,
// then whatever follows the last section except the certificate table.
//
// img is untrusted: every offset and size is checked against it, and an
// error names the field that is out of range.
func AuthenticodeSHA384(img []byte) ([48]byte, error) {
	var out [48]byte
	h := sha512.New384()
	if err := authenticode(h, img); err != nil {
		return out, err
	}
	h.Sum(out[:0])
	return out, nil
}

// peSpan is a range of the image, [off, off+size).
type peSpan struct{ off, size uint64 }

func authenticode(h hash.Hash, img []byte) error {
	n := uint64(len(img))
	u16 := func(off uint64) uint16 { return binary.LittleEndian.Uint16(img[off:]) }
	u32 := func(off uint64) uint32 { return binary.LittleEndian.Uint32(img[off:]) }
	if n < 0x40 || img[0] != 'M' || img[1] != 'Z' {
		return fmt.Errorf("measure: PE image: no DOS header (\"MZ\" and 64 bytes): not an EFI image")
	}
	pe := uint64(u32(0x3c))
	if pe+24 > n {
		return fmt.Errorf("measure: PE image: e_lfanew %#x points past the %d-byte image", pe, n)
	}
	if string(img[pe:pe+4]) != "PE\x00\x00" {
		return fmt.Errorf("measure: PE image: no \"PE\\0\\0\" signature at e_lfanew %#x: not an EFI image", pe)
	}
	coff := pe + 4
	nsect := uint64(u16(coff + 2))
	optSize := uint64(u16(coff + 16))
	opt := coff + 20
	if opt+optSize > n {
		return fmt.Errorf("measure: PE image: the %d-byte optional header at %#x runs past the image", optSize, opt)
	}
	if optSize < 2 {
		return fmt.Errorf("measure: PE image: optional header of %d bytes: too short", optSize)
	}
	var ddOff, nrvaOff uint64
	switch m := u16(opt); m {
	case peMagic32:
		ddOff, nrvaOff = opt+96, opt+92
	case peMagic64:
		ddOff, nrvaOff = opt+112, opt+108
	default:
		return fmt.Errorf("measure: PE image: optional header magic %#x: want %#x (PE32) or %#x (PE32+)", m, peMagic32, peMagic64)
	}
	if ddOff > opt+optSize {
		return fmt.Errorf("measure: PE image: optional header of %d bytes ends before its data directories", optSize)
	}
	checksum := opt + 64
	sizeOfHeaders := uint64(u32(opt + 60))
	nrva := uint64(u32(nrvaOff))
	secTable := opt + optSize
	if secTable+nsect*peSectionSize > n {
		return fmt.Errorf("measure: PE image: %d section headers at %#x run past the %d-byte image", nsect, secTable, n)
	}
	if sizeOfHeaders > n || sizeOfHeaders < secTable+nsect*peSectionSize {
		return fmt.Errorf("measure: PE image: SizeOfHeaders %#x: want at least the end of the section table (%#x) and at most the image size (%#x)",
			sizeOfHeaders, secTable+nsect*peSectionSize, n)
	}

	// The headers, skipping CheckSum and, when there is one, the
	// certificate table's directory entry.
	var certSize uint64
	h.Write(img[:checksum])
	if nrva <= peSecurityIndex {
		h.Write(img[checksum+4 : sizeOfHeaders])
	} else {
		cert := ddOff + peSecurityIndex*8
		if cert+8 > opt+optSize {
			return fmt.Errorf("measure: PE image: NumberOfRvaAndSizes %d: the certificate table entry at %#x is outside the %d-byte optional header", nrva, cert, optSize)
		}
		certSize = uint64(u32(cert + 4))
		h.Write(img[checksum+4 : cert])
		h.Write(img[cert+8 : sizeOfHeaders])
	}

	// The sections with raw data, by file offset (a stable sort, as the
	// firmware's insertion sort keeps equal offsets in table order).
	var secs []peSpan
	for i := uint64(0); i < nsect; i++ {
		s := secTable + i*peSectionSize
		size, off := uint64(u32(s+16)), uint64(u32(s+20))
		if size == 0 {
			continue
		}
		if off+size > n {
			return fmt.Errorf("measure: PE image: section %d (%q): its %#x raw bytes at %#x run past the %d-byte image",
				i, sectionName(img[s:s+8]), size, off, n)
		}
		secs = append(secs, peSpan{off, size})
	}
	hashed := sizeOfHeaders
	for _, s := range secs {
		hashed += s.size
	}
	// Sections of a well-formed image do not overlap each other or the
	// headers; refusing those that do bounds the work to the image size.
	if hashed > n {
		return fmt.Errorf("measure: PE image: the headers (%#x bytes) and the raw data of %d sections (%#x bytes) exceed the %d-byte image: sections overlap",
			sizeOfHeaders, len(secs), hashed-sizeOfHeaders, n)
	}
	sort.SliceStable(secs, func(a, b int) bool { return secs[a].off < secs[b].off })
	for _, s := range secs {
		h.Write(img[s.off : s.off+s.size])
	}

	// Data after the sections, less the certificate table at the end.
	switch {
	case n > hashed+certSize:
		h.Write(img[hashed : n-certSize])
	case n > hashed && n < hashed+certSize:
		return fmt.Errorf("measure: PE image: a %#x-byte certificate table does not fit after the %#x hashed bytes of the %d-byte image", certSize, hashed, n)
	}
	return nil
}

// sectionName is a section header's NUL-padded name.
func sectionName(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
