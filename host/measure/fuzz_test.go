package measure

import (
	"testing"
)

// FuzzParseFirmware feeds the footer table, SEV metadata and TDVF parsers
// hostile images: they must return an error or a Firmware whose sections
// the SNP and MRTD code can use without panicking.
func FuzzParseFirmware(f *testing.F) {
	for _, p := range []string{amdSev, ovmfX64} {
		fw, err := ReadFirmware(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fw.Data)
	}
	f.Add(synthTDVF())
	f.Add(synthFirmware(4*4096, 0x80b004, []SEVSection{{0x800000, 0x1000, SectionSNPSecMem}, {0x801000, 0x1000, SectionSNPKernelHashes}}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Everything is found from the end: pad at the front to a page
		// multiple so that most mutations reach the parsers.
		b = append(make([]byte, (4096-len(b)%4096)%4096), b...)
		fw, err := ParseFirmware(b)
		if err != nil {
			return
		}
		for _, s := range fw.SEV {
			if s.GPA%4096 != 0 || s.Size == 0 || uint64(s.GPA)+uint64(s.Size) > 1<<32 {
				t.Fatalf("accepted section %+v", s)
			}
		}
		fw.ResetEIP()
		fw.HashTableGPA()
		var total uint64
		for _, s := range fw.TDVF {
			total += s.MemSize
		}
		if total <= 16<<20 {
			MRTD(fw, TDXSinglePass)
			MRTD(fw, TDXTwoPass)
		}
	})
}
