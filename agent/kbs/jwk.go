package kbs

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
)

// JWK algorithms and parameters the Trustee dialect uses for the guest key.
const (
	AlgECDHESA256KW = "ECDH-ES+A256KW"
	AlgRSAOAEP256   = "RSA-OAEP-256"
	EncA256GCM      = "A256GCM"
	KtyEC           = "EC"
	KtyRSA          = "RSA"
	CrvP256         = "P-256"
)

// JWK is a public JSON Web Key as the Trustee dialect carries it:
// {"kty":"EC","crv":"P-256","alg":"ECDH-ES+A256KW","x","y"} or
// {"kty":"RSA","alg":"RSA-OAEP-256","n","e"}, base64url without padding.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	Alg string `json:"alg,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
}

var b64url = base64.RawURLEncoding

// NewJWK describes pub: an EC P-256 key (*ecdh.PublicKey or
// *ecdsa.PublicKey) for ECDH-ES+A256KW, or an *rsa.PublicKey for
// RSA-OAEP-256.
func NewJWK(pub crypto.PublicKey) (JWK, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		e, err := k.ECDH()
		if err != nil {
			return JWK{}, fmt.Errorf("jwk: %w", err)
		}
		return NewJWK(e)
	case *ecdh.PublicKey:
		if k.Curve() != ecdh.P256() {
			return JWK{}, errors.New("jwk: only P-256 EC keys are supported")
		}
		raw := k.Bytes() // 0x04 || X || Y
		return JWK{Kty: KtyEC, Crv: CrvP256, Alg: AlgECDHESA256KW,
			X: b64url.EncodeToString(raw[1:33]), Y: b64url.EncodeToString(raw[33:65])}, nil
	case *rsa.PublicKey:
		if _, err := rsaKey(k.N.Bytes(), big.NewInt(int64(k.E)).Bytes()); err != nil {
			return JWK{}, fmt.Errorf("jwk: %w", err)
		}
		return JWK{Kty: KtyRSA, Alg: AlgRSAOAEP256,
			N: b64url.EncodeToString(k.N.Bytes()), E: b64url.EncodeToString(big.NewInt(int64(k.E)).Bytes())}, nil
	}
	return JWK{}, fmt.Errorf("jwk: unsupported key type %T", pub)
}

// PublicKey decodes and checks the key. It returns *ecdh.PublicKey (P-256,
// alg ECDH-ES+A256KW) or *rsa.PublicKey (2048 to 8192 bits, alg
// RSA-OAEP-256). An absent alg takes the kty's default.
func (j JWK) PublicKey() (crypto.PublicKey, error) {
	switch j.Kty {
	case KtyEC:
		if j.Crv != CrvP256 {
			return nil, fmt.Errorf("jwk: curve %q is not P-256", truncate(j.Crv))
		}
		if j.Alg != "" && j.Alg != AlgECDHESA256KW {
			return nil, fmt.Errorf("jwk: alg %q is not %s", truncate(j.Alg), AlgECDHESA256KW)
		}
		x, err := b64url.DecodeString(j.X)
		if err != nil || len(x) != 32 {
			return nil, errors.New("jwk: x is not 32 bytes of base64url")
		}
		y, err := b64url.DecodeString(j.Y)
		if err != nil || len(y) != 32 {
			return nil, errors.New("jwk: y is not 32 bytes of base64url")
		}
		pub, err := ecdh.P256().NewPublicKey(append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, errors.New("jwk: point is not on P-256")
		}
		return pub, nil
	case KtyRSA:
		if j.Alg != "" && j.Alg != AlgRSAOAEP256 {
			return nil, fmt.Errorf("jwk: alg %q is not %s", truncate(j.Alg), AlgRSAOAEP256)
		}
		n, err := b64url.DecodeString(j.N)
		if err != nil {
			return nil, errors.New("jwk: n is not base64url")
		}
		e, err := b64url.DecodeString(j.E)
		if err != nil {
			return nil, errors.New("jwk: e is not base64url")
		}
		return rsaKey(n, e)
	}
	return nil, fmt.Errorf("jwk: kty %q is not EC or RSA", truncate(j.Kty))
}

// bindingMembers is the key as hashed into report_data: kty,crv,alg,x,y for
// EC and kty,alg,n,e for RSA.
func (j JWK) bindingMembers() JWK {
	switch j.Kty {
	case KtyEC:
		return JWK{Kty: j.Kty, Crv: j.Crv, Alg: j.Alg, X: j.X, Y: j.Y}
	case KtyRSA:
		return JWK{Kty: j.Kty, Alg: j.Alg, N: j.N, E: j.E}
	}
	return j
}
