package diskconfig

import (
	"bytes"
	"errors"
	"testing"
)

// memFile is an io.ReaderAt/WriterAt over a growing buffer.
type memFile struct{ b []byte }

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if need := int(off) + len(p); need > len(m.b) {
		m.b = append(m.b, make([]byte, need-len(m.b))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	return bytes.NewReader(m.b).ReadAt(p, off)
}

// FuzzReadFooter: any device tail either yields a config that really sits
// before a valid footer, or a clean error; AppendFooter round-trips.
func FuzzReadFooter(f *testing.F) {
	f.Add([]byte(`{"tee":"snp"}KRUN`+"\x0d\x00\x00\x00\x00\x00\x00\x00"), []byte(`{"tee":"none"}`), int64(5000))
	f.Add([]byte("KRUN\xff\xff\xff\xff\xff\xff\xff\xff"), []byte("x"), int64(0))
	f.Add([]byte("KRUN\x00\x00\x00\x00\x00\x00\x00\x00"), []byte("{}"), int64(4096))
	f.Add([]byte("short"), []byte("{}"), int64(1))
	f.Fuzz(func(t *testing.T, dev, cfg []byte, end int64) {
		got, err := ReadFooter(bytes.NewReader(dev), int64(len(dev)))
		if err == nil {
			n := len(got)
			if n == 0 || n >= MaxFooterJSON || n+FooterSize > len(dev) || !bytes.Equal(got, dev[len(dev)-FooterSize-n:len(dev)-FooterSize]) {
				t.Fatalf("ReadFooter returned %d bytes that are not the footer's config", n)
			}
		} else if len(dev) >= FooterSize && string(dev[len(dev)-FooterSize:len(dev)-8]) != FooterMagic && !errors.Is(err, ErrNoFooter) {
			t.Fatalf("no magic but error %v is not ErrNoFooter", err)
		}

		if end < 0 || end > 1<<20 || len(cfg) == 0 || len(cfg) >= MaxFooterJSON {
			return
		}
		m := &memFile{b: make([]byte, end)}
		total, err := AppendFooter(m, end, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if total%DiskAlign != 0 || total < end+int64(len(cfg))+FooterSize || int64(len(m.b)) != total {
			t.Fatalf("AppendFooter(end %d, %d bytes) = total %d, file %d", end, len(cfg), total, len(m.b))
		}
		back, err := ReadFooter(m, total)
		if err != nil || !bytes.Equal(back, cfg) {
			t.Fatalf("round trip: %q, %v", back, err)
		}
	})
}
