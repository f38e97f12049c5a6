package hostchan

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/internal/syncbuf"
	"github.com/sealroot/sealroot/wire/event"
)

// vsockHost is a host end of the vsock event port: it answers the
// handshake (unless silent) and collects event lines.
type vsockHost struct {
	silent bool
	// closeAfterAck makes the listener vanish right after the handshake.
	closeAfterAck bool
	events        chan event.Event
}

func (h *vsockHost) dial(ctx context.Context) (net.Conn, error) {
	g, c := net.Pipe()
	if h.events == nil {
		h.events = make(chan event.Event, 64)
	}
	go func() {
		br := bufio.NewReader(c)
		if h.silent {
			br.ReadString('\n') // accepts the connection, never answers
			<-ctx.Done()
			c.Close()
			return
		}
		if err := event.ServeHandshake(br, c); err != nil {
			c.Close()
			return
		}
		if h.closeAfterAck {
			c.Close()
			return
		}
		for {
			line, err := br.ReadBytes('\n')
			if err != nil {
				close(h.events)
				return
			}
			if e, err := event.Parse(line); err == nil {
				h.events <- e
			}
		}
	}()
	return g, nil
}

func noPort(ctx context.Context) (Conn, error) {
	<-ctx.Done() // no port of that name ever appears
	return nil, errors.New("virtio-serial port not found")
}

func TestConnectNoChannelAtAll(t *testing.T) {
	var console syncbuf.Buffer
	r := New(&console, time.Now())
	r.Phase("mounts", time.Millisecond, nil)
	l := Connect(r, Dialers{})
	if ch := l.Wait(time.Second); ch != "console" {
		t.Fatalf("channel %q, want console", ch)
	}
	r.Exit(0)
	if r.Attached() || len(r.pending) != 0 {
		t.Fatalf("attached %v, %d events still buffered", r.Attached(), len(r.pending))
	}
	if st, ok := event.ParseConsoleLine(lastLine(console.String())); !ok || st != 0 {
		t.Fatalf("console %q", console.String())
	}
}

func TestConnectVsockNobodyAnswers(t *testing.T) {
	var console syncbuf.Buffer
	r := New(&console, time.Now())
	h := &vsockHost{silent: true}
	t0 := time.Now()
	l := Connect(r, Dialers{Port: noPort, Vsock: h.dial, PortWait: 100 * time.Millisecond, VsockWait: 200 * time.Millisecond})
	if ch := l.Wait(5 * time.Second); ch != "console" {
		t.Fatalf("channel %q, want console", ch)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Fatalf("gave up after %s, want about the vsock wait", d)
	}
	r.Exit(5)
	if st, ok := event.ParseConsoleLine(lastLine(console.String())); !ok || st != 5 {
		t.Fatalf("console %q", console.String())
	}
}

func TestConnectVsockConnectFails(t *testing.T) {
	r := New(&syncbuf.Buffer{}, time.Now())
	dial := func(ctx context.Context) (net.Conn, error) { return nil, errors.New("connection reset") }
	l := Connect(r, Dialers{Vsock: dial, VsockWait: time.Second})
	if ch := l.Wait(5 * time.Second); ch != "console" {
		t.Fatalf("channel %q, want console", ch)
	}
}

func TestConnectVsockHandshakeThenEvents(t *testing.T) {
	var console syncbuf.Buffer
	r := New(&console, time.Now())
	r.Phase("mounts", time.Millisecond, nil) // buffered, flushed on attach
	h := &vsockHost{}
	l := Connect(r, Dialers{Port: noPort, Vsock: h.dial, PortWait: 50 * time.Millisecond, VsockWait: 2 * time.Second})
	if ch := l.Wait(5 * time.Second); ch != "vsock" {
		t.Fatalf("channel %q, want vsock", ch)
	}
	r.Exit(3)
	var kinds []string
	for e := range h.events {
		kinds = append(kinds, e.Kind)
		if e.Kind == event.KindExit {
			if e.Status != 3 {
				t.Fatalf("exit status %d", e.Status)
			}
			break
		}
	}
	if strings.Join(kinds, ",") != "phase,exit" {
		t.Fatalf("host got %v", kinds)
	}
	l.Close()
}

func TestConnectListenerVanishes(t *testing.T) {
	var console syncbuf.Buffer
	r := New(&console, time.Now())
	h := &vsockHost{closeAfterAck: true}
	l := Connect(r, Dialers{Vsock: h.dial, VsockWait: 2 * time.Second})
	if ch := l.Wait(5 * time.Second); ch != "vsock" {
		t.Fatalf("channel %q, want vsock", ch)
	}
	done := make(chan struct{})
	go func() {
		r.Phase("disk", time.Millisecond, nil)
		r.Exit(9)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("reporting hung after the host went away")
	}
	out := console.String()
	if !strings.Contains(out, "events continue on the console only") {
		t.Fatalf("no fallback note on the console: %q", out)
	}
	if st, ok := event.ParseConsoleLine(lastLine(out)); !ok || st != 9 {
		t.Fatalf("console %q", out)
	}
}

func TestConnectPortWinsAndLateVsockIsClosed(t *testing.T) {
	r := New(&syncbuf.Buffer{}, time.Now())
	g, hostSide := net.Pipe()
	go bufio.NewReader(hostSide).WriteTo(&bytes.Buffer{})
	port := func(ctx context.Context) (Conn, error) { return g, nil }
	late := make(chan net.Conn, 1)
	vs := func(ctx context.Context) (net.Conn, error) {
		time.Sleep(100 * time.Millisecond)
		a, b := net.Pipe()
		go func() { event.ServeHandshake(bufio.NewReader(b), b); late <- b }()
		return a, nil
	}
	l := Connect(r, Dialers{Port: port, Vsock: vs, PortWait: time.Second, VsockWait: time.Second})
	if ch := l.Wait(5 * time.Second); ch != "virtio-serial" {
		t.Fatalf("channel %q, want virtio-serial", ch)
	}
	b := <-late
	b.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := b.Read(make([]byte, 1)); err == nil {
		t.Fatal("the losing vsock connection was left open")
	}
}

func TestLinkWaitStillConnecting(t *testing.T) {
	r := New(&syncbuf.Buffer{}, time.Now())
	l := Connect(r, Dialers{Port: noPort, PortWait: time.Second})
	if ch := l.Wait(10 * time.Millisecond); ch != "connecting" {
		t.Fatalf("channel %q, want connecting", ch)
	}
	if ch := l.Wait(5 * time.Second); ch != "console" {
		t.Fatalf("channel %q, want console", ch)
	}
}
