package initramfs

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKrunfwPaddedSize(t *testing.T) {
	for n, want := range map[int64]int64{0: 0, 1: 65536, 65536: 65536, 65537: 131072, 2129920: 2162688} {
		if got := KrunfwPaddedSize(n); got != want {
			t.Errorf("padded(%d) = %d, want %d", n, got, want)
		}
	}
	if KrunfwInitrdMax != 6<<20 {
		t.Fatalf("room %d, want 6 MiB", KrunfwInitrdMax)
	}
}

func TestTargetKrunfwRefusesWhatLibkrunfwCannotBoot(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "initrd")
	init := tinyInit(t)
	for _, c := range []struct {
		name string
		opts Options
		want string
	}{
		{"xz", Options{Compression: CompressXZ}, "only gzip"},
		{"none", Options{Compression: CompressNone}, "only gzip"},
		{"modules", Options{KernelModules: dir}, "no module support"},
		{"target", Options{Target: "firecracker"}, "unknown target"},
	} {
		c.opts.Output, c.opts.InitBinary = out, init
		if c.opts.Target == "" {
			c.opts.Target = TargetKrunfw
		}
		_, err := Build(c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.want)
		}
	}

	// Within the room: built.
	res, err := Build(Options{Output: out, InitBinary: init, Target: TargetKrunfw})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(out)

	// Incompressible bytes that push the padded image past 6 MiB: refused,
	// and the previous image stays as it was.
	big := make([]byte, KrunfwInitrdMax-int(res.Size)+1)
	rand.Read(big)
	blob := filepath.Join(dir, "blob")
	os.WriteFile(blob, big, 0o644)
	_, err = Build(Options{Output: out, InitBinary: init, Target: TargetKrunfw, ExtraFiles: map[string]string{"/blob": blob}})
	if err == nil || !strings.Contains(err.Error(), "overwrite the kernel") {
		t.Fatalf("oversized image: %v", err)
	}
	if after, _ := os.ReadFile(out); !bytes.Equal(before, after) {
		t.Fatal("a refused build replaced the previous image")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Fatalf("left behind: %v", ents)
	}
	// The same bytes without the target: built (any other kernel decides).
	if _, err := Build(Options{Output: out, InitBinary: init, ExtraFiles: map[string]string{"/blob": blob}}); err != nil {
		t.Fatal(err)
	}
}
