package policy

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/attest"
)

func fill(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }

// goodClaims returns claims that satisfy goodPolicy.
func goodClaims() *attest.Claims {
	return &attest.Claims{
		TEE:         attest.TEESNP,
		Measurement: fill(48, 0xaa),
		ReportData:  append(fill(48, 0x11), make([]byte, 16)...),
		HostData:    fill(32, 0x22),
		VMPL:        0,
		Policy:      0x30000,
		ReportedTCB: attest.TCB{Bootloader: 10, TEE: 0, SNP: 23, Microcode: 25},
		LaunchTCB:   &attest.TCB{Bootloader: 10, TEE: 0, SNP: 23, Microcode: 25},
	}
}

func goodPolicy() *Policy {
	return &Policy{
		Measurements: [][]byte{fill(48, 0x01), fill(48, 0xaa)},
		ReportData:   fill(48, 0x11), // zero-padded to 64 by Validate
		HostData:     fill(32, 0x22),
		MinTCB:       &attest.TCB{Bootloader: 3, SNP: 8, Microcode: 25},
	}
}

// tdxClaims turns claims into TDX claims as host/verify/tdx reports them:
// MRTD as the measurement, RTMRs in Extra as lowercase hex.
func tdxClaims(c *attest.Claims) {
	c.TEE, c.ReportedTCB, c.VMPL = attest.TEETDX, attest.TCB{}, 0
	c.Extra = map[string]string{}
	for i := range NumRTMRs {
		c.Extra[RTMRClaim(i)] = strings.Repeat(fmt.Sprintf("3%d", i), 48)
	}
}

