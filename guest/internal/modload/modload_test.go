package modload

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadOrderAndLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "order")
	os.WriteFile(p, []byte("# comment\n/lib/modules/k/a.ko\n\n/lib/modules/k/b.ko opt=1\n"), 0o644)
	es, err := ReadOrder(p)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{"/lib/modules/k/a.ko", ""}, {"/lib/modules/k/b.ko", "opt=1"}}
	if !reflect.DeepEqual(es, want) {
		t.Fatalf("got %v", es)
	}
	var loaded []string
	n, err := LoadAll(es, func(path, params string) error {
		loaded = append(loaded, path)
		if strings.HasSuffix(path, "b.ko") {
			return errors.New("boom")
		}
		return nil
	})
	if n != 1 || err == nil || !strings.Contains(err.Error(), "loading module b.ko: boom") {
		t.Fatalf("n=%d err=%v", n, err)
	}
	if es, err := ReadOrder(filepath.Join(dir, "none")); err != nil || es != nil {
		t.Fatalf("missing file: %v %v", es, err)
	}
	os.WriteFile(p, []byte("relative.ko\n"), 0o644)
	if _, err := ReadOrder(p); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("relative path: %v", err)
	}
}
