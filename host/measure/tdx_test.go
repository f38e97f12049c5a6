package measure

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// synthFirmware builds a firmware image of size bytes whose footer table
// holds the given entries and, when sev or tdvf are non-nil, the SEV and
// TDX metadata, laid out as docs/measurement.md describes. The metadata
// live at the start of the last page; the rest of the image is filled with
// a counter so that measured bytes differ page to page.
func synthFirmware(size int, eip uint32, sev []SEVSection, tdvf []TDVFSection) []byte {
	img := make([]byte, size)
	for i := range img {
		img[i] = byte(i / 256 * 7)
	}
	le := binary.LittleEndian
	meta := size - 4096
	var entries [][]byte
	entry := func(guid [16]byte, data []byte) {
		e := append([]byte{}, data...)
		e = le.AppendUint16(e, uint16(len(data)+18))
		entries = append(entries, append(e, guid[:]...))
	}
	if eip != 0 {
		entry(guidSEVESReset, le.AppendUint32(nil, eip))
	}
	if sev != nil {
		hdr := le.AppendUint32([]byte("ASEV"), uint32(16+12*len(sev)))
		hdr = le.AppendUint32(le.AppendUint32(hdr, 1), uint32(len(sev)))
		for _, s := range sev {
			hdr = le.AppendUint32(le.AppendUint32(le.AppendUint32(hdr, s.GPA), s.Size), s.Type)
		}
		copy(img[meta:], hdr)
		entry(guidSEVMetadata, le.AppendUint32(nil, uint32(size-meta)))
		meta += len(hdr)
	}
	if tdvf != nil {
		hdr := le.AppendUint32([]byte("TDVF"), uint32(16+32*len(tdvf)))
		hdr = le.AppendUint32(le.AppendUint32(hdr, 1), uint32(len(tdvf)))
		for _, s := range tdvf {
			hdr = le.AppendUint32(le.AppendUint32(hdr, s.DataOffset), s.RawSize)
			hdr = le.AppendUint64(le.AppendUint64(hdr, s.MemAddr), s.MemSize)
			hdr = le.AppendUint32(le.AppendUint32(hdr, s.Type), s.Attributes)
		}
		copy(img[meta:], hdr)
		entry(guidTDXMetadata, le.AppendUint32(nil, uint32(size-meta)))
	}
	var table []byte
	for _, e := range entries {
		table = append(table, e...)
	}
	end := size - 32
	footer := le.AppendUint16(nil, uint16(len(table)+18))
	footer = append(footer, guidFooterTable[:]...)
	copy(img[end-18:], footer)
	copy(img[end-18-len(table):], table)
	return img
}

func synthTDVF() []byte {
	return synthFirmware(5*4096, 0, nil, []TDVFSection{
		{DataOffset: 0, RawSize: 0x2000, MemAddr: 0xfffe0000, MemSize: 0x2000, Type: TDVFBFV, Attributes: TDVFAttrMRExtend},
		{DataOffset: 0x2000, RawSize: 0x1000, MemAddr: 0x800000, MemSize: 0x1000, Type: TDVFCFV, Attributes: TDVFAttrMRExtend},
		{MemAddr: 0x810000, MemSize: 0x3000, Type: TDVFTempMem},
		{MemAddr: 0x900000, MemSize: 0x2000, Type: TDVFTDHOB, Attributes: TDVFAttrPageAug},
	})
}

