// Package certcache is an on-disk cache of attestation collateral: AMD VCEK
// certificates, Intel PCS responses and the like, keyed by a caller-chosen
// string such as "snp/vcek/Milan/<chip id>/<tcb>".
//
// Verifiers consult it before they go to the network, and the broker shares
// one cache between all of its verifiers, so a warm cache lets a machine
// verify offline. Entries are public data (certificates, signed collateral):
// the cache never holds secrets, files are world-readable (0644), and a
// corrupted or forged entry can at worst make a verification fail, because
// every verifier checks what it reads against its trusted roots.
//
// Design:
//   - One file per key, flat in the cache directory. Keys are mapped to
//     safe file names: characters outside [A-Za-z0-9._-] become '_', and
//     whenever the mapping was not the identity (or the name would be long)
//     a short hash of the original key is appended, so distinct keys never
//     share a file and no key can name a path outside the directory.
//   - Put is atomic: write a temporary file in the same directory, fsync,
//     rename over the final name, fsync the directory. Readers see the old
//     value or the new one, never a torn write, even across a crash, and
//     several processes may share one directory.
//   - Temporary files left behind by a crash are removed by Open once they
//     are an hour old.
package certcache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// MaxEntrySize bounds the size of one entry. Certificates are a few KiB and
// TDX collateral a few hundred KiB; anything larger is refused on Put and
// treated as corrupt on Get.
const MaxEntrySize = 16 << 20

// tmpPrefix marks in-flight writes. Sanitized key names never start with a
// dot, so they cannot collide with it.
const tmpPrefix = ".tmp-"

// staleTmpAge is how old a leftover temporary file must be before Open
// deletes it (a younger one may belong to a concurrent writer).
const staleTmpAge = time.Hour

// maxNameLen keeps file names well under the usual 255-byte limit.
const maxNameLen = 160

// Cache is a directory of cached entries. It is safe for concurrent use by
// several goroutines and several processes.
type Cache struct {
	dir string
}

// Open opens (creating it if needed, mode 0755) the cache in dir.
func Open(dir string) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("certcache: empty directory name")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("certcache: creating %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("certcache: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("certcache: %s is not a directory", dir)
	}
	c := &Cache{dir: dir}
	c.removeStaleTemps(time.Now())
	return c, nil
}

// Dir returns the cache directory.
func (c *Cache) Dir() string { return c.dir }

// Get returns the entry stored under key. A missing entry is (nil, false,
// nil); an error means the entry exists but could not be read.
func (c *Cache) Get(key string) ([]byte, bool, error) {
	name, err := FileName(key)
	if err != nil {
		return nil, false, err
	}
	f, err := os.Open(filepath.Join(c.dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("certcache: reading %q: %w", key, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxEntrySize+1))
	if err != nil {
		return nil, false, fmt.Errorf("certcache: reading %q: %w", key, err)
	}
	if len(b) > MaxEntrySize {
		return nil, false, fmt.Errorf("certcache: entry %q is larger than %d bytes", key, MaxEntrySize)
	}
	return b, true, nil
}

// Put stores b under key, replacing any previous entry atomically.
func (c *Cache) Put(key string, b []byte) (err error) {
	name, err := FileName(key)
	if err != nil {
		return err
	}
	if len(b) > MaxEntrySize {
		return fmt.Errorf("certcache: entry %q is %d bytes, more than %d", key, len(b), MaxEntrySize)
	}
	tmp, err := os.CreateTemp(c.dir, tmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("certcache: storing %q: %w", key, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err != nil {
		return fmt.Errorf("certcache: storing %q: %w", key, err)
	}
	// CreateTemp makes 0600 files; entries are public collateral.
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("certcache: storing %q: %w", key, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("certcache: storing %q: %w", key, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("certcache: storing %q: %w", key, err)
	}
	if err = os.Rename(tmp.Name(), filepath.Join(c.dir, name)); err != nil {
		return fmt.Errorf("certcache: storing %q: %w", key, err)
	}
	// Make the rename durable. A failure here leaves a correct entry that
	// may not survive a power loss; report it all the same.
	if err = syncDir(c.dir); err != nil {
		return fmt.Errorf("certcache: storing %q: %w", key, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeStaleTemps deletes temporary files older than staleTmpAge. It is
// best effort: a cache that cannot be tidied still works.
func (c *Cache) removeStaleTemps(now time.Time) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tmpPrefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < staleTmpAge {
			continue
		}
		os.Remove(filepath.Join(c.dir, e.Name()))
	}
}

// FileName maps a cache key to the file name that stores it. It is
// injective: distinct keys give distinct names. The result contains only
// [A-Za-z0-9._-], does not start with '.', and is at most maxNameLen+33
// bytes long. For keys that need the hash suffix, injectivity rests on
// SHA-256 truncated to 128 bits.
func FileName(key string) (string, error) {
	if key == "" {
		return "", errors.New("certcache: empty key")
	}
	var b strings.Builder
	exact := true
	for i := 0; i < len(key); i++ {
		ch := key[i]
		switch {
		case ch >= 'a' && ch <= 'z', ch >= 'A' && ch <= 'Z', ch >= '0' && ch <= '9', ch == '-':
			b.WriteByte(ch)
		case ch == '.' && i > 0:
			b.WriteByte(ch)
		default:
			b.WriteByte('_')
			exact = false
		}
	}
	name := b.String()
	// '_' is also a legal key character, so a name that merely looks
	// sanitized could collide with a sanitized one; a key containing '_'
	// therefore always gets the hash suffix as well.
	if exact && !strings.Contains(key, "_") && len(name) <= maxNameLen {
		return name, nil
	}
	if len(name) > maxNameLen {
		name = name[:maxNameLen]
	}
	sum := sha256.Sum256([]byte(key))
	// The suffix starts with '_', which an exact (unhashed) name never
	// contains, so hashed and unhashed names cannot collide either.
	return name + "_" + hex.EncodeToString(sum[:16]), nil
}
