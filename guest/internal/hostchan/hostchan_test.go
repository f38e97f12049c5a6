package hostchan

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/wire/event"
)

func TestBufferedThenFlushed(t *testing.T) {
	var console bytes.Buffer
	r := New(&console, time.Now())
	r.Phase("mounts", 3*time.Millisecond, nil)
	r.Log("modules", "loaded %d", 4)
	a, b := net.Pipe()
	got := make(chan []event.Event)
	go func() {
		var evs []event.Event
		s := bufio.NewScanner(b)
		for s.Scan() {
			e, err := event.Parse(s.Bytes())
			if err != nil {
				t.Error(err)
			}
			evs = append(evs, e)
			if e.Kind == event.KindExit {
				break
			}
		}
		got <- evs
	}()
	r.Attach(a)
	r.Fail("config", event.StatusBadConfig, errors.New("bad footer"))
	r.Exit(event.StatusBadConfig)
	evs := <-got
	kinds := []string{}
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	if strings.Join(kinds, ",") != "phase,log,error,exit" {
		t.Fatalf("kinds %v", kinds)
	}
	if evs[3].Status != event.StatusBadConfig || evs[2].Phase != "config" {
		t.Fatalf("events %+v", evs)
	}
	if st, ok := event.ParseConsoleLine(lastLine(console.String())); !ok || st != event.StatusBadConfig {
		t.Fatalf("console %q", console.String())
	}
}

func TestStuckHostDoesNotHang(t *testing.T) {
	var console bytes.Buffer
	r := New(&console, time.Now())
	a, _ := net.Pipe() // nobody reads: writes hit the deadline
	r.Attach(a)
	done := make(chan struct{})
	go func() { r.Exit(0); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Exit hung on a stuck host")
	}
	if r.Attached() || !strings.Contains(console.String(), "host channel") {
		t.Fatalf("console %q", console.String())
	}
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}
