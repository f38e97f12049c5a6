package main

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/guest/internal/hostchan"
	"github.com/sealroot/sealroot/guest/internal/workload"
)

// TestRunPhaseReportsItsOwnCause: a phase that honours its context and
// returns the cause of its wait is reported with that cause, not with the
// bare "did not finish" of the enforced deadline.
func TestRunPhaseReportsItsOwnCause(t *testing.T) {
	// 3 s, as the shortest phase deadline: the phase has 300 ms to return
	// its cause, time enough on a loaded machine.
	for i := 0; i < 2; i++ {
		err := runPhase(&boot{}, phase{name: "network", deadline: 3 * time.Second, run: func(b *boot, ctx context.Context) error {
			<-ctx.Done()
			return fmt.Errorf("waiting for interface eth0: %w (is virtio_net loaded?)", ctx.Err())
		}})
		if err == nil || !strings.Contains(err.Error(), "is virtio_net loaded?") {
			t.Fatalf("run %d: %v, want the phase's own cause", i, err)
		}
	}
}

// TestMissingProgramConsole: a workload program that does not exist gives
// one "run failed" line and status 127, never followed by "run ok".
func TestMissingProgramConsole(t *testing.T) {
	spec, err := workload.Parse([]byte(`{"Cmd":["/no/such/program"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var console strings.Builder
	b := &boot{start: time.Now(), report: hostchan.New(&console, time.Now()), spec: spec, opts: parseCmdline("")}
	status := b.runAll([]phase{{"run", time.Minute, 209, (*boot).runWorkload}})
	b.report.Exit(status)
	out := console.String()
	if status != 127 {
		t.Fatalf("status %d, want 127; console:\n%s", status, out)
	}
	if n := strings.Count(out, "sealroot: run failed: workload program /no/such/program"); n != 1 {
		t.Fatalf("%d run failed lines, want 1; console:\n%s", n, out)
	}
	if regexp.MustCompile(`sealroot: run\s+ok`).MatchString(out) {
		t.Fatalf("the console says run failed and run ok:\n%s", out)
	}
	if !strings.HasSuffix(out, "sealroot: exit-status 127\n") {
		t.Fatalf("the last line is not the exit status:\n%s", out)
	}
}
