// Command init is sealroot's guest PID 1.
//
// The boot is one list of phases (see phases below), each with a deadline
// and one exit status for its failure. Each phase logs one console line with
// its duration and sends a structured event to the host; any failure prints
// one line naming the phase and the cause (never a secret), reports a
// distinct status, and powers off. The init stays PID 1 after switch_root:
// it supervises the workload and reports its exit status to the host.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sealroot/sealroot/guest/internal/hostchan"
	"github.com/sealroot/sealroot/guest/internal/pid1"
)

// failure is a phase error with the status the host receives.
type failure struct {
	status int
	err    error
}

func (f *failure) Error() string { return f.err.Error() }

func fail(status int, err error) error { return &failure{status, err} }

// phase is one step of the boot.
type phase struct {
	name     string
	deadline time.Duration
	status   int // reported when run returns a plain error
	run      func(b *boot, ctx context.Context) error
}

func main() {
	start := time.Now()
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "sealroot init: must run as PID 1 (it mounts, switches root and powers off)")
		os.Exit(2)
	}
	b := &boot{start: start, report: hostchan.New(os.Stdout, start), opts: parseCmdline(""), keyAhead: startKeyAhead()}
	status := b.runAll(phases)
	b.settleLink()
	b.report.Exit(status)
	b.closeHost()
	pid1.Halt()
}

// runAll runs phases in order and returns the final status: the
// workload's, or the failing phase's.
func (b *boot) runAll(ps []phase) int {
	for _, p := range ps {
		t0 := time.Now()
		err := runPhase(b, p)
		if err != nil {
			status := p.status
			var f *failure
			if errors.As(err, &f) {
				status = f.status
			}
			status, err = b.integrityFailure(status, err)
			b.report.Fail(p.name, status, err)
			return status
		}
		b.report.Phase(p.name, time.Since(t0), b.detail)
		b.detail = nil
		if b.done {
			return b.exitStatus
		}
	}
	return b.exitStatus
}

// runPhase runs one phase under its deadline. The deadline is enforced
// here, not left to the phase: a phase that overruns (a hostile KDF cost, a
// stuck device) fails with its status while its goroutine is abandoned, as
// the machine powers off next. A panic in a phase becomes that phase's
// failure instead of killing PID 1 (which would panic the kernel and lose
// the status).
//
// The phase itself sees a deadline a little earlier than the enforced one,
// so that a phase that honours its context reports its own cause (which
// device it waited for, and why) rather than the bare overrun.
func runPhase(b *boot, p phase) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.deadline)
	defer cancel()
	inner, cancelInner := context.WithTimeout(ctx, p.deadline-min(p.deadline/10, 2*time.Second))
	defer cancelInner()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- fmt.Errorf("internal error: %v", r)
			}
		}()
		done <- p.run(b, inner)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("did not finish within %s", p.deadline)
	}
}

// cmdline options the init understands: sealroot.disk_timeout=DUR,
// sealroot.root=/dev/vdX, sealroot.grace=DUR.
type options struct {
	diskTimeout time.Duration
	root        string
	grace       time.Duration
	// requireBinding (sealroot.require_binding=1) refuses evidence whose
	// config binding is all zeros: a launcher that binds no config. The
	// command line is measured (SNP kernel hashes, TDX RTMR2, libkrun's
	// command-line page), so a host cannot take the option away.
	requireBinding bool
}

func readCmdline() string {
	b, _ := os.ReadFile("/proc/cmdline")
	return string(b)
}

func parseCmdline(s string) options {
	o := options{diskTimeout: 10 * time.Second, root: "/dev/vda", grace: 2 * time.Second}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		switch k {
		case "sealroot.disk_timeout":
			if d, err := time.ParseDuration(v); err == nil && d > 0 {
				o.diskTimeout = d
			}
		case "sealroot.root":
			if strings.HasPrefix(v, "/dev/") {
				o.root = v
			}
		case "sealroot.grace":
			if d, err := time.ParseDuration(v); err == nil && d >= 0 {
				o.grace = d
			}
		case "sealroot.require_binding":
			o.requireBinding = v == "1"
		}
	}
	return o
}
