// Package modload loads the kernel modules shipped in the initrd, in the
// order the initrd builder computed from modules.dep (dependencies first).
// There is no modprobe in the guest: the order file is the whole plan, and
// a kernel with everything built in (libkrunfw) simply has no file.
package modload

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// OrderFile is where the initrd builder writes the load order: one path per
// line (absolute, inside the initrd), optionally followed by a space and
// module parameters. Lines starting with '#' are comments.
const OrderFile = "/etc/sealroot/modules.order"

// Entry is one module to load.
type Entry struct {
	Path   string
	Params string
}

// ReadOrder parses an order file. A missing file yields no entries.
func ReadOrder(path string) ([]Entry, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening module order: %w", err)
	}
	defer f.Close()
	var es []Entry
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		p, params, _ := strings.Cut(line, " ")
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("%s:%d: module path %q is not absolute", path, n, p)
		}
		es = append(es, Entry{Path: p, Params: strings.TrimSpace(params)})
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return es, nil
}

// Loader inserts a module file; Finit is the real one.
type Loader func(path, params string) error

// Finit loads a module with finit_module(2). A module that is already
// loaded (or built in under the same name) is not an error.
func Finit(path, params string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), params, 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

// LoadAll loads es in order with load. It stops at the first failure: later
// modules depend on earlier ones, and a clear first error beats a cascade.
func LoadAll(es []Entry, load Loader) (int, error) {
	for i, e := range es {
		if err := load(e.Path, e.Params); err != nil {
			return i, fmt.Errorf("loading module %s: %w", filepath.Base(e.Path), err)
		}
	}
	return len(es), nil
}
