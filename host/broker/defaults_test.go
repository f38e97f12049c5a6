package broker

import (
	"encoding/hex"
	"net/http"
	"testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/policy"
	"github.com/sealroot/sealroot/host/verify/sim"
)

// krunHandshake runs /auth, /attest (evidence tweaked by params) and /key
// for workload id, and returns the attest status.
func krunHandshake(t *testing.T, b *testBroker, id string, m [48]byte, params func(*sim.ReportParams)) int {
	t.Helper()
	c := newKrunClient(t, b.URL, 0)
	c.params = params
	nonce, code := c.auth(t, id)
	if code != http.StatusOK {
		t.Fatalf("auth: %d", code)
	}
	code, _ = c.attest(t, nonce, m)
	return code
}

// TestMigrationAgentRefusedByDefault: an SNP guest whose policy allows a
// migration agent (bit 18) gets no key, from a buildah registration or an
// admin one, unless the workload's policy opts in.
func TestMigrationAgentRefusedByDefault(t *testing.T) {
	b := newTestBroker(t)
	m := measurement(70)
	b.registerSim(t, "ma-default", m)
	withMA := func(p *sim.ReportParams) { p.Policy = sim.DefaultPolicy | policy.SNPPolicyMigrateMA }

	if code := krunHandshake(t, b, "ma-default", m, withMA); code != http.StatusUnauthorized {
		t.Fatalf("migration-agent guest attested: %d", code)
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "migration_agent" {
		t.Fatalf("refusal check %v, want migration_agent", rec["check"])
	}
	if code := krunHandshake(t, b, "ma-default", m, nil); code != http.StatusOK {
		t.Fatalf("guest without a migration agent refused: %d", code)
	}

	// The workload opts in: the same evidence is accepted.
	pass := randomHex(32)
	reg := AdminRegistration{WorkloadID: "ma-allowed", TEE: attest.TEESim, Passphrase: &pass,
		Policy: WorkloadPolicy{Measurements: []string{hex.EncodeToString(m[:])}, AllowMigrationAgent: true}}
	if code, body := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg)); code != http.StatusCreated {
		t.Fatalf("register: %d %s", code, body)
	}
	if code := krunHandshake(t, b, "ma-allowed", m, withMA); code != http.StatusOK {
		t.Fatalf("opted-in workload refused a migration-agent guest: %d", code)
	}
}

// TestBrokerMinTCB: the broker's --min-tcb is a floor a workload can raise
// but not lower; it does not apply to tdx workloads (no SNP TCB).
func TestBrokerMinTCB(t *testing.T) {
	got := simAuthority.Info().TCB // what the simulated reports carry
	above := got
	above.SNP++
	tests := []struct {
		name     string
		floor    attest.TCB
		own      string // the workload's min_tcb
		wantCode int
	}{
		{"floor met", got, "", http.StatusOK},
		{"floor above the report", above, "", http.StatusUnauthorized},
		{"workload cannot lower the floor", above, "bl=0,tee=0,snp=0,ucode=0", http.StatusUnauthorized},
		{"workload raises a low floor", attest.TCB{}, policy.FormatTCB(above), http.StatusUnauthorized},
		{"workload's own minimum met", attest.TCB{SNP: 1}, policy.FormatTCB(got), http.StatusOK},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			floor := tc.floor
			b := newTestBroker(t, func(c *Config) { c.MinTCB = &floor })
			m := measurement(byte(80 + i))
			pass := randomHex(32)
			reg := AdminRegistration{WorkloadID: "tcb", TEE: attest.TEESim, Passphrase: &pass,
				Policy: WorkloadPolicy{Measurements: []string{hex.EncodeToString(m[:])}, MinTCB: tc.own}}
			if code, body := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg)); code != http.StatusCreated {
				t.Fatalf("register: %d %s", code, body)
			}
			if code := krunHandshake(t, b, "tcb", m, nil); code != tc.wantCode {
				t.Fatalf("attest: %d, want %d", code, tc.wantCode)
			}
			if tc.wantCode != http.StatusOK {
				if rec := b.audit.lastRefusal(t); rec["check"] != "tcb" {
					t.Fatalf("refusal check %v, want tcb", rec["check"])
				}
			}
		})
	}
	// The floor leaves tdx workloads alone: their evidence has no SNP TCB.
	b := newTestBroker(t, func(c *Config) { c.MinTCB = &above })
	doc := &WorkloadPolicy{Measurements: []string{hex.EncodeToString(make([]byte, 48))}}
	if eff, err := b.withBrokerMinimums(attest.TEETDX, doc); err != nil || eff.MinTCB != "" {
		t.Fatalf("tdx policy got min_tcb %q (%v)", eff.MinTCB, err)
	}
	if eff, _ := b.withBrokerMinimums(attest.TEESNP, doc); eff.MinTCB != policy.FormatTCB(above) || doc.MinTCB != "" {
		t.Fatalf("snp policy: effective %q, stored %q", eff.MinTCB, doc.MinTCB)
	}
}

// TestTDXPinsRTMR0AndRTMR3: a tdx policy may also pin RTMR0 (the TD's
// virtual firmware configuration) and RTMR3 (runtime extensions); a guest
// differing in either is then refused, and the broker's SNP TCB floor does
// not refuse a tdx guest.
func TestTDXPinsRTMR0AndRTMR3(t *testing.T) {
	floor := attest.TCB{SNP: 1}
	withTDX := func(c *Config) { c.Verifiers[attest.TEETDX] = fakeTDXVerifier{}; c.MinTCB = &floor }
	mrtd, good := measurement(0x62), rtmrSet()
	pol := tdxPolicy(mrtd, good)
	pol.RTMRs[0], pol.RTMRs[3] = hexOf(good[0]), hexOf(good[3])
	for _, tc := range []struct {
		name string
		reg  int // the register changed, -1 none
		code int
	}{
		{"all four match", -1, http.StatusOK},
		{"other rtmr0", 0, http.StatusUnauthorized},
		{"other rtmr3", 3, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBroker(t, withTDX)
			pass := "tdx-passphrase"
			reg := AdminRegistration{WorkloadID: "td", TEE: attest.TEETDX, Policy: pol, Passphrase: &pass}
			if code, body := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg)); code != http.StatusCreated {
				t.Fatalf("register: %d %s", code, body)
			}
			r := good
			if tc.reg >= 0 {
				r[tc.reg][5] ^= 0x80
			}
			if code, _ := tdxAttest(t, b, "td", mrtd, r); code != tc.code {
				t.Fatalf("attest: %d, want %d", code, tc.code)
			}
		})
	}
}
