// Package agent is sealroot's guest attestation agent: it proves the guest
// to the key broker and brings back the LUKS passphrase.
//
// FetchPassphrase runs one exchange in the dialect the disk config asks for
// (docs/interop.md §3 krun, the default; §4 Trustee when kbs_protocol is
// "trustee"):
//
//	auth ─► key pair ─► report_data binding ─► Attester ─► attest ─► key/resource ─► decrypt
//
// A fresh guest key pair is made for every handshake, inside the guest,
// after the broker's challenge has arrived, and the previous one is wiped:
// RSA-2048 for krun, EC P-256 (ECDH-ES+A256KW) for Trustee unless
// RSA-OAEP-256 is selected. The key never leaves the guest. The broker's
// nonce and that key are bound into the report_data exactly as the dialect
// defines (package wire/kbs holds the wire formats), so the secret can only
// be opened by the guest whose evidence the broker accepted, even though the
// host carries the traffic.
//
// The nonce is checked strictly before anything is bound to it: 32
// lowercase hex characters in the krun dialect, standard base64 of 32 bytes
// in the Trustee dialect (docs/interop.md §3, §4). The krun binding hashes the
// nonce and the key's base64 texts back to back, without separators, so a
// host that knew the guest's modulus could choose a nonce ending in a
// prefix of its own base64 modulus and have the guest's genuine report bind
// the host's key. A fixed-length nonce and a key that is never reused after
// it was sent (a failed attest, a lost session, a retry) close that.
//
// Failures are classified, not guessed at: a transport error, 5xx or 429 is
// retried with exponential backoff and full jitter; a 401 that means the
// broker lost the session (restarted, expired cookie) runs the whole
// handshake again, a bounded number of times; any other 4xx stops at once,
// because asking again cannot change the answer. One deadline (the config's
// attest_timeout, 60 s by default) bounds everything. Every failure is an
// *Error naming the step and the HTTP status; no error, log line or panic
// carries the secret, the private key or the broker's token.
//
// Transports: http://, https:// (TLS 1.2 or later, trusting the config's
// ca_bundle when set) and vsock://CID:PORT, which speaks HTTP over an
// AF_VSOCK stream (libkrun's krun_add_vsock_port maps such a port to a host
// Unix socket).
package agent

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/guest/internal/httpc"
	"github.com/sealroot/sealroot/wire/kbs"
)

// Trustee guest key types (Options.TrusteeKey).
const (
	KeyEC  = "ec"  // EC P-256, ECDH-ES+A256KW (the default)
	KeyRSA = "rsa" // RSA-2048, RSA-OAEP-256
)

// Defaults for Options.
const (
	DefaultAttemptTimeout = 20 * time.Second
	DefaultBackoffInitial = 250 * time.Millisecond
	DefaultBackoffMax     = 5 * time.Second
	// MaxRehandshakes bounds how often a lost session restarts the
	// handshake within one FetchPassphrase.
	MaxRehandshakes = 3
)

// DefaultAttestTimeout bounds the whole exchange when Config.AttestTimeout
// is zero (the disk config's attest_timeout default).
const DefaultAttestTimeout = 60 * time.Second

// Config is what the exchange needs of the disk config. The agent does not
// read the disk config itself: the init fills this in from it
// (guest/init/agentconfig.go), so the agent serves any caller that knows its
// workload and broker.
type Config struct {
	// TEE is the config's tee (attest.TEEs): its wire name is what the
	// broker sees, and the Attester must serve it.
	TEE string
	// TEEData is the config's tee_data document (the krun dialect reads
	// the SNP generation from it).
	TEEData    string
	WorkloadID string
	// AttestationURL is the broker: http://, https:// or vsock://CID:PORT.
	AttestationURL string
	// KBSProtocol is the broker dialect: kbs.DialectKrun (also "") or
	// kbs.DialectTrustee.
	KBSProtocol string
	// CABundle is a PEM bundle trusted for an https broker instead of the
	// system roots.
	CABundle string
	// AttestTimeout bounds the whole exchange including retries; zero is
	// DefaultAttestTimeout.
	AttestTimeout time.Duration
}

