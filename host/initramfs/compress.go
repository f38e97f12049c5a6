package initramfs

import (
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression names accepted in Options.Compression and --compress.
const (
	CompressGzip = "gzip"
	// CompressZopfli is gzip written by the zopfli program: the same
	// format and decoder as gzip, about 5% smaller, much slower.
	CompressZopfli = "zopfli"
	CompressXZ     = "xz"
	CompressZstd   = "zstd"
	CompressNone   = "none"
)

// Compressions lists the accepted compressions; the first is the default.
var Compressions = []string{CompressGzip, CompressZopfli, CompressXZ, CompressZstd, CompressNone}

// GzipFormat reports whether method writes the gzip format (RFC 1952),
// the only one libkrunfw's kernels decompress.
func GzipFormat(method string) bool { return method == CompressGzip || method == CompressZopfli }

// compressor returns a writer that compresses into w with the named method,
// deterministically: the same input always gives the same bytes.
//
//   - gzip: compress/gzip at best compression, with an empty header (no file
//     name, mtime 0, OS "unknown").
//   - zopfli: the gzip format, written by the zopfli program (Debian's
//     zopfli package; `make deps` installs it) with a fixed number of
//     iterations: an exhaustive deflate encoder that finds a smaller
//     encoding than compress/gzip. Its header is mtime 0, no name.
//   - xz: ulikunitz/xz with a CRC32 check, the only check the kernel's xz
//     decoder verifies (it has no CRC64), one LZMA2 block, 8 MiB dictionary.
//   - zstd: klauspost/compress at its best level, one encoder goroutine so
//     block boundaries never depend on scheduling, frame checksum on.
//   - none: the cpio as is.
func compressor(method string, w io.Writer) (io.WriteCloser, error) {
	switch method {
	case CompressNone:
		return nopCloser{w}, nil
	case CompressGzip:
		zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		// The zero Header already means no name, no comment, mtime 0;
		// compress/gzip writes OS byte 255.
		return zw, nil
	case CompressZopfli:
		return newZopfli(w)
	case CompressXZ:
		cfg := xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 8 << 20}
		xw, err := cfg.NewWriter(w)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		return xw, nil
	case CompressZstd:
		zw, err := zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedBestCompression),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(true),
		)
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zw, nil
	}
	return nil, fmt.Errorf("unknown compression %q (want one of gzip, zopfli, xz, zstd, none)", method)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
