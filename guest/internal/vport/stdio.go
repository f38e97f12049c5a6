package vport

import (
	"errors"
	"fmt"
	"os"
)

// Names of the ports libkrun adds for the host's stdin, stdout and stderr
// when they are not terminals (its console, hvc0, then goes to libkrun's
// log); docs/libkrunfw.md cites where.
const (
	KrunStdin  = "krun-stdin"
	KrunStdout = "krun-stdout"
	KrunStderr = "krun-stderr"
)

// Stdio is where a workload's standard streams go: each is a port opened
// in blocking mode (a workload does not expect EAGAIN), or nil when that
// port does not exist and the caller's default applies.
type Stdio struct {
	Stdin, Stdout, Stderr *os.File
}

// OpenKrunStdio opens whichever of libkrun's stdio ports exist. A port
// that exists but cannot be opened is an error naming it.
func OpenKrunStdio() (*Stdio, error) {
	var s Stdio
	for _, p := range []struct {
		name string
		flag int
		f    **os.File
	}{
		{KrunStdin, os.O_RDONLY, &s.Stdin},
		{KrunStdout, os.O_WRONLY, &s.Stdout},
		{KrunStderr, os.O_WRONLY, &s.Stderr},
	} {
		path, err := Find(p.name)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			s.Close()
			return nil, err
		}
		f, err := os.OpenFile(path, p.flag, 0)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("opening libkrun's %s port: %w", p.name, err)
		}
		*p.f = f
	}
	return &s, nil
}

// Any reports whether at least one port was opened.
func (s *Stdio) Any() bool { return s.Stdin != nil || s.Stdout != nil || s.Stderr != nil }

// Close closes the opened ports.
func (s *Stdio) Close() error {
	var errs []error
	for _, f := range []*os.File{s.Stdin, s.Stdout, s.Stderr} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}
