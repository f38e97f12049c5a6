package cryptsetup

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"runtime"
)

// PassphraseBytes is the entropy of a generated passphrase.
const PassphraseBytes = 32

// GeneratePassphrase returns a new machine passphrase: 32 random bytes as
// 64 lowercase hex characters, the form buildah uses for confidential
// workload disks. Its 256 bits of entropy are why FormatOptions may give a
// generated passphrase the minimal KDF. The caller wipes it with Wipe.
func GeneratePassphrase() ([]byte, error) {
	var raw [PassphraseBytes]byte
	defer wipe(raw[:])
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, fmt.Errorf("reading random bytes for a passphrase: %w", err)
	}
	out := make([]byte, hex.EncodedLen(len(raw)))
	hex.Encode(out, raw[:])
	return out, nil
}

// Wipe overwrites b with zeros. Use it on passphrases and keys once they are
// no longer needed. It cannot reach copies the Go runtime made behind the
// program's back (see the package documentation).
func Wipe(b []byte) { wipe(b) }

func wipe(b []byte) {
	clear(b)
	// Keep the cleared slice alive past the stores so the compiler cannot
	// treat them as dead.
	runtime.KeepAlive(b)
}
