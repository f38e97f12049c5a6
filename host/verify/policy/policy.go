// Package policy judges verified attestation claims against what a relying
// party expects.
//
// A Verifier (host/verify/snp, host/verify/tdx, host/verify/cca) only establishes that
// evidence is genuine; it returns attest.Claims. A Policy then decides whether
// those claims are acceptable: the right TEE, a known launch measurement, the
// report_data the session asked for, no debug, the expected VMPL, a TCB at
// or above a minimum and, for TDX, the runtime measurement registers. Keeping the two steps apart lets the broker verify once
// and validate against each workload's own policy.
//
// The zero Policy is the safe one: debug guests, VMPL above 0 and simulated
// evidence are refused, and any real TEE (snp, tdx, cca) is accepted. Two
// fields are permissive when empty and must be filled by callers that care:
// an empty Measurements list accepts any measurement, a nil ReportData or
// HostData skips that comparison, and RTMRs checks only the registers it
// names.
//
// For TDX the launch measurement (MRTD) covers only the TD firmware: the
// kernel, initrd and command line the firmware loads are extended into
// RTMR1 and RTMR2. A TDX policy without RTMRs therefore accepts any kernel
// booted by the right firmware; callers must name at least RTMR1 and RTMR2. Every refusal wraps one of the exported
// sentinel errors, so callers can tell causes apart with errors.Is, and says
// what was expected and what was found (as lowercase hex).
package policy

import (
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sealroot/sealroot/attest"
)

// Sentinel errors; every error returned by Validate wraps exactly one.
var (
	ErrTEE         = errors.New("tee not allowed")
	ErrSimulated   = errors.New("simulated evidence not allowed")
	ErrMeasurement = errors.New("measurement mismatch")
	ErrReportData  = errors.New("report_data mismatch")
	ErrHostData    = errors.New("host_data mismatch")
	ErrDebug       = errors.New("debug guest not allowed")
	ErrVMPL        = errors.New("vmpl not allowed")
	ErrTCB         = errors.New("tcb below minimum")
	ErrRTMR        = errors.New("rtmr mismatch")
	// ErrMigrationAgent: the SNP guest policy allows a migration agent, or
	// the TDX TD is migratable.
	ErrMigrationAgent = errors.New("migration agent not allowed")
)

// SNPPolicyMigrateMA is SNP guest policy bit 18: the guest may be bound to
// a migration agent, which can export its memory to another platform.
const SNPPolicyMigrateMA = 1 << 18

// TDXAttributesMigratable is TDX TD_ATTRIBUTES bit 29 (MIGRATABLE in the
// Intel TDX module ABI, the same position in Linux's TD attribute
// definitions): the TD may be exported by a Migration TD, with its memory,
// to another platform. go-tdx-guest v0.3.1 has no constant for it; its
// validate package refuses the bit by leaving it out of the attributes it
// accepts. host/verify/tdx reports TD_ATTRIBUTES as Claims.Policy.
const TDXAttributesMigratable = 1 << 29

// NumRTMRs is the number of TDX runtime measurement registers (RTMR0-3).
const NumRTMRs = 4

// RTMRClaim is the key of Claims.Extra under which host/verify/tdx reports
// RTMR i as lowercase hex ("rtmr0" … "rtmr3").
func RTMRClaim(i int) string { return fmt.Sprintf("rtmr%d", i) }

// realTEEs are the evidence kinds accepted when AllowedTEEs is empty.
var realTEEs = []string{attest.TEESNP, attest.TEETDX, attest.TEECCA}

