package agent

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/guest/internal/httpc"
	"github.com/sealroot/sealroot/wire/kbs"
)

// trustee speaks Confidential Containers' KBS protocol 0.4.0 (docs/interop.md
// §4). The guest key, made afresh for each handshake, is an EC P-256 key for
// ECDH-ES+A256KW (the default) or an RSA-2048 key for RSA-OAEP-256;
// report_data is the hash of the RFC 8785 canonical runtime data; the
// secret is a resource that comes back as a flattened JWE.
type trustee struct {
	c        *client
	att      attest.Attester
	wire     string
	workload string
	resource string
	keyKind  string // Options.TrusteeKey, already checked
	keys     keyMaker
	key      crypto.PrivateKey // *ecdh.PrivateKey or *rsa.PrivateKey; nil before the first handshake
	jwk      kbs.JWK
}

// hashAlgorithms are the binding hashes the agent offers, in Trustee's
// spelling.
var hashAlgorithms = []string{"sha256", "sha384", "sha512"}

func (t *trustee) close() { t.c.close() }

func (t *trustee) name() string { return kbs.DialectTrustee }

func (t *trustee) handshake(ctx context.Context) (*httpc.Cookie, *Error) {
	// workload_id is sealroot's addition: its broker then judges the
	// evidence against that workload's policy alone. Trustee ignores it.
	extra, err := json.Marshal(struct {
		Hashes     []string `json:"supported-hash-algorithms"`
		WorkloadID string   `json:"workload_id"`
	}{hashAlgorithms, t.workload})
	if err != nil {
		return nil, finalErr(StepAuth, 0, err)
	}
	body, err := json.Marshal(kbs.Request{Version: kbs.TrusteeVersion, TEE: t.wire, ExtraParams: extra})
	if err != nil {
		return nil, finalErr(StepAuth, 0, err)
	}
	r, e := t.c.do(ctx, StepAuth, "POST", "/kbs/v0/auth", body, nil)
	if e != nil {
		return nil, e
	}
	ch, err := parseChallenge(r.body)
	if err == nil {
		err = checkTrusteeNonce(ch.Nonce)
	}
	if err != nil {
		return nil, finalErr(StepAuth, r.status, err)
	}
	alg, err := selectedHash(ch.ExtraParams)
	if err != nil {
		return nil, finalErr(StepAuth, r.status, err)
	}
	cookie := sessionCookie(r.cookies, kbs.TrusteeCookie)
	if cookie == nil {
		return nil, finalErr(StepAuth, r.status, errors.New("broker set no kbs-session-id cookie"))
	}

	// A fresh key for every handshake, as in the krun dialect: a key
	// that was sent once is never bound to another nonce.
	t.wipe()
	if t.key, t.jwk, err = t.keys.trustee(t.keyKind); err != nil {
		return nil, finalErr(StepEvidence, 0, err)
	}

	const additional = "" // no device evidence
	rd, err := kbs.TrusteeBinding(alg, ch.Nonce, t.jwk, additional)
	if err != nil {
		return nil, finalErr(StepEvidence, 0, err)
	}
	ev, err := t.att.Attest(ctx, rd)
	if err != nil {
		return nil, attesterErr(ctx, err)
	}
	if err := checkEvidence(ev, t.wire); err != nil {
		return nil, finalErr(StepEvidence, 0, err)
	}
	primary, err := trusteeEvidence(ev)
	if err != nil {
		return nil, finalErr(StepEvidence, 0, err)
	}
	body, err = json.Marshal(kbs.Attestation{
		InitData:    json.RawMessage("null"),
		RuntimeData: kbs.RuntimeData{Nonce: ch.Nonce, TEEPubKey: t.jwk},
		TEEEvidence: kbs.TEEEvidence{PrimaryEvidence: primary, AdditionalEvidence: additional},
	})
	if err != nil {
		return nil, finalErr(StepEvidence, 0, err)
	}
	// The reply's token is not needed: the session cookie authorizes the
	// resource request, as in CoCo's own client. It is never logged.
	if _, e := t.c.do(ctx, StepAttest, "POST", "/kbs/v0/attest", body, cookie); e != nil {
		return nil, e
	}
	return cookie, nil
}

func (t *trustee) fetch(ctx context.Context, session *httpc.Cookie) ([]byte, *Error) {
	r, e := t.c.do(ctx, StepKey, "GET", "/kbs/v0/resource/"+t.resource, nil, session)
	if e != nil {
		return nil, e
	}
	return r.body, nil
}

func (t *trustee) open(body []byte) ([]byte, error) {
	if t.key == nil {
		return nil, errors.New("no guest key: no handshake completed")
	}
	j, err := kbs.ParseJWE(body)
	if err != nil {
		return nil, err
	}
	return j.Decrypt(t.key)
}

// wipe clears the current key as far as Go allows and drops it.
func (t *trustee) wipe() {
	wipeKey(t.key)
	t.key, t.jwk = nil, kbs.JWK{}
}

// selectedHash reads "selected-hash-algorithm" from a challenge's
// extra-params (an object, or "" when the broker selects nothing). The
// default is SHA-384.
func selectedHash(extra json.RawMessage) (string, error) {
	extra = bytes.TrimSpace(extra)
	if len(extra) == 0 || extra[0] != '{' {
		return "sha384", nil
	}
	var p struct {
		Selected *string `json:"selected-hash-algorithm"`
	}
	if err := json.Unmarshal(extra, &p); err != nil {
		return "", errors.New("challenge extra-params is not a valid object")
	}
	if p.Selected == nil {
		return "sha384", nil
	}
	alg := strings.ToLower(*p.Selected)
	for _, a := range hashAlgorithms {
		if alg == a {
			return alg, nil
		}
	}
	return "", fmt.Errorf("broker selected hash algorithm %q, which was not offered", clip(sanitize(*p.Selected)))
}
