package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sealroot/sealroot/host/broker/store"
)

// faulty is a store whose workload reads stall, panic or fail as told.
type faulty struct {
	store.Store
	m atomic.Value // string
}

func (f *faulty) set(mode string) { f.m.Store(mode) }

func (f *faulty) GetWorkload(ctx context.Context, id string) (*store.Workload, error) {
	mode, _ := f.m.Load().(string)
	switch mode {
	case "stall":
		time.Sleep(3 * time.Second) // ignores its context, as a bbolt fsync would
	case "panic":
		panic("invalid page type")
	case "enospc":
		return nil, fmt.Errorf("write: %w", syscall.ENOSPC)
	}
	return f.Store.GetWorkload(ctx, id)
}

func TestGuard(t *testing.T) {
	base, err := store.OpenBolt(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	f := &faulty{Store: base}
	g := store.Guard(f, store.GuardOptions{Timeout: 200 * time.Millisecond})

	ctx, outage := store.WithFaultNote(context.Background())
	f.set("stall")
	start := time.Now()
	_, err = g.GetWorkload(ctx, "x")
	if !errors.Is(err, store.ErrUnavailable) || time.Since(start) > time.Second || !outage() {
		t.Fatalf("stalled call: %v after %v (outage noted: %v)", err, time.Since(start), outage())
	}

	ctx, outage = store.WithFaultNote(context.Background())
	f.set("enospc")
	if _, err = g.GetWorkload(ctx, "x"); !errors.Is(err, store.ErrUnavailable) || !outage() {
		t.Fatalf("ENOSPC: %v", err)
	}

	ctx, outage = store.WithFaultNote(context.Background())
	f.set("")
	if _, err = g.GetWorkload(ctx, "x"); !errors.Is(err, store.ErrNotFound) || outage() {
		t.Fatalf("not found: %v (outage %v)", err, outage())
	}
	if err := g.Ping(context.Background()); err != nil {
		t.Fatalf("ping of a healthy store: %v", err)
	}

	f.set("panic")
	if _, err = g.GetWorkload(context.Background(), "x"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("panic: %v", err)
	}
	if err := g.Ping(context.Background()); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("ping after a panic: %v", err)
	}
	f.set("")
	if _, err = g.GetWorkload(context.Background(), "x"); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("call after a panic: %v", err)
	}
}

func TestGuardBoundsCallsInFlight(t *testing.T) {
	base, err := store.OpenBolt(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	f := &faulty{Store: base}
	f.set("stall")
	g := store.Guard(f, store.GuardOptions{Timeout: 100 * time.Millisecond, MaxInFlight: 2})
	for range 2 {
		g.GetWorkload(context.Background(), "x")
	}
	// Both stalled calls still hold their slots: the next fails at once.
	start := time.Now()
	_, err = g.GetWorkload(context.Background(), "x")
	if !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "already waiting") || time.Since(start) > 50*time.Millisecond {
		t.Fatalf("third call: %v after %v", err, time.Since(start))
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err         error
		unavailable bool
	}{
		{&pgconn.PgError{Code: "57014"}, true},  // statement timeout
		{&pgconn.PgError{Code: "53100"}, true},  // disk full
		{&pgconn.PgError{Code: "08006"}, true},  // connection failure
		{&pgconn.PgError{Code: "23505"}, false}, // unique violation
		{&pgconn.PgError{Code: "22P02"}, false}, // bad input
		{syscall.EIO, true},
		{context.DeadlineExceeded, true},
		{errors.New("decoding"), false},
		{store.ErrNotFound, false},
	} {
		if got := errors.Is(store.Classify(tc.err), store.ErrUnavailable); got != tc.unavailable {
			t.Errorf("%v: unavailable %v, want %v", tc.err, got, tc.unavailable)
		}
	}
}

func TestStateKeeper(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		k := s.(store.StateKeeper)
		if _, err := k.LoadState(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("state of a new store: %v", err)
		}
		rec := &store.StateRecord{ID: "abc", CreatedAt: now, KEKCheck: []byte{1, 2}, TokenKeyCheck: []byte{3}}
		if err := k.SaveState(ctx, rec); err != nil {
			t.Fatal(err)
		}
		got, err := k.LoadState(ctx)
		if err != nil || got.ID != "abc" || string(got.KEKCheck) != "\x01\x02" {
			t.Fatalf("state %+v %v", got, err)
		}
		if err := s.CreateWorkload(ctx, workload("w1")); err != nil {
			t.Fatal(err)
		}
		w2 := workload("w2")
		w2.SealedPassphrase = nil
		if err := s.CreateWorkload(ctx, w2); err != nil {
			t.Fatal(err)
		}
		if err := s.PutResource(ctx, &store.Resource{WorkloadID: "w1", Path: "a/b/c", Sealed: []byte{9}, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		u, err := k.Usage(ctx)
		if err != nil || u != (store.Usage{Workloads: 2, Resources: 1, Sealed: 2}) {
			t.Fatalf("usage %+v %v", u, err)
		}
		if err := k.Wipe(ctx); err != nil {
			t.Fatal(err)
		}
		if u, _ := k.Usage(ctx); u != (store.Usage{}) {
			t.Fatalf("usage after wipe %+v", u)
		}
		if _, err := k.LoadState(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("state after wipe: %v", err)
		}
		// The MAC round-trips.
		w := workload("w3")
		w.PolicyMAC = []byte{7, 7}
		if err := s.CreateWorkload(ctx, w); err != nil {
			t.Fatal(err)
		}
		back, err := s.GetWorkload(ctx, "w3")
		if err != nil || string(back.PolicyMAC) != "\x07\x07" {
			t.Fatalf("policy mac %v %v", back, err)
		}
	})
}
