package main

// Evidence formats of `sealroot verify --format`. Brokers receive evidence
// in several wire forms; the command reads each one it can verify, chosen
// from the content unless --format names one:
//
//	raw       SNP: the 1184-byte report; TDX: the binary quote
//	extended  SNP: the report followed by its certificate table
//	trustee   Trustee KBS JSON: the primary_evidence object of tee "snp" or
//	          "tdx", or the whole tee-evidence object around it
//	          ({"primary_evidence":{…},"additional_evidence":"…"})

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify"
	"github.com/sealroot/sealroot/host/verify/snp"
)

// Evidence format names.
const (
	formatAuto     = "auto"
	formatRaw      = "raw"
	formatExtended = "extended"
	formatTrustee  = "trustee"
)

// teeFormats lists the formats a --tee reads, besides auto.
func teeFormats(tee string) []string {
	switch tee {
	case attest.TEESNP, attest.TEESim:
		return []string{formatRaw, formatExtended, formatTrustee}
	case attest.TEETDX:
		return []string{formatRaw, formatTrustee}
	case attest.TEECCA:
		return []string{formatRaw}
	}
	return nil
}

// checkFormat refuses a --format the --tee cannot read (a usage error).
func checkFormat(tee, format string) error {
	if format == "" || format == formatAuto {
		return nil
	}
	known := teeFormats(tee)
	if !slices.Contains(known, format) {
		return usageError("--format %q: --tee %s reads %s", format, tee, strings.Join(append([]string{formatAuto}, known...), ", "))
	}
	return nil
}

// looksLikeJSON reports whether b starts, after white space, with a JSON
// object. No binary report or quote does: an SNP report starts with its
// little-endian version (2 to 5), a TDX quote with its version (4 or 5).
func looksLikeJSON(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{'
}

// trusteePrimary returns the primary_evidence object inside b: b itself,
// or the primary_evidence member of a tee-evidence object.
func trusteePrimary(b []byte) ([]byte, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if pe, ok := probe["primary_evidence"]; ok {
		pe = bytes.TrimSpace(pe)
		if len(pe) == 0 || pe[0] != '{' {
			return nil, fmt.Errorf("primary_evidence is not a JSON object")
		}
		return pe, nil
	}
	return b, nil
}

// snpEvidenceFromFile turns the bytes of an SNP --evidence file into a
// report and certificate table, in the format given or detected.
func snpEvidenceFromFile(b []byte, format string) (report, table []byte, err error) {
	if format == "" || format == formatAuto {
		switch {
		case looksLikeJSON(b):
			format = formatTrustee
		case len(b) == snp.ReportSize:
			format = formatRaw
		case len(b) > snp.ReportSize:
			format = formatExtended
		default:
			return nil, nil, fmt.Errorf("%d bytes: not a raw SNP report (%d bytes), not an extended report (a report followed by its certificate table, want at least %d bytes), and not Trustee SNP evidence JSON (no '{')",
				len(b), snp.ReportSize, snp.ReportSize)
		}
	}
	switch format {
	case formatTrustee:
		pe, err := trusteePrimary(b)
		if err != nil {
			return nil, nil, fmt.Errorf("trustee snp evidence json: %w", err)
		}
		ev, err := verify.DecodeTrustee(attest.TEESNP, pe)
		if err != nil {
			return nil, nil, fmt.Errorf("trustee snp evidence json: %w", err)
		}
		return ev.Report, ev.Certs, nil
	case formatRaw:
		if len(b) != snp.ReportSize {
			return nil, nil, fmt.Errorf("raw snp report: %d bytes, want %d", len(b), snp.ReportSize)
		}
		return b, nil, nil
	case formatExtended:
		if len(b) <= snp.ReportSize {
			return nil, nil, fmt.Errorf("extended snp report: %d bytes, want the %d-byte report and a certificate table after it", len(b), snp.ReportSize)
		}
		report, table, err := snp.SplitExtendedReport(b)
		if err != nil {
			return nil, nil, fmt.Errorf("extended snp report: %w", err)
		}
		if _, err := snp.ParseCertTable(table); err != nil {
			return nil, nil, fmt.Errorf("extended snp report: certificate table after the report: %w", err)
		}
		return report, table, nil
	}
	return nil, nil, fmt.Errorf("format %q is not an snp evidence format", format)
}

// tdxEvidenceFromFile turns the bytes of a TDX --evidence file into a quote
// and event log, in the format given or detected.
func tdxEvidenceFromFile(b []byte, format string) (quote, eventLog []byte, err error) {
	if format == "" || format == formatAuto {
		format = formatRaw
		if looksLikeJSON(b) {
			format = formatTrustee
		}
	}
	switch format {
	case formatTrustee:
		pe, err := trusteePrimary(b)
		if err != nil {
			return nil, nil, fmt.Errorf("trustee tdx evidence json: %w", err)
		}
		ev, err := verify.DecodeTrustee(attest.TEETDX, pe)
		if err != nil {
			return nil, nil, fmt.Errorf("trustee tdx evidence json: %w", err)
		}
		return ev.Report, ev.EventLog, nil
	case formatRaw:
		if len(b) == 0 {
			return nil, nil, fmt.Errorf("raw tdx quote: the file is empty")
		}
		return b, nil, nil
	}
	return nil, nil, fmt.Errorf("format %q is not a tdx evidence format", format)
}
