package hostchan

import (
	"context"
	"io"
	"net"
	"sync"
	"time"

	"github.com/sealroot/sealroot/wire/event"
)

// Conn is a host channel: writes with deadlines, and a Close.
type Conn interface {
	WriteDeadliner
	io.Closer
}

// Dialers are the ways to reach the host, tried side by side. Either may
// be nil (not available on this machine).
type Dialers struct {
	// Port opens the virtio-serial event port (QEMU); it returns once a
	// host is connected, or fails when ctx ends.
	Port func(ctx context.Context) (Conn, error)
	// Vsock connects the vsock event port (libkrun). The connection is
	// used only after event.ClientHandshake succeeds on it.
	Vsock func(ctx context.Context) (net.Conn, error)
	// PortWait and VsockWait bound each attempt, handshake included.
	PortWait, VsockWait time.Duration
}

// Link is a host channel being connected in the background. Events are
// buffered by the Reporter until it resolves; whatever the outcome (no
// port, a vsock nobody answers, a host that goes away), the boot goes on
// and events fall back to the console.
type Link struct {
	done    chan struct{}
	mu      sync.Mutex
	channel string // "virtio-serial", "vsock" or "console"
	conn    Conn
	closed  bool
}

// Connect starts connecting r to the host through d and returns at once.
func Connect(r *Reporter, d Dialers) *Link {
	l := &Link{done: make(chan struct{})}
	type result struct {
		name string
		c    Conn
	}
	results := make(chan result, 2)
	attempts := 0
	if d.Port != nil {
		attempts++
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), d.PortWait)
			defer cancel()
			c, err := d.Port(ctx)
			if err != nil {
				c = nil
			}
			results <- result{"virtio-serial", c}
		}()
	}
	if d.Vsock != nil {
		attempts++
		go func() {
			results <- result{"vsock", dialHandshake(d.Vsock, d.VsockWait)}
		}()
	}
	go func() {
		defer close(l.done)
		for i := 0; i < attempts; i++ {
			res := <-results
			if res.c == nil {
				continue
			}
			l.mu.Lock()
			if l.conn != nil || l.closed {
				l.mu.Unlock()
				res.c.Close() // the other channel won, or the boot ended
				continue
			}
			l.conn, l.channel = res.c, res.name
			l.mu.Unlock()
			r.Attach(res.c)
			if i+1 < attempts {
				// Do not wait for the slower attempt; it closes
				// its own result when it comes.
				go func(n int) {
					for ; n > 0; n-- {
						if res := <-results; res.c != nil {
							res.c.Close()
						}
					}
				}(attempts - i - 1)
			}
			return
		}
		l.mu.Lock()
		l.channel = "console"
		l.mu.Unlock()
		r.ConsoleOnly()
	}()
	return l
}

// dialHandshake dials and runs the client handshake under one deadline;
// nil when either fails.
func dialHandshake(dial func(context.Context) (net.Conn, error), wait time.Duration) Conn {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := dial(ctx)
	if err != nil {
		return nil
	}
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if err := event.ClientHandshake(c); err != nil {
		c.Close()
		return nil
	}
	c.SetDeadline(time.Time{})
	return c
}

// Wait waits up to d for the outcome and returns the channel in use:
// "virtio-serial", "vsock", "console", or "connecting" when still open.
func (l *Link) Wait(d time.Duration) string {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.done:
	case <-t.C:
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.channel == "" {
		return "connecting"
	}
	return l.channel
}

// Close closes the channel in use, and any that connects later.
func (l *Link) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	if l.conn != nil {
		return l.conn.Close()
	}
	return nil
}
