package cryptsetup

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestPayloadReader encrypts random plaintext with both formats and reads
// it back through OpenPayload at unaligned offsets and across chunks.
func TestPayloadReader(t *testing.T) {
	plain := make([]byte, 3<<20+8192)
	rand.Read(plain)
	pass := []byte("payload reader test passphrase")
	for name, format := range map[string]func(*os.File, io.Reader, int64, []byte, FormatOptions) (int64, error){"luks1": FormatLUKS1, "luks2": FormatLUKS2} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "disk")
			f, err := os.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := format(f, bytes.NewReader(plain), int64(len(plain)), pass, FormatOptions{KDF: KDFOptions{Type: KDFPBKDF2, Iterations: 1000}}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			v, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			if _, err := v.OpenPayload(context.Background(), []byte("wrong"), UnlockOptions{}); err == nil {
				t.Fatal("a wrong passphrase opened the payload")
			}
			r, err := v.OpenPayload(context.Background(), pass, UnlockOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct{ off, n int64 }{{0, 4096}, {1, 10}, {511, 1027}, {4095, 2 << 20}, {int64(len(plain)) - 5, 5}} {
				got := make([]byte, c.n)
				if _, err := r.ReadAt(got, c.off); err != nil {
					t.Fatalf("ReadAt(%d, %d): %v", c.off, c.n, err)
				}
				if !bytes.Equal(got, plain[c.off:c.off+c.n]) {
					t.Fatalf("ReadAt(%d, %d) differs from the plaintext", c.off, c.n)
				}
			}
			got := make([]byte, 10)
			if n, err := r.ReadAt(got, int64(len(plain))-4); n != 4 || err != io.EOF { //nolint:errorlint // io.ReaderAt returns io.EOF itself
				t.Fatalf("read past the end: %d, %v", n, err)
			}
			r.Close()
			if _, err := r.ReadAt(got, 0); err == nil {
				t.Fatal("a closed reader still reads")
			}
		})
	}
}