// Dialect returns the broker dialect, defaulting to krun.
func (c *Config) Dialect() string {
	if c.KBSProtocol == "" {
		return kbs.DialectKrun
	}
	return c.KBSProtocol
}

// Deadline returns the bound of the whole exchange.
func (c *Config) Deadline() time.Duration {
	if c.AttestTimeout > 0 {
		return c.AttestTimeout
	}
	return DefaultAttestTimeout
}

// Options configure FetchPassphrase. Config and Attester are required.
type Options struct {
	// Config says which workload to fetch the passphrase of, from which
	// broker, proving which TEE.
	Config *Config
	// Attester produces the evidence; its TEE must be the config's.
	Attester attest.Attester
	// Transport carries the HTTP requests. Nil builds one from the
	// attestation URL (see NewTransport), closed when the exchange ends;
	// a caller's own is left open.
	Transport Transport
	// VsockDial dials vsock:// URLs when Transport is nil; nil is
	// vsock.DialContext.
	VsockDial VsockDialer
	// TCPDial opens the TCP connections of http:// and https:// URLs
	// (TLS runs on top) when Transport is nil; nil is a net.Dialer. The
	// init passes one that hands over a connection it opened while the
	// boot's earlier phases ran.
	TCPDial TCPDialer
	// Logf receives progress and retry lines (never secrets); nil
	// discards them.
	Logf func(format string, a ...any)

	// ResourcePath is the Trustee resource holding the passphrase,
	// "repository/type/tag"; empty is kbs.PassphrasePath(workload_id).
	ResourcePath string
	// TrusteeKey is the Trustee guest key type: KeyEC (default) or KeyRSA.
	TrusteeKey string
	// FirstRSAKey, when set, returns an RSA-2048 key pair made ahead of
	// time (the init starts one at PID 1's first moment, beside the other
	// boot phases). The first handshake that needs an RSA key (krun, or
	// Trustee with KeyRSA) uses it; every later one makes its own. An
	// error or a key of another size falls back to making one.
	FirstRSAKey func() (*rsa.PrivateKey, error)

	// AttemptTimeout bounds each HTTP request; zero is
	// DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// BackoffInitial and BackoffMax shape the retry delays: attempt n
	// waits a uniformly random time in [0, min(BackoffMax,
	// BackoffInitial·2^(n-1))] (exponential backoff with full jitter).
	// Zero values take the defaults.
	BackoffInitial, BackoffMax time.Duration

	// Now and Sleep are the clock, for tests; nil is the real one. Sleep
	// returns ctx's error when ctx ends first.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// dialect is one broker protocol.
type dialect interface {
	name() string
	// handshake runs auth, evidence and attest with a key pair made for
	// this handshake alone (the previous one is wiped), and returns the
	// session cookie.
	handshake(ctx context.Context) (*httpc.Cookie, *Error)
	// fetch gets the encrypted secret with an attested session.
	fetch(ctx context.Context, session *httpc.Cookie) ([]byte, *Error)
	// open decrypts what fetch returned.
	open(body []byte) ([]byte, error)
	// wipe clears the private key as far as Go allows.
	wipe()
	// close releases the connections the exchange kept open.
	close()
}

// FetchPassphrase runs the broker exchange the config asks for and returns
// the decrypted passphrase. The caller owns the returned slice and should
// clear it once used. Every error is an *Error.
func FetchPassphrase(ctx context.Context, o Options) ([]byte, error) {
	o = o.withDefaults()
	d, target, e := o.prepare()
	if e != nil {
		return nil, e
	}
	defer d.wipe()
	defer d.close()
	o.Logf("agent: %s dialect, broker %s, workload %s, tee %s", d.name(), target, o.Config.WorkloadID, o.Config.TEE)
	return o.run(ctx, d)
}

func (o Options) withDefaults() Options {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.BackoffInitial <= 0 {
		o.BackoffInitial = DefaultBackoffInitial
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = DefaultBackoffMax
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return o
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prepare checks the options, builds the transport and makes the key pair.
func (o Options) prepare() (dialect, *Target, *Error) {
	cfg := o.Config
	if cfg == nil {
		return nil, nil, finalErr(StepAuth, 0, errors.New("no disk config"))
	}
	if cfg.WorkloadID == "" {
		return nil, nil, finalErr(StepAuth, 0, errors.New("config has no workload_id"))
	}
	target, err := ParseTarget(cfg.AttestationURL)
	if err != nil {
		return nil, nil, finalErr(StepAuth, 0, err)
	}
	wire, err := WireTEE(cfg.TEE)
	if err != nil {
		return nil, nil, finalErr(StepEvidence, 0, err)
	}
	if o.Attester == nil {
		return nil, nil, finalErr(StepEvidence, 0, errors.New("no attester"))
	}
	if aw, err := WireTEE(o.Attester.TEE()); err != nil || aw != wire {
		return nil, nil, finalErr(StepEvidence, 0, fmt.Errorf("attester serves tee %q, the config asks for %q", clip(o.Attester.TEE()), cfg.TEE))
	}
	tr, own := o.Transport, false
	if tr == nil {
		if tr, err = NewTransportDialers(target, cfg.CABundle, o.VsockDial, o.TCPDial); err != nil {
			return nil, nil, finalErr(StepAuth, 0, err)
		}
		own = true
	}
	c := newClient(tr, target.Base, o.AttemptTimeout, own)

	keys := keyMaker{logf: o.Logf, now: o.Now, ahead: &aheadKey{get: o.FirstRSAKey}}
	switch cfg.Dialect() {
	case kbs.DialectKrun:
		return &krun{c: c, att: o.Attester, wire: wire, workload: cfg.WorkloadID, teeData: cfg.TEEData, keys: keys}, target, nil
	case kbs.DialectTrustee:
		res := o.ResourcePath
		if res == "" {
			res = kbs.PassphrasePath(cfg.WorkloadID)
		}
		if err := kbs.CheckResourcePath(res); err != nil {
			return nil, nil, finalErr(StepKey, 0, err)
		}
		if err := checkTrusteeKeyKind(o.TrusteeKey); err != nil {
			return nil, nil, finalErr(StepEvidence, 0, err)
		}
		return &trustee{c: c, att: o.Attester, wire: wire, workload: cfg.WorkloadID, resource: res, keyKind: o.TrusteeKey, keys: keys}, target, nil
	}
	return nil, nil, finalErr(StepAuth, 0, fmt.Errorf("kbs_protocol %q is not krun or trustee", clip(cfg.Dialect())))
}

// keyMaker makes the guest key of one handshake and logs how long it took.
type keyMaker struct {
	logf  func(format string, a ...any)
	now   func() time.Time
	ahead *aheadKey // the key made ahead of time (keyahead.go)
}

// rsa makes an RSA-2048 key pair, or takes the one made ahead of time.
func (m keyMaker) rsa() (*rsa.PrivateKey, error) {
	if k := m.rsaAhead(); k != nil {
		return k, nil
	}
	start := m.now()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generating the guest key: %w", err)
	}
	m.logf("agent: fresh RSA-2048 guest key made in %s", m.now().Sub(start).Round(time.Millisecond))
	return k, nil
}

// trustee makes the Trustee key pair of the given kind and its JWK.
func (m keyMaker) trustee(kind string) (crypto.PrivateKey, kbs.JWK, error) {
	start := m.now()
	var key crypto.PrivateKey
	var pub crypto.PublicKey
	ahead := false
	if kind == KeyRSA {
		if k := m.rsaAhead(); k != nil {
			key, pub, ahead = k, &k.PublicKey, true
		}
	}
	if !ahead {
		var err error
		if key, pub, err = trusteeKey(kind); err != nil {
			return nil, kbs.JWK{}, err
		}
	}
	jwk, err := kbs.NewJWK(pub)
	if err != nil {
		wipeKey(key)
		return nil, kbs.JWK{}, err
	}
	if !ahead {
		m.logf("agent: fresh %s guest key made in %s", jwk.Alg, m.now().Sub(start).Round(time.Millisecond))
	}
	return key, jwk, nil
}

// checkTrusteeKeyKind accepts the Options.TrusteeKey values.
func checkTrusteeKeyKind(kind string) error {
	switch kind {
	case "", KeyEC, KeyRSA:
		return nil
	}
	return fmt.Errorf("guest key type %q is not %q or %q", clip(kind), KeyEC, KeyRSA)
}

// trusteeKey makes the Trustee guest key pair.
func trusteeKey(kind string) (crypto.PrivateKey, crypto.PublicKey, error) {
	switch kind {
	case "", KeyEC:
		k, err := ecdh.P256().GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("generating the guest key: %w", err)
		}
		return k, k.PublicKey(), nil
	case KeyRSA:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, nil, fmt.Errorf("generating the guest key: %w", err)
		}
		return k, &k.PublicKey, nil
	}
	return nil, nil, checkTrusteeKeyKind(kind)
}

