package measure

import (
	"os"
	"testing"
)

// FuzzAuthenticode feeds the PE/COFF parser of AuthenticodeSHA384 hostile
// images: it must return a digest or an error, never panic or read out of
// bounds, and give the same answer twice.
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
	})
}
