package tests

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/tests/harness"
)

var seqreadRe = regexp.MustCompile(`seqread: (\d+) bytes in ([0-9.]+) ms`)

// BenchmarkVerityBoot boots a plain image holding a 64 MiB file of random
// bytes, with and without a verity root (at least 3 boots each), and
// reports the medians of: PID 1 to the workload's start, the verity and
// mount phases, and the workload's sequential read of the file (cold page
// cache) in MiB/s. Plain images isolate what verity costs from the
// attestation and dm-crypt, which BenchmarkAttestedBoot measures.
func BenchmarkVerityBoot(b *testing.B) {
	e := harness.Setup(b)
	const bigSize = 64 << 20
	rootfs := filepath.Join(b.TempDir(), "rootfs")
	e.GoBuild(b, "./tests/testprogs/seqread", filepath.Join(rootfs, "seqread"))
	big := make([]byte, bigSize)
	rand.Read(big)
	if err := os.WriteFile(filepath.Join(rootfs, "big"), big, 0o644); err != nil {
		b.Fatal(err)
	}
	for _, integrity := range []string{"none", "verity"} {
		b.Run(integrity, func(b *testing.B) {
			img, err := image.Build(image.Options{RootfsDir: rootfs, OutDir: b.TempDir(), Config: plainConfig(), Integrity: integrity,
				Workload: image.Workload{Cmd: []string{"/seqread", "/big"}}})
			if err != nil {
				b.Fatal(err)
			}
			n := max(b.N, 3)
			var toExec, mount, ver, rate []float64
			for i := 0; i < n; i++ {
				boot := e.Boot(b, launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512})
				if boot.Status != 0 {
					b.Fatalf("boot %d: status %d (%s)", i, boot.Status, boot.Reason)
				}
				m := seqreadRe.FindStringSubmatch(boot.Console)
				if m == nil {
					b.Fatal("no seqread line on the console")
				}
				bytes, _ := strconv.ParseFloat(m[1], 64)
				ms, _ := strconv.ParseFloat(m[2], 64)
				if bytes != bigSize || ms <= 0 {
					b.Fatalf("seqread read %v bytes in %v ms", bytes, ms)
				}
				rate = append(rate, bytes/(1<<20)/(ms/1000))
				for _, ev := range boot.Events {
					switch {
					case ev.Kind == "phase" && ev.Phase == "mount":
						mount = append(mount, ev.Millis)
					case ev.Kind == "phase" && ev.Phase == "verity":
						ver = append(ver, ev.Millis)
					case ev.Kind == "log" && ev.Phase == "run":
						toExec = append(toExec, ev.SinceStartMillis)
					}
				}
			}
			b.ReportMetric(median(toExec), "pid1-to-workload-start-ms")
			b.ReportMetric(median(ver), "verity-ms")
			b.ReportMetric(median(mount), "mount-ms")
			b.ReportMetric(median(rate), "seqread-MiB/s")
			fmt.Fprintf(os.Stderr, "plain boot, integrity %s, over %d boots (median): pid1→workload start %.0f ms, verity phase %.1f ms, mount %.1f ms, sequential read of 64 MiB %.1f MiB/s\n",
				integrity, n, median(toExec), median(ver), median(mount), median(rate))
		})
	}
}
