package kbs

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/sealroot/sealroot/internal/textclip"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// Protocol versions sent in the /auth request. The version selects the
// dialect on a broker that speaks both.
const (
	// KrunVersion is what libkrun's historical client and kbs-types 0.2
	// send.
	KrunVersion = "0.0.0"
	// TrusteeVersion is the only KBS protocol version Trustee accepts.
	TrusteeVersion = "0.4.0"
)

// Dialect names, as used by the broker and the disk config's kbs_protocol.
const (
	DialectKrun    = "krun"
	DialectTrustee = "trustee"
)

// DialectOf returns the dialect selected by an /auth version, or "" when the
// version is not one a sealroot broker speaks.
func DialectOf(version string) string {
	switch version {
	case KrunVersion:
		return DialectKrun
	case TrusteeVersion:
		return DialectTrustee
	}
	return ""
}

// Cookie names carrying the session.
const (
	KrunCookie    = "session_id"
	TrusteeCookie = "kbs-session-id"
)

// Limits on what decoders accept. They are far above anything an honest peer
// sends and far below what would hurt a broker.
const (
	// MaxRequestBody bounds any request body a broker reads.
	MaxRequestBody = 256 << 10
	// MinRSABits and MaxRSABits bound guest RSA keys.
	MinRSABits = 2048
	MaxRSABits = 8192
	// maxCertTable bounds an SNP certificate table carried in evidence.
	maxCertTable = 64 << 10
)

// Request is the body of POST /kbs/v0/auth in both dialects.
//
// ExtraParams is kept raw: the krun dialect sends a JSON *string* that holds
// JSON ({"workload_id":"…"}); Trustee's agent sends an object (or "").
type Request struct {
	Version     string          `json:"version"`
	TEE         string          `json:"tee"`
	ExtraParams json.RawMessage `json:"extra-params"`
}

// Challenge is the reply to /auth in both dialects.
type Challenge struct {
	Nonce       string          `json:"nonce"`
	ExtraParams json.RawMessage `json:"extra-params"`
}

// EmptyExtraParams is the `""` both dialects put in a challenge.
var EmptyExtraParams = json.RawMessage(`""`)

// KrunExtraParams is the document inside a krun /auth request's
// extra-params string.
type KrunExtraParams struct {
	WorkloadID string `json:"workload_id"`
}

// NewKrunRequest builds a krun-dialect /auth request for workloadID.
func NewKrunRequest(tee, workloadID string) (*Request, error) {
	inner, err := json.Marshal(KrunExtraParams{WorkloadID: workloadID})
	if err != nil {
		return nil, fmt.Errorf("encoding krun extra-params: %w", err)
	}
	outer, err := json.Marshal(string(inner))
	if err != nil {
		return nil, fmt.Errorf("encoding krun extra-params: %w", err)
	}
	return &Request{Version: KrunVersion, TEE: tee, ExtraParams: outer}, nil
}

// ParseRequest decodes an /auth body. It checks the shape only; the caller
// decides whether the version and TEE are acceptable.
func ParseRequest(body []byte) (*Request, error) {
	var r Request
	if err := unmarshalObject(body, &r); err != nil {
		return nil, fmt.Errorf("auth request: %w", err)
	}
	if r.Version == "" {
		return nil, errors.New("auth request: version is missing")
	}
	if r.TEE == "" {
		return nil, errors.New("auth request: tee is missing")
	}
	return &r, nil
}

// KrunWorkloadID extracts workload_id from a krun-dialect extra-params (a
// JSON string holding a JSON object).
func (r *Request) KrunWorkloadID() (string, error) {
	var inner string
	if err := json.Unmarshal(r.ExtraParams, &inner); err != nil {
		return "", errors.New("auth request: extra-params is not a JSON string")
	}
	var p KrunExtraParams
	if err := unmarshalObject([]byte(inner), &p); err != nil {
		return "", fmt.Errorf("auth request: extra-params: %w", err)
	}
	if p.WorkloadID == "" {
		return "", errors.New("auth request: extra-params has no workload_id")
	}
	return p.WorkloadID, nil
}

// KrunPubKey is the krun dialect's tee-pubkey: an RSA key as standard
// base64 (with padding) of the big-endian modulus and exponent.
type KrunPubKey struct {
	Alg  string `json:"alg"`
	KMod string `json:"k-mod"`
	KExp string `json:"k-exp"`
}

