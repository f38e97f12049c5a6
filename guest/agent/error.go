package agent

import (
	"fmt"
	"time"
)

// Steps of the broker exchange, as Error.Step names them.
const (
	StepAuth     = "auth"     // POST /kbs/v0/auth, reaching the broker at all
	StepEvidence = "evidence" // the Attester and the encoding of its evidence
	StepAttest   = "attest"   // POST /kbs/v0/attest
	StepKey      = "key"      // GET /kbs/v0/key/<id> or /kbs/v0/resource/<path>
	StepDecrypt  = "decrypt"  // opening the secret with the guest key
)

// Error is every failure FetchPassphrase returns. Its message names the step
// and the HTTP status, and carries the broker's problem detail when it sent
// one. It never contains the secret, the guest's private key or the
// attestation token.
type Error struct {
	// Step is StepAuth, StepEvidence, StepAttest, StepKey or StepDecrypt.
	Step string
	// HTTPStatus is the broker's status code, 0 when no response was read.
	HTTPStatus int
	// Err is the cause.
	Err error

	// kind says what the exchange does next; retryAfter is the broker's
	// Retry-After, when it sent one.
	kind       errKind
	retryAfter time.Duration
}

type errKind int

const (
	kindFinal       errKind = iota // no retry can help
	kindRetry                      // transport error, 5xx, 429: back off and try again
	kindSessionLost                // 401 for a lost session: run the handshake again
)

func (e *Error) Error() string {
	if e.HTTPStatus != 0 {
		return fmt.Sprintf("broker %s step: HTTP %d %s: %v", e.Step, e.HTTPStatus, statusText(e.HTTPStatus), e.Err)
	}
	return fmt.Sprintf("broker %s step: %v", e.Step, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the failure was transient (a transport error,
// 5xx or 429): the exchange gave up only because its deadline passed.
func (e *Error) Retryable() bool { return e.kind == kindRetry }

// Status codes the agent tells apart.
const (
	statusUnauthorized    = 401
	statusRequestTimeout  = 408
	statusTooManyRequests = 429
)

// statusTexts are the reason phrases of the codes a broker plausibly sends
// (RFC 9110 §15), for error messages; the reply's own phrase is not trusted.
var statusTexts = map[int]string{
	200: "OK", 201: "Created", 202: "Accepted", 204: "No Content",
	300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
	307: "Temporary Redirect", 308: "Permanent Redirect",
	400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
	405: "Method Not Allowed", 406: "Not Acceptable", 408: "Request Timeout", 409: "Conflict", 410: "Gone",
	411: "Length Required", 412: "Precondition Failed", 413: "Content Too Large", 414: "URI Too Long",
	415: "Unsupported Media Type", 422: "Unprocessable Content", 425: "Too Early", 428: "Precondition Required",
	429: "Too Many Requests", 431: "Request Header Fields Too Large",
	500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
	504: "Gateway Timeout", 505: "HTTP Version Not Supported",
}

// statusText is the reason phrase of code, "" when the code is not listed.
func statusText(code int) string { return statusTexts[code] }

func finalErr(step string, status int, err error) *Error {
	return &Error{Step: step, HTTPStatus: status, Err: err, kind: kindFinal}
}

func retryErr(step string, status int, err error) *Error {
	return &Error{Step: step, HTTPStatus: status, Err: err, kind: kindRetry}
}
