package tests

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/tests/harness"
	"github.com/sealroot/sealroot/wire/event"
)

// qemuChildren lists QEMU processes whose command line names disk.
func qemuWith(disk string) []string {
	out, _ := exec.Command("pgrep", "-af", "qemu-system").Output()
	var found []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, disk) {
			found = append(found, l)
		}
	}
	return found
}

// TestLaunchTeardown: an interrupted launch (Ctrl-C) and a timed-out one
// stop QEMU and its helpers, report their documented statuses, and leave no
// process behind.
func TestLaunchTeardown(t *testing.T) {
	e := harness.Setup(t)
	img := buildPlain(t, e.HelloRootfs(t), image.Workload{Cmd: []string{"/hello", "sleep"}})
	t.Run("interrupted", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		o := launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512, OnEvent: func(ev event.Event) {
			if ev.Kind == event.KindLog && ev.Phase == "run" {
				go func() { time.Sleep(500 * time.Millisecond); cancel() }()
			}
		}}
		b := e.BootContext(ctx, t, o)
		if b.Status != event.StatusInterrupted {
			t.Fatalf("status %d (%s), want %d", b.Status, b.Reason, event.StatusInterrupted)
		}
		if !strings.Contains(b.Console, "hello from the workload") {
			t.Fatal("the workload never ran")
		}
		if ps := qemuWith(img.Disk); len(ps) > 0 {
			t.Fatalf("QEMU still running: %v", ps)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		b := e.Boot(t, launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512, Timeout: 15 * time.Second})
		if b.Status != event.StatusTimeout || !strings.Contains(b.Reason, "15s") {
			t.Fatalf("status %d (%s), want %d", b.Status, b.Reason, event.StatusTimeout)
		}
		if ps := qemuWith(img.Disk); len(ps) > 0 {
			t.Fatalf("QEMU still running: %v", ps)
		}
	})
	t.Run("CLI exit status and stdout", func(t *testing.T) {
		good := buildPlain(t, e.HelloRootfs(t), image.Workload{Cmd: []string{"/hello"}})
		cmd := exec.Command(e.Sealroot(t), "launch", "--kernel", e.Kernel, "--initrd", e.Initrd, "--disk", good.Disk, "--accel", "tcg", "--timeout", "3m")
		var stdout strings.Builder
		cmd.Stdout = &stdout
		cmd.Stderr = os.Stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 7 {
			t.Fatalf("sealroot launch: %v, want exit status 7", err)
		}
		if !strings.Contains(stdout.String(), "hello from the workload") {
			t.Fatalf("the workload's line is not on stdout:\n%s", stdout.String())
		}
	})
}
