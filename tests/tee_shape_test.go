package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/tests/harness"
	"github.com/sealroot/sealroot/wire/event"
)

// TestConfidentialShapeBoots boots the command line `sealroot launch --tee
// snp --dry-run` prints, minus what needs SEV-SNP hardware, under TCG: the
// q35 machine, OVMF (Debian's, as -bios) booting the kernel directly, and
// virtio devices that are modern-only with ACCESS_PLATFORM. The removed
// parts are the sev-snp-guest and memory-backend objects, the machine
// options naming them, the accelerator and the vCPU model. The guest must
// run its workload to its exit status, as on a plain launch.
func TestConfidentialShapeBoots(t *testing.T) {
	e := harness.Setup(t)
	const ovmf = "/usr/share/ovmf/OVMF.fd"
	if _, err := os.Stat(ovmf); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("prerequisite missing under CI: %v (tests/deps.sh installs ovmf)", err)
		}
		t.Skip(err)
	}
	img := buildPlain(t, e.HelloRootfs(t), image.Workload{Cmd: []string{"/hello"}})
	argv, err := launch.DryRun(launch.Options{Kernel: e.Kernel, Initrd: e.Initrd, Disk: img.Disk, CPUs: 1, MemoryMiB: 512,
		TEE: &launch.TEE{Kind: launch.TEESNP, Firmware: filepath.Join(harness.RepoRoot(), "host/measure/testdata/ovmf_AmdSev_suffix.bin"),
			CBitPos: 51, ReducedPhysBits: 1}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "host.sock")
	var args []string
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		switch a {
		case "-accel":
			args = append(args, a, "tcg")
			i++
		case "-cpu":
			args = append(args, a, "qemu64,+rdrand")
			i++
		case "-machine":
			args = append(args, a, "q35")
			i++
		case "-object":
			i++
		case "-bios":
			args = append(args, a, ovmf)
			i++
		default:
			args = append(args, strings.ReplaceAll(a, launch.RunDirPlaceholder, dir))
		}
	}
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	status := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			status <- -1
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			var ev event.Event
			if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Kind == event.KindExit {
				status <- ev.Status
				return
			}
		}
		status <- -1
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu: %v\n%s", err, out)
	}
	if s := <-status; s != 7 || !strings.Contains(string(out), "hello from the workload") {
		t.Fatalf("exit status %d, want 7; console:\n%s", s, out)
	}
}
