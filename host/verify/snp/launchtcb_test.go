package snp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/policy"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// TestLaunchTCBClaim: the verifier reports LAUNCH_TCB, and a policy
// minimum applies to it as well as to the reported TCB. The real Milan and
// Genoa reports were launched under the TCB they report, so a minimum at
// their reported TCB still accepts them; a report (really signed by a test
// VCEK) whose guest was launched under older firmware than it reports from
// is refused by the same minimum.
func TestLaunchTCBClaim(t *testing.T) {
	milan, err := milanVerifier(Options{Offline: true}).Verify(context.Background(), milanEvidence())
	if err != nil {
		t.Fatal(err)
	}
	genoaReport, genoaVCEK := genoaRaw(t)
	genoa, err := NewVerifier(Options{Offline: true}).Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP,
		Report: genoaReport, Certs: MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: genoaVCEK}})})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*attest.Claims{milan, genoa} {
		if c.LaunchTCB == nil || *c.LaunchTCB != c.ReportedTCB {
			t.Fatalf("%s: launch TCB %v, reported %v", c.ProductLine, c.LaunchTCB, c.ReportedTCB)
		}
		min := c.ReportedTCB
		if err := (&policy.Policy{MinTCB: &min, AllowDebug: true}).Validate(c); err != nil {
			t.Fatalf("%s at its own reported TCB: %v", c.ProductLine, err)
		}
	}

	ca := newTestCA(t)
	hwid := bytes.Repeat([]byte{0xc3}, 64)
	tcb := attest.TCB{Bootloader: 4, SNP: 22, Microcode: 213}
	now := testEpoch.AddDate(1, 0, 0)
	der, key := ca.issue(t, vcekSpec{hwid: hwid, tcb: tcb})
	report := testReport(t, hwid, tcb, key)
	old := attest.TCB{Bootloader: 4, SNP: 21, Microcode: 213}
	binary.LittleEndian.PutUint64(report[snpreport.OffLaunchTCB:], snpreport.TCBToUint64(old, false))
	signReport(t, report, key)
	v := NewVerifier(Options{Offline: true, Roots: ca.roots, Now: func() time.Time { return now }})
	c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: report,
		Certs: MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: der}})})
	if err != nil {
		t.Fatal(err)
	}
	if c.ReportedTCB != tcb || c.LaunchTCB == nil || *c.LaunchTCB != old {
		t.Fatalf("reported %v launch %v, want %v and %v", c.ReportedTCB, c.LaunchTCB, tcb, old)
	}
	err = (&policy.Policy{MinTCB: &tcb}).Validate(c)
	if !errors.Is(err, policy.ErrTCB) || !strings.Contains(err.Error(), "launch TCB") || !strings.Contains(err.Error(), "snp 21 < 22") {
		t.Fatalf("guest launched under older firmware: %v, want policy.ErrTCB naming the launch TCB", err)
	}
	if err := (&policy.Policy{MinTCB: &old}).Validate(c); err != nil {
		t.Fatalf("minimum at the launch TCB: %v", err)
	}

	// A launch TCB with reserved bytes set is refused, like the reported one.
	binary.LittleEndian.PutUint64(report[snpreport.OffLaunchTCB:], snpreport.TCBToUint64(old, false)|1<<24)
	signReport(t, report, key)
	if _, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: report,
		Certs: MarshalCertTable([]CertEntry{{GUID: GUIDVCEK, Data: der}})}); err == nil || !strings.Contains(err.Error(), "snp: launch TCB: reserved bytes") {
		t.Fatalf("launch TCB with reserved bytes: %v", err)
	}
}
