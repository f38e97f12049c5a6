package snpreport

import (
	"encoding/hex"
	"errors"
)

// guid is a certificate table GUID: 16 bytes, in the table as they are and
// in text as the sev crate writes a uuid ("c0b406a4-a803-4952-9743-
// 3fb6014cd0ae", RFC 9562's hyphenated form). The package reads and writes
// that one form itself rather than linking a uuid library into the guest.
type guid [16]byte

// zeroGUID ends a certificate table.
var zeroGUID guid

// guidGroups are where the hex digits of the hyphenated form fall.
var guidGroups = [5][2]int{{0, 8}, {9, 13}, {14, 18}, {19, 23}, {24, 36}}

// parseGUID reads the 36-character hyphenated form, hex digits in either
// case.
func parseGUID(s string) (guid, error) {
	var g guid
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return g, errors.New("not a hyphenated uuid")
	}
	n := 0
	for _, span := range guidGroups {
		m, err := hex.Decode(g[n:], []byte(s[span[0]:span[1]]))
		if err != nil {
			return guid{}, errors.New("not a hyphenated uuid")
		}
		n += m
	}
	return g, nil
}

// mustGUID is parseGUID for the package's own constants.
func mustGUID(s string) guid {
	g, err := parseGUID(s)
	if err != nil {
		panic("snpreport: bad GUID constant " + s)
	}
	return g
}

// String is the lower-case hyphenated form.
func (g guid) String() string {
	var b [36]byte
	n := 0
	for i, span := range guidGroups {
		if i > 0 {
			b[span[0]-1] = '-'
		}
		w := (span[1] - span[0]) / 2
		hex.Encode(b[span[0]:span[1]], g[n:n+w])
		n += w
	}
	return string(b[:])
}
