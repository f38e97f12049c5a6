package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sealroot/sealroot/guest/internal/httpc"
	"github.com/sealroot/sealroot/wire/kbs"
)

// maxResponse bounds any body the agent reads from the broker: the largest
// honest reply is a JWE of a small secret.
const maxResponse = 1 << 20

// client sends the exchange's requests: one at a time, each under its own
// timeout, with the session cookie attached by the caller.
type client struct {
	tr      Transport
	base    *url.URL
	timeout time.Duration
	own     bool // the agent built tr and closes it at the end
}

func newClient(tr Transport, base *url.URL, timeout time.Duration, own bool) *client {
	return &client{tr: tr, base: base, timeout: timeout, own: own}
}

// close drops the connection of a transport the agent built; a caller's
// Transport is left alone.
func (c *client) close() {
	if c.own {
		_ = c.tr.Close()
	}
}

// reply is a successful (2xx) response.
type reply struct {
	status  int
	body    []byte
	cookies []httpc.Cookie
}

// do sends method path (escaped, relative to the base URL) with body (nil
// for none) and the cookie (nil for none). Any non-2xx status or transport
// error comes back as *Error for step, classified for the retry loop.
// Redirects are reported, not followed: one could carry the session cookie
// to another origin.
func (c *client) do(ctx context.Context, step, method, path string, body []byte, cookie *httpc.Cookie) (*reply, *Error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	// path arrives escaped (a workload id may hold characters a path
	// cannot); keep that escaping on the wire.
	target := c.base.EscapedPath() + path
	if _, err := url.PathUnescape(target); err != nil {
		return nil, finalErr(step, 0, fmt.Errorf("request path: %w", err))
	}
	req := &httpc.Request{
		Method: method,
		Target: target,
		Header: []httpc.Field{{Name: "Accept", Value: "application/json"}, {Name: "User-Agent", Value: "sealroot-agent"}},
		Cookie: cookie,
		Body:   body,
	}
	if body != nil {
		req.Header = append(req.Header, httpc.Field{Name: "Content-Type", Value: "application/json"})
	}
	resp, err := c.tr.Do(ctx, req)
	if err != nil && resp == nil {
		if badTLS(err) {
			return nil, finalErr(step, 0, fmt.Errorf("%w (check attestation_url and ca_bundle)", err))
		}
		return nil, retryErr(step, 0, err)
	}
	if err != nil {
		if errors.Is(err, httpc.ErrBodyTooLarge) {
			return nil, finalErr(step, resp.Status, fmt.Errorf("reply exceeds %d bytes", maxResponse))
		}
		return nil, retryErr(step, resp.Status, fmt.Errorf("reading reply: %w", err))
	}
	if resp.Status < 200 || resp.Status > 299 {
		return nil, classify(step, resp.Status, resp.Header, resp.Body)
	}
	return &reply{status: resp.Status, body: resp.Body, cookies: resp.Cookies()}, nil
}

// badTLS reports whether a transport error is about the broker's TLS
// identity or protocol, which retrying cannot fix: an untrusted or wrong
// certificate, a plain-HTTP server behind an https URL (the record header
// of its reply is not TLS), a handshake alert.
func badTLS(err error) bool {
	var (
		cv  *tls.CertificateVerificationError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		rh  tls.RecordHeaderError
		ale tls.AlertError
	)
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) ||
		errors.As(err, &rh) || errors.As(err, &ale)
}

// Problem variants that mean the broker no longer knows the session (or
// never did): running the handshake again can succeed.
var sessionVariants = map[string]bool{
	kbs.ProblemMissingCookie:   true,
	kbs.ProblemInvalidCookie:   true,
	kbs.ProblemExpiredCookie:   true,
	kbs.ProblemUnauthenticated: true,
	kbs.ProblemTokenNotFound:   true,
	kbs.ProblemNonceReused:     true,
}

// classify turns a non-2xx reply into an Error: 408, 429 and 5xx are
// transient; 401 on attest or key is a lost session unless the broker's
// problem document says the attestation itself was refused; everything else
// is final, because asking again cannot change the answer.
func classify(step string, status int, h httpc.Header, body []byte) *Error {
	cause := describeBody(body)
	var p *kbs.Problem
	errors.As(cause, &p)
	switch {
	case status == statusTooManyRequests || status == statusRequestTimeout || status >= 500:
		e := retryErr(step, status, cause)
		e.retryAfter = retryAfter(h.Get("Retry-After"))
		return e
	case status == statusUnauthorized && (step == StepAttest || step == StepKey):
		if sessionLost(p, body) {
			return &Error{Step: step, HTTPStatus: status, Err: cause, kind: kindSessionLost}
		}
	case status >= 300 && status < 400:
		loc := h.Get("Location")
		return finalErr(step, status, fmt.Errorf("broker redirects to %q; set attestation_url to the broker's own address", clip(sanitize(loc))))
	}
	return finalErr(step, status, cause)
}

// sessionLost decides whether a 401 on attest or key means the broker lost
// (or never had) the session. A Trustee-dialect broker says so with its
// problem variant. The krun dialect has no structured errors: an empty body
// (reference-kbs) or text about the session's cookie, nonce, expiry or
// missing attestation counts as a lost session; any other text (a refused
// attestation, a workload mismatch) does not. Misjudging costs at most
// MaxRehandshakes extra handshakes.
func sessionLost(p *kbs.Problem, body []byte) bool {
	if p != nil {
		return sessionVariants[p.Variant()]
	}
	t := strings.ToLower(strings.TrimSpace(string(body)))
	if len(t) > 512 {
		t = t[:512]
	}
	if t == "" {
		return true
	}
	for _, s := range krunSessionPhrases {
		if strings.Contains(t, s) {
			return true
		}
	}
	return false
}

// krunSessionPhrases mark a krun-dialect 401 as a lost session.
var krunSessionPhrases = []string{"cookie", "nonce", "unknown session", "invalid session", "no session",
	"session expired", "expired session", "not attested"}

// describeBody renders an error reply: the RFC 7807 problem when the body
// is one (as *kbs.Problem), else a short printable excerpt.
func describeBody(body []byte) error {
	if p, err := kbs.ParseProblem(body); err == nil {
		return &kbs.Problem{Type: sanitize(p.Type), Detail: sanitize(p.Detail)}
	}
	s := strings.TrimSpace(sanitize(string(body)))
	if s == "" {
		return errors.New("empty reply")
	}
	return fmt.Errorf("broker says %q", clip(s))
}

// sanitize keeps printable ASCII and turns everything else into '?': broker
// text ends up on the guest console.
func sanitize(s string) string {
	const max = 512
	if len(s) > max {
		s = s[:max]
	}
	return strings.Map(func(r rune) rune {
		if r >= 0x20 && r < 0x7f {
			return r
		}
		if r == '\n' || r == '\t' || r == '\r' {
			return ' '
		}
		return '?'
	}, s)
}

// retryAfter parses a Retry-After header in seconds (the HTTP-date form is
// ignored: the guest's clock may not be set). Values are capped at a minute.
func retryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 6 {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, time.Minute)
}

// sessionCookie finds the cookie named name among cookies.
func sessionCookie(cookies []httpc.Cookie, name string) *httpc.Cookie {
	for _, c := range cookies {
		if c.Name == name && c.Value != "" {
			return &httpc.Cookie{Name: c.Name, Value: c.Value}
		}
	}
	return nil
}