// run drives the exchange to success, a final error or the deadline.
func (o Options) run(ctx context.Context, d dialect) ([]byte, error) {
	deadline := o.Config.Deadline()
	ctx, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	start := o.Now()

	var (
		session      *httpc.Cookie
		last         *Error // the last failure not caused by the deadline itself
		failures     int
		rehandshakes int
	)
	for {
		var e *Error
		if session == nil {
			session, e = d.handshake(ctx)
		}
		if e == nil {
			var body []byte
			if body, e = d.fetch(ctx, session); e == nil {
				pass, err := d.open(body)
				if err != nil {
					return nil, finalErr(StepDecrypt, 0, err)
				}
				o.Logf("agent: passphrase received in %s", o.Now().Sub(start).Round(time.Millisecond))
				return pass, nil
			}
		}
		if ctx.Err() != nil {
			return nil, o.gaveUp(ctx, e, last, failures, start)
		}
		last = e
		switch e.kind {
		case kindSessionLost:
			session = nil
			if rehandshakes++; rehandshakes > MaxRehandshakes {
				return nil, e
			}
			o.Logf("agent: %v; starting a new session (%d of %d)", e, rehandshakes, MaxRehandshakes)
		case kindRetry:
			if e.Step != StepKey {
				// The handshake broke off: its nonce is spent or
				// unknown. A failed key fetch keeps its attested
				// session.
				session = nil
			}
			failures++
			wait := max(o.backoff(failures), e.retryAfter)
			o.Logf("agent: %v; retry %d in %s", e, failures, wait.Round(time.Millisecond))
			if err := o.Sleep(ctx, wait); err != nil {
				return nil, o.gaveUp(ctx, e, last, failures, start)
			}
		default:
			return nil, e
		}
	}
}

