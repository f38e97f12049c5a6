// Package vport finds and opens virtio-serial ports by name without udev.
//
// The kernel lists ports in /sys/class/virtio-ports/vport<N>p<M>/name and
// devtmpfs creates /dev/vport<N>p<M>; N changes with the device order, so a
// port is always found by its name. A guest write to a port blocks while no
// host is connected (poll reports POLLHUP), so Open waits, with a deadline,
// for the host side to connect, and Port writes never block forever.
package vport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotFound means no port with the name exists.
var ErrNotFound = errors.New("virtio-serial port not found")

// Paths of the sysfs class and device directory; variables for tests.
var (
	SysClass = "/sys/class/virtio-ports"
	DevDir   = "/dev"
)

// Find returns the device path of the port called name.
func Find(name string) (string, error) {
	ents, err := os.ReadDir(SysClass)
	if err != nil {
		return "", fmt.Errorf("%w: %s: %v", ErrNotFound, name, err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(SysClass, e.Name(), "name"))
		if err != nil {
			continue
		}
		if strings.TrimSpace(string(b)) == name {
			return filepath.Join(DevDir, e.Name()), nil
		}
	}
	return "", fmt.Errorf("%w: %s", ErrNotFound, name)
}

// Port is an open virtio-serial port in non-blocking mode with deadlines.
type Port struct {
	*os.File
}

// Open finds the port named name, retrying until ctx ends (the name
// attribute appears a few ms after virtio_console loads), then waits for
// the host to connect.
func Open(ctx context.Context, name string) (*Port, error) {
	var path string
	for {
		p, err := Find(name)
		if err == nil {
			path = p
			break
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(10 * time.Millisecond):
		}
	}
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: device node did not appear", path)
		case <-time.After(5 * time.Millisecond):
		}
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	// Wait for the host: POLLHUP is set while nobody is connected. poll
	// returns at once while HUP is set, so sleep between polls.
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		_, err := unix.Poll(fds, 0)
		if err == nil && fds[0].Revents&unix.POLLHUP == 0 {
			break
		}
		select {
		case <-ctx.Done():
			unix.Close(fd)
			return nil, fmt.Errorf("%s: no host connected", path)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// os.NewFile on a non-blocking fd registers it with the runtime
	// poller, so Read/Write honour SetDeadline.
	return &Port{File: os.NewFile(uintptr(fd), path)}, nil
}
