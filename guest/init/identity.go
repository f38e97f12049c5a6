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

// teeDevices are the guest devices of the hardware TEEs, and the platform
// device the kernel registers in an Arm CCA realm (arm-cca-dev, whose
// driver serves configfs-tsm and has no /dev node); any of them means the
// VM is confidential.
var teeDevices = []struct{ path, what string }{
	{"/dev/sev-guest", "/dev/sev-guest"},
	{"/dev/tdx_guest", "/dev/tdx_guest"},
	{"/dev/tdx-guest", "/dev/tdx-guest"},
	{"/sys/bus/platform/devices/arm-cca-dev", "Arm CCA realm (arm-cca-dev)"},
}

// teeDevice returns the hardware TEE evidence the VM has ("" for none): a
// guest device, the CCA realm's platform device, or the tdx_guest CPU flag.
func teeDevice() string { return teeDeviceAt("/") }

// teeDeviceAt is teeDevice with paths under root (tests).
func teeDeviceAt(root string) string {
	for _, d := range teeDevices {
		if _, err := os.Stat(filepath.Join(root, d.path)); err == nil {
			return d.what
		}
	}
	if b, err := os.ReadFile(filepath.Join(root, "/proc/cpuinfo")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "flags") && strings.Contains(" "+line+" ", " tdx_guest ") {
				return "CPU flag tdx_guest"
			}
		}
	}
	return ""
}

// attestable reports whether a config TEE goes through hardware
// attestation.
func attestable(tee string) bool {
	return tee == attest.TEESNP || tee == attest.TEETDX || tee == attest.TEECCA
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
	logf func(format string, a ...any)
	once sync.Once
}

func (h *configChecker) Attest(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	ev, err := h.Attester.Attest(ctx, rd)
	if err != nil {
		return nil, err
	}
	switch err := configbind.Check(ev, h.want); {
	case err == nil:
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
	return &configChecker{Attester: att, want: diskconfig.HostData(b.rawConfig),
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
