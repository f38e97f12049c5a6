package broker

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/wire/kbs"
)

// tokenIssuer is the iss claim of the broker's attestation tokens.
const tokenIssuer = "sealroot-broker"

// tokenClaims are the claims of a Trustee-dialect attestation token. The
// jti is the session id, so a bearer token is only as good as its session:
// it stops working when the session expires or is purged, on every replica.
type tokenClaims struct {
	jwt.Claims
	TEE         string   `json:"tee"`
	Workload    string   `json:"workload_id,omitempty"`
	Measurement string   `json:"measurement,omitempty"`
	Simulated   bool     `json:"simulated,omitempty"`
	TEEPubKey   *kbs.JWK `json:"tee-pubkey,omitempty"`
}

// tokenSigner issues and checks ES256 tokens.
type tokenSigner struct {
	key    *ecdsa.PrivateKey
	signer jose.Signer
}

func newTokenSigner(key *ecdsa.PrivateKey) *tokenSigner {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		// Only a key of the wrong curve fails; loadTokenKey checks it.
		panic(fmt.Sprintf("broker: token signer: %v", err))
	}
	return &tokenSigner{key: key, signer: signer}
}

func (t *tokenSigner) issue(c tokenClaims) (string, error) {
	s, err := jwt.Signed(t.signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return s, nil
}

// verify checks a token's signature, issuer and lifetime at now.
func (t *tokenSigner) verify(token string, now time.Time) (*tokenClaims, error) {
	if len(token) > 16<<10 {
		return nil, errors.New("token too long")
	}
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return nil, errors.New("token is not a signed JWT")
	}
	var c tokenClaims
	if err := tok.Claims(&t.key.PublicKey, &c); err != nil {
		return nil, errors.New("token signature is not the broker's")
	}
	// A minute of leeway absorbs clock skew between replicas; the session
	// behind the token expires on the store's clock without leeway.
	if err := c.ValidateWithLeeway(jwt.Expected{Issuer: tokenIssuer, Time: now}, time.Minute); err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if c.ID == "" || c.Expiry == nil {
		return nil, errors.New("token lacks jti or exp")
	}
	return &c, nil
}

// LoadOrCreateTokenKey reads the ES256 signing key (PEM "EC PRIVATE KEY",
// P-256) at path, creating it with mode 0600 on first start.
func LoadOrCreateTokenKey(path string) (*ecdsa.PrivateKey, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, false, fmt.Errorf("generating token key: %w", err)
		}
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, false, fmt.Errorf("encoding token key: %w", err)
		}
		if err := kek.WriteFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			if errors.Is(err, os.ErrExist) { // another replica won the race
				return LoadOrCreateTokenKey(path)
			}
			return nil, false, fmt.Errorf("writing token key: %w", err)
		}
		return key, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading token key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, false, fmt.Errorf("token key %s: no PEM block", path)
	}
	var key *ecdsa.PrivateKey
	switch blk.Type {
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "PRIVATE KEY":
		var k any
		if k, err = x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
			var ok bool
			if key, ok = k.(*ecdsa.PrivateKey); !ok {
				err = errors.New("not an EC key")
			}
		}
	default:
		err = fmt.Errorf("PEM block %q", blk.Type)
	}
	if err != nil {
		return nil, false, fmt.Errorf("token key %s: %w", path, err)
	}
	if key.Curve != elliptic.P256() {
		return nil, false, fmt.Errorf("token key %s: want a P-256 key for ES256", path)
	}
	return key, false, nil
}
