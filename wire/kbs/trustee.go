package kbs

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// Attestation is the body of the Trustee dialect's POST /attest. Outer keys
// are kebab-case, the keys inside tee-evidence snake_case. There is no tee
// key: the TEE is the session's.
type Attestation struct {
	// InitData is null or {"format":"toml","body":…} (DecodeInitData);
	// sealroot's agent sends null.
	InitData    json.RawMessage `json:"init-data"`
	RuntimeData RuntimeData     `json:"runtime-data"`
	TEEEvidence TEEEvidence     `json:"tee-evidence"`
}

// RuntimeData carries the challenge nonce and the guest's fresh public key.
type RuntimeData struct {
	Nonce     string `json:"nonce"`
	TEEPubKey JWK    `json:"tee-pubkey"`
}

// TEEEvidence is the composite evidence: a TEE-specific JSON object and an
// optional additional-evidence string ("" when none).
type TEEEvidence struct {
	PrimaryEvidence    json.RawMessage `json:"primary_evidence"`
	AdditionalEvidence string          `json:"additional_evidence"`
}

// AttestationResult is the reply to a successful Trustee /attest.
type AttestationResult struct {
	Token string `json:"token"`
}

// ParseAttestation decodes a Trustee /attest body. The pre-0.4 flat shape
// (tee-evidence as a string, no runtime-data) is rejected.
func ParseAttestation(body []byte) (*Attestation, error) {
	var a Attestation
	if err := unmarshalObject(body, &a); err != nil {
		return nil, fmt.Errorf("attest request: %w", err)
	}
	if a.RuntimeData.Nonce == "" {
		return nil, errors.New("attest request: runtime-data.nonce is missing")
	}
	if a.RuntimeData.TEEPubKey.Kty == "" {
		return nil, errors.New("attest request: runtime-data.tee-pubkey is missing")
	}
	pe := bytes.TrimSpace(a.TEEEvidence.PrimaryEvidence)
	if len(pe) == 0 || pe[0] != '{' {
		return nil, errors.New("attest request: tee-evidence.primary_evidence is not a JSON object")
	}
	return &a, nil
}

// trusteeBindingDocument is what the Trustee dialect's report_data hashes:
// the RFC 8785 canonical JSON of {"additional-evidence","nonce",
// "tee-pubkey"}, the key reduced to its binding members (JWK.bindingMembers).
func trusteeBindingDocument(nonce string, jwk JWK, additionalEvidence string) []byte {
	doc := struct {
		AdditionalEvidence string `json:"additional-evidence"`
		Nonce              string `json:"nonce"`
		TEEPubKey          JWK    `json:"tee-pubkey"`
	}{additionalEvidence, nonce, jwk.bindingMembers()}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	// Encoding strings can not fail, and canonicalJSON accepts every
	// document of strings encoding/json writes; a failure here is a
	// programming error.
	if err := enc.Encode(doc); err != nil {
		panic(fmt.Sprintf("kbs: encoding binding document: %v", err))
	}
	canon, err := canonicalJSON(buf.Bytes())
	if err != nil {
		panic(fmt.Sprintf("kbs: canonicalizing binding document: %v", err))
	}
	return canon
}

// TrusteeReportData is the Trustee dialect's binding with the protocol's
// default hash: SHA-384 of the binding document (trusteeBindingDocument).
// The digest is zero-padded to size bytes (64 for SNP and TDX); a size below
// 48 returns the bare 48-byte digest (the sample TEE's form).
func TrusteeReportData(nonce string, jwk JWK, additionalEvidence string, size int) []byte {
	sum := sha512.Sum384(trusteeBindingDocument(nonce, jwk, additionalEvidence))
	if size < len(sum) {
		return sum[:]
	}
	out := make([]byte, size)
	copy(out, sum[:])
	return out
}

// TrusteeBinding is the Trustee dialect's 64-byte report_data when the
// broker selected hash algorithm alg ("sha256", "sha384" or "sha512", in
// Trustee's spelling): that digest of the binding document, zero-padded.
func TrusteeBinding(alg, nonce string, jwk JWK, additionalEvidence string) ([64]byte, error) {
	var out [64]byte
	switch alg {
	case "sha256":
		s := sha256.Sum256(trusteeBindingDocument(nonce, jwk, additionalEvidence))
		copy(out[:], s[:])
	case "sha384":
		s := sha512.Sum384(trusteeBindingDocument(nonce, jwk, additionalEvidence))
		copy(out[:], s[:])
	case "sha512":
		out = sha512.Sum512(trusteeBindingDocument(nonce, jwk, additionalEvidence))
	default:
		return out, fmt.Errorf("hash algorithm %q is not supported", truncate(alg))
	}
	return out, nil
}

