package main

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/guest/agent"
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

// earlyNet is a bring-up running in the background. Once the link is up
// it also opens the TCP connection to the broker that the agent's first
// request uses (takeConn), so that the first connection's setup (the
// neighbour lookup, QEMU's guestfwd starting its relay, the broker's
// accept) overlaps the payload phase too. A failed pre-dial costs nothing
// but the attempt: the agent then dials by itself.
type earlyNet struct {
	done chan struct{}
	err  error // the bring-up's; fails the network phase

	dial    func(ctx context.Context, addr string) (net.Conn, error)
	mu      sync.Mutex
	addr    string   // where conn goes
	conn    net.Conn // nil once taken, or when the pre-dial failed
	dialErr error    // the pre-dial's, logged only
	taken   bool     // the agent's first dial got conn
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
	dial := b.machine.netDial
	if dial == nil {
		d := &net.Dialer{Timeout: brokerDialTimeout, KeepAlive: 15 * time.Second}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	addr := ""
	if t, err := agent.ParseTarget(b.cfg.AttestationURL); err == nil {
		addr = t.TCPAddr()
	}
	n := &earlyNet{done: make(chan struct{}), addr: addr, dial: dial}
	b.net = n
	go func() {
		defer close(n.done)
		ctx, cancel := context.WithTimeout(context.Background(), earlyNetDeadline)
		defer cancel()
		if n.err = up(ctx); n.err != nil || addr == "" {
			return
		}
		c, err := dial(ctx, addr)
		n.mu.Lock()
		n.conn, n.dialErr = c, err
		n.mu.Unlock()
	}()
}

// brokerDialTimeout bounds the pre-dial as the agent bounds its own dials.
const brokerDialTimeout = 10 * time.Second

// dialBroker is the agent's TCP dialer: the pre-dialed connection for its
// first dial to the broker's address when that connection is still open,
// a fresh one otherwise.
func (n *earlyNet) dialBroker(ctx context.Context, addr string) (net.Conn, error) {
	if c := n.takeConn(addr); c != nil {
		return c, nil
	}
	return n.dial(ctx, addr)
}

// takeConn hands over the pre-dialed connection to addr, once, if the
// bring-up finished and the broker has not closed it meanwhile (a 1 ms
// read sees that; a byte the broker sent unasked is as bad, and the
// connection is closed then too).
func (n *earlyNet) takeConn(addr string) net.Conn {
	select {
	case <-n.done:
	default:
		return nil
	}
	n.mu.Lock()
	c := n.conn
	if c == nil || addr != n.addr {
		n.mu.Unlock()
		return nil
	}
	n.conn = nil
	n.mu.Unlock()
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var one [1]byte
	_, err := c.Read(one[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		_ = c.Close()
		return nil
	}
	if c.SetReadDeadline(time.Time{}) != nil {
		_ = c.Close()
		return nil
	}
	n.mu.Lock()
	n.taken = true
	n.mu.Unlock()
	return c
}

// usedPreDialed reports whether the agent's first dial got the pre-dialed
// connection.
func (n *earlyNet) usedPreDialed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.taken
}

// release closes a pre-dialed connection nobody took.
func (n *earlyNet) release() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn != nil {
		_ = n.conn.Close()
		n.conn = nil
	}
}

// dialOutcome says, for the network phase's event, what became of the
// pre-dial once the bring-up ended: "open", "off" (nothing to dial) or the
// error.
func (n *earlyNet) dialOutcome() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case n.conn != nil:
		return "open"
	case n.dialErr != nil:
		return n.dialErr.Error()
	}
	return "off"
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
