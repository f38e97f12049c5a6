package measure

import (
	"bytes"
	"crypto/sha512"
	"debug/pe"
	"encoding/binary"
	"os"
	"sort"
	"testing"
)

// authenticodeDebugPE is a second Authenticode digest for the tests, from
// the header values the standard library's debug/pe parses: the fuzz
// target compares it with AuthenticodeSHA384 wherever both accept an
// image.
func authenticodeDebugPE(b []byte) ([48]byte, bool) {
	var out [48]byte
	f, err := pe.NewFile(bytes.NewReader(b))
	if err != nil {
		return out, false
	}
	var soh, nrva, certSize uint32
	var ddOff uint64
	lfanew := uint64(binary.LittleEndian.Uint32(b[0x3c:]))
	opt := lfanew + 24
	switch h := f.OptionalHeader.(type) {
	case *pe.OptionalHeader32:
		soh, nrva, ddOff = h.SizeOfHeaders, h.NumberOfRvaAndSizes, opt+96
		if nrva > 4 {
			certSize = h.DataDirectory[4].Size
		}
	case *pe.OptionalHeader64:
		soh, nrva, ddOff = h.SizeOfHeaders, h.NumberOfRvaAndSizes, opt+112
		if nrva > 4 {
			certSize = h.DataDirectory[4].Size
		}
	default:
		return out, false
	}
	var parts [][2]uint64 // [from, to) ranges hashed, in order
	if nrva > 4 {
		parts = append(parts, [2]uint64{0, opt + 64}, [2]uint64{opt + 68, ddOff + 32}, [2]uint64{ddOff + 40, uint64(soh)})
	} else {
		parts = append(parts, [2]uint64{0, opt + 64}, [2]uint64{opt + 68, uint64(soh)})
	}
	secs := append([]*pe.Section(nil), f.Sections...)
	sort.SliceStable(secs, func(i, j int) bool { return secs[i].Offset < secs[j].Offset })
	done := uint64(soh)
	for _, s := range secs {
		if s.Size > 0 {
			parts = append(parts, [2]uint64{uint64(s.Offset), uint64(s.Offset) + uint64(s.Size)})
			done += uint64(s.Size)
		}
	}
	if n := uint64(len(b)); n > done+uint64(certSize) {
		parts = append(parts, [2]uint64{done, n - uint64(certSize)})
	}
	h := sha512.New384()
	for _, p := range parts {
		if p[0] > p[1] || p[1] > uint64(len(b)) {
			return out, false
		}
		h.Write(b[p[0]:p[1]])
	}
	h.Sum(out[:0])
	return out, true
}

// FuzzAuthenticode feeds the PE/COFF parser of AuthenticodeSHA384 hostile
// images: it must return a digest or an error, never panic or read out of
// bounds, give the same answer twice, and agree with authenticodeDebugPE
// where both accept the image.
func FuzzAuthenticode(f *testing.F) {
	f.Add(synthPE(false, 16, 0, 0))
	f.Add(synthPE(true, 16, 13, 0x48))
	f.Add(synthPE(true, 4, 7, 0))
	if b, err := os.ReadFile(debianKernel); err == nil && len(b) > 8192 {
		f.Add(b[:8192]) // the real headers; its sections then run past the end
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d1, err1 := AuthenticodeSHA384(b)
		d2, err2 := AuthenticodeSHA384(b)
		if (err1 == nil) != (err2 == nil) || d1 != d2 {
			t.Fatalf("two runs differ: %x %v / %x %v", d1, err1, d2, err2)
		}
		if err1 != nil {
			return
		}
		if d3, ok := authenticodeDebugPE(b); ok && d3 != d1 {
			t.Fatalf("AuthenticodeSHA384 %x, from debug/pe %x", d1, d3)
		}
	})
}

// TestAuthenticodeDebugPE checks the digest against authenticodeDebugPE
// on the synthetic images and the Debian kernel.
func TestAuthenticodeDebugPE(t *testing.T) {
	images := [][]byte{synthPE(false, 16, 0, 0), synthPE(true, 16, 13, 0x48), synthPE(true, 4, 7, 0), synthPE(false, 16, 24, 0x48)}
	if b, err := os.ReadFile(needDebianKernel(t)); err == nil {
		images = append(images, b)
	}
	for i, b := range images {
		d, err := AuthenticodeSHA384(b)
		if err != nil {
			t.Fatalf("image %d: %v", i, err)
		}
		if d2, ok := authenticodeDebugPE(b); !ok || d2 != d {
			t.Errorf("image %d: %x, from debug/pe %x (%v)", i, d, d2, ok)
		}
	}
}
