package image

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/wire/diskconfig"
)

// BenchmarkBuild1GiB builds an encrypted (LUKS2) image from a 1 GiB rootfs
// of incompressible files, without and with a verity tree, and reports the
// throughput over the rootfs size.
// Run: go test -run '^$' -bench Build1GiB -benchtime 1x ./host/image/
func BenchmarkBuild1GiB(b *testing.B) {
	if testing.Short() {
		b.Skip("1 GiB benchmark")
	}
	rootfs := filepath.Join(b.TempDir(), "rootfs")
	const files, size = 64, 16 << 20
	buf := make([]byte, size)
	for i := 0; i < files; i++ {
		rand.Read(buf)
		dir := filepath.Join(rootfs, fmt.Sprintf("d%02d", i%8))
		os.MkdirAll(dir, 0o755)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	pass, _ := cryptsetup.GeneratePassphrase()
	fo := cryptsetup.FormatOptions{GeneratedPassphrase: true, GuestRAMMiB: 512, GuestCPUs: 1}
	enc := func(dst *os.File, src io.Reader, n int64, p []byte) (int64, error) {
		return cryptsetup.FormatLUKS2(dst, src, n, p, fo)
	}
	for _, integrity := range []string{"none", "verity"} {
		b.Run("luks2+"+integrity, func(b *testing.B) {
			b.SetBytes(files * size)
			for i := 0; i < b.N; i++ {
				out := b.TempDir()
				res, err := Build(Options{RootfsDir: rootfs, OutDir: out, Encrypt: enc, Passphrase: pass, Integrity: integrity,
					Config: diskconfig.Config{TEE: "sim", WorkloadID: "bench", CPUs: 1, RAMMiB: 512, AttestationURL: "http://10.0.2.100:8000"}})
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(res.Size)/(1<<20), "image-MiB")
				os.RemoveAll(out)
			}
		})
	}
}
