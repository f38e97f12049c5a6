package kbs

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// JWE is a flattened JWE JSON serialization (RFC 7516 §7.2.2) with every
// member base64url without padding. The additional authenticated data is the
// ASCII of Protected.
type JWE struct {
	Protected    string `json:"protected"`
	EncryptedKey string `json:"encrypted_key"`
	IV           string `json:"iv"`
	Ciphertext   string `json:"ciphertext"`
	Tag          string `json:"tag"`
}

// maxJWE bounds a JWE a guest accepts.
const maxJWE = 1 << 20

// EncryptJWE encrypts plaintext to the guest key described by to, with
// A256GCM content encryption and the key management algorithm the key's alg
// names: ECDH-ES+A256KW (Concat KDF over SHA-256, AlgorithmID
// "ECDH-ES+A256KW", empty PartyUInfo and PartyVInfo, the ephemeral key in
// the header's epk) or RSA-OAEP-256.
//
// The protected header is written as compact JSON with alg first, enc
// second and the other members sorted (nested members sorted too), without
// HTML escaping: Trustee's agent re-serializes the header it parsed to
// rebuild the AAD, so any other order would fail its tag check.
func EncryptJWE(to JWK, plaintext []byte) (*JWE, error) {
	pub, err := to.PublicKey()
	if err != nil {
		return nil, err
	}
	cek := make([]byte, 32)
	if _, err := rand.Read(cek); err != nil {
		return nil, fmt.Errorf("jwe: generating content key: %w", err)
	}
	defer clear(cek)

	var alg string
	var encryptedKey []byte
	extra := map[string]any{}
	switch k := pub.(type) {
	case *ecdh.PublicKey:
		alg = AlgECDHESA256KW
		// The ephemeral key is on the guest key's curve (P-256 or
		// P-521); its epk names that curve.
		eph, err := k.Curve().GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("jwe: generating ephemeral key: %w", err)
		}
		kek, err := ecdhKEK(eph, k)
		if err != nil {
			return nil, err
		}
		encryptedKey, err = aesKeyWrap(kek, cek)
		clear(kek)
		if err != nil {
			return nil, err
		}
		epk, err := NewJWK(eph.PublicKey())
		if err != nil {
			return nil, err
		}
		extra["epk"] = map[string]string{"kty": epk.Kty, "crv": epk.Crv, "x": epk.X, "y": epk.Y}
	case *rsa.PublicKey:
		alg = AlgRSAOAEP256
		encryptedKey, err = rsa.EncryptOAEP(sha256.New(), rand.Reader, k, cek, nil)
		if err != nil {
			return nil, fmt.Errorf("jwe: wrapping content key: %w", err)
		}
	default:
		return nil, fmt.Errorf("jwe: unsupported key type %T", pub)
	}

	protected, err := protectedHeader(alg, EncA256GCM, extra)
	if err != nil {
		return nil, err
	}
	prot := b64url.EncodeToString(protected)
	gcm, err := newGCM(cek)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("jwe: generating iv: %w", err)
	}
	sealed := gcm.Seal(nil, iv, plaintext, []byte(prot))
	ct, tag := sealed[:len(sealed)-gcm.Overhead()], sealed[len(sealed)-gcm.Overhead():]
	return &JWE{
		Protected:    prot,
		EncryptedKey: b64url.EncodeToString(encryptedKey),
		IV:           b64url.EncodeToString(iv),
		Ciphertext:   b64url.EncodeToString(ct),
		Tag:          b64url.EncodeToString(tag),
	}, nil
}

