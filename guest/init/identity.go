package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/configbind"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

// teeDevice returns the hardware TEE evidence the VM has ("" for none): a
// guest device, the CCA realm's platform device, or the tdx_guest CPU flag
// (the table in package attest lists them); any of them means the VM is
// confidential.
func teeDevice() string { return teeDeviceAt("/") }

// teeDeviceAt is teeDevice with paths under root (tests).
func teeDeviceAt(root string) string {
	for _, t := range attest.TEEs() {
		for _, d := range t.Devices {
			if _, err := os.Stat(filepath.Join(root, d)); err == nil {
				return deviceName(d)
			}
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "/proc/cpuinfo"))
	if err != nil {
		return ""
	}
	for _, t := range attest.TEEs() {
		if t.CPUFlag == "" {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "flags") && strings.Contains(" "+line+" ", " "+t.CPUFlag+" ") {
				return "CPU flag " + t.CPUFlag
			}
		}
	}
	return ""
}

// deviceName is how messages name a TEE device: its path, or for the CCA
// realm's platform device (which has no /dev node) what it stands for.
func deviceName(path string) string {
	if path == attest.DevCCARealm {
		return "Arm CCA realm (arm-cca-dev)"
	}
	return path
}

// attestable reports whether a config TEE goes through hardware
// attestation (the simulated TEE does not count inside a real one).
func attestable(tee string) bool {
	t, _ := attest.Lookup(tee)
	return t.Hardware
}

// configChecker wraps an Attester: each piece of evidence must carry the
// config this init booted with in its launch-bound field (SNP HOST_DATA,
// TDX MRCONFIGID, CCA realm personalization value; package configbind),
// or all zeros: a launcher that binds nothing (libkrun), which makes the
// config unattested and is logged once. Evidence carrying another
// config's digest means the host launched this VM for a different config
// than the disk it attached: the init stops before talking to any broker.
type configChecker struct {
	attest.Attester
	want [32]byte
	// strict refuses an unattested config (sealroot.require_binding=1).
	strict bool
	logf   func(format string, a ...any)
	once   sync.Once
}

func (h *configChecker) Attest(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	ev, err := h.Attester.Attest(ctx, rd)
	if err != nil {
		return nil, err
	}
	switch err := configbind.Check(ev, h.want); {
	case err == nil:
	case errors.Is(err, configbind.ErrUnattested) && h.strict:
		return nil, fmt.Errorf("%w: the launcher set no %s, and sealroot.require_binding=1 asks for a bound config", err, configbind.FieldName(ev.TEE))
	case errors.Is(err, configbind.ErrUnattested):
		h.once.Do(func() {
			h.logf("config unattested: the launcher set no %s, so this disk config (and its root_volume binding) is not part of the attested identity; the broker's policy alone binds this workload (docs/threat-model.md)", configbind.FieldName(ev.TEE))
		})
	default:
		return nil, err
	}
	return ev, nil
}

// withConfigCheck wraps att so that its evidence must bind this config.
func (b *boot) withConfigCheck(att attest.Attester) attest.Attester {
	return &configChecker{Attester: att, want: diskconfig.HostData(b.rawConfig), strict: b.opts.requireBinding,
		logf: func(format string, a ...any) { b.report.Log("attest", format, a...) }}
}

// refuseUnattestedInTEE refuses a config that does not attest when the VM
// runs in a TEE (dev, from teeDevice): a host that can boot this measured
// init unattested inside a real TEE could run its own code there and
// attest as any workload sharing the measurement.
func refuseUnattestedInTEE(dev string, cfg *diskconfig.Config) error {
	if dev == "" || attestable(cfg.TEE) {
		return nil
	}
	return fail(event.StatusAttestFailed, fmt.Errorf("this VM runs in a TEE (%s) but the disk config's tee is %q: refusing to boot an unattested root in a confidential VM", dev, cfg.TEE))
}
