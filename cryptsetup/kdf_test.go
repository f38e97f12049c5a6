package cryptsetup

import (
	"bytes"
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// RFC 6070 PBKDF2-HMAC-SHA1 vectors, plus a long password (hashed first by
// HMAC) checked against crypto/pbkdf2 for every LUKS hash below.
func TestPBKDF2Vectors(t *testing.T) {
	sha1, _ := hashByName("sha1")
	for _, tc := range []struct {
		pass, salt string
		iter, n    int
		want       string
	}{
		{"password", "salt", 1, 20, "0c60c80f961f0e71f3a9b524af6012062fe037a6"},
		{"password", "salt", 2, 20, "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957"},
		{"password", "salt", 4096, 20, "4b007901b765489abead49d926f721d065a429c1"},
		{"passwordPASSWORDpassword", "saltSALTsaltSALTsaltSALTsaltSALTsalt", 4096, 25, "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038"},
		{"pass\x00word", "sa\x00lt", 4096, 16, "56fa6aa75548099dcc37d7f03425e0c3"},
	} {
		got := hex.EncodeToString(pbkdf2Key(sha1, []byte(tc.pass), []byte(tc.salt), tc.iter, tc.n))
		if got != tc.want {
			t.Errorf("PBKDF2-SHA1(%q, %q, %d) = %s, want %s", tc.pass, tc.salt, tc.iter, got, tc.want)
		}
	}
}

func TestPBKDF2MatchesStdlib(t *testing.T) {
	long := strings.Repeat("a long passphrase beyond one hash block ", 8)
	for _, name := range []string{"sha1", "sha224", "sha256", "sha384", "sha512", "sha3-256", "sha3-512", "ripemd160", "whirlpool", "blake2b-256", "blake2b-512", "blake2s-256"} {
		h, err := hashByName(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, pass := range []string{"", "short", long} {
			for _, n := range []int{20, 64, 100} {
				got := pbkdf2Key(h, []byte(pass), []byte("NaCl salt"), 3, n)
				want, err := pbkdf2.Key(h, pass, []byte("NaCl salt"), 3, n)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s pass len %d keyLen %d: mismatch", name, len(pass), n)
				}
			}
		}
	}
}

func TestHashByNameUnsupported(t *testing.T) {
	for _, n := range []string{"stribog256", "sm3", "", "md5"} {
		if _, err := hashByName(n); !errors.Is(err, ErrUnsupported) {
			t.Errorf("hashByName(%q) = %v, want ErrUnsupported", n, err)
		}
	}
}

func TestKDFDerive(t *testing.T) {
	salt := []byte("0123456789abcdef0123456789abcdef")
	pass := []byte("passphrase")
	for _, tc := range []struct {
		k    KDF
		want []byte
	}{
		{KDF{Type: KDFArgon2i, Time: 4, MemoryKiB: 64, Parallel: 1, salt: salt}, argon2.Key(pass, salt, 4, 64, 1, 32)},
		{KDF{Type: KDFArgon2id, Time: 4, MemoryKiB: 64, Parallel: 2, salt: salt}, argon2.IDKey(pass, salt, 4, 64, 2, 32)},
	} {
		got, err := tc.k.derive(context.Background(), pass, 32)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: got %x, %v", tc.k, got, err)
		}
	}
	if _, err := (KDF{Type: "scrypt", salt: salt}).derive(context.Background(), pass, 32); !errors.Is(err, ErrUnsupported) {
		t.Errorf("scrypt: %v, want ErrUnsupported", err)
	}
}

func TestKDFValidate(t *testing.T) {
	s := []byte("salt")
	for _, tc := range []struct {
		k        KDF
		read, fm bool // valid when read from a header / when formatting
	}{
		{KDF{Type: KDFPBKDF2, Hash: "sha256", Iterations: 1000, salt: s}, true, true},
		{KDF{Type: KDFPBKDF2, Hash: "sha256", Iterations: 999, salt: s}, true, false},
		{KDF{Type: KDFPBKDF2, Hash: "sha256", Iterations: 0, salt: s}, false, false},
		{KDF{Type: KDFPBKDF2, Hash: "sha256", Iterations: 1 << 26, salt: s}, true, true},
		{KDF{Type: KDFPBKDF2, Hash: "sha256", Iterations: 1<<26 + 1, salt: s}, false, false},
		{KDF{Type: KDFArgon2id, Time: 4096, MemoryKiB: 65536, Parallel: 1, salt: s}, true, true},
		{KDF{Type: KDFArgon2id, Time: 4097, MemoryKiB: 65536, Parallel: 1, salt: s}, false, false},
		{KDF{Type: KDFPBKDF2, Hash: "md5", Iterations: 1000, salt: s}, false, false},
		{KDF{Type: KDFArgon2id, Time: 4, MemoryKiB: 32, Parallel: 1, salt: s}, true, true},
		{KDF{Type: KDFArgon2id, Time: 1, MemoryKiB: 65536, Parallel: 1, salt: s}, true, false},
		{KDF{Type: KDFArgon2id, Time: 4, MemoryKiB: 65536, Parallel: 5, salt: s}, true, false},
		{KDF{Type: KDFArgon2id, Time: 16, MemoryKiB: 65536, Parallel: 16, salt: s}, true, false}, // luksy's lanes
		{KDF{Type: KDFArgon2id, Time: 4, MemoryKiB: 4096, Parallel: 255, salt: s}, true, false},
		{KDF{Type: KDFArgon2id, Time: 4, MemoryKiB: 4096, Parallel: 256, salt: s}, false, false},
		{KDF{Type: KDFArgon2i, Time: 4, MemoryKiB: 4096, Parallel: 0, salt: s}, false, false},
		{KDF{Type: KDFArgon2i, Time: 4, MemoryKiB: 16, Parallel: 4, salt: s}, false, false},
		{KDF{Type: KDFArgon2i, Time: 4, MemoryKiB: MaxArgon2MemoryKiB + 1, Parallel: 1, salt: s}, false, false},
		{KDF{Type: KDFArgon2i, Time: 4, MemoryKiB: 64, Parallel: 1}, false, true}, // no salt
		{KDF{Type: "bcrypt", salt: s}, false, false},
	} {
		if err := tc.k.validateRead(); (err == nil) != tc.read {
			t.Errorf("%v validateRead = %v, want ok=%v", tc.k, err, tc.read)
		}
		if err := tc.k.validateFormat(); (err == nil) != tc.fm {
			t.Errorf("%v validateFormat = %v, want ok=%v", tc.k, err, tc.fm)
		}
	}
}