// tdxPolicy accepts tdxClaims: MRTD and RTMR1, RTMR2.
func tdxPolicy() *Policy {
	return &Policy{
		AllowedTEEs:  []string{attest.TEETDX},
		Measurements: [][]byte{fill(48, 0xaa)},
		RTMRs:        map[int][]byte{1: fill(48, 0x31), 2: fill(48, 0x32)},
	}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		policy func(*Policy)
		claims func(*attest.Claims)
	}{
		{"full policy", func(*Policy) {}, func(*attest.Claims) {}},
		{"zero policy accepts any real tee", func(p *Policy) { *p = Policy{} }, func(*attest.Claims) {}},
		{"tdx under zero policy", func(p *Policy) { *p = Policy{} }, func(c *attest.Claims) { c.TEE = attest.TEETDX }},
		{"cca allowed explicitly", func(p *Policy) { p.AllowedTEEs = []string{"cca"}; p.MinTCB = nil; p.HostData = nil },
			func(c *attest.Claims) { c.TEE = attest.TEECCA; c.ReportedTCB = attest.TCB{}; c.HostData = nil }},
		{"debug allowed", func(p *Policy) { p.AllowDebug = true }, func(c *attest.Claims) { c.Debug = true }},
		{"vmpl 2 allowed", func(p *Policy) { p.MaxVMPL = 3 }, func(c *attest.Claims) { c.VMPL = 2 }},
		{"migration agent allowed", func(p *Policy) { p.AllowMigrationAgent = true }, func(c *attest.Claims) { c.Policy |= SNPPolicyMigrateMA }},
		{"bit 18 of tdx attributes is not the snp bit", func(p *Policy) { *p = *tdxPolicy() },
			func(c *attest.Claims) { tdxClaims(c); c.Policy = SNPPolicyMigrateMA }},
		{"migratable td allowed", func(p *Policy) { *p = *tdxPolicy(); p.AllowMigrationAgent = true },
			func(c *attest.Claims) { tdxClaims(c); c.Policy = TDXAttributesMigratable | 1<<28 }},
		{"bit 29 of the snp policy is not the tdx bit", func(*Policy) {}, func(c *attest.Claims) { c.Policy |= TDXAttributesMigratable }},
		{"simulated allowed", func(p *Policy) { p.AllowSimulated = true }, func(c *attest.Claims) { c.Simulated = true }},
		{"sim tee allowed by name", func(p *Policy) { p.AllowSimulated = true; p.AllowedTEEs = []string{"sim"} },
			func(c *attest.Claims) { c.Simulated = true }},
		{"exact 64-byte report data", func(p *Policy) { p.ReportData = append(fill(48, 0x11), make([]byte, 16)...) }, func(*attest.Claims) {}},
		{"tcb exactly at minimum", func(p *Policy) { p.MinTCB = &attest.TCB{Bootloader: 10, SNP: 23, Microcode: 25} }, func(*attest.Claims) {}},
		{"launch tcb older than reported, both at least the minimum", func(*Policy) {},
			func(c *attest.Claims) { c.LaunchTCB = &attest.TCB{Bootloader: 3, SNP: 8, Microcode: 25} }},
		{"no launch tcb in the claims", func(*Policy) {}, func(c *attest.Claims) { c.LaunchTCB = nil }},
		{"tdx rtmrs 1 and 2", func(p *Policy) { *p = *tdxPolicy() }, tdxClaims},
		{"tdx all four rtmrs", func(p *Policy) {
			*p = *tdxPolicy()
			p.RTMRs[0], p.RTMRs[3] = fill(48, 0x30), fill(48, 0x33)
		}, tdxClaims},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, c := goodPolicy(), goodClaims()
			tt.policy(p)
			tt.claims(c)
			if err := p.Validate(c); err != nil {
				t.Fatalf("Validate: %v", err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name    string
		policy  func(*Policy)
		claims  func(*attest.Claims)
		want    error
		wantMsg []string // substrings of the message
	}{
		{"unlisted tee", func(p *Policy) { p.AllowedTEEs = []string{"tdx"} }, func(*attest.Claims) {},
			ErrTEE, []string{"expected one of tdx", `found "snp"`}},
		{"unknown tee under zero list", func(p *Policy) {}, func(c *attest.Claims) { c.TEE = "sample" },
			ErrTEE, []string{"snp,tdx,cca", `"sample"`}},
		{"plain sev never attests", func(p *Policy) {}, func(c *attest.Claims) { c.TEE = attest.TEESEV }, ErrTEE, nil},
		{"simulated by default", func(p *Policy) {}, func(c *attest.Claims) { c.Simulated = true }, ErrSimulated, []string{"simulated root"}},
		{"sim tee name by default", func(p *Policy) {}, func(c *attest.Claims) { c.TEE = attest.TEESim }, ErrSimulated, nil},
		{"simulated with tee list lacking sim", func(p *Policy) { p.AllowSimulated = true; p.AllowedTEEs = []string{"tdx"} },
			func(c *attest.Claims) { c.Simulated = true }, ErrTEE, nil},
		{"debug by default", func(p *Policy) {}, func(c *attest.Claims) { c.Debug = true; c.Policy = 0xb0000 },
			ErrDebug, []string{"found debug enabled", "0xb0000"}},
		{"vmpl 1 by default", func(p *Policy) {}, func(c *attest.Claims) { c.VMPL = 1 }, ErrVMPL, []string{"expected vmpl <= 0, found 1"}},
		{"migration agent by default", func(p *Policy) {}, func(c *attest.Claims) { c.Policy = 0x70000 },
			ErrMigrationAgent, []string{"0x70000", "bit 18"}},
		{"migratable td by default", func(p *Policy) { *p = *tdxPolicy() },
			func(c *attest.Claims) { tdxClaims(c); c.Policy = 0x30000000 }, ErrMigrationAgent, []string{"0x30000000", "migratable", "bit 29"}},
		{"simulated snp with migration agent", func(p *Policy) { p.AllowSimulated = true },
			func(c *attest.Claims) { c.Simulated = true; c.Policy |= SNPPolicyMigrateMA }, ErrMigrationAgent, nil},
		{"vmpl above max", func(p *Policy) { p.MaxVMPL = 1 }, func(c *attest.Claims) { c.VMPL = 2 }, ErrVMPL, nil},
		{"negative max vmpl", func(p *Policy) { p.MaxVMPL = -1 }, func(*attest.Claims) {}, ErrVMPL, []string{"negative"}},
		{"negative claim vmpl", func(p *Policy) {}, func(c *attest.Claims) { c.VMPL = -1 }, ErrVMPL, nil},
		{"snp spl low", func(p *Policy) {}, func(c *attest.Claims) { c.ReportedTCB.SNP = 7 },
			ErrTCB, []string{"snp 7 < 8", "bl=3,tee=0,snp=8,ucode=25"}},
		{"ucode low", func(p *Policy) {}, func(c *attest.Claims) { c.ReportedTCB.Microcode = 24 }, ErrTCB, []string{"ucode 24 < 25"}},
		{"launched under older firmware, reports from current", func(p *Policy) {},
			func(c *attest.Claims) { c.LaunchTCB = &attest.TCB{Bootloader: 10, SNP: 7, Microcode: 25} },
			ErrTCB, []string{"found launch TCB bl=10,tee=0,snp=7,ucode=25", "snp 7 < 8"}},
		{"launch tcb low in one component", func(p *Policy) {},
			func(c *attest.Claims) { c.LaunchTCB = &attest.TCB{Bootloader: 10, SNP: 23, Microcode: 24} },
			ErrTCB, []string{"launch TCB", "ucode 24 < 25"}},
		{"bootloader low", func(p *Policy) {}, func(c *attest.Claims) { c.ReportedTCB.Bootloader = 2 }, ErrTCB, []string{"bl 2 < 3"}},
		{"tee low", func(p *Policy) { p.MinTCB.TEE = 1 }, func(*attest.Claims) {}, ErrTCB, []string{"tee 0 < 1"}},
		{"fmc low", func(p *Policy) { p.MinTCB.FMC = 1 }, func(*attest.Claims) {}, ErrTCB, []string{"fmc 0 < 1"}},
		{"min tcb on tdx fails closed", func(p *Policy) {}, func(c *attest.Claims) { c.TEE = attest.TEETDX; c.ReportedTCB = attest.TCB{} }, ErrTCB, nil},
		{"measurement not listed", func(p *Policy) {}, func(c *attest.Claims) { c.Measurement[47] ^= 1 },
			ErrMeasurement, []string{"expected one of [" + strings.Repeat("01", 48), "found " + strings.Repeat("aa", 47) + "ab"}},
		{"measurement empty", func(p *Policy) {}, func(c *attest.Claims) { c.Measurement = nil }, ErrMeasurement, []string{"(empty)"}},
		{"measurement truncated", func(p *Policy) {}, func(c *attest.Claims) { c.Measurement = c.Measurement[:32] }, ErrMeasurement, nil},
		{"report data differs", func(p *Policy) {}, func(c *attest.Claims) { c.ReportData[0] = 0 },
			ErrReportData, []string{"expected " + strings.Repeat("11", 48), "found 00" + strings.Repeat("11", 47)}},
		{"report data padding not zero", func(p *Policy) {}, func(c *attest.Claims) { c.ReportData[63] = 1 }, ErrReportData, nil},
		{"report data longer than claim", func(p *Policy) { p.ReportData = fill(65, 0x11) }, func(*attest.Claims) {}, ErrReportData, nil},
		{"report data missing", func(p *Policy) {}, func(c *attest.Claims) { c.ReportData = nil }, ErrReportData, []string{"found (empty)"}},
		{"host data differs", func(p *Policy) {}, func(c *attest.Claims) { c.HostData[31] = 0 }, ErrHostData, []string{"expected " + strings.Repeat("22", 32)}},
		{"host data absent", func(p *Policy) {}, func(c *attest.Claims) { c.HostData = nil }, ErrHostData, nil},
		// TDX: MRTD is only the firmware; another kernel, initrd or command
		// line shows in RTMR1 or RTMR2.
		{"tdx other kernel", func(p *Policy) { *p = *tdxPolicy() }, func(c *attest.Claims) {
			tdxClaims(c)
			c.Extra["rtmr1"] = strings.Repeat("ee", 48)
		}, ErrRTMR, []string{"expected rtmr1 " + strings.Repeat("31", 48), "found " + strings.Repeat("ee", 48)}},
		{"tdx other command line", func(p *Policy) { *p = *tdxPolicy() }, func(c *attest.Claims) {
			tdxClaims(c)
			c.Extra["rtmr2"] = strings.Repeat("32", 47) + "00"
		}, ErrRTMR, []string{"rtmr2"}},
		{"tdx rtmr missing from claims", func(p *Policy) { *p = *tdxPolicy() }, func(c *attest.Claims) {
			tdxClaims(c)
			delete(c.Extra, "rtmr2")
		}, ErrRTMR, []string{"found none"}},
		{"tdx rtmr truncated", func(p *Policy) { *p = *tdxPolicy() }, func(c *attest.Claims) {
			tdxClaims(c)
			c.Extra["rtmr1"] = strings.Repeat("31", 47)
		}, ErrRTMR, nil},
		{"tdx rtmr not hex", func(p *Policy) { *p = *tdxPolicy() }, func(c *attest.Claims) {
			tdxClaims(c)
			c.Extra["rtmr1"] = "zz"
		}, ErrRTMR, nil},
		{"rtmrs against snp claims", func(p *Policy) { p.RTMRs = tdxPolicy().RTMRs }, func(*attest.Claims) {}, ErrRTMR, []string{"found none"}},
		{"rtmr index out of range", func(p *Policy) { *p = *tdxPolicy(); p.RTMRs[4] = fill(48, 0x34) }, tdxClaims, ErrRTMR, []string{"rtmr4"}},
		{"rtmr empty value", func(p *Policy) { *p = *tdxPolicy(); p.RTMRs[0] = []byte{} }, tdxClaims, ErrRTMR, nil},
	}
	sentinels := []error{ErrTEE, ErrSimulated, ErrMeasurement, ErrReportData, ErrHostData, ErrDebug, ErrVMPL, ErrTCB, ErrRTMR}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, c := goodPolicy(), goodClaims()
			tt.policy(p)
			tt.claims(c)
			err := p.Validate(c)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Validate = %v, want %v", err, tt.want)
			}
			for _, s := range sentinels {
				if s != tt.want && errors.Is(err, s) { //nolint:errorlint // two sentinels compared by identity
					t.Errorf("error also wraps %v", s)
				}
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
		})
	}
}

