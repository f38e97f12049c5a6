package snp

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"github.com/sealroot/sealroot/attest"
)

// Endorsement is what AMD's KDS certifies in a VCEK or VLEK certificate's
// extensions (AMD publication 57230): the TCB the key belongs to and, for
// a VCEK, the chip.
type Endorsement struct {
	// StructVersion is 0 for Milan and Genoa, 1 for Turin.
	StructVersion int
	// ProductName is e.g. "Milan-B1" (VCEK) or "Milan" (VLEK).
	ProductName string
	// TCB holds the certified SPLs (FMC only with StructVersion 1).
	TCB attest.TCB
	// HWID is a VCEK's chip id: 64 bytes, or 8 with StructVersion 1.
	HWID []byte
	// CSPID names the cloud provider a VLEK was issued to.
	CSPID string
}

// kdsArc is the OID prefix of AMD's KDS extensions, 1.3.6.1.4.1.3704.1.
var kdsArc = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 3704, 1}

// ParseEndorsement reads the KDS extensions of a VCEK or VLEK certificate,
// of either structure version. go-sev-guest v0.15.0 reads only version 0
// (it refuses Turin's fmcSPL extension), so the verifier uses this for the
// TCB and chip binding on every product line. Extensions outside AMD's arc
// are ignored here (checkProfile, keycache.go, rejects them on Milan and
// Genoa); a KDS extension given twice or with a malformed value is an error.
func ParseEndorsement(cert *x509.Certificate) (*Endorsement, error) {
	var e Endorsement
	seen := map[string]bool{}
	var have struct{ version, name, bl, tee, snp, ucode, fmc, hwid bool }
	for _, x := range cert.Extensions {
		if len(x.Id) <= len(kdsArc) || !x.Id[:len(kdsArc)].Equal(kdsArc) {
			continue
		}
		key := x.Id.String()
		if seen[key] {
			return nil, fmt.Errorf("extension %s appears twice", key)
		}
		seen[key] = true
		rest := x.Id[len(kdsArc):]
		var err error
		switch {
		case len(rest) == 1 && rest[0] == 1:
			e.StructVersion, err = extInt(x.Value, 255)
			have.version = true
		case len(rest) == 1 && rest[0] == 2:
			e.ProductName, err = extIA5(x.Value)
			have.name = true
		case len(rest) == 2 && rest[0] == 3:
			var v int
			v, err = extInt(x.Value, 255)
			switch rest[1] {
			case 1:
				e.TCB.Bootloader, have.bl = uint8(v), true
			case 2:
				e.TCB.TEE, have.tee = uint8(v), true
			case 3:
				e.TCB.SNP, have.snp = uint8(v), true
			case 8:
				e.TCB.Microcode, have.ucode = uint8(v), true
			case 9:
				e.TCB.FMC, have.fmc = uint8(v), true
			}
		case len(rest) == 1 && rest[0] == 4:
			e.HWID, err = extOctets(x.Value)
			have.hwid = true
		case len(rest) == 1 && rest[0] == 5:
			e.CSPID, err = extIA5(x.Value)
		}
		if err != nil {
			return nil, fmt.Errorf("extension %s: %w", key, err)
		}
	}
	switch {
	case !have.version || !have.name:
		return nil, errors.New("missing the KDS structure version or product name extension")
	case e.StructVersion > 1:
		return nil, fmt.Errorf("KDS structure version %d is not supported (want 0 or 1)", e.StructVersion)
	case !have.bl || !have.tee || !have.snp || !have.ucode:
		return nil, errors.New("missing a bootloader, TEE, SNP or microcode SPL extension")
	case e.StructVersion == 1 && !have.fmc:
		return nil, errors.New("KDS structure version 1 without the FMC SPL extension")
	case have.hwid && e.CSPID != "":
		return nil, errors.New("both a chip id and a CSP id")
	case have.hwid && len(e.HWID) != hwidSize(e.StructVersion):
		return nil, fmt.Errorf("chip id is %d bytes, want %d", len(e.HWID), hwidSize(e.StructVersion))
	}
	return &e, nil
}

func hwidSize(structVersion int) int {
	if structVersion == 1 {
		return 8
	}
	return 64
}

func extInt(v []byte, max int) (int, error) {
	var i int
	rest, err := asn1.Unmarshal(v, &i)
	if err != nil {
		return 0, fmt.Errorf("not an INTEGER: %w", err)
	}
	if len(rest) != 0 || i < 0 || i > max {
		return 0, fmt.Errorf("INTEGER out of range or with trailing bytes")
	}
	return i, nil
}

func extIA5(v []byte) (string, error) {
	if len(v) == 0 || v[0] != asn1.TagIA5String {
		return "", errors.New("not an IA5String")
	}
	var s string
	rest, err := asn1.UnmarshalWithParams(v, &s, "ia5")
	if err != nil || len(rest) != 0 {
		return "", errors.New("malformed IA5String")
	}
	return s, nil
}

// extOctets reads the chip id, which KDS writes as raw bytes without an
// OCTET STRING header; a tagged value is accepted too.
func extOctets(v []byte) ([]byte, error) {
	if len(v) == 64 || len(v) == 8 {
		return v, nil
	}
	var b []byte
	rest, err := asn1.Unmarshal(v, &b)
	if err != nil || len(rest) != 0 {
		return nil, fmt.Errorf("chip id of %d bytes is neither raw nor an OCTET STRING", len(v))
	}
	return b, nil
}
