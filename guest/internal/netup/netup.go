// Package netup brings up the guest's network link for QEMU user networking
// (slirp): it waits for the interface, gives it its address and sets it up.
// Nothing else is needed there: the broker's guestfwd address (10.0.2.100)
// is on-link and slirp answers ARP for it, so there is no route, no DHCP and
// no DNS (docs/agent.md, "QEMU user networking").
//
// It speaks rtnetlink directly through golang.org/x/sys/unix, which the
// init already links, rather than through vishvananda/netlink: three small
// messages do not justify a library that adds hundreds of kilobytes to
// every initrd (see docs/agent.md for the measured difference).
package netup

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Defaults: QEMU user networking gives the first guest 10.0.2.15 in
// 10.0.2.0/24.
var (
	DefaultIface = "eth0"
	DefaultAddr  = netip.MustParsePrefix("10.0.2.15/24")
)

// Options say which interface to bring up with which address.
type Options struct {
	// Iface is the interface name; empty is DefaultIface.
	Iface string
	// Addr is the IPv4 address and prefix length; the zero value is
	// DefaultAddr.
	Addr netip.Prefix
	// Loopback also sets lo up (the broker exchange does not need it).
	Loopback bool
}

// pollInterval is how often Up looks for the interface.
const pollInterval = 10 * time.Millisecond

// Up waits until the interface exists (until ctx ends), adds the address
// (replacing it if present, so Up may run twice) and sets the link up, and
// lo too when asked.
func Up(ctx context.Context, o Options) error {
	o, err := o.normalize()
	if err != nil {
		return err
	}
	ifi, err := waitIface(ctx, o.Iface, net.InterfaceByName)
	if err != nil {
		return err
	}
	nl, err := dialRoute()
	if err != nil {
		return err
	}
	defer nl.close()
	if err := nl.replaceAddr(ifi.Index, o.Addr); err != nil {
		return fmt.Errorf("adding %s to %s: %w", o.Addr, o.Iface, err)
	}
	if err := nl.setUp(ifi.Index); err != nil {
		return fmt.Errorf("setting %s up: %w", o.Iface, err)
	}
	if o.Loopback {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return fmt.Errorf("finding lo: %w", err)
		}
		if err := nl.setUp(lo.Index); err != nil {
			return fmt.Errorf("setting lo up: %w", err)
		}
	}
	return nil
}

// normalize fills defaults and checks the options.
func (o Options) normalize() (Options, error) {
	if o.Iface == "" {
		o.Iface = DefaultIface
	}
	if len(o.Iface) >= 16 || strings.ContainsAny(o.Iface, "/: \t\n\x00") || o.Iface == "." || o.Iface == ".." {
		return o, fmt.Errorf("interface name %q is not valid", o.Iface)
	}
	if !o.Addr.IsValid() {
		o.Addr = DefaultAddr
	}
	a, bits := o.Addr.Addr(), o.Addr.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	if !a.Is4() {
		return o, fmt.Errorf("address %s is not IPv4", o.Addr)
	}
	if bits < 1 || bits > 32 || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
		return o, fmt.Errorf("address %s cannot be an interface address", o.Addr)
	}
	if bits < 31 {
		// The network and broadcast addresses of the prefix are not
		// host addresses.
		p := netip.PrefixFrom(a, bits)
		if a == p.Masked().Addr() || a == broadcast(p) {
			return o, fmt.Errorf("address %s is the network or broadcast address of its prefix", o.Addr)
		}
	}
	o.Addr = netip.PrefixFrom(a, bits)
	return o, nil
}

// broadcast is the all-ones host address of p (IPv4).
func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	hostBits := 32 - p.Bits()
	for i := 3; i >= 0 && hostBits > 0; i-- {
		n := min(hostBits, 8)
		b[i] |= byte(1<<n - 1)
		hostBits -= n
	}
	return netip.AddrFrom4(b)
}

// waitIface polls lookup until the interface exists or ctx ends.
func waitIface(ctx context.Context, name string, lookup func(string) (*net.Interface, error)) (*net.Interface, error) {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	for {
		ifi, err := lookup(name)
		if err == nil {
			return ifi, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for interface %s: %w (is virtio_net loaded and the VM started with a -nic?)", name, ctx.Err())
		case <-t.C:
		}
	}
}

// NeedsNetwork reports whether the guest must bring up its user-network
// link to reach attestationURL: an http or https URL whose host is an IPv4
// literal in DefaultAddr's network (10.0.2.0/24, where QEMU's guestfwd
// addresses live). Other URLs (vsock, names, other networks) need no link
// from this package.
func NeedsNetwork(attestationURL string) bool {
	u, err := url.Parse(strings.TrimSpace(attestationURL))
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	default:
		return false
	}
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return false
	}
	return DefaultAddr.Masked().Contains(a.Unmap())
}

// errNoNetlink is returned when the kernel has no rtnetlink (never on
// Linux; kept for other GOOS builds).
var errNoNetlink = errors.New("rtnetlink is not available on this system") //nolint:unused // used by rtnl_other.go on non-Linux builds
