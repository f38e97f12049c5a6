package agent

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/url"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/guest/internal/httpc"
	"github.com/sealroot/sealroot/wire/kbs"
)

// krun speaks the krun dialect (docs/interop.md §3): reference-kbs and
// libkrun's historical client. The guest key is RSA-2048, made afresh for
// each handshake; report_data is SHA-512 over the nonce and the key's
// base64 texts; the secret comes back as hex of an RSA PKCS#1 v1.5
// ciphertext in a JSON string.
type krun struct {
	c        *client
	att      attest.Attester
	wire     string
	workload string
	teeData  string
	keys     keyMaker
	key      *rsa.PrivateKey // the current handshake's key; nil before the first
}

func (k *krun) close() { k.c.close() }

func (k *krun) name() string { return kbs.DialectKrun }

func (k *krun) handshake(ctx context.Context) (*httpc.Cookie, *Error) {
	req, err := kbs.NewKrunRequest(k.wire, k.workload)
	if err != nil {
		return nil, finalErr(StepAuth, 0, err)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, finalErr(StepAuth, 0, err)
	}
	r, e := k.c.do(ctx, StepAuth, "POST", "/kbs/v0/auth", body, nil)
	if e != nil {
		return nil, e
	}
	ch, err := parseChallenge(r.body)
	if err == nil {
		err = checkKrunNonce(ch.Nonce)
	}
	if err != nil {
		return nil, finalErr(StepAuth, r.status, err)
	}
	cookie := sessionCookie(r.cookies, kbs.KrunCookie)
	if cookie == nil {
		return nil, finalErr(StepAuth, r.status, errors.New("broker set no session_id cookie"))
	}

	// A key is never reused across handshakes: a host that saw it in an
	// earlier /attest (answered with an error) could otherwise pick the
	// next nonce around it.
	k.wipe()
	if k.key, err = k.keys.rsa(); err != nil {
		return nil, finalErr(StepEvidence, 0, err)
	}

	ev, err := k.att.Attest(ctx, kbs.KrunReportData(ch.Nonce, &k.key.PublicKey))
	if err != nil {
		return nil, attesterErr(ctx, err)
	}
	if err := checkEvidence(ev, k.wire); err != nil {
		return nil, finalErr(StepEvidence, 0, err)
	}
	evidence, err := krunEvidence(ev, k.teeData)
	if err != nil {
		return nil, finalErr(StepEvidence, 0, err)
	}
	body, err = json.Marshal(kbs.KrunAttestation{TEEPubKey: kbs.NewKrunPubKey(&k.key.PublicKey), TEEEvidence: evidence})
	if err != nil {
		return nil, finalErr(StepEvidence, 0, err)
	}
	if _, e := k.c.do(ctx, StepAttest, "POST", "/kbs/v0/attest", body, cookie); e != nil {
		return nil, e
	}
	return cookie, nil
}

func (k *krun) fetch(ctx context.Context, session *httpc.Cookie) ([]byte, *Error) {
	r, e := k.c.do(ctx, StepKey, "GET", "/kbs/v0/key/"+url.PathEscape(k.workload), nil, session)
	if e != nil {
		return nil, e
	}
	return r.body, nil
}

func (k *krun) open(body []byte) ([]byte, error) {
	if k.key == nil {
		return nil, errors.New("no guest key: no handshake completed")
	}
	return kbs.KrunDecryptSecret(k.key, body)
}

// wipe clears the current key and drops it.
func (k *krun) wipe() {
	wipeRSA(k.key)
	k.key = nil
}
