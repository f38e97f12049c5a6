package vport

import (
	"os"
	"path/filepath"
	"testing"
)

// fakePorts lays out a sysfs class directory and device nodes (regular
// files here) for the given port names.
func fakePorts(t *testing.T, names ...string) {
	t.Helper()
	root := t.TempDir()
	oldClass, oldDev := SysClass, DevDir
	t.Cleanup(func() { SysClass, DevDir = oldClass, oldDev })
	SysClass, DevDir = filepath.Join(root, "class"), filepath.Join(root, "dev")
	os.MkdirAll(DevDir, 0o755)
	for i, n := range names {
		dev := "vport2p" + string(rune('0'+i))
		os.MkdirAll(filepath.Join(SysClass, dev), 0o755)
		os.WriteFile(filepath.Join(SysClass, dev, "name"), []byte(n+"\n"), 0o644)
		os.WriteFile(filepath.Join(DevDir, dev), nil, 0o644)
	}
}

func TestOpenKrunStdio(t *testing.T) {
	fakePorts(t, "org.sealroot.host", KrunStdout, KrunStdin)
	s, err := OpenKrunStdio()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Any() || s.Stdin == nil || s.Stdout == nil || s.Stderr != nil {
		t.Fatalf("stdio %+v: want stdin and stdout ports, stderr left to the default", s)
	}
	if _, err := s.Stdout.Write([]byte("x")); err != nil {
		t.Fatalf("stdout port not writable: %v", err)
	}
	if filepath.Base(s.Stdin.Name()) != "vport2p2" {
		t.Fatalf("stdin is %s", s.Stdin.Name())
	}
}

func TestOpenKrunStdioNone(t *testing.T) {
	fakePorts(t, "org.sealroot.host")
	s, err := OpenKrunStdio()
	if err != nil || s.Any() {
		t.Fatalf("no krun ports: %+v, %v", s, err)
	}
	SysClass = filepath.Join(t.TempDir(), "absent") // no virtio-serial at all
	if s, err := OpenKrunStdio(); err != nil || s.Any() {
		t.Fatalf("no class directory: %+v, %v", s, err)
	}
}

func TestOpenKrunStdioUnopenable(t *testing.T) {
	fakePorts(t, KrunStderr)
	os.Remove(filepath.Join(DevDir, "vport2p0"))
	if _, err := OpenKrunStdio(); err == nil {
		t.Fatal("a port whose device node is missing was not an error")
	}
}