func TestAFRoundTrip(t *testing.T) {
	for _, hn := range []string{"sha1", "sha256", "sha512"} {
		h, _ := hashByName(hn)
		for _, n := range []int{16, 32, 48, 64} {
			key := make([]byte, n)
			rand.Read(key)
			split, err := afSplit(h, key, 4000, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			got, err := afMerge(h, split, n, 4000)
			if err != nil || !bytes.Equal(got, key) {
				t.Fatalf("%s/%d: merge(split(key)) != key (%v)", hn, n, err)
			}
			split[len(split)/2] ^= 1
			if got, _ := afMerge(h, split, n, 4000); bytes.Equal(got, key) {
				t.Fatalf("%s/%d: a flipped bit in stripe material still gives the key", hn, n)
			}
		}
	}
	h, _ := hashByName("sha256")
	if _, err := afMerge(h, make([]byte, 100), 64, 4000); !errors.Is(err, ErrCorruptKeyslot) {
		t.Fatalf("short material: %v", err)
	}
}

func TestParseCipher(t *testing.T) {
	for _, tc := range []struct {
		spec string
		ok   bool
	}{
		{"aes-xts-plain64", true},
		{"aes-xts-plain", true},
		{"aes-cbc-essiv:sha256", false},
		{"serpent-xts-plain64", false},
		{"aes-xts-essiv:sha256", false},
		{"capi:xts(aes)-plain64", false},
		{"aes", false},
		{"cipher_null-ecb", false},
	} {
		_, err := parseCipher(tc.spec)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrUnsupportedCipher)) {
			t.Errorf("parseCipher(%q) = %v, want ok=%v", tc.spec, err, tc.ok)
		}
		mods, err := KernelModules(tc.spec)
		if tc.ok && (err != nil || strings.Join(mods, ",") != "dm-mod,dm-crypt,xts,ecb") {
			t.Errorf("KernelModules(%q) = %v, %v", tc.spec, mods, err)
		}
		if !tc.ok && !errors.Is(err, ErrUnsupportedCipher) {
			t.Errorf("KernelModules(%q) error = %v", tc.spec, err)
		}
	}
	c, _ := parseCipher("aes-xts-plain64")
	if _, err := newSectorCipher(c, make([]byte, 40)); !errors.Is(err, ErrUnsupportedCipher) {
		t.Errorf("40-byte XTS key: %v", err)
	}
}

// The IV counts 512-byte sectors whatever the encryption sector size, and
// plain truncates it to 32 bits.
func TestSectorCipherIV(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 64)
	p64, _ := newSectorCipher(cipherSpec{"aes", "xts", "plain64"}, key)
	p32, _ := newSectorCipher(cipherSpec{"aes", "xts", "plain"}, key)
	data := bytes.Repeat([]byte("sealroot"), 1024) // 8 KiB
	a := append([]byte(nil), data...)
	p64.encrypt(a, 10, 4096)
	b := append([]byte(nil), data[4096:]...)
	p64.encrypt(b, 18, 4096) // second 4K sector has IV 10+8
	if !bytes.Equal(a[4096:], b) {
		t.Fatal("second 4096-byte sector is not encrypted with IV first+8")
	}
	c := append([]byte(nil), data[:512]...)
	d := append([]byte(nil), data[:512]...)
	p64.encrypt(c, 5, 512)
	p32.encrypt(d, 1<<32+5, 512)
	if !bytes.Equal(c, d) {
		t.Fatal("plain IV does not truncate to 32 bits")
	}
	p64.decrypt(a, 10, 4096)
	if !bytes.Equal(a, data) {
		t.Fatal("decrypt(encrypt(x)) != x")
	}
}

func TestParseMemAvailable(t *testing.T) {
	in := "MemTotal:        1004044 kB\nMemFree:          512000 kB\nMemAvailable:     491520 kB\n"
	if n, err := parseMemAvailable(strings.NewReader(in)); err != nil || n != 491520 {
		t.Fatalf("parse = %d, %v", n, err)
	}
	for _, bad := range []string{"MemTotal: 1 kB\n", "MemAvailable: x kB\n", "MemAvailable: 5 MB\n"} {
		if _, err := parseMemAvailable(strings.NewReader(bad)); err == nil {
			t.Errorf("parse(%q) succeeded", bad)
		}
	}
}

func TestGeneratePassphrase(t *testing.T) {
	a, err := GeneratePassphrase()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GeneratePassphrase()
	if len(a) != 64 || bytes.Equal(a, b) || strings.Trim(string(a), "0123456789abcdef") != "" {
		t.Fatalf("passphrase of %d bytes, distinct=%v, lowercase hex=%v", len(a), !bytes.Equal(a, b), strings.Trim(string(a), "0123456789abcdef") == "")
	}
	Wipe(a)
	if !bytes.Equal(a, make([]byte, 64)) {
		t.Fatal("Wipe left bytes behind")
	}
}