// protectedHeader renders {"alg":…,"enc":…,<others sorted>} compactly.
func protectedHeader(alg, enc string, others map[string]any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"alg":`)
	writeJSONString(&b, alg)
	b.WriteString(`,"enc":`)
	writeJSONString(&b, enc)
	keys := make([]string, 0, len(others))
	for k := range others {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		raw, err := json.Marshal(others[k])
		if err != nil {
			return nil, fmt.Errorf("jwe: encoding header member %s: %w", k, err)
		}
		// RFC 8785 (canonicalJSON) sorts nested members and escapes
		// only what JSON requires, which is serde_json's compact form
		// for these values.
		canon, err := canonicalJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("jwe: canonicalizing header member %s: %w", k, err)
		}
		b.WriteByte(',')
		writeJSONString(&b, k)
		b.WriteByte(':')
		b.Write(canon)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)       // a string always encodes
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// ParseJWE decodes a flattened JWE JSON document.
func ParseJWE(body []byte) (*JWE, error) {
	if len(body) > maxJWE {
		return nil, fmt.Errorf("jwe: %d bytes exceeds %d", len(body), maxJWE)
	}
	var j JWE
	if err := unmarshalObject(body, &j); err != nil {
		return nil, fmt.Errorf("jwe: %w", err)
	}
	if j.Protected == "" || j.IV == "" || j.Tag == "" {
		return nil, errors.New("jwe: protected, iv or tag is missing")
	}
	return &j, nil
}

// jweHeader is the part of a protected header a decrypter reads.
type jweHeader struct {
	Alg string `json:"alg"`
	Enc string `json:"enc"`
	EPK *JWK   `json:"epk"`
	Zip string `json:"zip"`
}

// Decrypt opens the JWE with the guest's private key: *ecdh.PrivateKey or
// *ecdsa.PrivateKey (P-256 or P-521) for ECDH-ES+A256KW, *rsa.PrivateKey for
// RSA-OAEP-256. The header's alg must match the key's kind and enc must be
// A256GCM. The AAD is the protected member exactly as received.
func (j *JWE) Decrypt(priv crypto.PrivateKey) ([]byte, error) {
	hdrJSON, err := b64url.DecodeString(j.Protected)
	if err != nil {
		return nil, errors.New("jwe: protected header is not base64url")
	}
	var h jweHeader
	if err := unmarshalObject(hdrJSON, &h); err != nil {
		return nil, fmt.Errorf("jwe: protected header: %w", err)
	}
	if h.Enc != EncA256GCM {
		return nil, fmt.Errorf("jwe: enc %q is not %s", truncate(h.Enc), EncA256GCM)
	}
	if h.Zip != "" {
		return nil, errors.New("jwe: compressed payloads are not accepted")
	}
	encryptedKey, err := b64url.DecodeString(j.EncryptedKey)
	if err != nil {
		return nil, errors.New("jwe: encrypted_key is not base64url")
	}
	iv, err := b64url.DecodeString(j.IV)
	if err != nil || len(iv) != 12 {
		return nil, errors.New("jwe: iv is not 12 bytes of base64url")
	}
	ct, err := b64url.DecodeString(j.Ciphertext)
	if err != nil {
		return nil, errors.New("jwe: ciphertext is not base64url")
	}
	tag, err := b64url.DecodeString(j.Tag)
	if err != nil || len(tag) != 16 {
		return nil, errors.New("jwe: tag is not 16 bytes of base64url")
	}

	var cek []byte
	if ek, ok := priv.(*ecdsa.PrivateKey); ok {
		if priv, err = ek.ECDH(); err != nil {
			return nil, fmt.Errorf("jwe: %w", err)
		}
	}
	switch k := priv.(type) {
	case *ecdh.PrivateKey:
		if h.Alg != AlgECDHESA256KW {
			return nil, fmt.Errorf("jwe: alg %q does not match an EC key", truncate(h.Alg))
		}
		if h.EPK == nil {
			return nil, errors.New("jwe: header has no epk")
		}
		epk, err := h.EPK.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("jwe: epk: %w", err)
		}
		ep, ok := epk.(*ecdh.PublicKey)
		if !ok || ep.Curve() != k.Curve() {
			return nil, errors.New("jwe: epk is not on the key's curve")
		}
		kek, err := ecdhKEK(k, ep)
		if err != nil {
			return nil, err
		}
		cek, err = aesKeyUnwrap(kek, encryptedKey)
		clear(kek)
		if err != nil {
			return nil, err
		}
	case *rsa.PrivateKey:
		if h.Alg != AlgRSAOAEP256 {
			return nil, fmt.Errorf("jwe: alg %q does not match an RSA key", truncate(h.Alg))
		}
		cek, err = rsa.DecryptOAEP(sha256.New(), nil, k, encryptedKey, nil)
		if err != nil {
			return nil, errors.New("jwe: unwrapping content key failed")
		}
	default:
		return nil, fmt.Errorf("jwe: unsupported private key type %T", priv)
	}
	defer clear(cek)
	if len(cek) != 32 {
		return nil, errors.New("jwe: content key is not 32 bytes")
	}
	gcm, err := newGCM(cek)
	if err != nil {
		return nil, err
	}
	pt, err := gcm.Open(nil, iv, append(ct, tag...), []byte(j.Protected))
	if err != nil {
		return nil, errors.New("jwe: authentication failed")
	}
	return pt, nil
}

// ecdhKEK runs ECDH and the Concat KDF of RFC 7518 §4.6.2 for
// ECDH-ES+A256KW with empty PartyUInfo and PartyVInfo.
func ecdhKEK(priv *ecdh.PrivateKey, pub *ecdh.PublicKey) ([]byte, error) {
	z, err := priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("jwe: ecdh: %w", err)
	}
	defer clear(z)
	return concatKDF(z, AlgECDHESA256KW, nil, nil, 32), nil
}

func aesKeyWrap(kek, cek []byte) ([]byte, error) {
	out, err := wrapKey(kek, cek)
	if err != nil {
		return nil, fmt.Errorf("jwe: key wrap: %w", err)
	}
	return out, nil
}

func aesKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) != 40 {
		return nil, fmt.Errorf("jwe: wrapped key is %d bytes, want 40", len(wrapped))
	}
	out, err := unwrapKey(kek, wrapped)
	if err != nil {
		return nil, errors.New("jwe: key unwrap failed")
	}
	return out, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("jwe: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("jwe: %w", err)
	}
	return gcm, nil
}
