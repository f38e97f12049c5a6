package agent

import (
	"fmt"
	"net/http"
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
		return fmt.Sprintf("broker %s step: HTTP %d %s: %v", e.Step, e.HTTPStatus, http.StatusText(e.HTTPStatus), e.Err)
	}
	return fmt.Sprintf("broker %s step: %v", e.Step, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Retryable reports whether the failure was transient (a transport error,
// 5xx or 429): the exchange gave up only because its deadline passed.
func (e *Error) Retryable() bool { return e.kind == kindRetry }

func finalErr(step string, status int, err error) *Error {
	return &Error{Step: step, HTTPStatus: status, Err: err, kind: kindFinal}
}

func retryErr(step string, status int, err error) *Error {
	return &Error{Step: step, HTTPStatus: status, Err: err, kind: kindRetry}
}
