package workload

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// openRegular opens path for reading only if it is a regular file: the
// open never blocks (a FIFO planted in the image would hang PID 1) and a
// device (a symlink to /dev/zero) is refused.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	return f, nil
}

// ReadConfigFile reads the workload config at path, refusing anything but a
// regular file of at most MaxConfigSize bytes.
func ReadConfigFile(path string) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > MaxConfigSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, MaxConfigSize)
	}
	return b, nil
}
