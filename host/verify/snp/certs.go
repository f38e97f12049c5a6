package snp

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-sev-guest/abi"
	"github.com/google/uuid"
)

// GUIDs of certificate table entries (GHCB specification, MSG_REPORT_REQ).
var (
	GUIDVCEK = uuid.MustParse(abi.VcekGUID)
	GUIDVLEK = uuid.MustParse(abi.VlekGUID)
	GUIDASK  = uuid.MustParse(abi.AskGUID)
	GUIDARK  = uuid.MustParse(abi.ArkGUID)
)

// Limits on certificate tables from untrusted sources. A real table holds
// three or four certificates of under 2 KiB each.
const (
	MaxCertTableSize    = 64 << 10
	maxCertTableEntries = 32
	certTableEntrySize  = 24 // GUID, u32 offset, u32 length
)

// CertEntry is one entry of a certificate table.
type CertEntry struct {
	GUID uuid.UUID
	Data []byte
}

// ParseCertTable parses a GHCB certificate table: a list of (GUID, u32
// offset, u32 length) headers ended by an all-zero header, followed by the
// certificates they point into. An empty input is an empty table. Entries
// whose data lies outside the table, overlaps the headers, or repeats a
// GUID are errors. The returned Data slices alias b.
func ParseCertTable(b []byte) ([]CertEntry, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if len(b) > MaxCertTableSize {
		return nil, fmt.Errorf("certificate table is %d bytes, more than %d", len(b), MaxCertTableSize)
	}
	var entries []CertEntry
	seen := map[uuid.UUID]bool{}
	type span struct{ off, n uint64 }
	var spans []span
	for i := 0; ; i++ {
		at := i * certTableEntrySize
		if at+certTableEntrySize > len(b) {
			return nil, fmt.Errorf("certificate table header %d runs past the end (no terminating entry)", i)
		}
		h := b[at : at+certTableEntrySize]
		var g uuid.UUID
		copy(g[:], h[:16])
		off := uint64(binary.LittleEndian.Uint32(h[16:]))
		n := uint64(binary.LittleEndian.Uint32(h[20:]))
		if g == (uuid.UUID{}) && off == 0 && n == 0 {
			headerEnd := uint64(at + certTableEntrySize)
			for j, s := range spans {
				if s.off < headerEnd && s.n > 0 {
					return nil, fmt.Errorf("certificate table entry %d (%s) points into the headers", j, entries[j].GUID)
				}
			}
			return entries, nil
		}
		if i >= maxCertTableEntries {
			return nil, fmt.Errorf("certificate table has more than %d entries", maxCertTableEntries)
		}
		if off+n > uint64(len(b)) {
			return nil, fmt.Errorf("certificate table entry %d (%s) spans bytes %d-%d, past the table's %d bytes", i, g, off, off+n, len(b))
		}
		if seen[g] {
			return nil, fmt.Errorf("certificate table has GUID %s twice", g)
		}
		seen[g] = true
		entries = append(entries, CertEntry{GUID: g, Data: b[off : off+n]})
		spans = append(spans, span{off, n})
	}
}

// MarshalCertTable builds a GHCB certificate table from entries, in order.
// No entries give an empty (nil) table.
func MarshalCertTable(entries []CertEntry) []byte {
	if len(entries) == 0 {
		return nil
	}
	headers := (len(entries) + 1) * certTableEntrySize
	size := headers
	for _, e := range entries {
		size += len(e.Data)
	}
	out := make([]byte, size)
	cursor := headers
	for i, e := range entries {
		h := out[i*certTableEntrySize:]
		copy(h, e.GUID[:])
		binary.LittleEndian.PutUint32(h[16:], uint32(cursor))
		binary.LittleEndian.PutUint32(h[20:], uint32(len(e.Data)))
		copy(out[cursor:], e.Data)
		cursor += len(e.Data)
	}
	return out
}

// certFromTable returns the data of the entry with GUID g, or nil.
func certFromTable(entries []CertEntry, g uuid.UUID) []byte {
	for _, e := range entries {
		if e.GUID == g {
			return e.Data
		}
	}
	return nil
}

// LoadCerts turns what a user may hold as "the certificates" into a GHCB
// certificate table: a certificate table as-is, one DER certificate, or
// PEM with one or more certificates. Each certificate is filed under its
// role by subject common name: SEV-VCEK, SEV-VLEK, SEV-<line> or
// SEV-VLEK-<line> (an ASK or ASVK), ARK-<line>. The ARK and ASK are
// carried along but never trusted: roots come from Options only.
func LoadCerts(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, errors.New("no certificates")
	}
	trimmed := bytes.TrimSpace(b)
	var ders [][]byte
	switch {
	case bytes.HasPrefix(trimmed, []byte("-----BEGIN")):
		rest := trimmed
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				return nil, fmt.Errorf("PEM block %q is not a CERTIFICATE", blk.Type)
			}
			ders = append(ders, blk.Bytes)
		}
		if len(bytes.TrimSpace(rest)) != 0 {
			return nil, errors.New("PEM data has trailing bytes that are not a certificate")
		}
	case b[0] == 0x30 && isCertificate(b): // one DER certificate
		ders = [][]byte{b}
	default:
		entries, err := ParseCertTable(b)
		if err != nil {
			return nil, fmt.Errorf("not PEM, DER or a certificate table: %w", err)
		}
		if len(entries) == 0 {
			return nil, errors.New("certificate table is empty")
		}
		return b, nil
	}
	var entries []CertEntry
	for i, der := range ders {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		g, err := roleGUID(cert.Subject.CommonName)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", i+1, err)
		}
		for _, e := range entries {
			if e.GUID == g {
				return nil, fmt.Errorf("certificate %d: a second %s certificate", i+1, cert.Subject.CommonName)
			}
		}
		entries = append(entries, CertEntry{GUID: g, Data: der})
	}
	return MarshalCertTable(entries), nil
}

func isCertificate(der []byte) bool {
	_, err := x509.ParseCertificate(der)
	return err == nil
}

// roleGUID maps an AMD certificate's subject common name to its table GUID.
func roleGUID(cn string) (uuid.UUID, error) {
	switch {
	case cn == "SEV-VCEK":
		return GUIDVCEK, nil
	case cn == "SEV-VLEK":
		return GUIDVLEK, nil
	case strings.HasPrefix(cn, "ARK-"):
		return GUIDARK, nil
	case strings.HasPrefix(cn, "SEV-"): // SEV-Milan (ASK), SEV-VLEK-Milan (ASVK)
		return GUIDASK, nil
	}
	return uuid.UUID{}, fmt.Errorf("subject %q is not an AMD SEV certificate (want SEV-VCEK, SEV-VLEK, SEV-<product> or ARK-<product>)", cn)
}

// MergeCertTables combines two tables; entries of override replace those of
// base with the same GUID.
func MergeCertTables(base, override []byte) ([]byte, error) {
	b, err := ParseCertTable(base)
	if err != nil {
		return nil, err
	}
	o, err := ParseCertTable(override)
	if err != nil {
		return nil, err
	}
	out := append([]CertEntry(nil), o...)
	for _, e := range b {
		if certFromTable(o, e.GUID) == nil {
			out = append(out, e)
		}
	}
	return MarshalCertTable(out), nil
}
