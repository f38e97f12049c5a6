package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

// preflightLaunch checks, before QEMU starts, what the flags and the disk
// already show will fail in the guest, and says so in one line: a tee sim
// disk without --tee sim, a broker-bound disk without --broker, and less
// memory than the disk's key derivation needs.
func preflightLaunch(f *launchFlags, cfg *diskconfig.Config, memoryMiB int) error {
	if cfg.TEE == attest.TEESim && f.tee != attest.TEESim {
		return usageError("%s: the disk config's tee is sim: launch with --tee sim --sim-dir DIR (`sealroot sim init --dir DIR` creates DIR)", f.disk)
	}
	if attest.NeedsBroker(cfg.TEE) && f.broker == "" {
		if u, err := url.Parse(cfg.AttestationURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
			return usageError("%s: tee %s, attestation_url %s: give --broker URL, the broker on this host (e.g. http://127.0.0.1:8000) that the guest reaches at %s; without it the guest has no network",
				f.disk, cfg.TEE, cfg.AttestationURL, u.Host)
		}
	}
	info, err := cryptsetup.Inspect(f.disk)
	if err != nil || !info.Encrypted || info.LUKS == nil {
		return nil // the guest reports what is wrong with the payload
	}
	var best *cryptsetup.Keyslot
	need := 0
	for i, ks := range info.LUKS.Keyslots {
		if (ks.Type != "luks1" && ks.Type != "luks2") || ks.Priority == cryptsetup.PriorityIgnore {
			continue
		}
		if n := ks.KDF.MinGuestMiB(); best == nil || n < need {
			need, best = n, &info.LUKS.Keyslots[i]
		}
	}
	if best != nil && need > memoryMiB {
		return withStatus(event.StatusLaunchFailed, fmt.Errorf("--memory %d MiB is too little to unlock %s: keyslot %d (%s) needs a guest of %d MiB (its argon2 memory plus %d MiB for the kernel and initrd): give --memory %d, or rebuild the image with a smaller --kdf-memory",
			memoryMiB, f.disk, best.ID, best.KDF.Type, need, cryptsetup.GuestOverheadMiB, need))
	}
	return nil
}

// checkBrokerUp dials the broker that the guest's attestation URL is
// forwarded to: a broker that is down fails the launch at once instead of
// after the guest's attest_timeout.
//
// An https broker gets a full TLS handshake, so that it does not log a
// failed one. Nothing is sent and its certificate is not checked here: this
// only asks whether something answers on the loopback port; the guest
// verifies the broker itself.
func checkBrokerUp(broker string, fw *launch.Forward) error {
	d := &net.Dialer{Timeout: 3 * time.Second}
	var c net.Conn
	var err error
	if u, perr := url.Parse(broker); perr == nil && u.Scheme == "https" {
		c, err = tls.DialWithDialer(d, "tcp", fw.BrokerAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // liveness probe only
	} else {
		c, err = d.Dial("tcp", fw.BrokerAddr)
	}
	if err != nil {
		return withStatus(event.StatusBrokerRefused, fmt.Errorf("--broker %s: the broker is not reachable (%w): start `sealroot broker` first", broker, err))
	}
	return c.Close()
}
