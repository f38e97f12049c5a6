package certcache

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPutGetSurvivesReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string][]byte{
		"snp/vcek/Milan/3ac3fe21/0544000000000002": []byte("vcek der"),
		"plain-key.der":    []byte("x"),
		"empty":            {},
		"../../etc/passwd": []byte("must stay inside"),
	}
	for k, v := range entries {
		if err := c.Put(k, v); err != nil {
			t.Fatalf("Put(%q): %v", k, err)
		}
	}
	// A new Cache on the same directory sees everything (restart).
	c2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range entries {
		got, ok, err := c2.Get(k)
		if err != nil || !ok || !bytes.Equal(got, want) {
			t.Errorf("Get(%q) = %q, %v, %v; want %q", k, got, ok, err, want)
		}
	}
	// Every file is inside dir, world-readable, and no temporaries remain.
	files, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(entries) {
		t.Errorf("cache holds %d files, want %d", len(files), len(entries))
	}
	for _, f := range files {
		fi, err := f.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %o, want 644", f.Name(), fi.Mode().Perm())
		}
		if strings.HasPrefix(f.Name(), tmpPrefix) {
			t.Errorf("temporary file %s left behind", f.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "etc")); err == nil {
		t.Error("a key escaped the cache directory")
	}
}

func TestGetMissing(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, ok, err := c.Get("nope")
	if b != nil || ok || err != nil {
		t.Fatalf("Get(missing) = %v, %v, %v; want nil, false, nil", b, ok, err)
	}
}

func TestPutReplaces(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"first", "second, longer value", "3"} {
		if err := c.Put("k", []byte(v)); err != nil {
			t.Fatal(err)
		}
		got, ok, err := c.Get("k")
		if err != nil || !ok || string(got) != v {
			t.Fatalf("after Put(%q): Get = %q, %v, %v", v, got, ok, err)
		}
	}
}

func TestErrors(t *testing.T) {
	if _, err := Open(""); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(file); err == nil {
		t.Error("Open(regular file) succeeded")
	}
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put("", []byte("x")); err == nil {
		t.Error("Put with an empty key succeeded")
	}
	if _, _, err := c.Get(""); err == nil {
		t.Error("Get with an empty key succeeded")
	}
	if err := c.Put("big", make([]byte, MaxEntrySize+1)); err == nil {
		t.Error("Put of an oversized entry succeeded")
	}
}

func TestConcurrentPut(t *testing.T) {
	c, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			v := bytes.Repeat([]byte{byte('a' + i)}, 4096)
			for range 10 {
				if err := c.Put("shared", v); err != nil {
					t.Error(err)
				}
				got, ok, err := c.Get("shared")
				if err != nil || !ok {
					t.Error(ok, err)
					continue
				}
				// Never torn: one writer's value, whole.
				if len(got) != 4096 || !bytes.Equal(got, bytes.Repeat(got[:1], 4096)) {
					t.Errorf("torn read: len %d", len(got))
				}
			}
		})
	}
	wg.Wait()
}

func TestStaleTempsRemoved(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, tmpPrefix+"old")
	young := filepath.Join(dir, tmpPrefix+"young")
	for _, p := range []string{old, young} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-2 * staleTmpAge)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale temporary file kept: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("young temporary file removed: %v", err)
	}
}

func TestFileName(t *testing.T) {
	tests := []struct {
		key    string
		exact  bool   // the name is the key itself
		prefix string // otherwise, the readable part before the hash
	}{
		{"vcek.der", true, ""},
		{"Milan-B1", true, ""},
		{"snp/vcek/Milan", false, "snp_vcek_Milan_"},
		{"a_b", false, "a_b_"},
		{".hidden", false, "_hidden_"},
		{"..", false, "_._"},
		{"é", false, "___"},
		{strings.Repeat("x", 300), false, strings.Repeat("x", maxNameLen) + "_"},
	}
	for _, tt := range tests {
		name, err := FileName(tt.key)
		if err != nil {
			t.Fatalf("FileName(%q): %v", tt.key, err)
		}
		if tt.exact {
			if name != tt.key {
				t.Errorf("FileName(%q) = %q, want the key unchanged", tt.key, name)
			}
			continue
		}
		if !strings.HasPrefix(name, tt.prefix) || len(name) != len(tt.prefix)+32 {
			t.Errorf("FileName(%q) = %q, want %q + 32 hex digits", tt.key, name, tt.prefix)
		}
	}
	// Keys that sanitize to the same readable text still get distinct names.
	a, _ := FileName("a/b")
	b, _ := FileName("a_b")
	c, _ := FileName("a:b")
	if a == b || b == c || a == c {
		t.Errorf("collision among %q %q %q", a, b, c)
	}
}

// FuzzFileName checks that any key maps to a safe, single path component
// and that distinct keys map to distinct names.
func FuzzFileName(f *testing.F) {
	for _, s := range []string{"vcek", "snp/vcek/Milan/00/01", "..", "/", "a_b", "a/b", "\x00", strings.Repeat("z", 200)} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, k1, k2 string) {
		n1, err1 := FileName(k1)
		n2, err2 := FileName(k2)
		for _, c := range []struct {
			k, n string
			err  error
		}{{k1, n1, err1}, {k2, n2, err2}} {
			if c.k == "" {
				if c.err == nil {
					t.Fatal("empty key accepted")
				}
				continue
			}
			if c.err != nil {
				t.Fatalf("FileName(%q): %v", c.k, c.err)
			}
			if c.n == "" || c.n[0] == '.' || len(c.n) > maxNameLen+33 || filepath.Base(c.n) != c.n {
				t.Fatalf("FileName(%q) = %q: not a safe file name", c.k, c.n)
			}
			for _, r := range c.n {
				if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
					t.Fatalf("FileName(%q) = %q: character %q", c.k, c.n, r)
				}
			}
		}
		if err1 == nil && err2 == nil && k1 != k2 && n1 == n2 {
			t.Fatalf("keys %q and %q share file name %q", k1, k2, n1)
		}
	})
}

func ExampleCache() {
	dir, _ := os.MkdirTemp("", "certcache")
	defer os.RemoveAll(dir)
	c, _ := Open(dir)
	_ = c.Put("snp/vcek/Milan/chip/tcb", []byte("DER bytes"))
	b, ok, _ := c.Get("snp/vcek/Milan/chip/tcb")
	fmt.Println(string(b), ok)
	// Output: DER bytes true
}
