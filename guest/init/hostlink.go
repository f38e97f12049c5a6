package main

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/mdlayher/vsock"
	"github.com/sealroot/sealroot/guest/internal/hostchan"
	"github.com/sealroot/sealroot/guest/internal/vport"
	"github.com/sealroot/sealroot/wire/event"
)

// Bounds of the host channel: how long each way of reaching the host is
// tried, how long the hostchan phase waits for the outcome before the boot
// goes on (events are buffered meanwhile), and how long the end of the boot
// waits for a channel still connecting before reporting the status.
const (
	portWait   = 1500 * time.Millisecond
	vsockWait  = time.Second
	linkSettle = 300 * time.Millisecond
	linkAtExit = 2 * time.Second
)

// hostChannel starts connecting the event channel to the host: the
// virtio-serial port under QEMU, a vsock connection (with a handshake)
// under libkrun, or none. It never fails the boot: without a channel the
// events go to the console only.
func (b *boot) hostChannel(ctx context.Context) error {
	b.link = hostchan.Connect(b.report, hostDialers())
	b.host = b.link
	ch := b.link.Wait(linkSettle)
	b.detail = map[string]string{"channel": ch}
	if ch == "connecting" {
		go func() { b.report.Log("hostchan", "channel %s", b.link.Wait(time.Minute)) }()
	}
	return nil
}

func hostDialers() hostchan.Dialers {
	d := hostchan.Dialers{PortWait: portWait, VsockWait: vsockWait}
	if _, err := os.Stat(vport.SysClass); err == nil {
		d.Port = func(ctx context.Context) (hostchan.Conn, error) { return vport.Open(ctx, event.PortName) }
	}
	if _, err := os.Stat("/dev/vsock"); err == nil {
		d.Vsock = func(ctx context.Context) (net.Conn, error) {
			return vsock.DialContext(ctx, vsock.Host, event.VsockPort, nil)
		}
	}
	return d
}

// settleLink gives a channel still connecting a last chance to carry the
// final status.
func (b *boot) settleLink() {
	if b.link == nil {
		return
	}
	b.link.Wait(linkAtExit)
}
