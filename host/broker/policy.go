package broker

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/policy"
	"github.com/sealroot/sealroot/internal/textclip"
)

// WorkloadPolicy is a workload's stored policy document: what its evidence
// must show. It is JSON on the admin API and in the store.
type WorkloadPolicy struct {
	// Measurements are the acceptable launch measurements (lowercase hex);
	// at least one is required.
	Measurements []string `json:"measurements"`
	// HostData, when set, must equal SNP HOST_DATA / TDX MRCONFIGID (hex).
	HostData string `json:"host_data,omitempty"`
	// MinTCB is the lowest acceptable reported TCB ("bl=3,tee=0,snp=8,ucode=115").
	MinTCB string `json:"min_tcb,omitempty"`
	// AllowDebug accepts guests whose policy permits debugging. Never set
	// by unauthenticated registration.
	AllowDebug bool `json:"allow_debug,omitempty"`
	// MaxVMPL is the highest acceptable SNP VMPL (0 unless set).
	MaxVMPL int `json:"max_vmpl,omitempty"`
	// RTMRs are the required TDX runtime measurement registers by index
	// (0 to 3), 48 bytes of lowercase hex each ({"1":"…","2":"…"}). A tdx
	// workload must name at least RTMR1 and RTMR2: its measurement, MRTD,
	// covers only the TD firmware, and the kernel, initrd and command line
	// are measured into RTMR1 and RTMR2. Other TEEs take none.
	RTMRs map[int]string `json:"rtmrs,omitempty"`
	// AllowMigrationAgent accepts SNP guests whose policy allows a
	// migration agent (bit 18) and migratable TDX TDs (TD_ATTRIBUTES bit
	// 29). Never set by unauthenticated registration.
	AllowMigrationAgent bool `json:"allow_migration_agent,omitempty"`
}

// requiredRTMRs are the registers every tdx workload's policy must name.
var requiredRTMRs = []int{1, 2}

// evidenceTEE is the TEE evidence for a workload of TEE tee carries on the
// wire ("sim" reports are SNP reports; the table in package attest).
func evidenceTEE(tee string) string {
	if w, err := attest.WireName(tee); err == nil {
		return w
	}
	return tee
}

// measurementSizes are the launch measurement lengths of a TEE (the table
// in package attest).
func measurementSizes(tee string) []int {
	t, _ := attest.Lookup(tee)
	return t.MeasurementSizes
}

