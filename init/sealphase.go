package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/sealroot/sealroot/attest/simport"
	"github.com/sealroot/sealroot/init/runtimeev"
	"github.com/sealroot/sealroot/init/seal"
	"github.com/sealroot/sealroot/init/vport"
)

// sealTEE runs after the workload's config is read and before it starts:
// in a confidential boot (the config names a TEE, or the VM has one),
// the TEE's report interfaces go away and the bounding set loses what
// would bring them back (package seal). A boot with tee none and no TEE
// has no key to protect and is left as it is.
func (b *boot) sealTEE(ctx context.Context) error {
	_, simErr := vport.Find(simport.PortName)
	if b.cfg.TEE == "none" && teeDevice() == "" && simErr != nil {
		b.detail = map[string]string{"sealed": "false"}
		return nil
	}
	o := seal.Default()
	o.Ports = []string{simport.PortName}
	r, err := seal.Seal(o)
	if err != nil {
		return err
	}
	b.report.Log("seal", "TEE closed to the workload: %s", r)
	if b.cfg.RuntimeEvidence {
		if err := b.serveRuntimeEvidence(); err != nil {
			return fmt.Errorf("runtime evidence: %w", err)
		}
	}
	b.detail = map[string]string{"sealed": "true", "lockdown": r.Lockdown, "removed": strings.Join(r.Removed, " ")}
	return nil
}

// serveRuntimeEvidence opens the runtime-evidence socket for a workload
// whose attested config asks for it (runtime_evidence). Reports go through
// the boot's own Attester, which the seal left to the init alone.
func (b *boot) serveRuntimeEvidence() error {
	if b.attester == nil {
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
	go runtimeev.Serve(l, b.attester, func(format string, a ...any) { b.report.Log("evidence", format, a...) })
	b.report.Log("seal", "runtime evidence for the workload at %s (domain-separated report_data)", runtimeev.SocketPath)
	return nil
}
