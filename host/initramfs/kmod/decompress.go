package kmod

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Decompress returns the module image inside raw, a module file whose name
// ends in suffix (".ko", ".ko.xz", ".ko.zst" or ".ko.gz"). A plain ".ko" is
// returned as is. The output is bounded to 256 MiB.
func Decompress(suffix string, raw []byte) ([]byte, error) {
	var r io.Reader
	switch suffix {
	case ".ko":
		return raw, nil
	case ".ko.xz":
		xr, err := xz.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		r = xr
	case ".ko.zst":
		zr, err := zstd.NewReader(bytes.NewReader(raw), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxModuleImage))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		r = zr
	case ".ko.gz":
		gr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		r = gr
	default:
		return nil, fmt.Errorf("unknown module file suffix %q", suffix)
	}
	out, err := io.ReadAll(io.LimitReader(r, maxModuleImage+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxModuleImage {
		return nil, fmt.Errorf("decompressed module exceeds %d bytes", maxModuleImage)
	}
	return out, nil
}
