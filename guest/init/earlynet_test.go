package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestEarlyNetwork: the config phase starts the broker link's bring-up
// when the config attests over QEMU's user network, and only then; the
// network phase waits for that bring-up and reports its failure.
func TestEarlyNetwork(t *testing.T) {
	plain := bytes.Repeat([]byte{0x5a}, 1<<20)
	for _, tc := range []struct {
		name      string
		tee       string
		url       string
		wantStart bool
	}{
		{name: "sim over the user network", tee: "sim", wantStart: true},
		{name: "snp over the user network", tee: "snp", wantStart: true},
		{name: "unattested", tee: "none"},
		{name: "vsock broker", tee: "sim", url: "vsock://2:8000"},
		{name: "broker off the user network", tee: "sim", url: "http://192.0.2.7:8000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := map[string]any{}
			if tc.url != "" {
				extra["attestation_url"] = tc.url
			}
			root := writeDisk(t, plain, configJSON(t, tc.tee, extra))
			var calls atomic.Int32
			release := make(chan struct{})
			m := machine{dataDisk: filepath.Join(t.TempDir(), "absent"), probeTEE: func() string { return "" },
				netUp: func(ctx context.Context) error {
					calls.Add(1)
					<-release
					return nil
				}}
			b := testBoot(root, m, &bytes.Buffer{})
			if err := b.readConfig(context.Background()); err != nil {
				t.Fatal(err)
			}
			if started := b.net != nil; started != tc.wantStart {
				t.Fatalf("bring-up started = %v, want %v", started, tc.wantStart)
			}
			close(release)
			if !tc.wantStart {
				return
			}
			b.encrypted = true
			if err := b.network(context.Background()); err != nil {
				t.Fatal(err)
			}
			if calls.Load() != 1 || b.detail["network"] != "eth0" {
				t.Fatalf("%d bring-ups, detail %v; want one, eth0", calls.Load(), b.detail)
			}
		})
	}
}

// TestNetworkPhaseWaits: the network phase returns only when the
// background bring-up ends, with its error; a plain payload never waits.
func TestNetworkPhaseWaits(t *testing.T) {
	root := writeDisk(t, bytes.Repeat([]byte{1}, 1<<20), configJSON(t, "sim", nil))
	boom := errors.New("no eth0 appeared")
	release := make(chan struct{})
	m := machine{dataDisk: filepath.Join(t.TempDir(), "absent"), probeTEE: func() string { return "" },
		netUp: func(ctx context.Context) error { <-release; return boom }}
	b := testBoot(root, m, &bytes.Buffer{})
	if err := b.readConfig(context.Background()); err != nil {
		t.Fatal(err)
	}

	// Still running: a phase deadline that ends first is the phase's error.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	b.encrypted = true
	if err := b.network(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the phase deadline", err)
	}
	close(release)
	err := b.network(context.Background())
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "bringing up eth0") {
		t.Fatalf("err = %v, want the bring-up's error", err)
	}

	b.encrypted = false
	if err := b.network(context.Background()); err != nil || b.detail["network"] != "off" {
		t.Fatalf("plain payload: err %v, detail %v", err, b.detail)
	}
}

// TestBringUpRefusesOutsidePID1: the real bring-up never touches the
// network of a machine it is not PID 1 of (a test's host).
func TestBringUpRefusesOutsidePID1(t *testing.T) {
	if err := bringUpBrokerLink(context.Background()); err == nil || !strings.Contains(err.Error(), "not PID 1") {
		t.Fatalf("err = %v", err)
	}
}

// preDialBoot is a boot whose config phase ran with a bring-up that
// succeeds and a broker dialer that hands out one end of a pipe per dial
// (the other ends arrive on peers).
func preDialBoot(t *testing.T) (*boot, chan net.Conn, *atomic.Int32) {
	t.Helper()
	root := writeDisk(t, bytes.Repeat([]byte{1}, 1<<20), configJSON(t, "sim", nil))
	peers := make(chan net.Conn, 4)
	var dials atomic.Int32
	m := machine{dataDisk: filepath.Join(t.TempDir(), "absent"), probeTEE: func() string { return "" },
		netUp: func(context.Context) error { return nil },
		netDial: func(_ context.Context, addr string) (net.Conn, error) {
			if addr != "10.0.2.100:8080" {
				return nil, fmt.Errorf("dialed %s", addr)
			}
			dials.Add(1)
			c, p := net.Pipe()
			peers <- p
			t.Cleanup(func() { c.Close(); p.Close() })
			return c, nil
		}}
	b := testBoot(root, m, &bytes.Buffer{})
	if err := b.readConfig(context.Background()); err != nil {
		t.Fatal(err)
	}
	b.encrypted = true
	if err := b.network(context.Background()); err != nil {
		t.Fatal(err)
	}
	return b, peers, &dials
}

