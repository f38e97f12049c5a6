package main

import (
	"bytes"
	"context"
	"errors"
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