// NewKrunPubKey encodes pub the way libkrun did.
func NewKrunPubKey(pub *rsa.PublicKey) KrunPubKey {
	return KrunPubKey{
		Alg:  "RSA",
		KMod: base64.StdEncoding.EncodeToString(pub.N.Bytes()),
		KExp: base64.StdEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

// KrunModulusSize is the length in bytes of the only modulus a krun key may
// have: the guest makes an RSA-2048 key (docs/interop.md §3).
const KrunModulusSize = 256

// RSAPublicKey decodes and checks the key: alg RSA, a modulus of exactly
// 2048 bits (256 bytes, top bit set), an odd exponent of at most 4 bytes
// between 3 and 2^31-1, both in canonical standard base64.
//
// The exact shape is what makes the krun binding sound. report_data is
// SHA-512(nonce ‖ base64(n) ‖ base64(e)) with no separators, so with
// moduli of several lengths a host in the middle that knows the guest's
// modulus n could pick n' whose base64 ends with base64(n), hand the guest
// a nonce lengthened by the difference, and have the guest's report bind
// the host's key. With one modulus length, canonical base64 (which puts
// "==" only at the end of a 256-byte modulus, and rejects the \r and \n
// Go's decoder would skip) and the broker's fixed 32-character nonce, the
// hashed text splits into nonce, modulus and exponent in exactly one way.
func (k KrunPubKey) RSAPublicKey() (*rsa.PublicKey, error) {
	if !strings.EqualFold(k.Alg, "RSA") {
		return nil, fmt.Errorf("tee-pubkey: alg %q is not RSA", truncate(k.Alg))
	}
	n, err := canonicalBase64(k.KMod)
	if err != nil {
		return nil, fmt.Errorf("tee-pubkey: k-mod: %w", err)
	}
	if len(n) != KrunModulusSize || n[0]&0x80 == 0 {
		return nil, fmt.Errorf("tee-pubkey: k-mod is a %d-bit modulus of %d bytes, want RSA-2048 (%d bytes, top bit set)",
			new(big.Int).SetBytes(n).BitLen(), len(n), KrunModulusSize)
	}
	e, err := canonicalBase64(k.KExp)
	if err != nil {
		return nil, fmt.Errorf("tee-pubkey: k-exp: %w", err)
	}
	if len(e) == 0 || len(e) > 4 || e[0] == 0 {
		return nil, fmt.Errorf("tee-pubkey: k-exp is %d bytes, want a minimal big-endian exponent of 1 to 4 bytes (65537 is AQAB)", len(e))
	}
	pub, err := rsaKey(n, e)
	if err != nil {
		return nil, fmt.Errorf("tee-pubkey: %w", err)
	}
	return pub, nil
}

// canonicalBase64 decodes standard base64 with padding and insists that s
// is exactly the encoding of the result: no skipped line breaks, no
// non-zero trailing bits.
func canonicalBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil || base64.StdEncoding.EncodeToString(b) != s {
		return nil, errors.New("not canonical standard base64")
	}
	return b, nil
}

// rsaKey builds and checks an RSA public key from big-endian bytes.
func rsaKey(n, e []byte) (*rsa.PublicKey, error) {
	if len(n) > MaxRSABits/8+1 {
		return nil, fmt.Errorf("rsa key: modulus longer than %d bits", MaxRSABits)
	}
	if len(e) == 0 || len(e) > 4 {
		return nil, errors.New("rsa key: exponent must be 1 to 4 bytes")
	}
	N := new(big.Int).SetBytes(n)
	bits := N.BitLen()
	if bits < MinRSABits || bits > MaxRSABits {
		return nil, fmt.Errorf("rsa key: modulus is %d bits, want %d to %d", bits, MinRSABits, MaxRSABits)
	}
	if N.Bit(0) == 0 {
		return nil, errors.New("rsa key: modulus is even")
	}
	E := new(big.Int).SetBytes(e)
	if !E.IsInt64() || E.Int64() < 3 || E.Int64() > 1<<31-1 || E.Bit(0) == 0 {
		return nil, errors.New("rsa key: exponent must be odd and between 3 and 2^31-1")
	}
	return &rsa.PublicKey{N: N, E: int(E.Int64())}, nil
}

// KrunAttestation is the body of the krun dialect's POST /attest.
// TEEEvidence is a JSON *string*; for SNP it holds KrunSNPEvidence.
type KrunAttestation struct {
	TEEPubKey   KrunPubKey `json:"tee-pubkey"`
	TEEEvidence string     `json:"tee-evidence"`
}

// ParseKrunAttestation decodes a krun /attest body.
func ParseKrunAttestation(body []byte) (*KrunAttestation, error) {
	var a KrunAttestation
	if err := unmarshalObject(body, &a); err != nil {
		return nil, fmt.Errorf("attest request: %w", err)
	}
	if a.TEEPubKey.KMod == "" || a.TEEPubKey.KExp == "" {
		return nil, errors.New("attest request: tee-pubkey is missing k-mod or k-exp")
	}
	if a.TEEEvidence == "" {
		return nil, errors.New("attest request: tee-evidence is empty")
	}
	return &a, nil
}

// KrunSNPEvidence is the document inside tee-evidence for SNP: the report
// as hex. CertChain is "[]" from libkrun; sealroot's agent may put the hex
// of the GHCB certificate table there instead, so the broker needs no
// certificate download.
type KrunSNPEvidence struct {
	Gen       string `json:"gen"`
	Report    string `json:"report"`
	CertChain string `json:"cert_chain"`
}

// EncodeKrunSNPEvidence renders the tee-evidence string for an SNP report
// and its optional certificate table. gen is "milan", "genoa" or "turin".
func EncodeKrunSNPEvidence(gen string, report, certTable []byte) (string, error) {
	if len(report) != snpreport.ReportSize {
		return "", fmt.Errorf("snp report is %d bytes, want %d", len(report), snpreport.ReportSize)
	}
	chain := "[]"
	if len(certTable) > 0 {
		chain = hex.EncodeToString(certTable)
	}
	b, err := json.Marshal(KrunSNPEvidence{Gen: gen, Report: hex.EncodeToString(report), CertChain: chain})
	if err != nil {
		return "", fmt.Errorf("encoding snp evidence: %w", err)
	}
	return string(b), nil
}

// DecodeKrunSNPEvidence parses the tee-evidence string of an SNP
// attestation: the 1184-byte report and, when cert_chain holds hex, a
// certificate table (nil for "", "[]" or null-like values).
func DecodeKrunSNPEvidence(evidence string) (report, certTable []byte, err error) {
	var e KrunSNPEvidence
	if err := unmarshalObject([]byte(evidence), &e); err != nil {
		return nil, nil, fmt.Errorf("snp evidence: %w", err)
	}
	if len(e.Report) != 2*snpreport.ReportSize {
		return nil, nil, fmt.Errorf("snp evidence: report is %d hex characters, want %d", len(e.Report), 2*snpreport.ReportSize)
	}
	report, err = hex.DecodeString(e.Report)
	if err != nil {
		return nil, nil, errors.New("snp evidence: report is not hex")
	}
	switch strings.TrimSpace(e.CertChain) {
	case "", "[]", "null":
		return report, nil, nil
	}
	if len(e.CertChain) > 2*maxCertTable {
		return nil, nil, fmt.Errorf("snp evidence: cert_chain longer than %d bytes", maxCertTable)
	}
	certTable, err = hex.DecodeString(e.CertChain)
	if err != nil {
		return nil, nil, errors.New("snp evidence: cert_chain is neither \"[]\" nor hex of a certificate table")
	}
	return report, certTable, nil
}

// KrunReportData is the krun dialect's report_data for a fresh key pub:
// SHA-512 over the nonce text, then base64(n), then base64(e), exactly as
// NewKrunPubKey encodes them.
func KrunReportData(nonce string, pub *rsa.PublicKey) [64]byte {
	return KrunBinding(nonce, NewKrunPubKey(pub))
}

// KrunBinding is report_data over the key texts as they were sent. A broker
// uses this form: reference-kbs hashes the k-mod and k-exp strings it
// received, not a re-encoding of the key.
func KrunBinding(nonce string, k KrunPubKey) [64]byte {
	h := sha512.New()
	h.Write([]byte(nonce))
	h.Write([]byte(k.KMod))
	h.Write([]byte(k.KExp))
	var out [64]byte
	h.Sum(out[:0])
	return out
}

// KrunEncryptSecret encrypts secret to the guest key and renders the body
// of the /key reply: a JSON string holding the hex of the RSA PKCS#1 v1.5
// ciphertext. PKCS#1 v1.5 is what the krun wire defines; new designs use the
// Trustee dialect's OAEP or ECDH instead.
func KrunEncryptSecret(pub *rsa.PublicKey, secret []byte) ([]byte, error) {
	ct, err := rsa.EncryptPKCS1v15(rand.Reader, pub, secret) //nolint:staticcheck // fixed by the krun wire protocol
	if err != nil {
		return nil, fmt.Errorf("encrypting secret to guest key: %w", err)
	}
	return json.Marshal(hex.EncodeToString(ct))
}

// KrunDecryptSecret is the guest's side of KrunEncryptSecret: body is the
// /key reply.
func KrunDecryptSecret(priv *rsa.PrivateKey, body []byte) ([]byte, error) {
	var s string
	if err := json.Unmarshal(body, &s); err != nil {
		return nil, errors.New("key reply: not a JSON string")
	}
	ct, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("key reply: not hex")
	}
	if len(ct) != priv.Size() {
		return nil, fmt.Errorf("key reply: ciphertext is %d bytes, want %d", len(ct), priv.Size())
	}
	pt, err := rsa.DecryptPKCS1v15(nil, priv, ct) //nolint:staticcheck // fixed by the krun wire protocol
	if err != nil {
		return nil, errors.New("key reply: decryption failed")
	}
	return pt, nil
}

// unmarshalObject decodes a JSON object into v, bounding the input size and
// insisting on exactly one value.
func unmarshalObject(b []byte, v any) error {
	if len(b) > MaxRequestBody {
		return fmt.Errorf("body of %d bytes exceeds %d", len(b), MaxRequestBody)
	}
	if trimmed := bytes.TrimLeft(b, " \t\r\n"); len(trimmed) == 0 || trimmed[0] != '{' {
		return errors.New("not a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("malformed JSON: %w", jsonErr(err))
	}
	return nil
}

// jsonErr strips encoding/json's quoting of input fragments down to the
// error's kind, so hostile bytes do not travel into logs.
func jsonErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("syntax error at offset %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %q has the wrong type (%s)", truncate(te.Field), te.Value)
	}
	return errors.New("invalid JSON")
}

// truncate shortens untrusted text quoted in errors: the package's limit
// for textclip.Clip.
func truncate(s string) string { return textclip.Clip(s, 40) }
