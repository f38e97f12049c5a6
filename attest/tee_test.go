package attest

import (
	"strings"
	"testing"
)

func TestTEETable(t *testing.T) {
	for _, tc := range []struct {
		name        string
		known       bool
		wire        string
		attestable  bool
		needsBroker bool
	}{
		{TEESNP, true, TEESNP, true, true},
		{TEESim, true, TEESNP, true, true},
		{TEETDX, true, TEETDX, true, true},
		{TEECCA, true, TEECCA, true, true},
		{TEESEV, true, "", false, false},
		{TEENone, true, "", false, false},
		{"", false, "", false, false},
		{"SNP", false, "", false, false},
		{"nvidia", false, "", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Known(tc.name); got != tc.known {
				t.Errorf("Known(%q) = %v, want %v", tc.name, got, tc.known)
			}
			if got := Attestable(tc.name); got != tc.attestable {
				t.Errorf("Attestable(%q) = %v, want %v", tc.name, got, tc.attestable)
			}
			if got := NeedsBroker(tc.name); got != tc.needsBroker {
				t.Errorf("NeedsBroker(%q) = %v, want %v", tc.name, got, tc.needsBroker)
			}
			w, err := WireName(tc.name)
			if w != tc.wire || (err == nil) != (tc.wire != "") {
				t.Errorf("WireName(%q) = %q, %v; want %q", tc.name, w, err, tc.wire)
			}
			if err != nil && !strings.Contains(err.Error(), "want snp, tdx, cca or sim") {
				t.Errorf("WireName(%q) error %q does not list the attestable TEEs", tc.name, err)
			}
		})
	}
}

// The table's invariants: every attestable TEE has a wire name that is
// itself an attestable hardware entry's name, a config binding and a
// measurement size; a TEE that is not attestable has none of them.
func TestTEETableConsistent(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range TEEs() {
		if seen[e.Name] {
			t.Errorf("%q appears twice", e.Name)
		}
		seen[e.Name] = true
		if !e.Attestable {
			if e.Wire != "" || e.NeedsBroker || e.Hardware || e.Simulated || e.BindingSize != 0 || len(e.Devices) != 0 {
				t.Errorf("%q is not attestable but has attestation facts: %+v", e.Name, e)
			}
			continue
		}
		if e.Hardware == e.Simulated {
			t.Errorf("%q: exactly one of Hardware and Simulated must hold", e.Name)
		}
		if e.Hardware && len(e.Devices) == 0 {
			t.Errorf("%q is hardware but has no guest device to probe", e.Name)
		}
		w, ok := Lookup(e.Wire)
		if !ok || !w.Hardware || w.Wire != e.Wire {
			t.Errorf("%q travels as %q, which is no hardware TEE of its own", e.Name, e.Wire)
		}
		if e.BindingField == "" || e.BindingSize < 32 || len(e.MeasurementSizes) == 0 {
			t.Errorf("%q lacks its config binding or measurement sizes: %+v", e.Name, e)
		}
	}
	if got := Names(nil); got != "snp, sev, tdx, cca, sim or none" {
		t.Errorf("Names(nil) = %q", got)
	}
	if got := Names(func(e TEEInfo) bool { return e.Hardware }); got != "snp, tdx or cca" {
		t.Errorf("hardware names = %q", got)
	}
}

// Callers get copies: changing one does not change the table.
func TestTEETableIsCopied(t *testing.T) {
	all := TEEs()
	all[0].Name = "changed"
	snp, _ := Lookup(TEESNP)
	snp.Devices[0] = "/dev/changed"
	snp.MeasurementSizes[0] = 1
	again, ok := Lookup(TEESNP)
	if !ok || TEEs()[0].Name != TEESNP || again.Devices[0] != DevSEVGuest || again.MeasurementSizes[0] != 48 {
		t.Fatalf("the table changed through a copy: %+v", again)
	}
}
