// Package hostchan sends the init's structured events to the host.
//
// Events go to the virtio-serial port event.PortName when the launcher
// provides one (QEMU), else to a vsock connection to the host (libkrun's
// krun_add_vsock_port), and the console always gets a human line per event.
// Events produced before the channel is up (the early phases run before
// virtio_console is loaded) are buffered and flushed when it opens. Writes
// carry a deadline so that a stuck host never hangs the guest.
package hostchan

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sealroot/sealroot/wire/event"
)

// WriteDeadliner is a writer with write deadlines (an *os.File on a
// pollable fd, or a net.Conn).
type WriteDeadliner interface {
	io.Writer
	SetWriteDeadline(time.Time) error
}

// Reporter fans events out to the console and the host channel.
type Reporter struct {
	mu      sync.Mutex
	console io.Writer
	host    WriteDeadliner
	pending []event.Event
	start   time.Time
	broken  bool
	// noHost: no channel will come; events go to the console only.
	noHost bool
}

// New returns a Reporter writing human lines to console; start is PID 1's
// start time.
func New(console io.Writer, start time.Time) *Reporter {
	return &Reporter{console: console, start: start}
}

// Attach sets the host channel and flushes buffered events.
func (r *Reporter) Attach(host WriteDeadliner) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.host = host
	for _, e := range r.pending {
		r.sendLocked(e)
	}
	r.pending = nil
}

// ConsoleOnly says no host channel will be attached: buffered events are
// dropped (the console had them) and no more are buffered.
func (r *Reporter) ConsoleOnly() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.noHost = true
	r.pending = nil
}

// Attached reports whether a host channel is in use.
func (r *Reporter) Attached() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.host != nil && !r.broken
}

func (r *Reporter) sendLocked(e event.Event) {
	if r.host == nil {
		if r.noHost {
			return
		}
		if len(r.pending) < 256 {
			r.pending = append(r.pending, e)
		}
		return
	}
	if r.broken {
		return
	}
	r.host.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.host.Write(e.Marshal()); err != nil {
		r.broken = true
		fmt.Fprintf(r.console, "sealroot: host channel: %v (events continue on the console only)\n", err)
	}
}

func (r *Reporter) since() float64 { return ms(time.Since(r.start)) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Phase reports a finished phase.
func (r *Reporter) Phase(name string, d time.Duration, detail map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.console, "sealroot: %-8s ok  %7.1f ms\n", name, ms(d))
	r.sendLocked(event.Event{Kind: event.KindPhase, Phase: name, Millis: ms(d), SinceStartMillis: r.since(), Detail: detail})
}

// Log reports an informational line.
func (r *Reporter) Log(phase, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.console, "sealroot: %s: %s\n", phase, msg)
	r.sendLocked(event.Event{Kind: event.KindLog, Phase: phase, Message: msg, SinceStartMillis: r.since()})
}

// Fail reports that phase failed with err and the given status.
func (r *Reporter) Fail(phase string, status int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fmt.Fprintf(r.console, "sealroot: %s failed: %v\n", phase, err)
	r.sendLocked(event.Event{Kind: event.KindError, Phase: phase, Status: status, Message: err.Error(), SinceStartMillis: r.since()})
}

// Exit reports the final status: the last event, repeated on the console
// as the fallback channel.
func (r *Reporter) Exit(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sendLocked(event.Event{Kind: event.KindExit, Status: status, Millis: r.since()})
	fmt.Fprintln(r.console, event.ConsoleLine(status))
}
