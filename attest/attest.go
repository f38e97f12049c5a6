// Package attest is sealroot's TEE layer.
//
// Guest side, an Attester turns 64 bytes of report_data into Evidence: a
// hardware-signed report (SNP), quote (TDX) or realm token (CCA), or a report
// from the launcher's simulated secure processor. The config's `tee` names
// exactly one Attester; there is never a fallback to another TEE.
//
// Host side, the split follows go-sev-guest: a Verifier checks signatures and
// certificate chains only and returns normalized Claims; a Policy then
// validates those claims (measurement, report_data, debug, VMPL, TCB...).
// Keeping the two apart means a reviewer can read "is this genuine?" and "is
// this what we expect?" separately, and the broker can verify once and
// validate against each workload's own policy.
package attest

import (
	"context"
)

// TEE names, as they appear in the config's `tee` key and on the wire.
const (
	TEENone = "none"
	TEESim  = "sim" // the simulated secure processor; evidence is SNP-format
	TEESNP  = "snp"
	TEESEV  = "sev" // plain SEV (no reports); accepted in configs, never attested
	TEETDX  = "tdx"
	TEECCA  = "cca"
)

// Evidence is what an Attester produces and a Verifier consumes.
type Evidence struct {
	// TEE is the kind of evidence: TEESNP (also for simulated reports),
	// TEETDX or TEECCA.
	TEE string
	// Report is the raw report (SNP, 1184 bytes), quote (TDX) or CBOR
	// token (CCA).
	Report []byte
	// Certs is, for SNP, the AMD certificate table that came with an
	// extended report (GUID table as in the GHCB spec), or nil.
	Certs []byte
	// EventLog is an optional TDX CC event log.
	EventLog []byte
}

// Attester produces evidence binding reportData. Implementations are safe to
// call more than once (one call per broker handshake).
type Attester interface {
	// TEE returns the TEE name this Attester serves.
	TEE() string
	Attest(ctx context.Context, reportData [64]byte) (*Evidence, error)
}

// TCB holds the security version numbers of an SNP TCB (or their TDX/CCA
// analogue where one exists; fields that do not apply stay zero).
type TCB struct {
	Bootloader uint8 `json:"bootloader"`
	TEE        uint8 `json:"tee"`
	SNP        uint8 `json:"snp"`
	Microcode  uint8 `json:"microcode"`
	FMC        uint8 `json:"fmc,omitempty"` // Turin only
}

// Claims are the normalized, verified contents of evidence. A Verifier fills
// only what it has checked the signature over.
type Claims struct {
	TEE string `json:"tee"`
	// Simulated is true when the evidence chains to a simulated root.
	Simulated bool `json:"simulated,omitempty"`
	// Measurement is the launch measurement (SNP MEASUREMENT, TDX MRTD,
	// CCA realm initial measurement).
	Measurement []byte `json:"measurement"`
	ReportData  []byte `json:"report_data"`
	// HostData is SNP HOST_DATA (32 bytes) or TDX MRCONFIGID; may be nil.
	HostData []byte `json:"host_data,omitempty"`
	ChipID   []byte `json:"chip_id,omitempty"`
	// Debug is true when the guest policy allows debugging (SNP policy
	// bit 19, TDX TD_ATTRIBUTES.DEBUG).
	Debug bool `json:"debug"`
	// VMPL is the SNP privilege level the report was requested at.
	VMPL int `json:"vmpl"`
	// Policy is the raw SNP guest policy (or TDX TD attributes).
	Policy uint64 `json:"policy"`
	// ReportedTCB is the TCB the report was signed under (SNP).
	ReportedTCB TCB `json:"reported_tcb"`
	// LaunchTCB is the TCB the guest was launched under (SNP LAUNCH_TCB);
	// nil when the evidence carries none (TDX, CCA).
	LaunchTCB *TCB `json:"launch_tcb,omitempty"`
	// ProductLine is Milan, Genoa, Turin for SNP; empty elsewhere.
	ProductLine string `json:"product_line,omitempty"`
	// ReportVersion is the SNP report version, TDX quote version.
	ReportVersion uint32 `json:"report_version,omitempty"`
	// Extra holds TEE-specific claims (TDX RTMRs, CCA platform claims) as
	// lowercase hex or text, for display and policy by name.
	Extra map[string]string `json:"extra,omitempty"`
}

// Verifier checks that evidence is genuine: signatures and certificate
// chains up to a trusted root. It does not judge the claims.
type Verifier interface {
	Verify(ctx context.Context, ev *Evidence) (*Claims, error)
}
