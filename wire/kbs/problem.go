package kbs

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sealroot/sealroot/internal/textclip"
)

// ProblemTypePrefix starts the type URI of every Trustee-dialect error.
const ProblemTypePrefix = "https://github.com/confidential-containers/kbs/errors/"

// Error variants a sealroot broker sends in the Trustee dialect. The names
// follow Trustee's own where one exists.
const (
	ProblemInvalidRequest     = "InvalidRequest"
	ProblemProtocolVersion    = "ProtocolVersion"
	ProblemUnsupportedTEE     = "UnsupportedTee"
	ProblemMissingCookie      = "MissingCookie"
	ProblemInvalidCookie      = "InvalidCookie"
	ProblemExpiredCookie      = "ExpiredCookie"
	ProblemUnauthenticated    = "UnAuthenticatedCookie"
	ProblemAttestationFailed  = "AttestationFailed"
	ProblemNonceReused        = "NonceReused"
	ProblemPolicyDeny         = "PolicyDeny"
	ProblemTokenNotFound      = "TokenNotFound"
	ProblemInvalidToken       = "TokenVerifierError"
	ProblemInvalidRequestPath = "InvalidRequestPath"
	ProblemResourceNotFound   = "ResourceNotFound"
	ProblemJWEFailed          = "JweError"
	ProblemRateLimited        = "RateLimited"
	ProblemInternal           = "InternalError"
)

// Problem is an RFC 7807 problem document as the Trustee dialect sends it.
type Problem struct {
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

// NewProblem builds a problem of the given variant.
func NewProblem(variant, detail string) *Problem {
	return &Problem{Type: ProblemTypePrefix + variant, Detail: detail}
}

// Variant is the last segment of the type URI ("PolicyDeny").
func (p *Problem) Variant() string {
	return p.Type[strings.LastIndexByte(p.Type, '/')+1:]
}

func (p *Problem) Error() string {
	return fmt.Sprintf("broker error %s: %s", p.Variant(), p.Detail)
}

// ParseProblem decodes an error body. A body without a type is not a
// problem document.
func ParseProblem(body []byte) (*Problem, error) {
	var p Problem
	if err := unmarshalObject(body, &p); err != nil {
		return nil, fmt.Errorf("problem document: %w", err)
	}
	if p.Type == "" {
		return nil, errors.New("problem document: type is missing")
	}
	// Broker-supplied text a guest may print is bounded.
	p.Type, p.Detail = textclip.Clip(p.Type, maxProblemText), textclip.Clip(p.Detail, maxProblemText)
	return &p, nil
}

// maxProblemText bounds the type and detail of a problem document.
const maxProblemText = 512
