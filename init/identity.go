package main

import (
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/trusteesnp"
	"github.com/sealroot/sealroot/init/config"
)

// teeDevices are the guest devices of the hardware TEEs; any of them means
// the VM is confidential.
var teeDevices = []string{"/dev/sev-guest", "/dev/tdx_guest", "/dev/tdx-guest"}

// teeDevice returns the hardware TEE evidence the VM has ("" for none): a
// guest device, or the tdx_guest CPU flag.
func teeDevice() string {
	for _, d := range teeDevices {
		if _, err := os.Stat(d); err == nil {
			return d
		}
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
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

// hostDataOffset is where SNP reports (hardware and simulated) carry the
// 32 bytes of HOST_DATA that the host sets at launch.
const hostDataOffset, hostDataSize = trusteesnp.OffHostData, trusteesnp.HostDataSize

// hostDataChecker wraps an SNP-format Attester: each report's HOST_DATA
// must be the SHA-256 of the config this init booted with (config.HostData)
// or all zeros (a host that binds nothing; then the broker's policy alone
// tells workloads apart). A report carrying another config's hash means the
// host launched this VM for a different config than the disk it attached:
// the init stops before talking to any broker.
type hostDataChecker struct {
	attest.Attester
	want [32]byte
	logf func(format string, a ...any)
}

func (h *hostDataChecker) Attest(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	ev, err := h.Attester.Attest(ctx, rd)
	if err != nil {
		return nil, err
	}
	if ev.TEE != attest.TEESNP || len(ev.Report) < hostDataOffset+hostDataSize {
		return ev, nil
	}
	got := ev.Report[hostDataOffset : hostDataOffset+hostDataSize]
	switch {
	case subtle.ConstantTimeCompare(got, h.want[:]) == 1:
	case bytes.Equal(got, make([]byte, hostDataSize)):
		h.logf("HOST_DATA is not set by the host: the broker's policy alone binds this workload's identity")
	default:
		return nil, fmt.Errorf("the report's HOST_DATA %x is not the SHA-256 of this disk's config (%x): the VM was launched for another config", got, h.want)
	}
	return ev, nil
}

// withHostDataCheck wraps att when its evidence is SNP-format.
func (b *boot) withHostDataCheck(att attest.Attester) attest.Attester {
	if att.TEE() != attest.TEESNP && att.TEE() != attest.TEESim {
		return att
	}
	return &hostDataChecker{Attester: att, want: config.HostData(b.rawConfig),
		logf: func(format string, a ...any) { b.report.Log("attest", format, a...) }}
}