func TestValidateNilClaims(t *testing.T) {
	if err := (&Policy{}).Validate(nil); !errors.Is(err, ErrTEE) {
		t.Fatalf("Validate(nil) = %v", err)
	}
}

func TestParseTCB(t *testing.T) {
	tests := []struct {
		spec    string
		want    attest.TCB
		wantErr string
	}{
		{spec: "bl=3,tee=0,snp=8,ucode=115", want: attest.TCB{Bootloader: 3, SNP: 8, Microcode: 115}},
		{spec: " ucode=115 , snp=8 ", want: attest.TCB{SNP: 8, Microcode: 115}},
		{spec: "bootloader=1,microcode=2,fmc=3,tee=4", want: attest.TCB{Bootloader: 1, Microcode: 2, FMC: 3, TEE: 4}},
		{spec: "snp=0x17", want: attest.TCB{SNP: 23}},
		// Genoa evidence current_tcb: bl=10 tee=0 snp=23 ucode=25.
		{spec: "0x1917000000100000", wantErr: "reserved"},
		{spec: "0x191700000000000a", want: attest.TCB{Bootloader: 10, SNP: 23, Microcode: 25}},
		{spec: "191700000000000A", want: attest.TCB{Bootloader: 10, SNP: 23, Microcode: 25}},
		{spec: "turin:0x1900000004030201", want: attest.TCB{FMC: 1, Bootloader: 2, TEE: 3, SNP: 4, Microcode: 25}},
		{spec: "turin:0x1901000004030201", wantErr: "reserved"},
		{spec: "", wantErr: "empty"},
		{spec: "0x", wantErr: "hex"},
		{spec: "0x11223344556677889", wantErr: "hex"},
		{spec: "zz", wantErr: "hex"},
		{spec: "bl=256", wantErr: "0-255"},
		{spec: "bl=-1", wantErr: "0-255"},
		{spec: "bl=1,bl=2", wantErr: "twice"},
		{spec: "bl=1,bootloader=2", wantErr: "twice"},
		{spec: "spl=1", wantErr: "unknown component"},
		{spec: "bl=1,snp", wantErr: "name=value"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := ParseTCB(tt.spec)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTCB(%q) = %v, %v; want error containing %q", tt.spec, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTCB(%q): %v", tt.spec, err)
			}
			if *got != tt.want {
				t.Fatalf("ParseTCB(%q) = %+v, want %+v", tt.spec, *got, tt.want)
			}
		})
	}
}

func TestFormatTCBRoundTrip(t *testing.T) {
	for _, tcb := range []attest.TCB{{}, {Bootloader: 10, SNP: 23, Microcode: 25}, {FMC: 1, Bootloader: 2, TEE: 3, SNP: 4, Microcode: 255}} {
		got, err := ParseTCB(FormatTCB(tcb))
		if err != nil || *got != tcb {
			t.Errorf("ParseTCB(FormatTCB(%+v)) = %+v, %v", tcb, got, err)
		}
	}
}

func FuzzParseTCB(f *testing.F) {
	for _, s := range []string{"bl=3,tee=0,snp=8,ucode=115", "0x191700000000000a", "turin:0x1900000004030201", "fmc=1", "=,", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		tcb, err := ParseTCB(spec)
		if err != nil {
			return
		}
		again, err := ParseTCB(FormatTCB(*tcb))
		if err != nil || *again != *tcb {
			t.Fatalf("%q: format round trip gave %+v, %v", spec, again, err)
		}
	})
}
