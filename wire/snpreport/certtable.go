package snpreport

import (
	"encoding/binary"
)

// The GHCB certificate table and the report versions, defined here rather
// than taken from go-sev-guest's abi package: importing that package links
// the protobuf runtime into everything that uses this one, the guest init
// included. The test checks every value against go-sev-guest's.
const (
	// GUIDs of the certificate table entries (AMD's GHCB specification).
	ArkGUID  = "c0b406a4-a803-4952-9743-3fb6014cd0ae"
	AskGUID  = "4ab7b379-bbac-4fe4-a02f-05aef327c782"
	VcekGUID = "63da758d-e664-4564-adc5-f4b93be8accd"
	VlekGUID = "a8074bc2-a25a-483e-aae6-39c045a0b8a1"

	// MinReportVersion and MaxReportVersion bound the report versions
	// Encode and Decode accept (those go-sev-guest's verifier supports).
	MinReportVersion = 2
	MaxReportVersion = 5

	// certTableEntrySize is one table header entry: GUID, offset, length.
	certTableEntrySize = 24
)

// certEntry is one certificate of a table being built.
type certEntry struct {
	guid guid
	cert []byte
}

// marshalCertTable lays out a GHCB certificate table: the header entries
// (GUID as its 16 bytes, then offset and length as little-endian uint32s),
// an all-zero terminating entry, then the certificates in entry order.
// No entries is an empty (nil) table.
func marshalCertTable(entries []certEntry) []byte {
	if len(entries) == 0 {
		return nil
	}
	size := (len(entries) + 1) * certTableEntrySize
	for _, e := range entries {
		size += len(e.cert)
	}
	out := make([]byte, size)
	off := (len(entries) + 1) * certTableEntrySize
	for i, e := range entries {
		h := out[i*certTableEntrySize:]
		copy(h, e.guid[:])
		binary.LittleEndian.PutUint32(h[16:], uint32(off))
		binary.LittleEndian.PutUint32(h[20:], uint32(len(e.cert)))
		off += copy(out[off:], e.cert)
	}
	return out
}
