package launch

import (
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAcquireRelaySlot(t *testing.T) {
	dir := t.TempDir()
	var releases []func()
	for i := range 3 {
		r, err := AcquireRelaySlot(dir, 3)
		if err != nil {
			t.Fatalf("slot %d: %v", i, err)
		}
		releases = append(releases, r)
	}
	if _, err := AcquireRelaySlot(dir, 3); !errors.Is(err, ErrRelayBusy) {
		t.Fatalf("fourth relay: %v, want ErrRelayBusy", err)
	}
	releases[1]()
	r, err := AcquireRelaySlot(dir, 3)
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	r()
	if _, err := AcquireRelaySlot(dir, 0); err == nil {
		t.Fatal("max 0 accepted")
	}
	// A symlink planted as a slot is not followed.
	d2 := t.TempDir()
	os.Symlink(filepath.Join(d2, "elsewhere"), filepath.Join(d2, "slot-0"))
	if _, err := AcquireRelaySlot(d2, 1); err == nil || errors.Is(err, ErrRelayBusy) {
		t.Fatalf("symlinked slot: %v", err)
	}
}

// TestRelaySlotHeldByProcess: a slot taken by another process (as QEMU's
// relays are) is busy until that process exits, however it exits.
func TestRelaySlotHeldByProcess(t *testing.T) {
	if _, err := exec.LookPath("flock"); err != nil {
		t.Skip("flock(1) not installed")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "slot-0"), nil, 0o600)
	cmd := exec.Command("flock", "-x", filepath.Join(dir, "slot-0"), "sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, err := AcquireRelaySlot(dir, 1)
		if errors.Is(err, ErrRelayBusy) {
			break
		}
		if err == nil {
			r()
		}
		if time.Now().After(deadline) {
			t.Fatal("the other process never held the slot")
		}
		time.Sleep(20 * time.Millisecond)
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // flock(1) and its child hold the lock
	cmd.Wait()
	// The child (sleep) dies asynchronously; its exit frees the slot.
	deadline = time.Now().Add(5 * time.Second)
	for {
		r, err := AcquireRelaySlot(dir, 1)
		if err == nil {
			r()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the holder was killed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRelayArgv(t *testing.T) {
	f := &Forward{BrokerAddr: "127.0.0.1:8000", RelayCommand: []string{"/bin/sealroot", "relay"}}
	got := relayArgv(f, "/tmp/x/relay-slots")
	want := []string{"/bin/sealroot", "relay", "--max-conns", "8", "--slot-dir", "/tmp/x/relay-slots", "127.0.0.1:8000"}
	if !slices.Equal(got, want) {
		t.Fatalf("argv %q, want %q", got, want)
	}
	f.MaxConns = 2
	if got := strings.Join(relayArgv(f, "/d"), " "); !strings.Contains(got, "--max-conns 2 --slot-dir /d 127.0.0.1:8000") {
		t.Fatalf("argv %q", got)
	}
	if len(f.RelayCommand) != 2 {
		t.Fatal("relayArgv changed the caller's command")
	}
}

// TestRelayCopies: Relay carries bytes both ways to a loopback server and
// refuses other addresses.
func TestRelayCopies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c)
		c.Write([]byte(strings.ToUpper(string(b))))
		c.Close()
	}()
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	if err := Relay(ln.Addr().String(), strings.NewReader("ping"), out); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(out.Name())
	if string(b) != "PING" {
		t.Fatalf("relayed %q", b)
	}
	if err := Relay("10.0.2.2:80", strings.NewReader(""), io.Discard); err == nil {
		t.Fatal("relay to a non-loopback address")
	}
}
