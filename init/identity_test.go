package main

import (
	"context"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/init/config"
)

type fakeAttester struct{ hostData []byte }

func (f fakeAttester) TEE() string { return attest.TEESim }
func (f fakeAttester) Attest(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	r := make([]byte, 1184)
	copy(r[hostDataOffset:], f.hostData)
	return &attest.Evidence{TEE: attest.TEESNP, Report: r}, nil
}

func TestHostDataChecker(t *testing.T) {
	raw := []byte(`{"tee":"sim","workload_id":"a"}`)
	want := config.HostData(raw)
	other := config.HostData([]byte(`{"tee":"sim","workload_id":"b"}`))
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
		h := &hostDataChecker{Attester: fakeAttester{tc.hostData}, want: want,
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
