// Package kek seals the broker's secrets at rest.
//
// The key-encryption key is 32 random bytes kept in a file (64 hex
// characters, mode 0600) or supplied through the environment. The broker
// creates the file on its first start; replicas sharing one PostgreSQL
// database must be given the same key. Sealing is AES-256-GCM with a random
// nonce and caller-supplied associated data that names what the secret
// belongs to ("passphrase" + workload id, ...): a sealed value copied onto
// another workload's row fails to open, so whoever can write the database
// still cannot move a passphrase from one workload to another.
//
// The same key authenticates what is not secret but must not change behind
// the broker's back (MAC: HMAC-SHA256 under a key derived from the KEK with
// HKDF, bound to context parts such as the workload id), and yields a check
// value that the store keeps so that a start with another key is refused
// before any secret fails to open (CheckValue).
package kek

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Size is the key length in bytes.
const Size = 32

// version prefixes every sealed value so the format can change later.
const version = 1

// Overhead is how much longer a sealed value is than its plaintext: the
// version byte, the GCM nonce and the GCM tag.
const Overhead = 1 + 12 + 16

// KEK seals and opens secrets, and authenticates records that are not
// secret but must not be altered (a workload's policy).
type KEK struct {
	aead   cipher.AEAD
	macKey []byte
}

// New builds a KEK from 32 key bytes.
func New(key []byte) (*KEK, error) {
	if len(key) != Size {
		return nil, fmt.Errorf("key-encryption key is %d bytes, want %d", len(key), Size)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	// The MAC key is derived, so that no key is used for two purposes.
	macKey, err := hkdf.Key(sha256.New, key, nil, "sealroot broker record authentication v1", 32)
	if err != nil {
		return nil, fmt.Errorf("key-encryption key: %w", err)
	}
	return &KEK{aead: aead, macKey: macKey}, nil
}

// Parse decodes a key given as 64 hex characters or as standard base64 of
// 32 bytes (surrounding whitespace ignored). Errors never echo the text.
func Parse(text string) (*KEK, error) {
	s := strings.TrimSpace(text)
	if b, err := hex.DecodeString(s); err == nil && len(b) == Size {
		return New(b)
	}
	if b, err := base64.StdEncoding.DecodeString(s); err == nil && len(b) == Size {
		return New(b)
	}
	return nil, errors.New("key-encryption key must be 64 hex characters or base64 of 32 bytes")
}

// Load reads a key file.
func Load(path string) (*KEK, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key-encryption key: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("key-encryption key %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	k, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// LoadOrCreate reads the key file at path, or creates it with a fresh
// random key (mode 0600, written to a temporary file, fsync'd and renamed)
// when it does not exist. created reports which happened.
func LoadOrCreate(path string) (k *KEK, created bool, err error) {
	k, err = Load(path)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return k, false, err
	}
	key := make([]byte, Size)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("generating key-encryption key: %w", err)
	}
	if err := WriteFileAtomic(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, false, fmt.Errorf("writing key-encryption key: %w", err)
	}
	k, err = New(key)
	clear(key)
	return k, true, err
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory, fsyncs file and directory, and refuses to replace an existing
// file (a concurrent creator wins and its key is kept).
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	// Link fails when path exists, unlike rename.
	return writeSynced(path, data, mode, os.Link)
}

// ReplaceFile writes data to path like WriteFileAtomic, but renames the
// temporary file over an existing path.
func ReplaceFile(path string, data []byte, mode os.FileMode) error {
	return writeSynced(path, data, mode, os.Rename)
}

// writeSynced writes data with mode to a temporary file next to path,
// fsyncs it, puts it at path with place, and fsyncs the directory.
func writeSynced(path string, data []byte, mode os.FileMode, place func(tmp, path string) error) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := place(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Seal encrypts plaintext bound to aad.
func (k *KEK) Seal(plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, k.aead.NonceSize(), 1+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	out := append([]byte{version}, nonce...)
	return k.aead.Seal(out, nonce, plaintext, aad), nil
}

// Open decrypts a sealed value; it fails when the value was sealed under
// another key or another aad, or was altered.
func (k *KEK) Open(sealed, aad []byte) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != version {
		return nil, errors.New("sealed value is malformed")
	}
	pt, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], aad)
	if err != nil {
		return nil, errors.New("sealed value does not open with this key-encryption key (wrong key, or moved between records)")
	}
	return pt, nil
}

// MAC authenticates msg bound to the context parts (HMAC-SHA256 under a
// key derived from the KEK).
func (k *KEK) MAC(msg []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, k.macKey)
	m.Write(AAD(parts...))
	m.Write(msg)
	return m.Sum(nil)
}

// VerifyMAC checks a MAC made by MAC, in constant time.
func (k *KEK) VerifyMAC(mac, msg []byte, parts ...string) bool {
	return hmac.Equal(mac, k.MAC(msg, parts...))
}

// checkPlaintext is what a check value seals.
const checkPlaintext = "sealroot key-encryption key check"

// CheckValue returns a value that only this key opens, bound to id (the
// broker's state id): the store keeps it so that a start with another key
// is refused before any secret fails to open.
func (k *KEK) CheckValue(id string) ([]byte, error) {
	return k.Seal([]byte(checkPlaintext), AAD("kek-check", id))
}

// VerifyCheckValue reports whether v is a check value of this key for id.
func (k *KEK) VerifyCheckValue(v []byte, id string) bool {
	pt, err := k.Open(v, AAD("kek-check", id))
	return err == nil && string(pt) == checkPlaintext
}

// AAD joins context parts unambiguously.
func AAD(parts ...string) []byte {
	var b bytes.Buffer
	for _, p := range parts {
		b.WriteString(p)
		b.WriteByte(0)
	}
	return b.Bytes()
}
