// Package cca verifies Arm CCA attestation tokens and turns them into
// attest.Claims.
//
// A CCA token (as the guest reads it from configfs-tsm) is a CBOR collection,
// tag 399, holding two COSE_Sign1 tokens: the realm token, signed by the
// Realm Attestation Key (RAK) whose public half it carries, and the platform
// token, signed by the CCA Platform Attestation Key (CPAK). The platform
// token's nonce is a hash of the RAK, which binds the two. Verification uses
// veraison/ccatoken: decode and validate both claim sets, check the platform
// signature with a trusted CPAK, the realm signature with the RAK, and the
// binding.
//
// There is no default trust: Arm publishes no root for CPAKs, each platform
// vendor endorses its own, so the caller supplies the CPAK public keys it
// trusts (Options.TrustedCPAKs, e.g. from a PEM file via ParseCPAKs). With
// none, every token is refused.
//
// Claims: the realm initial measurement (RIM) is the Measurement, the realm
// challenge the ReportData, the realm personalization value (RPV, set by the
// host at realm creation) the HostData. Debug is true unless the platform's
// security lifecycle is "secured", so a policy that forbids debug also
// refuses platforms in provisioning or debug states. The REMs and the
// platform claims go into Extra.
package cca

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/veraison/ccatoken"
	"github.com/veraison/ccatoken/platform"
	"github.com/veraison/psatoken"

	"github.com/sealroot/sealroot/attest"
)

// MaxTokenSize bounds the token accepted for decoding. Real tokens are 1-2 KB.
const MaxTokenSize = 64 << 10

// Options configure a Verifier.
type Options struct {
	// TrustedCPAKs are the platform attestation public keys whose
	// signature makes a platform token genuine (ECDSA keys in practice).
	TrustedCPAKs []crypto.PublicKey
}

// Verifier verifies CCA tokens. It is safe for concurrent use.
type Verifier struct {
	keys []crypto.PublicKey
}

// NewVerifier returns a Verifier for Evidence{TEE: "cca"}.
func NewVerifier(o Options) attest.Verifier {
	return &Verifier{keys: append([]crypto.PublicKey(nil), o.TrustedCPAKs...)}
}

// ErrUntrustedPlatform means that no trusted CPAK verifies the platform
// token's signature.
var ErrUntrustedPlatform = errors.New("platform token not signed by a trusted CPAK")

// Verify checks the token in ev.Report and returns its claims.
func (v *Verifier) Verify(ctx context.Context, ev *attest.Evidence) (*attest.Claims, error) {
	if ev == nil || ev.TEE != attest.TEECCA {
		return nil, fmt.Errorf("cca: evidence is not a cca token")
	}
	tok, err := Decode(ev.Report)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(v.keys) == 0 {
		return nil, fmt.Errorf("cca: %w: no CPAK is trusted (supply the platform vendor's CPAK public keys)", ErrUntrustedPlatform)
	}
	var lastPlatformErr error
	for _, k := range v.keys {
		err := tok.Verify(k)
		if err == nil {
			return claimsFrom(tok)
		}
		if strings.HasPrefix(err.Error(), "unable to verify platform token") {
			lastPlatformErr = err
			continue
		}
		// The platform signature held: the realm token or the binding
		// is what failed, and another key will not change that.
		return nil, fmt.Errorf("cca: %w", err)
	}
	return nil, fmt.Errorf("cca: %w (tried %d keys; last: %v)", ErrUntrustedPlatform, len(v.keys), lastPlatformErr)
}

// Decode parses a CCA token collection and validates the syntax of both
// claim sets. It checks no signature.
func Decode(b []byte) (tok *ccatoken.Evidence, err error) {
	if len(b) == 0 {
		return nil, errors.New("cca: empty token")
	}
	if len(b) > MaxTokenSize {
		return nil, fmt.Errorf("cca: token is %d bytes, more than %d", len(b), MaxTokenSize)
	}
	// The decoders below come from another module and see hostile input;
	// a verifier must not crash on it.
	defer func() {
		if r := recover(); r != nil {
			tok, err = nil, fmt.Errorf("cca: decoding token: decoder failed: %v", r)
		}
	}()
	tok, err = ccatoken.DecodeAndValidateEvidenceFromCBOR(b)
	if err != nil {
		return nil, fmt.Errorf("cca: decoding token: %w", err)
	}
	return tok, nil
}

