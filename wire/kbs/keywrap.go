package kbs

import (
	"crypto/aes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

// The two key-management primitives of ECDH-ES+A256KW (RFC 7518 §4.6),
// written here so that the guest's JWE code needs nothing beyond the
// standard library. Both are small and deterministic; keywrap_test.go checks
// them against the published vectors of RFC 3394 §4 and RFC 7518 Appendix C
// and against go-jose's implementations.

// concatKDF is the single-step key derivation of NIST SP 800-56A
// (§5.8.1) with SHA-256, in the form JWA uses for ECDH-ES: OtherInfo is
// AlgorithmID, PartyUInfo and PartyVInfo, each with a 4-byte big-endian
// length in front, then SuppPubInfo (the key length in bits, 4 bytes big
// endian) and no SuppPrivInfo. Each round hashes a 1-based 4-byte counter,
// the shared secret z and OtherInfo; the rounds are concatenated and cut to
// keyLen bytes.
func concatKDF(z []byte, algorithmID string, partyU, partyV []byte, keyLen int) []byte {
	var other []byte
	for _, part := range [][]byte{[]byte(algorithmID), partyU, partyV} {
		other = binary.BigEndian.AppendUint32(other, uint32(len(part)))
		other = append(other, part...)
	}
	other = binary.BigEndian.AppendUint32(other, uint32(keyLen)*8)
	out := make([]byte, 0, keyLen+sha256.Size)
	for counter := uint32(1); len(out) < keyLen; counter++ {
		h := sha256.New()
		var c [4]byte
		binary.BigEndian.PutUint32(c[:], counter)
		h.Write(c[:])
		h.Write(z)
		h.Write(other)
		out = h.Sum(out)
	}
	clear(out[keyLen:])
	return out[:keyLen]
}

// keyWrapIV is the initial value of RFC 3394 §2.2.3.1; unwrapping
// recovers it exactly when the wrapped key is intact.
var keyWrapIV = [8]byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

// wrapKey is the AES Key Wrap of RFC 3394 §2.2.1 (the index-based form):
// six passes over the 64-bit blocks of key, each step encrypting the
// integrity register A with one block and folding the step number t into
// A. key must be at least 16 bytes and a multiple of 8; kek is an AES key.
func wrapKey(kek, key []byte) ([]byte, error) {
	if len(key) < 16 || len(key)%8 != 0 {
		return nil, fmt.Errorf("key wrap: a %d-byte key is not a multiple of 8 bytes of at least 16", len(key))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("key wrap: %w", err)
	}
	n := len(key) / 8
	out := make([]byte, 8+len(key))
	copy(out[8:], key)
	a := binary.BigEndian.Uint64(keyWrapIV[:])
	var b [16]byte
	for j := range 6 {
		for i := 1; i <= n; i++ {
			r := out[8*i : 8*i+8]
			binary.BigEndian.PutUint64(b[:8], a)
			copy(b[8:], r)
			block.Encrypt(b[:], b[:])
			a = binary.BigEndian.Uint64(b[:8]) ^ uint64(n*j+i)
			copy(r, b[8:])
		}
	}
	binary.BigEndian.PutUint64(out[:8], a)
	clear(b[:])
	return out, nil
}

// errKeyUnwrap is the one error of a failed integrity check; it says
// nothing about the bytes.
var errKeyUnwrap = errors.New("key unwrap: integrity check failed")

// unwrapKey inverts wrapKey (RFC 3394 §2.2.2) and checks the recovered
// initial value in constant time. wrapped is untrusted.
func unwrapKey(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, fmt.Errorf("key unwrap: %d bytes is not a multiple of 8 bytes of at least 24", len(wrapped))
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("key unwrap: %w", err)
	}
	n := len(wrapped)/8 - 1
	out := make([]byte, len(wrapped)-8)
	copy(out, wrapped[8:])
	a := binary.BigEndian.Uint64(wrapped[:8])
	var b [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			r := out[8*(i-1) : 8*i]
			binary.BigEndian.PutUint64(b[:8], a^uint64(n*j+i))
			copy(b[8:], r)
			block.Decrypt(b[:], b[:])
			a = binary.BigEndian.Uint64(b[:8])
			copy(r, b[8:])
		}
	}
	clear(b[:])
	var got [8]byte
	binary.BigEndian.PutUint64(got[:], a)
	if subtle.ConstantTimeCompare(got[:], keyWrapIV[:]) != 1 {
		clear(out)
		return nil, errKeyUnwrap
	}
	return out, nil
}