// backoff is the delay before retry n (1-based): full jitter over an
// exponentially growing cap.
func (o Options) backoff(n int) time.Duration {
	c := o.BackoffInitial
	for i := 1; i < n && c < o.BackoffMax; i++ {
		c *= 2
	}
	c = min(c, o.BackoffMax)
	return time.Duration(mrand.Int64N(int64(c) + 1)) //nolint:gosec // retry jitter, not a secret
}

// gaveUp is the error when the deadline (or the caller) ends the exchange:
// the last real failure, marked with the context's error.
func (o Options) gaveUp(ctx context.Context, cur, last *Error, failures int, start time.Time) *Error {
	e := cur
	if e == nil || (last != nil && (errors.Is(e.Err, context.DeadlineExceeded) || errors.Is(e.Err, context.Canceled))) {
		e = last
	}
	if e == nil {
		e = &Error{Step: StepAuth}
	}
	why := "deadline " + o.Config.Deadline().String() + " passed"
	if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		why = "canceled"
	}
	return &Error{
		Step:       e.Step,
		HTTPStatus: e.HTTPStatus,
		Err: fmt.Errorf("%w (gave up: %s after %d retries in %s: %w)", e.Err, why, failures,
			o.Now().Sub(start).Round(time.Millisecond), ctx.Err()),
		kind: e.kind,
	}
}