// Policy is what a relying party expects of verified claims.
type Policy struct {
	// AllowedTEEs lists acceptable claim TEE names ("snp", "tdx", "cca",
	// "sim"). Empty means any real TEE: snp, tdx or cca.
	AllowedTEEs []string
	// Measurements lists acceptable launch measurements; a claim must equal
	// one of them. Empty accepts any measurement.
	Measurements [][]byte
	// ReportData, when non-nil, must equal the claim's report_data. A shorter
	// value is compared as if zero-padded to the claim's length (SNP and TDX
	// carry 64 bytes; a 48-byte SHA-384 binding is padded with zeros).
	ReportData []byte
	// HostData, when non-nil, must equal the claim's host data (SNP
	// HOST_DATA, TDX MRCONFIGID), zero-padded the same way.
	HostData []byte
	// MinTCB, when non-nil, is the lowest acceptable TCB, compared
	// component by component with the reported TCB and, when the claims
	// carry one (SNP), the launch TCB: the guest must have been launched
	// under firmware at least this new too, not only report from it (the
	// component-wise minimum of the two must reach MinTCB). For TEEs that
	// report no SNP-style TCB the claim's TCB is all zeros, so a non-zero
	// minimum refuses them.
	MinTCB *attest.TCB
	// AllowDebug accepts guests whose policy permits debugging.
	AllowDebug bool
	// MaxVMPL is the highest acceptable SNP VMPL (0 by default).
	MaxVMPL int
	// AllowSimulated accepts evidence from the simulated secure processor.
	AllowSimulated bool
	// RTMRs maps a TDX runtime measurement register index (0 to 3) to its
	// required 48-byte value, compared with the claim's Extra["rtmrN"].
	// Registers not named are not checked; claims without the register
	// (any TEE but TDX) are refused.
	RTMRs map[int][]byte
	// AllowMigrationAgent accepts SNP guests whose policy allows a
	// migration agent (bit 18) and migratable TDX TDs (TD_ATTRIBUTES bit
	// 29). A migration agent (Migration TD) can move the guest, and the
	// secrets it holds, to a platform the relying party never saw, so it is
	// refused unless the relying party opts in.
	AllowMigrationAgent bool
}

// Validate returns nil when the claims satisfy the policy, or the first
// refusal found, in this order: TEE, simulation, debug, VMPL, migration
// agent, TCB, measurement, RTMRs, report_data, host_data.
func (p *Policy) Validate(c *attest.Claims) error {
	if c == nil {
		return fmt.Errorf("%w: no claims", ErrTEE)
	}
	if err := p.checkTEE(c); err != nil {
		return err
	}
	if c.Debug && !p.AllowDebug {
		return fmt.Errorf("%w: expected debug disabled, found debug enabled (policy %#x)", ErrDebug, c.Policy)
	}
	if p.MaxVMPL < 0 {
		return fmt.Errorf("%w: policy max vmpl %d is negative", ErrVMPL, p.MaxVMPL)
	}
	if c.VMPL < 0 || c.VMPL > p.MaxVMPL {
		return fmt.Errorf("%w: expected vmpl <= %d, found %d", ErrVMPL, p.MaxVMPL, c.VMPL)
	}
	if c.TEE == attest.TEESNP && c.Policy&SNPPolicyMigrateMA != 0 && !p.AllowMigrationAgent {
		return fmt.Errorf("%w: the guest policy %#x allows a migration agent (bit 18)", ErrMigrationAgent, c.Policy)
	}
	if c.TEE == attest.TEETDX && c.Policy&TDXAttributesMigratable != 0 && !p.AllowMigrationAgent {
		return fmt.Errorf("%w: the TD attributes %#x mark the TD migratable (TD_ATTRIBUTES bit 29)", ErrMigrationAgent, c.Policy)
	}
	if p.MinTCB != nil {
		if err := checkTCB(*p.MinTCB, c.ReportedTCB, ""); err != nil {
			return err
		}
		if c.LaunchTCB != nil {
			if err := checkTCB(*p.MinTCB, *c.LaunchTCB, "launch TCB "); err != nil {
				return err
			}
		}
	}
	if len(p.Measurements) > 0 {
		if err := checkMeasurement(p.Measurements, c.Measurement); err != nil {
			return err
		}
	}
	if len(p.RTMRs) > 0 {
		if err := checkRTMRs(p.RTMRs, c.Extra); err != nil {
			return err
		}
	}
	if p.ReportData != nil && !paddedEqual(p.ReportData, c.ReportData) {
		return fmt.Errorf("%w: expected %s, found %s", ErrReportData, hexOrEmpty(p.ReportData), hexOrEmpty(c.ReportData))
	}
	if p.HostData != nil && !paddedEqual(p.HostData, c.HostData) {
		return fmt.Errorf("%w: expected %s, found %s", ErrHostData, hexOrEmpty(p.HostData), hexOrEmpty(c.HostData))
	}
	return nil
}

