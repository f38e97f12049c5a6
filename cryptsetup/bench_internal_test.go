package cryptsetup

import (
	"fmt"
	"testing"
)

// BenchmarkXTS is the raw AES-XTS speed of one core (x/crypto/xts over
// crypto/aes), without I/O, per dm-crypt sector size.
func BenchmarkXTS(b *testing.B) {
	sc, err := newSectorCipher(cipherSpec{"aes", "xts", "plain64"}, make([]byte, 64))
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	for _, ss := range []int{512, 4096} {
		b.Run(fmt.Sprintf("sector=%d", ss), func(b *testing.B) {
			b.SetBytes(int64(len(buf)))
			for b.Loop() {
				sc.encrypt(buf, 0, ss)
			}
		})
	}
}

// BenchmarkPBKDF2 is the PBKDF2-HMAC speed behind LUKS keyslots and
// digests (iterations per second = 1e9 / ns/op * 100000).
func BenchmarkPBKDF2(b *testing.B) {
	for _, hn := range []string{"sha256", "sha512"} {
		h, _ := hashByName(hn)
		b.Run(hn+"/100k", func(b *testing.B) {
			for b.Loop() {
				pbkdf2Key(h, []byte("passphrase"), make([]byte, 32), 100000, 32)
			}
		})
	}
}
