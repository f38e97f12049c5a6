package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/simport"
	"github.com/sealroot/sealroot/guest/internal/seal"
	"github.com/sealroot/sealroot/guest/internal/vport"
	"github.com/sealroot/sealroot/guest/runtimeev"
	"github.com/sealroot/sealroot/guest/tsm"
)

// sealTEE runs after the workload's config is read and before it starts:
// in a confidential boot (the config names a TEE, or the VM has one),
// the TEE's report interfaces go away and the bounding set loses what
// would bring them back (package seal). A boot with tee none and no TEE
// has no key to protect and is left as it is.
func (b *boot) sealTEE(ctx context.Context) error {
	_, simErr := vport.Find(simport.PortName)
	if b.cfg.TEE == attest.TEENone && b.probeTEE() == "" && simErr != nil {
		b.detail = map[string]string{"sealed": "false"}
		return nil
	}
	var runtimeAtt attest.Attester
	if b.cfg.RuntimeEvidence {
		runtimeAtt = b.runtimeAttester() // before the seal removes the devices
	}
	o := seal.Default()
	o.Ports = []string{simport.PortName}
	r, err := seal.Seal(o)
	if err != nil {
		return err
	}
	b.report.Log("seal", "TEE closed to the workload: %s", r)
	if b.cfg.RuntimeEvidence {
		if err := b.serveRuntimeEvidence(runtimeAtt); err != nil {
			return fmt.Errorf("runtime evidence: %w", err)
		}
	}
	b.detail = map[string]string{"sealed": "true", "lockdown": r.Lockdown, "removed": strings.Join(r.Removed, " ")}
	return nil
}

// runtimeAttester is the Attester runtime evidence goes through: on SNP
// with /dev/sev-guest, one over the device opened now, before the seal
// removes its node; otherwise the boot's own, which keeps working where it
// holds its interface open (the simulated TEE's port) and fails each
// request where it reopens a removed one (configfs-tsm).
func (b *boot) runtimeAttester() attest.Attester {
	if b.attester == nil || b.cfg.TEE != attest.TEESNP {
		return b.attester
	}
	d, err := tsm.OpenSEVDevice(tsm.SEVGuestPath)
	if err != nil {
		b.report.Log("seal", "runtime evidence: %s cannot be opened (%v): requests will fail", tsm.SEVGuestPath, err)
		return b.attester
	}
	a, err := tsm.New(attest.TEESNP, tsm.Options{SNPQuoteProvider: d})
	if err != nil {
		d.Close()
		b.report.Log("seal", "runtime evidence: %v", err)
		return b.attester
	}
	b.closers = append(b.closers, d)
	return b.withConfigCheck(a)
}

// serveRuntimeEvidence opens the runtime-evidence socket for a workload
// whose attested config asks for it (runtime_evidence), serving reports
// from att, which the seal left to the init alone.
func (b *boot) serveRuntimeEvidence(att attest.Attester) error {
	if att == nil {
		return errors.New("the config asks for runtime evidence but this boot did not attest")
	}
	if err := os.MkdirAll(filepath.Dir(runtimeev.SocketPath), 0o755); err != nil {
		return err
	}
	os.Remove(runtimeev.SocketPath)
	l, err := net.Listen("unix", runtimeev.SocketPath)
	if err != nil {
		return err
	}
	if err := os.Chmod(runtimeev.SocketPath, 0o666); err != nil {
		l.Close()
		return err
	}
	b.closers = append(b.closers, l)
	go func() {
		logf := func(format string, a ...any) { b.report.Log("evidence", format, a...) }
		if err := runtimeev.Serve(l, att, logf); err != nil {
			logf("runtime evidence server stopped: %v", err)
		}
	}()
	b.report.Log("seal", "runtime evidence for the workload at %s (domain-separated report_data)", runtimeev.SocketPath)
	return nil
}
