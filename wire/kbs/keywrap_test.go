package kbs

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"

	josecipher "github.com/go-jose/go-jose/v4/cipher"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyWrapRFC3394 runs the six worked examples of RFC 3394 §4 both ways,
// and checks that any flipped bit of a wrapped key fails the integrity check.
func TestKeyWrapRFC3394(t *testing.T) {
	const (
		kek128 = "000102030405060708090A0B0C0D0E0F"
		kek192 = kek128 + "1011121314151617"
		kek256 = kek192 + "18191A1B1C1D1E1F"
		key128 = "00112233445566778899AABBCCDDEEFF"
		key192 = key128 + "0001020304050607"
		key256 = key128 + "000102030405060708090A0B0C0D0E0F"
	)
	for _, v := range []struct{ name, kek, key, wrapped string }{
		{"4.1", kek128, key128, "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"},
		{"4.2", kek192, key128, "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"},
		{"4.3", kek256, key128, "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"},
		{"4.4", kek192, key192, "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2"},
		{"4.5", kek256, key192, "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1"},
		{"4.6", kek256, key256, "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B FB988B9B7A02DD21"},
	} {
		kek, key, want := unhex(t, v.kek), unhex(t, v.key), unhex(t, v.wrapped)
		got, err := wrapKey(kek, key)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: wrap = %X, %v; want %X", v.name, got, err, want)
		}
		back, err := unwrapKey(kek, want)
		if err != nil || !bytes.Equal(back, key) {
			t.Errorf("%s: unwrap = %X, %v", v.name, back, err)
		}
		for bit := 0; bit < len(want)*8; bit += 7 {
			bad := bytes.Clone(want)
			bad[bit/8] ^= 1 << (bit % 8)
			if _, err := unwrapKey(kek, bad); !errors.Is(err, errKeyUnwrap) {
				t.Fatalf("%s: bit %d flipped: %v", v.name, bit, err)
			}
		}
	}
	for _, n := range []int{0, 8, 15, 17} {
		if _, err := wrapKey(unhex(t, kek128), make([]byte, n)); err == nil {
			t.Errorf("wrapping %d bytes accepted", n)
		}
	}
	for _, n := range []int{0, 16, 23, 25} {
		if _, err := unwrapKey(unhex(t, kek128), make([]byte, n)); err == nil || errors.Is(err, errKeyUnwrap) {
			t.Errorf("unwrapping %d bytes: %v, want a length error", n, err)
		}
	}
	if _, err := wrapKey(make([]byte, 17), make([]byte, 16)); err == nil {
		t.Error("a 17-byte KEK accepted")
	}
}

// TestConcatKDFRFC7518 derives the key of RFC 7518 Appendix C (ECDH-ES
// with A128GCM, PartyUInfo "Alice", PartyVInfo "Bob") from the example's
// two P-256 private keys.
func TestConcatKDFRFC7518(t *testing.T) {
	alice, err := ecdh.P256().NewPrivateKey(mustB64(t, "0_NxaRPUMQoAJt50Gz8YiTr8gRTwyEaCumd-MToTmIo"))
	if err != nil {
		t.Fatal(err)
	}
	bob, err := ecdh.P256().NewPrivateKey(mustB64(t, "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw"))
	if err != nil {
		t.Fatal(err)
	}
	// The example's public keys, to be sure the private ones were read right.
	wantAlice := append(append([]byte{4}, mustB64(t, "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0")...), mustB64(t, "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps")...)
	wantBob := append(append([]byte{4}, mustB64(t, "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ")...), mustB64(t, "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck")...)
	if !bytes.Equal(alice.PublicKey().Bytes(), wantAlice) || !bytes.Equal(bob.PublicKey().Bytes(), wantBob) {
		t.Fatal("the example's public keys do not match its private keys")
	}
	z, err := bob.ECDH(alice.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	got := concatKDF(z, "A128GCM", []byte("Alice"), []byte("Bob"), 16)
	if want := mustB64(t, "VqqN6vgjbSBcIijNcacQGg"); !bytes.Equal(got, want) {
		t.Fatalf("derived key %X, want %X", got, want)
	}
}

// joseConcatKDF is go-jose's Concat KDF with the same inputs as concatKDF.
func joseConcatKDF(t testing.TB, z []byte, alg string, u, v []byte, keyLen int) []byte {
	t.Helper()
	prefixed := func(b []byte) []byte {
		return append([]byte{byte(len(b) >> 24), byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}, b...)
	}
	bits := keyLen * 8
	supPub := []byte{byte(bits >> 24), byte(bits >> 16), byte(bits >> 8), byte(bits)}
	r := josecipher.NewConcatKDF(crypto.SHA256, z, prefixed([]byte(alg)), prefixed(u), prefixed(v), supPub, nil)
	out := make([]byte, keyLen)
	if _, err := io.ReadFull(r, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKeyWrapMatchesGoJose: random KEKs, keys and KDF inputs give what
// go-jose gives (key lengths that need one, two and three hash rounds).
func TestKeyWrapMatchesGoJose(t *testing.T) {
	for i := range 200 {
		kek := make([]byte, []int{16, 24, 32}[i%3])
		key := make([]byte, 16+8*(i%5))
		z := make([]byte, 32+i%35)
		rand.Read(kek)
		rand.Read(key)
		rand.Read(z)
		block, err := aes.NewCipher(kek)
		if err != nil {
			t.Fatal(err)
		}
		want, err := josecipher.KeyWrap(block, key)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := wrapKey(kek, key); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("wrap differs from go-jose for a %d-byte KEK and %d-byte key", len(kek), len(key))
		}
		keyLen := []int{16, 32, 33, 64, 80}[i%5]
		u, v := z[:i%4], z[:i%3]
		if got, want := concatKDF(z, "ECDH-ES+A256KW", u, v, keyLen), joseConcatKDF(t, z, "ECDH-ES+A256KW", u, v, keyLen); !bytes.Equal(got, want) {
			t.Fatalf("concat kdf differs from go-jose for %d bytes", keyLen)
		}
	}
}

// FuzzUnwrapKey: untrusted wrapped keys under a fixed or fuzzed KEK either
// fail or unwrap to a key that wraps back to the same bytes, and go-jose
// agrees on which.
func FuzzUnwrapKey(f *testing.F) {
	kek := unhex(f, "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
	f.Add(kek, unhex(f, "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"))
	f.Add(kek[:16], unhex(f, "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"))
	f.Add(kek[:16], make([]byte, 24))
	f.Fuzz(func(t *testing.T, kek, wrapped []byte) {
		got, err := unwrapKey(kek, wrapped)
		block, kerr := aes.NewCipher(kek)
		if kerr != nil {
			if err == nil {
				t.Fatalf("a %d-byte KEK accepted", len(kek))
			}
			return
		}
		if len(wrapped) >= 24 && len(wrapped)%8 == 0 {
			want, jerr := josecipher.KeyUnwrap(block, wrapped)
			if (err == nil) != (jerr == nil) || !bytes.Equal(got, want) {
				t.Fatalf("unwrap = %v, go-jose %v", err, jerr)
			}
		}
		if err != nil {
			return
		}
		again, err := wrapKey(kek, got)
		if err != nil || !bytes.Equal(again, wrapped) {
			t.Fatalf("rewrap = %v", err)
		}
	})
}