// TestPreDial: the connection opened in the background is the agent's
// first, and only its first; one the broker closed or wrote on meanwhile
// is dropped for a fresh dial; an unused one is closed.
func TestPreDial(t *testing.T) {
	t.Run("handed over once", func(t *testing.T) {
		b, peers, dials := preDialBoot(t)
		if b.detail["broker_conn"] != "open" {
			t.Fatalf("network detail %v, want broker_conn open", b.detail)
		}
		first := <-peers
		c, err := b.net.dialBroker(context.Background(), "10.0.2.100:8080")
		if err != nil {
			t.Fatal(err)
		}
		// The connection handed over is the pre-dialed one, and usable.
		go func() { _, _ = c.Write([]byte("GET")) }()
		buf := make([]byte, 3)
		if _, err := io.ReadFull(first, buf); err != nil || string(buf) != "GET" {
			t.Fatalf("read %q, %v from the pre-dialed peer", buf, err)
		}
		if !b.net.usedPreDialed() || dials.Load() != 1 {
			t.Fatalf("used %v, %d dials; want the pre-dialed one alone", b.net.usedPreDialed(), dials.Load())
		}
		if _, err := b.net.dialBroker(context.Background(), "10.0.2.100:8080"); err != nil || dials.Load() != 2 {
			t.Fatalf("second dial: %v, %d dials; want a fresh one", err, dials.Load())
		}
	})
	t.Run("closed by the broker", func(t *testing.T) {
		b, peers, dials := preDialBoot(t)
		(<-peers).Close()
		if _, err := b.net.dialBroker(context.Background(), "10.0.2.100:8080"); err != nil {
			t.Fatal(err)
		}
		if b.net.usedPreDialed() || dials.Load() != 2 {
			t.Fatalf("used %v, %d dials; want a fresh dial", b.net.usedPreDialed(), dials.Load())
		}
	})
	t.Run("broker spoke first", func(t *testing.T) {
		b, peers, dials := preDialBoot(t)
		p := <-peers
		go func() { _, _ = p.Write([]byte("HTTP/1.1 200 OK\r\n")) }()
		time.Sleep(10 * time.Millisecond)
		if _, err := b.net.dialBroker(context.Background(), "10.0.2.100:8080"); err != nil {
			t.Fatal(err)
		}
		if b.net.usedPreDialed() || dials.Load() != 2 {
			t.Fatalf("used %v, %d dials; want a fresh dial", b.net.usedPreDialed(), dials.Load())
		}
	})
	t.Run("another address", func(t *testing.T) {
		b, _, _ := preDialBoot(t)
		if _, err := b.net.dialBroker(context.Background(), "10.0.2.101:8080"); err == nil || b.net.usedPreDialed() {
			t.Fatalf("err %v, used %v; want the address refused by the dialer and the connection kept", err, b.net.usedPreDialed())
		}
	})
	t.Run("released unused", func(t *testing.T) {
		b, peers, _ := preDialBoot(t)
		p := <-peers
		b.net.release()
		if _, err := p.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("peer read: %v, want EOF after release", err)
		}
		if b.net.takeConn("10.0.2.100:8080") != nil {
			t.Fatal("a released connection was handed over")
		}
	})
	t.Run("pre-dial failed", func(t *testing.T) {
		root := writeDisk(t, bytes.Repeat([]byte{1}, 1<<20), configJSON(t, "sim", nil))
		m := machine{dataDisk: filepath.Join(t.TempDir(), "absent"), probeTEE: func() string { return "" },
			netUp: func(context.Context) error { return nil }}
		b := testBoot(root, m, &bytes.Buffer{})
		if err := b.readConfig(context.Background()); err != nil {
			t.Fatal(err)
		}
		b.encrypted = true
		if err := b.network(context.Background()); err != nil {
			t.Fatalf("a failed pre-dial failed the phase: %v", err)
		}
		if !strings.Contains(b.detail["broker_conn"], "no broker dial") {
			t.Fatalf("detail %v, want the dial error", b.detail)
		}
	})
}
