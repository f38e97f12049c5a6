package kbs

import (
	"bytes"
	"crypto/sha256"
)

// Runtime evidence (docs/threat-model.md, "Runtime evidence"): a workload
// that opted in through its disk config asks the init for reports over
// data of its own. Their report_data is domain-separated from every boot
// handshake: the first 32 bytes are SHA-256 over RuntimeDomain and the
// workload's data, the last 32 are RuntimeMarker. A boot binding is a
// SHA-512 (krun) or a zero-padded SHA-384 (Trustee) over a nonce the
// broker chose, so it ends in RuntimeMarker only by a 2^-256 accident, and
// a broker refuses any report that does: runtime evidence can never be
// taken for a boot.
const RuntimeDomain = "sealroot runtime evidence v1\x00"

// RuntimeMarker ends the report_data of every runtime report.
var RuntimeMarker = sha256.Sum256([]byte("sealroot runtime evidence marker v1"))

// RuntimeReportData is the report_data of a runtime report over userData.
func RuntimeReportData(userData []byte) [64]byte {
	h := sha256.New()
	h.Write([]byte(RuntimeDomain))
	h.Write(userData)
	var rd [64]byte
	copy(rd[:32], h.Sum(nil))
	copy(rd[32:], RuntimeMarker[:])
	return rd
}

// IsRuntimeReportData reports whether report_data is a runtime report's.
func IsRuntimeReportData(rd []byte) bool {
	return len(rd) == 64 && bytes.Equal(rd[32:], RuntimeMarker[:])
}
