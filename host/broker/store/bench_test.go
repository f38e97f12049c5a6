package store_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/store"
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
