package initramfs

import (
	"bytes"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// entry is one file, directory or symlink of the image.
type entry struct {
	name string // clean, relative, '/'-separated
	mode uint64 // type and permission bits, as in a cpio header
	data []byte // file contents or symlink target
}

// tree collects the image's entries before they are written.
type tree struct {
	entries map[string]*entry
}

func newTree() *tree { return &tree{entries: map[string]*entry{}} }

// cleanName turns an image path ("/etc/x", "etc/x") into the form stored in
// the archive ("etc/x"). It rejects paths that are empty, name the root, or
// climb out of it.
func cleanName(p string) (string, error) {
	if strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("image path %q contains a NUL byte", p)
	}
	c := path.Clean("/" + p)
	if c == "/" {
		return "", fmt.Errorf("image path %q names the root", p)
	}
	if strings.TrimPrefix(p, "/") != c[1:] {
		// "a/../b" or "a//b": refuse rather than guess what was meant.
		return "", fmt.Errorf("image path %q is not clean (want %q)", p, c)
	}
	return c[1:], nil
}

// add inserts e; adding the same path twice is an error unless both are
// identical directories.
func (t *tree) add(e *entry) error {
	name, err := cleanName(e.name)
	if err != nil {
		return err
	}
	e.name = name
	if old, ok := t.entries[name]; ok {
		if old.mode == e.mode && old.mode&cpio.S_IFMT == cpio.S_IFDIR {
			return nil
		}
		return fmt.Errorf("image path /%s is added twice", name)
	}
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if old, ok := t.entries[dir]; ok && old.mode&cpio.S_IFMT != cpio.S_IFDIR {
			return fmt.Errorf("image path /%s is below /%s, which is not a directory", name, dir)
		}
	}
	t.entries[name] = e
	return nil
}

func (t *tree) dir(name string, perm uint64) error {
	return t.add(&entry{name: name, mode: cpio.S_IFDIR | perm&0o7777})
}

func (t *tree) file(name string, data []byte, perm uint64) error {
	return t.add(&entry{name: name, mode: cpio.S_IFREG | perm&0o7777, data: data})
}

func (t *tree) symlink(name, target string) error {
	return t.add(&entry{name: name, mode: cpio.S_IFLNK | 0o777, data: []byte(target)})
}

// records returns the image as cpio records in a canonical form: every
// parent directory present (missing ones are 0755), sorted by path (so a
// directory precedes its contents), inode numbers 1, 2, ... in that order,
// owner 0:0, mtime 0, device numbers 0, one link per file and two per
// directory. The trailer is not included.
func (t *tree) records() ([]cpio.Record, error) {
	for name := range t.entries {
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if _, ok := t.entries[dir]; !ok {
				t.entries[dir] = &entry{name: dir, mode: cpio.S_IFDIR | 0o755}
			}
		}
	}
	names := make([]string, 0, len(t.entries))
	for name := range t.entries {
		names = append(names, name)
	}
	slices.Sort(names)
	recs := make([]cpio.Record, 0, len(names))
	for i, name := range names {
		e := t.entries[name]
		info := cpio.Info{
			Ino:   uint64(i + 1),
			Mode:  e.mode,
			NLink: 1,
			Name:  name,
		}
		if e.mode&cpio.S_IFMT == cpio.S_IFDIR {
			info.NLink = 2
		}
		if uint64(len(e.data)) > 0xffffffff {
			return nil, fmt.Errorf("image file /%s is larger than newc's 4 GiB limit", name)
		}
		info.FileSize = uint64(len(e.data))
		recs = append(recs, cpio.Record{ReaderAt: bytes.NewReader(e.data), Info: info})
	}
	return recs, nil
}

// writeCPIO writes recs and the trailer as a newc archive to w.
func writeCPIO(w io.Writer, recs []cpio.Record) error {
	rw := cpio.Newc.Writer(w)
	if err := cpio.WriteRecords(rw, recs); err != nil {
		return fmt.Errorf("writing cpio: %w", err)
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return fmt.Errorf("writing cpio trailer: %w", err)
	}
	return nil
}
