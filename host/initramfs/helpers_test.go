package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/u-root/u-root/pkg/cpio"
	"github.com/ulikunitz/xz"

	"github.com/sealroot/sealroot/host/initramfs/kmod/kmodtest"
)

// tinyInitSource is a stand-in /init for tests: it loads every module of
// /etc/sealroot/modules.order with finit_module, reports on the console and
// powers off. Booted by TestBootQEMU; elsewhere it is just a static binary.
const tinyInitSource = `package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"unsafe"
)

const sysFinitModule = 313 // x86-64

func finit(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	empty, _ := syscall.BytePtrFromString("")
	if _, _, e := syscall.Syscall(sysFinitModule, f.Fd(), uintptr(unsafe.Pointer(empty)), 0); e != 0 {
		return e
	}
	return nil
}

func main() {
	b, err := os.ReadFile("/etc/sealroot/modules.order")
	if err != nil {
		fmt.Println("TINYINIT error", err)
	}
	loaded, failed := 0, 0
	for _, p := range strings.Fields(string(b)) {
		if err := finit(p); err != nil {
			fmt.Println("TINYINIT failed", p, err)
			failed++
			continue
		}
		loaded++
	}
	fmt.Printf("TINYINIT loaded %d failed %d\n", loaded, failed)
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
`

var (
	tinyInitOnce sync.Once
	tinyInitPath string
	tinyInitErr  error
	tinyInitDir  string
)

// tinyInit returns the path of a static build of tinyInitSource, built once
// per test binary.
func tinyInit(t testing.TB) string {
	t.Helper()
	tinyInitOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sealroot-tinyinit-")
		if err != nil {
			tinyInitErr = err
			return
		}
		tinyInitDir = dir
		src := filepath.Join(dir, "src")
		if err := os.MkdirAll(src, 0o755); err != nil {
			tinyInitErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module tinyinit\n\ngo 1.26\n"), 0o644); err != nil {
			tinyInitErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(tinyInitSource), 0o644); err != nil {
			tinyInitErr = err
			return
		}
		out := filepath.Join(dir, "init")
		cmd := exec.Command("go", "build", "-o", out, "-trimpath", "-buildvcs=false", "-ldflags=-s -w", ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOFLAGS=-mod=mod")
		if b, err := cmd.CombinedOutput(); err != nil {
			tinyInitErr = fmt.Errorf("building tiny init: %w\n%s", err, b)
			return
		}
		tinyInitPath = out
	})
	if tinyInitErr != nil {
		t.Fatal(tinyInitErr)
	}
	return tinyInitPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyInitDir != "" {
		os.RemoveAll(tinyInitDir)
	}
	os.Exit(code)
}

// syntheticModules is a small module tree: virtio, dm-crypt, xts+ecb (one
// of them xz-compressed, one zstd, one gzip) and an ext4 builtin.
var syntheticModules = []kmodtest.Module{
	{Path: "kernel/drivers/virtio/virtio_ring.ko", Pad: 20000},
	{Path: "kernel/drivers/virtio/virtio.ko", Depends: []string{"virtio_ring"}, Pad: 10000},
	{Path: "kernel/drivers/virtio/virtio_pci.ko.xz", Depends: []string{"virtio_ring", "virtio"}, Pad: 15000},
	{Path: "kernel/drivers/block/virtio_blk.ko.zst", Depends: []string{"virtio", "virtio_ring"}, Pad: 9000},
	{Path: "kernel/drivers/md/dm-mod.ko.gz", Name: "dm_mod", Pad: 40000},
	{Path: "kernel/drivers/md/dm-crypt.ko", Name: "dm_crypt", Depends: []string{"dm-mod"}, Pad: 12000},
	{Path: "kernel/crypto/xts.ko", Softdeps: []string{"pre: ecb"}},
	{Path: "kernel/crypto/ecb.ko"},
	{Path: "kernel/drivers/net/virtio_net.ko", Depends: []string{"virtio_ring", "virtio", "net_failover"}},
	{Path: "kernel/drivers/net/net_failover.ko", Depends: []string{"failover"}},
	{Path: "kernel/net/core/failover.ko"},
	{Path: "kernel/misc/unused.ko"},
}

// writeSyntheticTree writes syntheticModules to a new directory.
func writeSyntheticTree(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), kmodtest.Release)
	if err := kmodtest.WriteTree(dir, syntheticModules, []string{"kernel/fs/ext4/ext4.ko", "kernel/fs/configfs/configfs.ko"}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// decompress undoes compressor.
func decompress(t testing.TB, method string, b []byte) []byte {
	t.Helper()
	var r io.Reader
	var err error
	switch method {
	case CompressNone:
		return b
	case CompressGzip, CompressZopfli:
		r, err = gzip.NewReader(bytes.NewReader(b))
	case CompressXZ:
		r, err = xz.NewReader(bytes.NewReader(b))
	case CompressZstd:
		var d *zstd.Decoder
		d, err = zstd.NewReader(bytes.NewReader(b))
		if err == nil {
			defer d.Close()
			r = d
		}
	default:
		t.Fatalf("unknown method %s", method)
	}
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return out
}

// readRecords reads a newc archive back with u-root's reader, contents
// included.
func readRecords(t testing.TB, archive []byte) []cpio.Record {
	t.Helper()
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(bytes.NewReader(archive)))
	if err != nil {
		t.Fatalf("reading archive back: %v", err)
	}
	return recs
}

// recordData returns a record's contents.
func recordData(t testing.TB, r cpio.Record) []byte {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	if err != nil {
		t.Fatalf("reading %s: %v", r.Name, err)
	}
	return b
}

// recordMap indexes records by name.
func recordMap(recs []cpio.Record) map[string]cpio.Record {
	m := map[string]cpio.Record{}
	for _, r := range recs {
		m[r.Name] = r
	}
	return m
}

// havingTool returns whether a command is on PATH.
func havingTool(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

// runTool runs a command with stdin and returns its stdout.
func runTool(t testing.TB, stdin []byte, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}
