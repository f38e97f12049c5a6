package store

import (
	"os"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestMain shortens the lock timeout for every test of the package.
func TestMain(m *testing.M) {
	lockTimeout = 200 * time.Millisecond
	// Long enough for a test to see the cache off after its listener's
	// connection died.
	listenRetry = 3 * time.Second
	os.Exit(m.Run())
}

// CacheListening reports whether the workload cache is in use.
func (s *Postgres) CacheListening() bool {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	return s.cache.listening
}

// CachedIDs lists the cached workloads.
func (s *Postgres) CachedIDs() []string {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	var ids []string
	for id := range s.cache.m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// CacheGeneration is the count of changes the cache has heard of.
func (s *Postgres) CacheGeneration() uint64 {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	return s.cache.gen
}

// SetCacheAfterRead sets a hook run between a database read and the
// decision to cache its row.
func (s *Postgres) SetCacheAfterRead(f func()) { s.cache.afterRead = f }

// ListenerPID is the server process of the cache's listener.
func (s *Postgres) ListenerPID() uint32 { return s.listenPID.Load() }

// HoldListener freezes the cache's listener (as a silent network partition
// would) until the returned function is called.
func (s *Postgres) HoldListener() (release func()) {
	var mu sync.Mutex
	mu.Lock()
	s.cache.mu.Lock()
	s.cache.hold = func() { mu.Lock(); mu.Unlock() } //nolint:staticcheck // an empty critical section: waits for release
	s.cache.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.cache.mu.Lock()
			s.cache.hold = nil
			s.cache.mu.Unlock()
			mu.Unlock()
		})
	}
}

// CacheLive reports whether the workload cache is in use now: listening,
// and its last heartbeat back was sent less than a second ago.
func (s *Postgres) CacheLive() bool {
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	return s.cache.live()
}