// parseChallenge decodes an /auth reply. The nonce is hashed as text and
// sent back, so it must be printable and of sane length; each dialect then
// insists on its exact form (checkKrunNonce, checkTrusteeNonce).
func parseChallenge(body []byte) (*kbs.Challenge, error) {
	var ch kbs.Challenge
	t := bytes.TrimSpace(body)
	if len(t) == 0 || t[0] != '{' {
		return nil, errors.New("challenge is not a JSON object")
	}
	if err := json.Unmarshal(t, &ch); err != nil {
		return nil, errors.New("challenge is not valid JSON")
	}
	if ch.Nonce == "" {
		return nil, errors.New("challenge has no nonce")
	}
	if len(ch.Nonce) > 1024 || !printable(ch.Nonce) {
		return nil, errors.New("challenge nonce is longer than 1024 bytes or not printable ASCII")
	}
	return &ch, nil
}

// krunNonceLen is the length of a krun-dialect nonce: reference-kbs and
// sealroot's broker issue a 128-bit session id as 32 lowercase hex digits.
const krunNonceLen = 32

// checkKrunNonce accepts exactly 32 lowercase hex characters. The krun
// binding is SHA-512(nonce ‖ base64(n) ‖ base64(e)) with no separators: a
// longer nonce could carry the start of a modulus the host chose, so that
// the guest's report bound the host's key instead of the guest's.
func checkKrunNonce(n string) error {
	if len(n) != krunNonceLen || strings.Trim(n, "0123456789abcdef") != "" {
		return fmt.Errorf("challenge nonce (%d bytes) is not %d lowercase hex characters; refusing it, since the krun binding has no separators and any other nonce could bind a key the guest did not make (a broker speaking the krun dialect issues exactly that form)",
			len(n), krunNonceLen)
	}
	return nil
}

// trusteeNonceBytes is how many random bytes a Trustee nonce encodes.
const trusteeNonceBytes = 32

// checkTrusteeNonce accepts exactly the canonical standard base64 (with
// padding) of 32 bytes, the form Trustee issues.
func checkTrusteeNonce(n string) error {
	b, err := base64.StdEncoding.Strict().DecodeString(n)
	if err != nil || len(b) != trusteeNonceBytes || base64.StdEncoding.EncodeToString(b) != n {
		return fmt.Errorf("challenge nonce (%d bytes) is not standard base64 of %d bytes, the form a Trustee broker issues; refusing it",
			len(n), trusteeNonceBytes)
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// attesterErr wraps an Attester failure.
func attesterErr(ctx context.Context, err error) *Error {
	if ctx.Err() != nil {
		return retryErr(StepEvidence, 0, fmt.Errorf("attester: %w", err))
	}
	return finalErr(StepEvidence, 0, fmt.Errorf("attester: %w", err))
}

// wipeRSA clears the private parts of k that Go lets a caller reach. The
// crypto/rsa internals keep their own copy, which is dropped with k.
func wipeRSA(k *rsa.PrivateKey) {
	if k == nil {
		return
	}
	wipeInt := func(i *big.Int) {
		if i != nil {
			clear(i.Bits())
			i.SetInt64(0)
		}
	}
	wipeInt(k.D)
	for _, p := range k.Primes {
		wipeInt(p)
	}
	wipeInt(k.Precomputed.Dp)
	wipeInt(k.Precomputed.Dq)
	wipeInt(k.Precomputed.Qinv)
}

// wipeKey wipes an *rsa.PrivateKey. An *ecdh.PrivateKey is immutable and
// cannot be wiped; dropping the reference is all Go allows.
func wipeKey(k crypto.PrivateKey) {
	if r, ok := k.(*rsa.PrivateKey); ok {
		wipeRSA(r)
	}
}
