package initramfs

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkInitrdSize builds the real image (the project's ./guest/init, or the
// binary named by SEALROOT_INIT, with the default modules of the Debian
// kernel tree) with each compression and reports its size:
//
//	go test -run XXX -bench InitrdSize -benchtime 1x ./host/initramfs/
func BenchmarkInitrdSize(b *testing.B) {
	modules := realKernelModules(b)
	init := os.Getenv("SEALROOT_INIT")
	if init == "" {
		wd, _ := os.Getwd()
		root, err := FindModuleRoot(wd, DefaultModulePath)
		if err != nil {
			b.Fatal(err)
		}
		if init, err = buildInit(root, b.TempDir()); err != nil {
			b.Skipf("cannot build the real init (set SEALROOT_INIT to a prebuilt one): %v", err)
		}
	}
	for _, method := range Compressions {
		b.Run(method, func(b *testing.B) {
			out := filepath.Join(b.TempDir(), "initrd")
			var res *Result
			for b.Loop() {
				var err error
				if res, err = Build(Options{Output: out, Compression: method, InitBinary: init, KernelModules: modules}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(res.Size), "bytes")
			b.ReportMetric(float64(res.CPIOSize), "cpio-bytes")
			b.ReportMetric(float64(len(res.Modules)), "modules")
		})
	}
}