// workloadIDPattern bounds workload ids: printable, no path separators, so
// that an id is safe in URLs, logs and resource paths.
var workloadIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.:@+-]{1,128}$`)

func validateWorkloadID(id string) error {
	if !workloadIDPattern.MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("workload id %q: want 1 to 128 characters from A-Z a-z 0-9 _ . : @ + -", truncate(id, 64))
	}
	return nil
}

// Validate checks the document for a workload of TEE tee.
func (p *WorkloadPolicy) Validate(tee string) error {
	// Workloads register for the attestable TEEs: "sim" workloads are SNP
	// workloads whose evidence may only come from the simulated secure
	// processor.
	if !attest.Attestable(tee) {
		return fmt.Errorf("tee %q: want snp, sim, tdx or cca", truncate(tee, 16))
	}
	if len(p.Measurements) == 0 {
		return errors.New("policy: at least one measurement is required")
	}
	if len(p.Measurements) > 64 {
		return errors.New("policy: more than 64 measurements")
	}
	for i, m := range p.Measurements {
		b, err := hex.DecodeString(m)
		if err != nil || !sizeOK(tee, len(b)) || strings.ToLower(m) != m {
			return fmt.Errorf("policy: measurement %d is not %s of lowercase hex for %s", i+1, sizesText(tee), tee)
		}
	}
	if p.HostData != "" {
		b, err := hex.DecodeString(p.HostData)
		if err != nil || len(b) == 0 || len(b) > 48 {
			return errors.New("policy: host_data is not 1 to 48 bytes of hex")
		}
	}
	if p.MinTCB != "" {
		if _, err := policy.ParseTCB(p.MinTCB); err != nil {
			return fmt.Errorf("policy: min_tcb: %w", err)
		}
	}
	if p.MaxVMPL < 0 || p.MaxVMPL > 3 {
		return fmt.Errorf("policy: max_vmpl %d: want 0 to 3", p.MaxVMPL)
	}
	return p.validateRTMRs(tee)
}

func (p *WorkloadPolicy) validateRTMRs(tee string) error {
	if tee != attest.TEETDX {
		if len(p.RTMRs) > 0 {
			return fmt.Errorf("policy: rtmrs apply to tdx workloads only, not %s", tee)
		}
		return nil
	}
	for i, v := range p.RTMRs {
		if i < 0 || i >= policy.NumRTMRs {
			return fmt.Errorf("policy: rtmr %d: TDX has rtmr 0 to %d", i, policy.NumRTMRs-1)
		}
		b, err := hex.DecodeString(v)
		if err != nil || len(b) != 48 || strings.ToLower(v) != v {
			return fmt.Errorf("policy: rtmr %d is not 48 bytes of lowercase hex", i)
		}
	}
	if err := p.missingRTMRs(); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	return nil
}

// missingRTMRs says which required registers a tdx policy lacks.
func (p *WorkloadPolicy) missingRTMRs() error {
	var missing []string
	for _, i := range requiredRTMRs {
		if _, ok := p.RTMRs[i]; !ok {
			missing = append(missing, fmt.Sprintf("rtmr %d", i))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("a tdx workload needs rtmr 1 and rtmr 2, %s missing: MRTD measures only the TD firmware; "+
		"the kernel is in RTMR1, the command line and initrd in RTMR2", strings.Join(missing, " and "))
}

func sizeOK(tee string, n int) bool {
	for _, s := range measurementSizes(tee) {
		if s == n {
			return true
		}
	}
	return false
}

func sizesText(tee string) string {
	var parts []string
	for _, s := range measurementSizes(tee) {
		parts = append(parts, fmt.Sprintf("%d bytes", s))
	}
	return strings.Join(parts, " or ")
}

// parsePolicy decodes a stored document.
func parsePolicy(raw []byte) (*WorkloadPolicy, error) {
	var p WorkloadPolicy
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("stored policy: %w", err)
	}
	return &p, nil
}

// compile turns the document into the host/verify/policy form for a workload of
// TEE tee. Simulated evidence is acceptable only to a "sim" workload, and
// only when the broker trusts the simulated root (trustSimulated, its
// --trust-sim-root): --trust-sim-root never loosens an snp, tdx or cca
// workload, so a buildah registration (always snp) stays hardware-only on
// a broker that also serves tests. A "sim" workload accepts nothing but
// simulated evidence (validateClaims). reportData is the session's binding
// (nil skips the comparison).
func (p *WorkloadPolicy) compile(tee string, trustSimulated bool, reportData []byte) (*policy.Policy, error) {
	out := &policy.Policy{
		AllowedTEEs:    []string{evidenceTEE(tee)},
		ReportData:     reportData,
		AllowDebug:     p.AllowDebug,
		MaxVMPL:        p.MaxVMPL,
		AllowSimulated: trustSimulated && tee == attest.TEESim,

		AllowMigrationAgent: p.AllowMigrationAgent,
	}
	for _, m := range p.Measurements {
		b, err := hex.DecodeString(m)
		if err != nil {
			return nil, fmt.Errorf("stored policy: measurement is not hex")
		}
		out.Measurements = append(out.Measurements, b)
	}
	if p.HostData != "" {
		b, err := hex.DecodeString(p.HostData)
		if err != nil {
			return nil, fmt.Errorf("stored policy: host_data is not hex")
		}
		out.HostData = b
	}
	if p.MinTCB != "" {
		t, err := policy.ParseTCB(p.MinTCB)
		if err != nil {
			return nil, fmt.Errorf("stored policy: %w", err)
		}
		out.MinTCB = t
	}
	for i, v := range p.RTMRs {
		b, err := hex.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("stored policy: rtmr %d is not hex", i)
		}
		if out.RTMRs == nil {
			out.RTMRs = map[int][]byte{}
		}
		out.RTMRs[i] = b
	}
	return out, nil
}

// validateClaims judges verified claims against a workload: its policy,
// for "sim" workloads that the evidence really is simulated, and for "tdx"
// workloads that the policy names RTMR1 and RTMR2.
func validateClaims(tee string, doc *WorkloadPolicy, c *attest.Claims, trustSimulated bool, reportData []byte) error {
	if tee == attest.TEETDX {
		// A record stored before RTMRs were required would be judged on
		// MRTD alone: fail closed until an admin sets them.
		if err := doc.missingRTMRs(); err != nil {
			return fmt.Errorf("%w: %w; set them with sealroot workloads set-policy --rtmr", policy.ErrRTMR, err)
		}
	}
	pol, err := doc.compile(tee, trustSimulated, reportData)
	if err != nil {
		return err
	}
	if err := pol.Validate(c); err != nil {
		return err
	}
	if tee == attest.TEESim && !c.Simulated {
		return fmt.Errorf("%w: workload is registered for the simulated tee, evidence is from hardware", policy.ErrTEE)
	}
	return nil
}

// checkName names the policy check an error failed, for audit records and
// metrics.
func checkName(err error) string {
	for _, c := range []struct {
		err  error
		name string
	}{
		{policy.ErrTEE, "tee"}, {policy.ErrSimulated, "simulated"}, {policy.ErrMeasurement, "measurement"},
		{policy.ErrReportData, "report_data"}, {policy.ErrHostData, "host_data"}, {policy.ErrDebug, "debug"},
		{policy.ErrVMPL, "vmpl"}, {policy.ErrTCB, "tcb"}, {policy.ErrRTMR, "rtmr"},
		{policy.ErrMigrationAgent, "migration_agent"},
	} {
		if errors.Is(err, c.err) {
			return c.name
		}
	}
	return "policy"
}

// truncate bounds untrusted text quoted in errors and audit records.
func truncate(s string, n int) string { return textclip.Clip(s, n) }
