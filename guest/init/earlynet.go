package main

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/guest/internal/netup"
)

// The broker's network link comes up in the background from the end of the
// config phase: bringing eth0 up waits on the virtio-net device and on
// netlink, and that wait now overlaps the payload phase (reading and
// checking the LUKS header) instead of following it. The network phase
// only collects the result. Nothing listens on the link and QEMU's user
// network forwards nothing but the broker address, so bringing it up a
// phase early exposes nothing new; a config whose payload then turns out
// not to need the broker fails in the payload phase anyway (an attestable
// tee with a plain payload is refused there).

// earlyNetDeadline bounds the background bring-up, as the network phase's
// deadline bounded it when it ran in that phase.
const earlyNetDeadline = 10 * time.Second

// earlyNet is a bring-up running in the background.
type earlyNet struct {
	done chan struct{}
	err  error
}

// startNetwork starts bringing the link up when the config's broker is
// reached over QEMU's user network and its tee attests; it does nothing
// otherwise, and nothing when it already started.
func (b *boot) startNetwork() {
	if b.net != nil || b.cfg == nil || !attest.Attestable(b.cfg.TEE) || !netup.NeedsNetwork(b.cfg.AttestationURL) {
		return
	}
	up := b.machine.netUp
	if up == nil {
		up = bringUpBrokerLink
	}
	n := &earlyNet{done: make(chan struct{})}
	b.net = n
	go func() {
		defer close(n.done)
		ctx, cancel := context.WithTimeout(context.Background(), earlyNetDeadline)
		defer cancel()
		n.err = up(ctx)
	}()
}

// bringUpBrokerLink is the real machine's bring-up. It refuses to run in
// anything but PID 1, so that a unit test whose seams forgot the network
// can never readdress the host's own eth0.
func bringUpBrokerLink(ctx context.Context) error {
	if os.Getpid() != 1 {
		return errors.New("not PID 1: refusing to configure this machine's network")
	}
	return netup.Up(ctx, netup.Options{})
}

// wait returns the bring-up's result, or ctx's error if ctx ends first.
func (n *earlyNet) wait(ctx context.Context) error {
	select {
	case <-n.done:
		return n.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