func (p *Policy) checkTEE(c *attest.Claims) error {
	simulated := c.Simulated || c.TEE == attest.TEESim
	if simulated && !p.AllowSimulated {
		return fmt.Errorf("%w: evidence chains to the simulated root (tee %q); start the verifier with simulation allowed only for tests", ErrSimulated, c.TEE)
	}
	if len(p.AllowedTEEs) == 0 {
		if slices.Contains(realTEEs, c.TEE) || (simulated && c.TEE == attest.TEESim) {
			return nil
		}
		return fmt.Errorf("%w: expected one of %s, found %q", ErrTEE, strings.Join(realTEEs, ","), c.TEE)
	}
	if slices.Contains(p.AllowedTEEs, c.TEE) || (simulated && slices.Contains(p.AllowedTEEs, attest.TEESim)) {
		return nil
	}
	return fmt.Errorf("%w: expected one of %s, found %q", ErrTEE, strings.Join(p.AllowedTEEs, ","), c.TEE)
}

// checkTCB compares got with min component by component; what names got in
// the error ("" for the reported TCB).
func checkTCB(min, got attest.TCB, what string) error {
	type part struct {
		name     string
		min, got uint8
	}
	for _, pt := range []part{
		{"bl", min.Bootloader, got.Bootloader},
		{"tee", min.TEE, got.TEE},
		{"snp", min.SNP, got.SNP},
		{"ucode", min.Microcode, got.Microcode},
		{"fmc", min.FMC, got.FMC},
	} {
		if pt.got < pt.min {
			return fmt.Errorf("%w: expected at least %s, found %s%s (%s %d < %d)",
				ErrTCB, FormatTCB(min), what, FormatTCB(got), pt.name, pt.got, pt.min)
		}
	}
	return nil
}

func checkMeasurement(allowed [][]byte, got []byte) error {
	// Compare against every entry without stopping early so the time taken
	// does not reveal which golden value (if any) matched.
	match := 0
	for _, m := range allowed {
		match |= subtle.ConstantTimeCompare(m, got)
	}
	if match == 1 && len(got) > 0 {
		return nil
	}
	want := make([]string, len(allowed))
	for i, m := range allowed {
		want[i] = hexOrEmpty(m)
	}
	return fmt.Errorf("%w: expected one of [%s], found %s", ErrMeasurement, strings.Join(want, " "), hexOrEmpty(got))
}

// checkRTMRs compares the named registers with the claims, in index order
// so the first mismatch reported is stable.
func checkRTMRs(want map[int][]byte, extra map[string]string) error {
	for i := range want {
		if i < 0 || i >= NumRTMRs {
			return fmt.Errorf("%w: policy names rtmr%d; TDX has rtmr0 to rtmr%d", ErrRTMR, i, NumRTMRs-1)
		}
	}
	for i := range NumRTMRs {
		w, ok := want[i]
		if !ok {
			continue
		}
		got, err := hex.DecodeString(extra[RTMRClaim(i)])
		if err != nil || len(got) == 0 {
			return fmt.Errorf("%w: expected rtmr%d %s, found none in the claims", ErrRTMR, i, hexOrEmpty(w))
		}
		if len(w) == 0 || subtle.ConstantTimeCompare(w, got) != 1 {
			return fmt.Errorf("%w: expected rtmr%d %s, found %s", ErrRTMR, i, hexOrEmpty(w), hexOrEmpty(got))
		}
	}
	return nil
}

// paddedEqual compares want, zero-extended to len(got), with got in constant
// time (for a given length). A want longer than got never matches.
func paddedEqual(want, got []byte) bool {
	if len(want) > len(got) {
		return false
	}
	padded := make([]byte, len(got))
	copy(padded, want)
	return subtle.ConstantTimeCompare(padded, got) == 1
}

func hexOrEmpty(b []byte) string {
	if len(b) == 0 {
		return "(empty)"
	}
	return hex.EncodeToString(b)
}