func claimsFrom(tok *ccatoken.Evidence) (*attest.Claims, error) {
	r, p := tok.RealmClaims, tok.PlatformClaims
	rim, err := r.GetInitialMeasurement()
	if err != nil {
		return nil, fmt.Errorf("cca: realm initial measurement: %w", err)
	}
	challenge, err := r.GetChallenge()
	if err != nil {
		return nil, fmt.Errorf("cca: realm challenge: %w", err)
	}
	rpv, err := r.GetPersonalizationValue()
	if err != nil {
		return nil, fmt.Errorf("cca: realm personalization value: %w", err)
	}
	lifecycle, err := p.GetSecurityLifeCycle()
	if err != nil {
		return nil, fmt.Errorf("cca: platform lifecycle: %w", err)
	}
	state := platform.LifeCycleToState(lifecycle)
	x := hex.EncodeToString
	extra := map[string]string{
		"platform_lifecycle": fmt.Sprintf("%s (%#04x)", state, lifecycle),
	}
	if rems, err := r.GetExtensibleMeasurements(); err == nil {
		for i, m := range rems {
			extra["rem"+strconv.Itoa(i)] = x(m)
		}
	}
	// setS(key)(getter()) records a claim when the getter has it.
	setS := func(k string) func(string, error) {
		return func(v string, err error) {
			if err == nil && v != "" {
				extra[k] = v
			}
		}
	}
	setB := func(k string) func([]byte, error) {
		return func(v []byte, err error) {
			if err == nil && len(v) > 0 {
				extra[k] = x(v)
			}
		}
	}
	setS("realm_profile")(r.GetProfile())
	setS("realm_hash_alg")(r.GetHashAlgID())
	setS("realm_pubkey_hash_alg")(r.GetPubKeyHashAlgID())
	setB("realm_pubkey")(r.GetPubKey())
	setS("platform_profile")(p.GetProfile())
	setB("platform_implementation_id")(p.GetImplID())
	setB("platform_instance_id")(p.GetInstID())
	setB("platform_config")(p.GetConfig())
	setS("platform_hash_alg")(p.GetHashAlgID())
	setS("platform_verification_service")(p.GetVSI())
	setB("platform_nonce")(p.GetNonce())
	if comps, err := p.GetSoftwareComponents(); err == nil {
		for i, c := range comps {
			extra["platform_sw"+strconv.Itoa(i)] = describeComponent(c)
		}
	}
	return &attest.Claims{
		TEE:         attest.TEECCA,
		Measurement: rim,
		ReportData:  challenge,
		HostData:    rpv,
		Debug:       state != platform.StateSecured,
		Policy:      uint64(lifecycle),
		Extra:       extra,
	}, nil
}

// describeComponent renders a software component as
// "type version measurement=<hex> signer=<hex>".
func describeComponent(c psatoken.ISwComponent) string {
	var parts []string
	if t, err := c.GetMeasurementType(); err == nil && t != "" {
		parts = append(parts, t)
	}
	if v, err := c.GetVersion(); err == nil && v != "" {
		parts = append(parts, v)
	}
	if m, err := c.GetMeasurementValue(); err == nil {
		parts = append(parts, "measurement="+hex.EncodeToString(m))
	}
	if s, err := c.GetSignerID(); err == nil {
		parts = append(parts, "signer="+hex.EncodeToString(s))
	}
	return strings.Join(parts, " ")
}

// ParseCPAKs reads trusted CPAK public keys from PEM: PUBLIC KEY blocks
// (PKIX) or CERTIFICATE blocks (the certificate's key is trusted as is; no
// chain is checked). At least one key is required.
func ParseCPAKs(pemBytes []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	rest := pemBytes
	for i := 0; ; i++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var pub crypto.PublicKey
		switch block.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("cca: pem block %d: %w", i, err)
			}
			pub = k
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("cca: pem block %d: %w", i, err)
			}
			pub = c.PublicKey
		default:
			return nil, fmt.Errorf("cca: pem block %d is %q, want PUBLIC KEY or CERTIFICATE", i, block.Type)
		}
		switch pub.(type) {
		case *ecdsa.PublicKey, ed25519.PublicKey, *rsa.PublicKey:
		default:
			return nil, fmt.Errorf("cca: pem block %d: unsupported key type %T", i, pub)
		}
		keys = append(keys, pub)
	}
	if len(keys) == 0 {
		return nil, errors.New("cca: no PEM PUBLIC KEY or CERTIFICATE block found")
	}
	return keys, nil
}
