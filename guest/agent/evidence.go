package agent

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/kbs"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// WireTEE is the TEE name the broker sees for a config tee: the simulated
// secure processor produces SNP reports, so "sim" travels as "snp".
// The table in package attest holds the mapping.
func WireTEE(configTEE string) (string, error) { return attest.WireName(configTEE) }

// checkEvidence makes sure the Attester produced what the config asked for.
func checkEvidence(ev *attest.Evidence, wire string) error {
	if ev == nil {
		return errors.New("attester returned no evidence")
	}
	if ev.TEE != wire {
		return fmt.Errorf("attester produced %q evidence, the config asks for %q", clip(ev.TEE), wire)
	}
	if len(ev.Report) == 0 {
		return fmt.Errorf("attester returned an empty %s report", wire)
	}
	if wire == attest.TEESNP && len(ev.Report) != snpreport.ReportSize {
		return fmt.Errorf("snp report is %d bytes, want %d", len(ev.Report), snpreport.ReportSize)
	}
	return nil
}

// snpGen is the processor generation the krun dialect's evidence names:
// tee_data's "gen" when the config has one, else the generation the
// report's CPUID fields identify (report version 3 and later), else
// "milan", libkrun's default.
func snpGen(teeData string, report []byte) string {
	if g := teeDataGen(teeData); g != "" {
		return g
	}
	if len(report) == snpreport.ReportSize && report[snpreport.OffVersion] >= 3 {
		if p, err := snpreport.ProductFromCPUID(report[snpreport.OffCPUIDFam], report[snpreport.OffCPUIDMod]); err == nil {
			return strings.ToLower(p.String())
		}
	}
	return "milan"
}

// teeDataGen extracts "gen" from the tee_data JSON document, lowercased, or
// "" when there is none. Only letters and digits are kept: the value ends
// up inside a JSON string the broker parses.
func teeDataGen(teeData string) string {
	if len(teeData) == 0 || len(teeData) > 4096 {
		return ""
	}
	var d struct {
		Gen string `json:"gen"`
	}
	if err := json.Unmarshal([]byte(teeData), &d); err != nil {
		return ""
	}
	g := strings.ToLower(strings.TrimSpace(d.Gen))
	if g == "" || len(g) > 16 {
		return ""
	}
	for _, r := range g {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return ""
		}
	}
	return g
}

// krunEvidence renders the krun dialect's tee-evidence string. The krun wire
// carries SNP reports only (docs/interop.md §3).
func krunEvidence(ev *attest.Evidence, teeData string) (string, error) {
	if ev.TEE != attest.TEESNP {
		return "", fmt.Errorf("the krun dialect carries SNP evidence only, not %s: set kbs_protocol to \"trustee\"", ev.TEE)
	}
	return kbs.EncodeKrunSNPEvidence(snpGen(teeData, ev.Report), ev.Report, ev.Certs)
}

// trusteeEvidence renders the Trustee dialect's primary_evidence object:
// the sev crate's serde form for SNP, {"cc_eventlog","quote"} for TDX, and
// for CCA what CoCo's attestation agent sends, {"token":[bytes as
// integers]} (a serde Vec<u8>).
func trusteeEvidence(ev *attest.Evidence) (json.RawMessage, error) {
	switch ev.TEE {
	case attest.TEESNP:
		b, err := snpreport.Encode(ev.Report, ev.Certs)
		if err != nil {
			return nil, fmt.Errorf("encoding snp evidence: %w", err)
		}
		return b, nil
	case attest.TEETDX:
		e := kbs.TDXEvidence{Quote: base64.StdEncoding.EncodeToString(ev.Report)}
		if len(ev.EventLog) > 0 {
			s := base64.StdEncoding.EncodeToString(ev.EventLog)
			e.CCEventLog = &s
		}
		return json.Marshal(e)
	case attest.TEECCA:
		return encodeCCAEvidence(ev.Report), nil
	}
	return nil, fmt.Errorf("no Trustee evidence encoding for tee %q", clip(ev.TEE))
}

// encodeCCAEvidence writes {"token":[b0,b1,...]}.
func encodeCCAEvidence(token []byte) json.RawMessage {
	b := make([]byte, 0, len(token)*4+12)
	b = append(b, `{"token":[`...)
	for i, c := range token {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(c), 10)
	}
	return append(b, `]}`...)
}
