package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tdxdata "github.com/google/go-tdx-guest/testing/testdata"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/snpreport"
)

type fakeAttester struct{ hostData []byte }

func (f fakeAttester) TEE() string { return attest.TEESim }
func (f fakeAttester) Attest(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	r := make([]byte, 1184)
	copy(r[snpreport.OffHostData:], f.hostData)
	return &attest.Evidence{TEE: attest.TEESNP, Report: r}, nil
}

// The CCA realm's platform device makes the VM a TEE, so a tee "none"
// config is refused in it like in SNP and TDX guests.
func TestTEEDeviceDetectsRealm(t *testing.T) {
	root := t.TempDir()
	if d := teeDeviceAt(root); d != "" {
		t.Fatalf("empty root: %q", d)
	}
	p := filepath.Join(root, "sys/bus/platform/devices/arm-cca-dev")
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if d := teeDeviceAt(root); !strings.Contains(d, "Arm CCA realm") {
		t.Fatalf("simulated realm: %q", d)
	}
	cfg, err := diskconfig.Parse([]byte(`{"tee":"none","tee_data":"","workload_id":"w","cpus":1,"ram_mib":512,"attestation_url":""}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := refuseUnattestedInTEE(teeDeviceAt(root), cfg); err == nil || !strings.Contains(err.Error(), "Arm CCA realm") {
		t.Fatalf("tee none in a realm: %v", err)
	}
	if err := refuseUnattestedInTEE(teeDeviceAt(t.TempDir()), cfg); err != nil {
		t.Fatalf("tee none outside a TEE: %v", err)
	}
}

func TestConfigChecker(t *testing.T) {
	raw := []byte(`{"tee":"sim","workload_id":"a"}`)
	want := diskconfig.HostData(raw)
	other := diskconfig.HostData([]byte(`{"tee":"sim","workload_id":"b"}`))
	var logged []string
	for _, tc := range []struct {
		name     string
		hostData []byte
		err      string
		log      bool
	}{
		{"bound to this config", want[:], "", false},
		{"not set by the host", nil, "", true},
		{"another config", other[:], "launched for another config", false},
	} {
		logged = nil
		h := &configChecker{Attester: fakeAttester{tc.hostData}, want: want,
			logf: func(f string, a ...any) { logged = append(logged, f) }}
		_, err := h.Attest(context.Background(), [64]byte{})
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.err)
		}
		if (len(logged) > 0) != tc.log {
			t.Errorf("%s: logged %v", tc.name, logged)
		}
	}
}

func TestRunPhaseDeadlineAndPanic(t *testing.T) {
	b := &boot{}
	err := runPhase(b, phase{name: "slow", deadline: 20e6, run: func(b *boot, ctx context.Context) error { select {} }})
	if err == nil || !strings.Contains(err.Error(), "did not finish within 20ms") {
		t.Fatalf("slow phase: %v", err)
	}
	err = runPhase(b, phase{name: "boom", deadline: 1e9, run: func(b *boot, ctx context.Context) error { panic("boom") }})
	if err == nil || !strings.Contains(err.Error(), "internal error: boom") {
		t.Fatalf("panicking phase: %v", err)
	}
}

type evidenceAttester struct{ ev *attest.Evidence }

func (f evidenceAttester) TEE() string { return f.ev.TEE }
func (f evidenceAttester) Attest(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	return f.ev, nil
}

// A TDX quote (go-tdx-guest's real one) whose MRCONFIGID is another
// config's is refused before any broker; its own config's passes; the
// shipped all-zero MRCONFIGID is "config unattested", logged once.
func TestConfigCheckerTDX(t *testing.T) {
	raw := []byte(`{"tee":"tdx","workload_id":"a"}`)
	want := diskconfig.HostData(raw)
	quote := func(mrconfigid []byte) *attest.Evidence {
		q := bytes.Clone(tdxdata.RawQuote)
		copy(q[0x30+0xB8:0x30+0xB8+48], mrconfigid)
		return &attest.Evidence{TEE: attest.TEETDX, Report: q}
	}
	other := diskconfig.HostData([]byte(`{"tee":"tdx","workload_id":"b"}`))
	for _, tc := range []struct {
		name string
		ev   *attest.Evidence
		err  string
		logs int
	}{
		{"this config", quote(append(want[:], make([]byte, 16)...)), "", 0},
		{"another config", quote(append(other[:], make([]byte, 16)...)), "MRCONFIGID", 0},
		{"unattested", quote(make([]byte, 48)), "", 1},
	} {
		var logged []string
		h := &configChecker{Attester: evidenceAttester{tc.ev}, want: want,
			logf: func(f string, a ...any) { logged = append(logged, fmt.Sprintf(f, a...)) }}
		for range 2 {
			_, err := h.Attest(context.Background(), [64]byte{})
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "launched for another config")) {
				t.Fatalf("%s: %v, want %q", tc.name, err, tc.err)
			}
		}
		if len(logged) != tc.logs || tc.logs == 1 && !strings.Contains(logged[0], "config unattested") {
			t.Errorf("%s: logged %q", tc.name, logged)
		}
	}
}
