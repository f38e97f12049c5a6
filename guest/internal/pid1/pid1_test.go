package pid1

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestWaitForDevice(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "vda")
	go func() {
		time.Sleep(20 * time.Millisecond)
		os.WriteFile(p, nil, 0o600)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := WaitForDevice(ctx, p); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel2()
	err := WaitForDevice(ctx2, filepath.Join(dir, "never"))
	if err == nil || !strings.Contains(err.Error(), "did not appear") {
		t.Fatalf("err = %v", err)
	}
}

func TestRemoveTreeStaysOnDevice(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b/c"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a/b/c/f"), []byte("x"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "top"), []byte("x"), 0o644))
	outside := t.TempDir()
	must(os.WriteFile(filepath.Join(outside, "keep"), []byte("x"), 0o644))
	must(os.Symlink(outside, filepath.Join(dir, "link")))
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	must(err)
	defer unix.Close(fd)
	RemoveTree(fd)
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Fatalf("left %v", ents)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Fatalf("followed a symlink: %v", err)
	}
}

func TestSwitchRootRefusesNonInitramfs(t *testing.T) {
	// The test machine's / is a real disk: SwitchRoot must refuse before
	// touching anything.
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil || st.Type == ramfsMagic || st.Type == tmpfsMagic {
		t.Skip("/ is an initramfs here")
	}
	err := SwitchRoot(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not an initramfs") {
		t.Fatalf("err = %v", err)
	}
}
