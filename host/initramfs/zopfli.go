package initramfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// zopfliIterations is the zopfli program's --i: more iterations search
// longer for a smaller encoding. On the init (docs/libkrunfw.md "Initrd
// size"), 5 iterations instead of 1 saved 0.2% for several times the time.
// The number is fixed so the output depends on the input alone (and the
// zopfli version).
const zopfliIterations = 1

// zopfliWriter collects the archive in a temporary file (the zopfli program
// reads files, not standard input) and compresses it into w on Close.
type zopfliWriter struct {
	bin string
	tmp *os.File
	w   io.Writer
}

func newZopfli(w io.Writer) (io.WriteCloser, error) {
	bin, err := exec.LookPath("zopfli")
	if err != nil {
		return nil, errors.New("compression zopfli needs the zopfli program on PATH (Debian package zopfli; make deps installs it)")
	}
	tmp, err := os.CreateTemp("", "sealroot-initrd-*.cpio")
	if err != nil {
		return nil, fmt.Errorf("zopfli: %w", err)
	}
	return &zopfliWriter{bin: bin, tmp: tmp, w: w}, nil
}

func (z *zopfliWriter) Write(p []byte) (int, error) { return z.tmp.Write(p) }

func (z *zopfliWriter) Close() error {
	defer os.Remove(z.tmp.Name())
	if err := z.tmp.Close(); err != nil {
		return fmt.Errorf("zopfli: %w", err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(z.bin, fmt.Sprintf("--i%d", zopfliIterations), "--gzip", "-c", z.tmp.Name())
	cmd.Stdout, cmd.Stderr = z.w, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("zopfli: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
