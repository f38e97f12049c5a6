package kbs

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strings"
)

// InitData is the init-data member of a Trustee /attest body:
// {"format":"toml","body":"<the init-data document>"}. The host puts the
// document's digest in the TEE's launch-time host field (SNP HOST_DATA,
// TDX MRCONFIGID) and the guest sends the document itself, so a verifier
// that hashes the body and compares learns that the host launched the
// guest with exactly this document.
type InitData struct {
	Format string `json:"format"`
	Body   string `json:"body"`
}

// InitDataFormatTOML is the only init-data format Trustee's KBS accepts.
const InitDataFormatTOML = "toml"

// MaxInitData bounds an init-data body (Kata's annotation limit is far
// below this).
const MaxInitData = 256 << 10

// DecodeInitData decodes the init-data member of a Trustee /attest body:
// the JSON envelope, the format (Trustee's KBS accepts only "toml") and the
// body's size. An absent or null member gives nil and no error. It does not
// read the TOML document itself: that is the broker's check
// (host/broker/initdata.go), which then takes the digest with
// InitDataDigest under the algorithm the document names.
func DecodeInitData(raw json.RawMessage) (*InitData, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var d InitData
	if err := unmarshalObject(raw, &d); err != nil {
		return nil, fmt.Errorf("init-data: %w", err)
	}
	if d.Format != InitDataFormatTOML {
		return nil, fmt.Errorf("init-data: format %q is not supported (want %q)", truncate(d.Format), InitDataFormatTOML)
	}
	if len(d.Body) > MaxInitData {
		return nil, fmt.Errorf("init-data: body is %d bytes, more than %d", len(d.Body), MaxInitData)
	}
	return &d, nil
}

// InitDataDigest is the digest rule of init-data: the body's bytes, exactly
// as sent, hashed with the algorithm the document names: "sha256",
// "sha384" or "sha512" (Trustee's names; no other is accepted).
func InitDataDigest(algorithm, body string) ([]byte, error) {
	var h hash.Hash
	switch algorithm {
	case "sha256":
		h = sha256.New()
	case "sha384":
		h = sha512.New384()
	case "sha512":
		h = sha512.New()
	default:
		return nil, fmt.Errorf("init-data: algorithm %q is not sha256, sha384 or sha512", truncate(algorithm))
	}
	h.Write([]byte(body))
	return h.Sum(nil), nil
}

// InitDataBinding is the value a TEE's host field must hold for an
// init-data digest: the digest cut or zero-padded to the field's size (32
// bytes of SNP HOST_DATA, 48 of TDX MRCONFIGID, 64 of the CCA realm
// personalization value). A SHA-384 digest in HOST_DATA is its first 32
// bytes; a SHA-256 digest in MRCONFIGID is followed by 16 zero bytes, the
// same layout sealroot's launcher uses for its config digest.
func InitDataBinding(digest []byte, size int) []byte {
	out := make([]byte, size)
	copy(out, digest)
	return out
}

// maxAdditionalEntries bounds the devices named in additional-evidence.
const maxAdditionalEntries = 16

// ParseAdditionalEvidence decodes the additional_evidence string of a
// Trustee tee-evidence: "" when there is none, else a JSON object mapping
// a TEE or device name (Trustee's lowercase tee names: "nvidia", "tdx",
// "sampledevice", ...) to that device's evidence, any JSON value. Trustee's
// KBS verifies each entry as independent evidence. It returns the entries
// by name; the caller decides what it can verify.
func ParseAdditionalEvidence(s string) (map[string]json.RawMessage, error) {
	if s == "" {
		return nil, nil
	}
	t := bytes.TrimSpace([]byte(s))
	if len(t) == 0 || t[0] != '{' {
		return nil, errors.New("additional-evidence: not a JSON object of device evidence by tee name")
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(t, &m); err != nil {
		return nil, fmt.Errorf("additional-evidence: not a JSON object: %s", truncate(err.Error()))
	}
	if len(m) > maxAdditionalEntries {
		return nil, fmt.Errorf("additional-evidence: %d entries, more than %d", len(m), maxAdditionalEntries)
	}
	for name := range m {
		if name == "" || len(name) > 32 || strings.ToLower(name) != name || strings.ContainsFunc(name, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') }) {
			return nil, fmt.Errorf("additional-evidence: %q is not a tee name", truncate(name))
		}
	}
	return m, nil
}
