// Package configbind reads and checks the value a launcher binds into a
// TEE's evidence for the disk config it launched with (docs/threat-model.md,
// "Config binding per TEE"). The config digest is the SHA-256 of the exact
// footer config bytes (config.HostData); each TEE carries it in its own
// launch-time field:
//
//	SNP (and the simulated TEE)  HOST_DATA, 32 bytes  = digest
//	TDX                          MRCONFIGID, 48 bytes = digest || 16 zero bytes
//	CCA                          RPV, 64 bytes        = digest || 32 zero bytes
//
// An all-zero field means the launcher bound no config (libkrun does this):
// the config is then unattested, which the caller must treat explicitly.
//
// The guest reads these fields from evidence its own TEE just produced, so
// nothing here verifies a signature: the hardware (through the kernel) is
// the source. Parsing is still strict, as for any bytes from outside.
package configbind

import (
	"bytes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// Field sizes.
const (
	HostDataSize   = 32
	MRConfigIDSize = 48
	RPVSize        = 64
)

// ErrUnattested means the evidence's field is all zeros: the launcher bound
// no config.
var ErrUnattested = errors.New("the launcher bound no config (the field is all zeros): the config is unattested")

// ErrMismatch means the evidence binds another config.
var ErrMismatch = errors.New("the VM was launched for another config")

// Expected returns the field a launcher sets for a config digest on the
// TEE whose evidence kind is tee (attest.TEESNP, TEETDX, TEECCA).
func Expected(tee string, digest [32]byte) ([]byte, error) {
	t, _ := attest.Lookup(tee)
	if t.BindingSize == 0 {
		return nil, fmt.Errorf("tee %q carries no config binding", tee)
	}
	out := make([]byte, t.BindingSize)
	copy(out, digest[:])
	return out, nil
}

// FieldName names the field for messages (the table in package attest).
func FieldName(tee string) string {
	if t, _ := attest.Lookup(tee); t.BindingField != "" {
		return t.BindingField
	}
	return "HOST_DATA"
}

// Bound returns the launch-bound field of ev: SNP HOST_DATA, TDX
// MRCONFIGID or the CCA realm personalization value.
func Bound(ev *attest.Evidence) ([]byte, error) {
	switch ev.TEE {
	case attest.TEESNP, attest.TEESim:
		off := snpreport.OffHostData
		if len(ev.Report) < off+HostDataSize {
			return nil, fmt.Errorf("snp report of %d bytes has no HOST_DATA (bytes %#x-%#x)", len(ev.Report), off, off+HostDataSize)
		}
		return bytes.Clone(ev.Report[off : off+HostDataSize]), nil
	case attest.TEETDX:
		return tdxMRConfigID(ev.Report)
	case attest.TEECCA:
		return ccaRPV(ev.Report)
	}
	return nil, fmt.Errorf("evidence of tee %q carries no config binding", ev.TEE)
}

// Check compares ev's bound field with the one a launcher sets for digest.
// It returns ErrUnattested for an all-zero field and an error wrapping
// ErrMismatch, naming the field and both values, for another config's.
func Check(ev *attest.Evidence, digest [32]byte) error {
	got, err := Bound(ev)
	if err != nil {
		return err
	}
	want, err := Expected(ev.TEE, digest)
	if err != nil {
		return err
	}
	switch {
	case subtle.ConstantTimeCompare(got, want) == 1:
		return nil
	case bytes.Equal(got, make([]byte, len(got))):
		return fmt.Errorf("%s: %w", FieldName(ev.TEE), ErrUnattested)
	}
	return fmt.Errorf("%w: the evidence's %s is %x, this disk's config gives %x", ErrMismatch, FieldName(ev.TEE), got, want)
}

// TDX quote layout: a 48-byte header, then (version 4) the TD quote body,
// or (version 5) a body type u16 and size u32 before it. MRCONFIGID follows
// TEE_TCB_SVN (16), MRSEAM (48), MRSIGNERSEAM (48), SEAMATTRIBUTES (8),
// TDATTRIBUTES (8), XFAM (8) and MRTD (48): body offset 0xB8.
const (
	tdxHeaderSize     = 0x30
	tdxBodyMRConfigID = 0xB8
	tdxTEETypeTDX     = 0x81
)

func tdxMRConfigID(q []byte) ([]byte, error) {
	if len(q) < tdxHeaderSize+6 {
		return nil, fmt.Errorf("tdx quote of %d bytes is shorter than its header", len(q))
	}
	if t := binary.LittleEndian.Uint32(q[4:]); t != tdxTEETypeTDX {
		return nil, fmt.Errorf("tdx quote: tee type %#x is not TDX", t)
	}
	body := tdxHeaderSize
	switch v := binary.LittleEndian.Uint16(q); v {
	case 4:
	case 5:
		body += 6
	default:
		return nil, fmt.Errorf("tdx quote: version %d (want 4 or 5)", v)
	}
	off := body + tdxBodyMRConfigID
	if len(q) < off+MRConfigIDSize {
		return nil, fmt.Errorf("tdx quote of %d bytes ends before MRCONFIGID (bytes %#x-%#x)", len(q), off, off+MRConfigIDSize)
	}
	return bytes.Clone(q[off : off+MRConfigIDSize]), nil
}

// CCA token: tag 399 { 44234: platform token, 44241: realm token }, the
// realm token a COSE_Sign1 (tag 18) [protected, unprotected, payload,
// signature] whose payload holds claim 44235, the realm personalization
// value.
const (
	ccaCollectionTag = 399
	ccaRealmToken    = 44241
	ccaRPVClaim      = 44235
	coseSign1Tag     = 18
	maxCCAToken      = 64 << 10
)

// ccaRPV reads claim 44235 of the realm token with the package's own CBOR
// reader (cbor.go).
func ccaRPV(tok []byte) ([]byte, error) {
	if len(tok) > maxCCAToken {
		return nil, fmt.Errorf("cca token of %d bytes exceeds %d", len(tok), maxCCAToken)
	}
	num, coll, err := cborTagged(tok)
	if err != nil || num != ccaCollectionTag {
		return nil, fmt.Errorf("cca token: not a tag-%d collection (%s)", ccaCollectionTag, why(err, fmt.Sprintf("tag %d", num)))
	}
	item, err := cborIntMapValue(coll, ccaRealmToken, true)
	if err != nil {
		return nil, fmt.Errorf("cca token: no realm token (key %d): %w", ccaRealmToken, err)
	}
	realm, err := cborByteString(item)
	if err != nil || len(realm) == 0 {
		return nil, fmt.Errorf("cca token: the realm token (key %d) is not a non-empty byte string (%s)", ccaRealmToken, why(err, "empty"))
	}
	num, sign1, err := cborTagged(realm)
	if err != nil || num != coseSign1Tag {
		return nil, fmt.Errorf("cca realm token: not a COSE_Sign1 (%s)", why(err, fmt.Sprintf("tag %d", num)))
	}
	parts, err := cborArrayItems(sign1)
	if err != nil || len(parts) != 4 {
		return nil, fmt.Errorf("cca realm token: COSE_Sign1 is not a 4-element array (%s)", why(err, fmt.Sprintf("%d elements", len(parts))))
	}
	payload, err := cborByteString(parts[2])
	if err != nil {
		return nil, fmt.Errorf("cca realm token payload: %w", err)
	}
	item, err = cborIntMapValue(payload, ccaRPVClaim, false)
	if err != nil {
		return nil, fmt.Errorf("cca realm claims: %w", err)
	}
	rpv, err := cborByteString(item)
	if err != nil || len(rpv) != RPVSize {
		return nil, fmt.Errorf("cca realm claims: personalization value (claim %d) is not %d bytes (%s)", ccaRPVClaim, RPVSize, why(err, fmt.Sprintf("%d bytes", len(rpv))))
	}
	return bytes.Clone(rpv), nil
}

// why is err's text, or alt when the item was well-formed but not the one
// wanted.
func why(err error, alt string) string {
	if err != nil {
		return err.Error()
	}
	return alt
}