// TestMRTDIndependent checks MRTD against testdata/mrtd.py, a separate
// Python implementation, on Debian's OVMF and on a synthetic TDVF with
// extended, added-only and PAGE_AUG sections, in both page orders. The
// Debian values are also pinned, as mrtd.py printed them, so that the test
// still checks something where python3 is missing.
func TestMRTDIndependent(t *testing.T) {
	dir := t.TempDir()
	synth := filepath.Join(dir, "tdvf.fd")
	if err := os.WriteFile(synth, synthTDVF(), 0o644); err != nil {
		t.Fatal(err)
	}
	pinned := map[string]string{
		TDXSinglePass: "4c7206f0f483c524f12c366c711e9049030a8d47c471ee5aa9c4999a08de4057fb887fed0744d5631a212967fb231c47",
		TDXTwoPass:    "acccbcc870a381adab0d3919d90a7f268ac3b0364771f202ed4bb4e892d045b33db3b32e6924cba830a724eed443f7e1",
	}
	py, pyErr := exec.LookPath("python3")
	for _, path := range []string{synth, debianOVMF} {
		if path == debianOVMF {
			needDebianOVMF(t)
		}
		fw, err := ReadFirmware(path)
		if err != nil {
			t.Fatal(err)
		}
		fromPy := map[string]string{}
		if pyErr == nil {
			out, err := exec.Command(py, "testdata/mrtd.py", path).CombinedOutput()
			if err != nil {
				t.Fatalf("mrtd.py: %v\n%s", err, out)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if order, v, ok := strings.Cut(line, " "); ok {
					fromPy[order] = v
				}
			}
		}
		for _, order := range []string{TDXSinglePass, TDXTwoPass} {
			got, err := MRTD(fw, order)
			if err != nil {
				t.Fatal(err)
			}
			h := hex.EncodeToString(got[:])
			if path == debianOVMF && h != pinned[order] {
				t.Errorf("%s %s: MRTD %s, want %s", path, order, h, pinned[order])
			}
			if pyErr != nil {
				t.Logf("python3 not found: %s %s checked against the pinned value only", path, order)
				continue
			}
			if want := fromPy[order]; h != want {
				t.Errorf("%s %s: MRTD %s, mrtd.py %s", path, order, h, want)
			}
		}
	}
}

func TestMRTDChangesAndErrors(t *testing.T) {
	img := synthTDVF()
	fw, err := ParseFirmware(img)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := MRTD(fw, "")
	b, _ := MRTD(fw, TDXTwoPass)
	if a == b {
		t.Fatal("page orders give the same MRTD")
	}
	// A byte of a measured section changes MRTD; one of the temp memory
	// range (added, not extended) does not exist in the image.
	img2 := bytes.Clone(img)
	img2[0x2100] ^= 1
	fw2, _ := ParseFirmware(img2)
	if c, _ := MRTD(fw2, ""); c == a {
		t.Fatal("a measured byte did not change MRTD")
	}
	if _, err := MRTD(fw, "three-pass"); err == nil || !strings.Contains(err.Error(), "page order") {
		t.Fatalf("bad order: %v", err)
	}
	sev, _ := ReadFirmware(amdSev)
	if _, err := MRTD(sev, ""); err == nil || !strings.Contains(err.Error(), "outside") {
		t.Fatalf("suffix fixture: %v", err)
	}
	plain, _ := ParseFirmware(make([]byte, 8192))
	if _, err := MRTD(plain, ""); err == nil || !strings.Contains(err.Error(), "no TDX metadata") {
		t.Fatalf("no metadata: %v", err)
	}
}

// TestSynthSNP checks the synthetic builder against the parser, so that
// the fuzz seeds and the libkrun tests build what the parser reads.
func TestSynthSNP(t *testing.T) {
	sev := []SEVSection{{0x800000, 0x1000, SectionSNPSecMem}, {0x801000, 0x1000, SectionSNPSecrets}, {0x802000, 0x1000, SectionCPUID}}
	fw, err := ParseFirmware(synthFirmware(4*4096, 0x80b004, sev, nil))
	if err != nil {
		t.Fatal(err)
	}
	if eip, _ := fw.ResetEIP(); eip != 0x80b004 || len(fw.SEV) != 3 || fw.SEV[2] != sev[2] || fw.TDVF != nil {
		t.Fatalf("parsed %+v", fw)
	}
}
