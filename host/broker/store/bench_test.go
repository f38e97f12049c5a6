package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/broker/store/storetest"
)

// BenchmarkBoltWrites prints what a write costs on bbolt: a workload write
// (fsync'd, plus the sequence file's fsync that the rollback check needs)
// and a session write (batched), raw and through the guard (deadline, own
// goroutine), run by 8 writers at once.
func BenchmarkBoltWrites(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		for _, kind := range []string{"workload", "session"} {
			b.Run(fmt.Sprintf("%s/guarded=%v", kind, guarded), func(b *testing.B) {
				raw, err := store.OpenBolt(filepath.Join(b.TempDir(), "broker.db"))
				if err != nil {
					b.Fatal(err)
				}
				var s store.Store = raw
				if guarded {
					s = store.Guard(raw, store.GuardOptions{})
				}
				defer s.Close()
				var n atomic.Int64
				now := time.Now()
				b.SetParallelism(8)
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						id := fmt.Sprintf("id-%d", n.Add(1))
						var err error
						if kind == "workload" {
							err = s.CreateWorkload(context.Background(), &store.Workload{ID: id, TEE: "snp", Policy: []byte(`{}`), CreatedAt: now, UpdatedAt: now})
						} else {
							err = s.CreateSession(context.Background(), &store.Session{ID: id, Nonce: id, State: store.SessionChallenged, CreatedAt: now, ExpiresAt: now.Add(time.Minute)})
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkPostgresReads prints what the broker's reads of a handshake
// cost on PostgreSQL, one after another on one goroutine: wall time and
// this process's CPU (user + system, so the socket work counts) per
// operation. "session+workload" is the two round trips GetSessionRead
// replaces. Skips without $SEALROOT_TEST_POSTGRES.
func BenchmarkPostgresReads(b *testing.B) {
	dsn := storetest.PostgresDSN(b)
	// s reads every workload from the database; cached through the
	// workload cache (pgcache.go).
	s, err := store.OpenPostgresWith(context.Background(), dsn, store.PostgresOptions{NoWorkloadCache: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	cached, err := store.OpenPostgres(context.Background(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer cached.Close()
	for deadline := time.Now().Add(10 * time.Second); !cached.CacheListening(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the workload cache does not listen")
		}
	}
	ctx := context.Background()
	now := time.Now()
	if err := s.CreateWorkload(ctx, &store.Workload{ID: "w", TEE: "snp", Policy: []byte(`{"measurements":["aa"]}`), CreatedAt: now, UpdatedAt: now}); err != nil {
		b.Fatal(err)
	}
	if err := s.CreateSession(ctx, &store.Session{ID: "s", Nonce: "n", State: store.SessionChallenged, WorkloadID: "w",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		op   func() error
	}{
		{"workload", func() error { _, err := s.GetWorkload(ctx, "w"); return err }},
		{"workload-cached", func() error { _, err := cached.GetWorkload(ctx, "w"); return err }},
		{"session+workload", func() error {
			if _, err := s.GetSession(ctx, "s", now); err != nil {
				return err
			}
			_, err := s.GetWorkload(ctx, "w")
			return err
		}},
		{"session-read", func() error { _, _, err := s.GetSessionRead(ctx, "s", "w", now); return err }},
	} {
		b.Run(c.name, func(b *testing.B) {
			cpu0 := processCPU()
			for b.Loop() {
				if err := c.op(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64((processCPU()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
