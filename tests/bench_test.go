package tests

import (
	"fmt"

	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/initramfs"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/tests/harness"
)

// BenchmarkInitrdSize reports the initrd's size for each compression.
// Run: make bench (or go test -run '^$' -bench InitrdSize ./tests/).
func BenchmarkInitrdSize(b *testing.B) {
	e := harness.Setup(b)
	for _, c := range []string{"none", "gzip", "xz", "zstd"} {
		b.Run(c, func(b *testing.B) {
			var res *initramfs.Result
			for i := 0; i < b.N; i++ {
				var err error
				res, err = initramfs.Build(initramfs.Options{Output: filepath.Join(b.TempDir(), "initrd"), Compression: c,
					KernelModules: e.Modules, ModuleRoot: e.Root})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.Size), "bytes")
			b.ReportMetric(float64(res.Size)/(1<<20), "MiB")
			b.ReportMetric(float64(len(res.Modules)), "modules")
		})
	}
}

// BenchmarkPlainBoot boots the plain hello image b.N times (at least 5) and
// reports the median duration of each guest phase as measured by the init,
// the median time from PID 1 start to the workload's exec, and the host's
// wall time per boot.
func BenchmarkPlainBoot(b *testing.B) {
	e := harness.Setup(b)
	img, err := image.Build(image.Options{RootfsDir: e.HelloRootfs(b), OutDir: b.TempDir(), Config: plainConfig(),
		Workload: image.Workload{Cmd: []string{"/hello", "0"}}})
	if err != nil {
		b.Fatal(err)
	}
	n := b.N
	if n < 5 {
		n = 5
	}
	phases := map[string][]float64{}
	var toExec, wall []float64
	var order []string
	for i := 0; i < n; i++ {
		boot := e.Boot(b, launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512})
		if boot.Status != 0 {
			b.Fatalf("boot %d: status %d", i, boot.Status)
		}
		for _, ev := range boot.Events {
			if ev.Kind == "phase" {
				if _, ok := phases[ev.Phase]; !ok {
					order = append(order, ev.Phase)
				}
				phases[ev.Phase] = append(phases[ev.Phase], ev.Millis)
			}
			if ev.Kind == "log" && ev.Phase == "run" {
				toExec = append(toExec, ev.SinceStartMillis)
			}
		}
		wall = append(wall, float64(boot.Duration.Milliseconds()))
	}
	for _, p := range order {
		b.ReportMetric(median(phases[p]), p+"-ms")
	}
	b.ReportMetric(median(toExec), "pid1-to-workload-start-ms")
	b.ReportMetric(median(wall), "wall-ms")
	fmt.Fprintf(os.Stderr, "plain boot over %d boots (median): pid1→workload start %.1f ms, wall %.0f ms\n", n, median(toExec), median(wall))
}

// median of xs; an empty series is a broken benchmark (an event renamed),
// never a figure of 0.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		panic("median of an empty series: an event the benchmark reads is missing")
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// BenchmarkAttestedBoot boots the sim-attested encrypted image through each
// broker dialect (at least 3 times each) and reports the median of each
// guest phase: evidence and broker round trips (attest), KDF and dm-crypt
// (unlock, with the KDF alone as unlock-kdf-ms), mount; and the total from
// PID 1 to the workload's exec, to compare with BenchmarkPlainBoot's.
func BenchmarkAttestedBoot(b *testing.B) {
	for _, dialect := range []string{"krun", "trustee"} {
		b.Run(dialect, func(b *testing.B) {
			e := harness.Setup(b)
			n := b.N
			if n < 3 {
				n = 3
			}
			phases := map[string][]float64{}
			var order []string
			var toExec, kdf []float64
			for i := 0; i < n; i++ {
				boot := attestedBenchBoot(b, e, dialect)
				for _, ev := range boot.Events {
					if ev.Kind == "phase" {
						if _, ok := phases[ev.Phase]; !ok {
							order = append(order, ev.Phase)
						}
						phases[ev.Phase] = append(phases[ev.Phase], ev.Millis)
						if ev.Phase == "unlock" {
							var ms float64
							if _, err := fmt.Sscan(ev.Detail["kdf_ms"], &ms); err != nil {
								b.Fatalf("unlock event without kdf_ms: %v", ev.Detail)
							}
							kdf = append(kdf, ms)
						}
					}
					if ev.Kind == "log" && ev.Phase == "run" {
						toExec = append(toExec, ev.SinceStartMillis)
					}
				}
			}
			for _, p := range order {
				b.ReportMetric(median(phases[p]), p+"-ms")
			}
			b.ReportMetric(median(kdf), "unlock-kdf-ms")
			b.ReportMetric(median(toExec), "pid1-to-workload-start-ms")
			fmt.Fprintf(os.Stderr, "attested boot (%s) over %d boots (median): attest %.0f ms, unlock %.0f ms (KDF %.0f ms), mount %.0f ms, pid1→workload start %.0f ms\n",
				dialect, n, median(phases["attest"]), median(phases["unlock"]), median(kdf), median(phases["mount"]), median(toExec))
		})
	}
}
