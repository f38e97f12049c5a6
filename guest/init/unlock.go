package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/simport"
	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/guest/agent"
	"github.com/sealroot/sealroot/guest/internal/netup"
	"github.com/sealroot/sealroot/guest/internal/vport"
	"github.com/sealroot/sealroot/guest/tsm"
	"github.com/sealroot/sealroot/internal/textclip"
	"github.com/sealroot/sealroot/wire/event"
)

// network brings up the guest's link to the broker when the attestation
// URL is reached over QEMU's user network: it waits for the bring-up the
// config phase started (earlynet.go).
func (b *boot) network(ctx context.Context) error {
	if !b.encrypted || !netup.NeedsNetwork(b.cfg.AttestationURL) {
		b.detail = map[string]string{"network": "off"}
		return nil
	}
	b.startNetwork() // a no-op when the config phase started it
	if b.net == nil {
		return fmt.Errorf("tee %q does not attest: no network for %s", b.cfg.TEE, b.cfg.AttestationURL)
	}
	if err := b.net.wait(ctx); err != nil {
		return fmt.Errorf("bringing up eth0 for %s: %w; with sealroot launch, give --broker URL", b.cfg.AttestationURL, err)
	}
	b.detail = map[string]string{"network": "eth0", "broker_conn": textclip.Clip(b.net.dialOutcome(), 80)}
	return nil
}

// attesterFor returns exactly the Attester the config names. A missing
// device is an error: there is never a fallback to another TEE.
func (b *boot) attesterFor(ctx context.Context) (attest.Attester, error) {
	switch t, _ := attest.Lookup(b.cfg.TEE); {
	case t.Simulated:
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		p, err := vport.Open(pctx, simport.PortName)
		if err != nil {
			return nil, fmt.Errorf("simulated TEE port %s: %w (launch with --tee sim)", simport.PortName, err)
		}
		b.closers = append(b.closers, p)
		return simport.NewAttester(p), nil
	case t.Hardware:
		if err := tsm.MountConfigfs(); err != nil {
			b.report.Log("attest", "configfs: %v", err)
		}
		return tsm.New(b.cfg.TEE, tsm.Options{})
	}
	return nil, fmt.Errorf("tee %q cannot attest", b.cfg.TEE)
}

// attest runs the broker exchange and keeps the passphrase for unlock.
func (b *boot) attest(ctx context.Context) error {
	if !b.encrypted {
		return nil
	}
	att, err := b.newAttester(ctx)
	if err != nil {
		return fail(event.StatusAttestFailed, err)
	}
	att = b.withConfigCheck(att)
	b.attester = att
	actx, cancel := context.WithTimeout(ctx, b.cfg.Deadline())
	defer cancel()
	var tcpDial agent.TCPDialer
	if b.net != nil {
		tcpDial = b.net.dialBroker
		defer b.net.release()
	}
	pass, err := agent.FetchPassphrase(actx, agent.Options{
		Config:       agentConfig(b.cfg),
		Attester:     att,
		ResourcePath: b.cfg.KBSResource,
		TrusteeKey:   b.cfg.KBSKey,
		FirstRSAKey:  b.keyAhead.get,
		TCPDial:      tcpDial,
		Logf:         func(format string, a ...any) { b.report.Log("attest", format, a...) },
	})
	if err != nil {
		var ae *agent.Error
		if errors.As(err, &ae) && ae.Step == agent.StepEvidence {
			return fail(event.StatusAttestFailed, err)
		}
		return fail(event.StatusBrokerRefused, err)
	}
	b.passphrase = pass
	b.detail = map[string]string{"dialect": b.cfg.Dialect(), "tee": b.cfg.TEE}
	if b.net != nil && b.net.usedPreDialed() {
		b.detail["broker_conn"] = "pre-dialed"
	}
	return nil
}

// unlockRoot opens the LUKS root with the passphrase and wipes it.
func (b *boot) unlockRoot(ctx context.Context) error {
	if !b.encrypted {
		return nil
	}
	defer func() {
		cryptsetup.Wipe(b.passphrase)
		b.passphrase = nil
	}()
	m, err := b.volume.UnlockContext(ctx, b.passphrase, b.unlockOptions())
	if err != nil {
		return b.unlockFailure(err)
	}
	b.logIgnoredFlags(m)
	b.rootFS = m.Device
	b.detail = map[string]string{"device": m.Device, "keyslot": fmt.Sprint(m.Keyslot),
		"kdf_ms": fmt.Sprintf("%.1f", float64(m.KDFTime.Microseconds())/1000), "cipher": m.Cipher}
	return nil
}