// NewTrusteeNonce encodes 32 random bytes the way Trustee does: standard
// base64 with padding.
func NewTrusteeNonce(random [32]byte) string {
	return base64.StdEncoding.EncodeToString(random[:])
}

// TDXEvidence is the primary_evidence object for tee "tdx".
type TDXEvidence struct {
	// CCEventLog is standard base64 of the CC event log, or nil.
	CCEventLog *string `json:"cc_eventlog"`
	// Quote is standard base64 of the raw v4/v5 quote.
	Quote string `json:"quote"`
}

// maxQuote bounds a TDX quote or CCA token.
const maxQuote = 64 << 10

// DecodeTDXEvidence parses a tdx primary_evidence into the quote and the
// optional event log.
func DecodeTDXEvidence(primary []byte) (quote, eventLog []byte, err error) {
	var e TDXEvidence
	if err := unmarshalObject(primary, &e); err != nil {
		return nil, nil, fmt.Errorf("tdx evidence: %w", err)
	}
	if e.Quote == "" || len(e.Quote) > base64.StdEncoding.EncodedLen(maxQuote) {
		return nil, nil, fmt.Errorf("tdx evidence: quote is empty or longer than %d bytes", maxQuote)
	}
	quote, err = base64.StdEncoding.DecodeString(e.Quote)
	if err != nil {
		return nil, nil, errors.New("tdx evidence: quote is not standard base64")
	}
	if e.CCEventLog != nil && *e.CCEventLog != "" {
		if len(*e.CCEventLog) > MaxRequestBody {
			return nil, nil, errors.New("tdx evidence: cc_eventlog too long")
		}
		eventLog, err = base64.StdEncoding.DecodeString(*e.CCEventLog)
		if err != nil {
			return nil, nil, errors.New("tdx evidence: cc_eventlog is not standard base64")
		}
	}
	return quote, eventLog, nil
}

// CCAEvidence is the primary_evidence object for tee "cca". CoCo's
// attestation agent (and so sealroot's) sends the CBOR token as a JSON array
// of byte values, {"token":[217,1,143,...]}; standard base64 in a string is
// accepted too.
type CCAEvidence struct {
	Token json.RawMessage `json:"token"`
}

// DecodeCCAEvidence parses a cca primary_evidence into the CBOR token.
func DecodeCCAEvidence(primary []byte) ([]byte, error) {
	var e CCAEvidence
	if err := unmarshalObject(primary, &e); err != nil {
		return nil, fmt.Errorf("cca evidence: %w", err)
	}
	raw := bytes.TrimSpace(e.Token)
	var tok []byte
	switch {
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil || len(s) > base64.StdEncoding.EncodedLen(maxQuote) {
			return nil, fmt.Errorf("cca evidence: token string is malformed or longer than %d bytes", maxQuote)
		}
		var err error
		if tok, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, errors.New("cca evidence: token is not standard base64")
		}
	case len(raw) > 0 && raw[0] == '[':
		if len(raw) > 4*maxQuote+2 {
			return nil, fmt.Errorf("cca evidence: token longer than %d bytes", maxQuote)
		}
		var ints []int
		if err := json.Unmarshal(raw, &ints); err != nil {
			return nil, errors.New("cca evidence: token is not an array of byte values")
		}
		tok = make([]byte, len(ints))
		for i, v := range ints {
			if v < 0 || v > 255 {
				return nil, fmt.Errorf("cca evidence: token byte %d is %d, outside 0-255", i, v)
			}
			tok[i] = byte(v)
		}
	default:
		return nil, errors.New("cca evidence: token is neither an array of byte values nor a base64 string")
	}
	if len(tok) == 0 || len(tok) > maxQuote {
		return nil, fmt.Errorf("cca evidence: token is empty or longer than %d bytes", maxQuote)
	}
	return tok, nil
}
