package cryptsetup

import (
	"crypto/aes"
	"fmt"
	"strings"

	"golang.org/x/crypto/xts"
)

// sealroot supports the cipher every LUKS tool defaults to and every
// confidential-VM kernel carries: AES in XTS mode with the plain64 IV (or
// its 32-bit ancestor plain), with 256-, 384- or 512-bit XTS keys. That is
// what buildah, luksy and `cryptsetup luksFormat` write unless told
// otherwise. Anything else (cbc-essiv, serpent, twofish, adiantum, AEAD
// integrity modes, the kernel "capi:" syntax) is refused with
// ErrUnsupportedCipher before any key derivation is spent on it.

// cipherSpec is a parsed dm-crypt cipher specification.
type cipherSpec struct {
	cipher, mode, iv string
}

func (c cipherSpec) String() string { return c.cipher + "-" + c.mode + "-" + c.iv }

// parseCipher checks a "cipher-mode-iv" specification (LUKS2 form, or
// LUKS1 name and mode joined with "-").
func parseCipher(spec string) (cipherSpec, error) {
	parts := strings.SplitN(spec, "-", 3)
	if len(parts) != 3 {
		return cipherSpec{}, fmt.Errorf("%w: %q is not of the form cipher-mode-iv; sealroot supports aes-xts-plain64", ErrUnsupportedCipher, spec)
	}
	c := cipherSpec{parts[0], parts[1], parts[2]}
	if c.cipher != "aes" || c.mode != "xts" || (c.iv != "plain64" && c.iv != "plain") {
		return c, fmt.Errorf("%w: %s (sealroot supports aes-xts-plain64 and aes-xts-plain; re-encrypt the volume with `cryptsetup reencrypt --cipher aes-xts-plain64`)", ErrUnsupportedCipher, spec)
	}
	return c, nil
}

// checkKeySize checks an XTS key length in bytes (two AES keys).
func (c cipherSpec) checkKeySize(n int) error {
	switch n {
	case 32, 48, 64:
		return nil
	}
	return fmt.Errorf("%w: %s with a %d-bit key (want 256, 384 or 512 bits)", ErrUnsupportedCipher, c, n*8)
}

// sectorCipher encrypts and decrypts sectors the way dm-crypt does for one
// cipher spec and key.
type sectorCipher struct {
	x     *xts.Cipher
	plain bool // 32-bit IV
}

func newSectorCipher(c cipherSpec, key []byte) (*sectorCipher, error) {
	if err := c.checkKeySize(len(key)); err != nil {
		return nil, err
	}
	x, err := xts.NewCipher(aes.NewCipher, key)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnsupportedCipher, c, err)
	}
	return &sectorCipher{x: x, plain: c.iv == "plain"}, nil
}

// iv turns a 512-byte sector number into the XTS tweak.
func (s *sectorCipher) iv(n uint64) uint64 {
	if s.plain {
		return uint64(uint32(n))
	}
	return n
}

// decrypt decrypts buf in place as consecutive sectors of sectorSize bytes,
// the first one at 512-byte sector number first. dm-crypt counts IVs in
// 512-byte units whatever the sector size (LUKS2 never sets
// iv_large_sectors), so each sector advances the IV by sectorSize/512.
func (s *sectorCipher) decrypt(buf []byte, first uint64, sectorSize int) {
	step := uint64(sectorSize / 512)
	for off := 0; off+sectorSize <= len(buf); off += sectorSize {
		b := buf[off : off+sectorSize]
		s.x.Decrypt(b, b, s.iv(first))
		first += step
	}
}

// encrypt is decrypt's inverse.
func (s *sectorCipher) encrypt(buf []byte, first uint64, sectorSize int) {
	step := uint64(sectorSize / 512)
	for off := 0; off+sectorSize <= len(buf); off += sectorSize {
		b := buf[off : off+sectorSize]
		s.x.Encrypt(b, b, s.iv(first))
		first += step
	}
}

// KernelModules returns the kernel modules, by .ko file name without the
// extension, that dm-crypt needs for a cipher spec, in load order after
// dm-mod. aes-xts-plain64 resolves to xts(ecb(aes)) in the kernel crypto
// API, and xts.ko only declares ecb as a soft dependency, so an initrd
// without modprobe has to load ecb itself. AES and the SHA hashes are built
// into distribution kernels and are not listed. aesni_intel (with
// crypto_simd and cryptd) is an optional speed-up, not a requirement. A
// kernel that has these features built in (modules.builtin) needs none of
// the files.
func KernelModules(spec string) ([]string, error) {
	if _, err := parseCipher(spec); err != nil {
		return nil, err
	}
	return []string{"dm-mod", "dm-crypt", "xts", "ecb"}, nil
}
