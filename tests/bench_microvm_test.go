package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/initramfs"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/tests/harness"
	"github.com/sealroot/sealroot/wire/event"
)

// BenchmarkKrunfwInitrdSize reports the initrd without modules (what
// libkrunfw would carry) for each compression, with the init's size.
// gzip is the only one libkrunfw's kernels accept.
func BenchmarkKrunfwInitrdSize(b *testing.B) {
	root := harness.RepoRoot()
	for _, c := range initramfs.Compressions {
		b.Run(c, func(b *testing.B) {
			var res *initramfs.Result
			for i := 0; i < b.N; i++ {
				var err error
				res, err = initramfs.Build(initramfs.Options{Output: filepath.Join(b.TempDir(), "initrd"), Compression: c, ModuleRoot: root})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.Size), "bytes")
			b.ReportMetric(float64(res.Size)/(1<<20), "MiB")
			b.ReportMetric(float64(res.InitSize), "init-bytes")
			fmt.Fprintf(os.Stderr, "initrd without modules, %s: %d bytes (%.2f MiB; padded for libkrunfw %d of %d), init %d bytes\n",
				c, res.Size, float64(res.Size)/(1<<20), initramfs.KrunfwPaddedSize(res.Size), initramfs.KrunfwInitrdMax, res.InitSize)
		})
	}
}

// timeline is one boot's phase durations and the time from PID 1's start
// to the workload's exec (the "starting" log of the run phase).
func timeline(b *testing.B, boot *harness.Boot) (map[string]float64, float64) {
	ph := map[string]float64{}
	toExec := -1.0
	for _, ev := range boot.Events {
		if ev.Kind == event.KindPhase {
			ph[ev.Phase] = ev.Millis
		}
		if ev.Kind == event.KindLog && ev.Phase == "run" && strings.HasPrefix(ev.Message, "starting ") {
			toExec = ev.SinceStartMillis
		}
	}
	if toExec < 0 {
		b.Fatalf("no workload start event in the boot's events")
	}
	return ph, toExec
}

// BenchmarkMicrovmBoot boots, on QEMU's microvm machine with the krunfw
// kernel, the plain hello image and the sim-attested LUKS2 image in both
// broker dialects (at least 3 boots each), and prints the median of each
// phase, PID 1 → workload start, and the attested/plain ratios.
func BenchmarkMicrovmBoot(b *testing.B) {
	e := harness.SetupKrunfw(b)
	n := max(b.N, 3)
	kinds := []string{"plain", "krun", "trustee"}
	phases := map[string]map[string][]float64{}
	toExec := map[string][]float64{}
	var order []string
	for _, kind := range kinds {
		phases[kind] = map[string][]float64{}
		var plainImg *image.Result
		for i := 0; i < n; i++ {
			var boot *harness.Boot
			if kind == "plain" {
				if plainImg == nil {
					var err error
					plainImg, err = image.Build(image.Options{RootfsDir: e.HelloRootfs(b), OutDir: b.TempDir(), Config: plainConfig(),
						Workload: image.Workload{Cmd: []string{"/hello", "0"}}})
					if err != nil {
						b.Fatal(err)
					}
				}
				boot = e.Boot(b, launch.Options{Disk: plainImg.Disk, CPUs: 1, MemoryMiB: 512})
				if boot.Status != 0 {
					b.Fatalf("plain boot %d: status %d (%s)", i, boot.Status, boot.Reason)
				}
			} else {
				boot = attestedBenchBoot(b, e, kind)
			}
			ph, t := timeline(b, boot)
			for p, ms := range ph {
				if !contains(order, p) {
					order = append(order, p)
				}
				phases[kind][p] = append(phases[kind][p], ms)
			}
			toExec[kind] = append(toExec[kind], t)
		}
	}
	for _, k := range kinds {
		b.ReportMetric(median(toExec[k]), k+"-pid1-to-workload-start-ms")
	}
	b.ReportMetric(median(toExec["krun"])/median(toExec["plain"]), "krun/plain")
	b.ReportMetric(median(toExec["trustee"])/median(toExec["plain"]), "trustee/plain")
	fmt.Fprintf(os.Stderr, "microvm + krunfw kernel, medians over %d boots each (ms):\n  %-10s %9s %9s %9s\n", n, "phase", "plain", "krun", "trustee")
	for _, p := range phaseOrder(order) {
		fmt.Fprintf(os.Stderr, "  %-10s %9s %9s %9s\n", p, cell(phases["plain"][p]), cell(phases["krun"][p]), cell(phases["trustee"][p]))
	}
	fmt.Fprintf(os.Stderr, "  %-10s %9.1f %9.1f %9.1f\n  ratios: krun/plain %.2f, trustee/plain %.2f\n", "pid1→exec",
		median(toExec["plain"]), median(toExec["krun"]), median(toExec["trustee"]),
		median(toExec["krun"])/median(toExec["plain"]), median(toExec["trustee"])/median(toExec["plain"]))
}

// phaseOrder is the init's phase order for the phases seen.
func phaseOrder(seen []string) []string {
	var out []string
	for _, p := range []string{"mounts", "modules", "hostchan", "disk", "config", "payload", "network", "attest", "unlock", "mount", "switchroot", "workload", "run"} {
		if contains(seen, p) {
			out = append(out, p)
		}
	}
	for _, p := range seen {
		if !contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func cell(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", median(xs))
}

// BenchmarkMicrovmMinRAM finds the smallest ram_mib, in 16 MiB steps down
// from 128 MiB (crun's minimum, which must boot), at which a sim-attested
// LUKS2 image with a machine-generated key boots on microvm with the krunfw
// kernel.
func BenchmarkMicrovmMinRAM(b *testing.B) {
	e := harness.SetupKrunfw(b)
	smallest := 0
	for ram := 128; ram >= 64; ram -= 16 {
		id := fmt.Sprintf("ram-%d", ram)
		img, pass := encryptedImage(b, e, id, attestedCase{dialect: "krun"})
		br := harness.StartBroker(b, b.TempDir(), "", "--trust-sim-root", e.SimDir(b))
		o := simLaunch(b, e, img, br.Addr, 0)
		o.MemoryMiB = ram
		m := launchMeasurement(b, e, o)
		o.Sim.(*sim.Server).Measurement = m
		register(b, br, id, img, m, pass)
		boot := e.Boot(b, o)
		br.Stop()
		ok := boot.Status == 5
		fmt.Fprintf(os.Stderr, "microvm sim-attested LUKS2 at %d MiB: status %d %s\n", ram, boot.Status, map[bool]string{true: "(booted)", false: "(" + boot.Reason + ")"}[ok])
		if !ok {
			if ram == 128 {
				b.Fatalf("a sim-attested LUKS2 boot failed at 128 MiB: status %d (%s)", boot.Status, boot.Reason)
			}
			break
		}
		smallest = ram
	}
	b.ReportMetric(float64(smallest), "min-ram-mib")
}
