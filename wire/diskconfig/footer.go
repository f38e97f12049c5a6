package diskconfig

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// The KRUN footer: the last 12 bytes of a confidential workload disk are the
// ASCII magic "KRUN" and the length of the config JSON that immediately
// precedes them, as a little-endian uint64 (docs/interop.md §1).
const (
	FooterMagic = "KRUN"
	FooterSize  = 12
	// MaxFooterJSON is the exclusive upper bound on the JSON length.
	MaxFooterJSON = 1 << 20
	// DiskAlign is the size multiple of a disk image with footer.
	DiskAlign = 4096
)

// ErrNoFooter means the device does not end in a KRUN footer.
var ErrNoFooter = errors.New("no KRUN footer")

// ReadFooter returns the config JSON stored in the KRUN footer of a device or
// image of the given size. It checks the magic and the length bounds before
// reading the JSON, so a hostile length never causes a large allocation.
func ReadFooter(r io.ReaderAt, size int64) ([]byte, error) {
	if size < FooterSize {
		return nil, fmt.Errorf("%w: device is %d bytes, smaller than a footer", ErrNoFooter, size)
	}
	var f [FooterSize]byte
	if _, err := r.ReadAt(f[:], size-FooterSize); err != nil {
		return nil, fmt.Errorf("reading footer at offset %d: %w", size-FooterSize, err)
	}
	if string(f[:4]) != FooterMagic {
		return nil, fmt.Errorf("%w: last 12 bytes start with %q, want %q", ErrNoFooter, f[:4], FooterMagic)
	}
	n := binary.LittleEndian.Uint64(f[4:])
	if n == 0 {
		return nil, fmt.Errorf("footer config length is 0")
	}
	if n >= MaxFooterJSON {
		return nil, fmt.Errorf("footer config length %d is not below the 1 MiB limit", n)
	}
	if int64(n) > size-FooterSize {
		return nil, fmt.Errorf("footer config length %d exceeds the %d bytes before the footer", n, size-FooterSize)
	}
	buf := make([]byte, n)
	if _, err := r.ReadAt(buf, size-FooterSize-int64(n)); err != nil {
		return nil, fmt.Errorf("reading %d bytes of footer config: %w", n, err)
	}
	return buf, nil
}

// AppendFooter writes, at offset end (the end of the payload), zero padding,
// the config JSON and the footer so that the total size is a multiple of
// DiskAlign. It returns the final size. w must accept writes past its
// current end (an *os.File does).
func AppendFooter(w io.WriterAt, end int64, config []byte) (int64, error) {
	if len(config) == 0 || len(config) >= MaxFooterJSON {
		return 0, fmt.Errorf("config JSON of %d bytes: want 1 byte to below 1 MiB", len(config))
	}
	tail := int64(len(config) + FooterSize)
	total := end + tail
	if rem := total % DiskAlign; rem != 0 {
		total += DiskAlign - rem
	}
	pad := total - tail - end
	var b bytes.Buffer
	b.Grow(int(pad + tail))
	b.Write(make([]byte, pad))
	b.Write(config)
	b.WriteString(FooterMagic)
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(config)))
	b.Write(n[:])
	if _, err := w.WriteAt(b.Bytes(), end); err != nil {
		return 0, fmt.Errorf("writing footer at offset %d: %w", end, err)
	}
	return total, nil
}

// ReadFooterFile returns the config JSON in the KRUN footer of the disk
// image or block device at path; errors name the path.
func ReadFooterFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("finding the size of %s: %w", path, err)
	}
	raw, err := ReadFooter(f, size)
	if err != nil {
		return nil, fmt.Errorf("footer of %s: %w", path, err)
	}
	return raw, nil
}
