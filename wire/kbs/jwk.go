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
	CrvP521         = "P-521"
)

// ecCurves are the curves a guest's ECDH-ES+A256KW key may be on, as
// Trustee's KBS accepts them, with their coordinate size in bytes.
var ecCurves = map[string]struct {
	curve ecdh.Curve
	size  int
}{
	CrvP256: {ecdh.P256(), 32},
	CrvP521: {ecdh.P521(), 66},
}

// curveName returns the JWK name of an ECDH curve, or "".
func curveName(c ecdh.Curve) string {
	for name, e := range ecCurves {
		if e.curve == c {
			return name
		}
	}
	return ""
}

// JWK is a public JSON Web Key as the Trustee dialect carries it:
// {"kty":"EC","crv":"P-256"|"P-521","alg":"ECDH-ES+A256KW","x","y"} or
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

// NewJWK describes pub: an EC P-256 or P-521 key (*ecdh.PublicKey or
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
		name := curveName(k.Curve())
		if name == "" {
			return JWK{}, errors.New("jwk: only P-256 and P-521 EC keys are supported")
		}
		n := ecCurves[name].size
		raw := k.Bytes() // 0x04 || X || Y
		return JWK{Kty: KtyEC, Crv: name, Alg: AlgECDHESA256KW,
			X: b64url.EncodeToString(raw[1 : 1+n]), Y: b64url.EncodeToString(raw[1+n : 1+2*n])}, nil
	case *rsa.PublicKey:
		if _, err := rsaKey(k.N.Bytes(), big.NewInt(int64(k.E)).Bytes()); err != nil {
			return JWK{}, fmt.Errorf("jwk: %w", err)
		}
		return JWK{Kty: KtyRSA, Alg: AlgRSAOAEP256,
			N: b64url.EncodeToString(k.N.Bytes()), E: b64url.EncodeToString(big.NewInt(int64(k.E)).Bytes())}, nil
	}
	return JWK{}, fmt.Errorf("jwk: unsupported key type %T", pub)
}

// PublicKey decodes and checks the key. It returns *ecdh.PublicKey (P-256
// or P-521, alg ECDH-ES+A256KW) or *rsa.PublicKey (2048 to 8192 bits, alg
// RSA-OAEP-256). An absent alg takes the kty's default.
func (j JWK) PublicKey() (crypto.PublicKey, error) {
	switch j.Kty {
	case KtyEC:
		c, ok := ecCurves[j.Crv]
		if !ok {
			return nil, fmt.Errorf("jwk: curve %q is not P-256 or P-521", truncate(j.Crv))
		}
		if j.Alg != "" && j.Alg != AlgECDHESA256KW {
			return nil, fmt.Errorf("jwk: alg %q is not %s", truncate(j.Alg), AlgECDHESA256KW)
		}
		x, err := b64url.DecodeString(j.X)
		if err != nil || len(x) != c.size {
			return nil, fmt.Errorf("jwk: x is not %d bytes of base64url (%s)", c.size, j.Crv)
		}
		y, err := b64url.DecodeString(j.Y)
		if err != nil || len(y) != c.size {
			return nil, fmt.Errorf("jwk: y is not %d bytes of base64url (%s)", c.size, j.Crv)
		}
		pub, err := c.curve.NewPublicKey(append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("jwk: point is not on %s", j.Crv)
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
// EC and kty,alg,n,e for RSA. A key of any other kty keeps every member, so
// the binding never covers less of a key than was sent (the guest makes
// only EC and RSA keys, and the broker refuses any other kty before it
// binds).
func (j JWK) bindingMembers() JWK {
	switch j.Kty {
	case KtyEC:
		return JWK{Kty: j.Kty, Crv: j.Crv, Alg: j.Alg, X: j.X, Y: j.Y}
	case KtyRSA:
		return JWK{Kty: j.Kty, Alg: j.Alg, N: j.N, E: j.E}
	}
	return j
}
