package cryptsetup_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/cryptsetup"
)

// pattern is a plaintext source that costs nothing to produce.
type pattern struct{ n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.n>>9) ^ byte(i)
	}
	p.n += int64(len(b))
	return len(b), nil
}

// BenchmarkFormat measures end-to-end format throughput (MB/s in the
// output) for a 64 MiB payload written to a file, with one encryption
// worker and with one per CPU:
//
//	go test -run '^$' -bench Format -benchtime 3x ./cryptsetup/
func BenchmarkFormat(b *testing.B) {
	const size = 64 << 20
	for _, version := range []int{1, 2} {
		for _, w := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("luks%d/workers=%d", version, w), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "bench.img")
				o := cryptsetup.FormatOptions{GeneratedPassphrase: true, Workers: w}
				b.SetBytes(size)
				for b.Loop() {
					f, err := os.Create(path)
					if err != nil {
						b.Fatal(err)
					}
					if version == 1 {
						_, err = cryptsetup.FormatLUKS1(f, io.LimitReader(&pattern{}, size), size, testPass, o)
					} else {
						_, err = cryptsetup.FormatLUKS2(f, io.LimitReader(&pattern{}, size), size, testPass, o)
					}
					f.Close()
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkUnlockVsCryptsetup times the key derivation and unseal of our
// code (Open + unseal, no device-mapper) against `cryptsetup open
// --test-passphrase` (which does the same work plus process start-up) on
// the same header, and reports both in milliseconds and their ratio:
//
//	go test -run '^$' -bench UnlockVsCryptsetup -benchtime 3x ./cryptsetup/
func BenchmarkUnlockVsCryptsetup(b *testing.B) {
	cs := cryptsetupPath(b)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"luks1-pbkdf2-sha256-1M", []string{"--type", "luks1", "--hash", "sha256", "--pbkdf-force-iterations", "1000000"}},
		{"pbkdf2-sha256-1M", []string{"--pbkdf", "pbkdf2", "--hash", "sha256", "--pbkdf-force-iterations", "1000000"}},
		{"pbkdf2-sha512-1M", []string{"--pbkdf", "pbkdf2", "--hash", "sha512", "--pbkdf-force-iterations", "1000000"}},
		{"argon2id-t4-m64M-p1", []string{"--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "65536", "--pbkdf-parallel", "1"}},
		{"argon2id-t4-m256M-p2", []string{"--pbkdf", "argon2id", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "262144", "--pbkdf-parallel", "2"}},
		{"argon2i-t4-m64M-p1", []string{"--pbkdf", "argon2i", "--pbkdf-force-iterations", "4", "--pbkdf-memory", "65536", "--pbkdf-parallel", "1"}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			dir := b.TempDir()
			img, kf := filepath.Join(dir, "h.img"), filepath.Join(dir, "key")
			os.WriteFile(kf, testPass, 0o600)
			f, _ := os.Create(img)
			f.Truncate(4 << 20)
			f.Close()
			args := append(append([]string{"luksFormat", "-q", "--key-file", kf}, tc.args...), img)
			if tc.args[0] != "--type" {
				args = append([]string{"luksFormat", "-q", "--type", "luks2", "--key-file", kf}, append(tc.args, img)...)
			}
			if out, err := exec.Command(cs, args...).CombinedOutput(); err != nil {
				b.Fatalf("cryptsetup %s: %v: %s", strings.Join(args, " "), err, out)
			}
			var ours, theirs time.Duration
			n := 0
			for b.Loop() {
				t0 := time.Now()
				v, err := cryptsetup.Open(img)
				if err != nil {
					b.Fatal(err)
				}
				key, _, err := cryptsetup.UnsealForTest(v, testPass, nil)
				v.Close()
				if err != nil {
					b.Fatal(err)
				}
				cryptsetup.Wipe(key)
				t1 := time.Now()
				if out, err := exec.Command(cs, "open", "--test-passphrase", "--key-file", kf, img).CombinedOutput(); err != nil {
					b.Fatalf("cryptsetup open --test-passphrase: %v: %s", err, out)
				}
				ours += t1.Sub(t0)
				theirs += time.Since(t1)
				n++
			}
			ms := func(d time.Duration) float64 { return float64(d) / float64(n) / 1e6 }
			b.ReportMetric(ms(ours), "sealroot-ms")
			b.ReportMetric(ms(theirs), "cryptsetup-ms")
			b.ReportMetric(float64(ours)/float64(theirs), "ratio")
		})
	}
}
