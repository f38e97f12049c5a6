package broker

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults of `sealroot broker --rate-limit` and --rate-burst: on by
// default, generous enough for the guests behind one launcher (they all
// reach the broker from the host's loopback address through its relay; a
// boot is three requests) and for buildah's registrations. A refused
// guest backs off and retries (429 with Retry-After).
const (
	DefaultRateLimit = 50
	DefaultRateBurst = 100
)

// maxBuckets bounds the clients tracked at once; past it, clients not yet
// tracked are refused until a sweep makes room (fail closed).
const maxBuckets = 1 << 16

// adminCaller reports whether r carries admin credentials to the admin
// API: authenticated administration is not rate limited.
func (s *Server) adminCaller(r *http.Request) bool {
	if !strings.HasPrefix(r.URL.Path, "/admin/") {
		return false
	}
	ok, _ := s.isAdmin(r)
	return ok
}

// rateLimiter is a token bucket per client address. Buckets idle long
// enough to be full again are dropped by sweep.
type rateLimiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(rate float64, burst int, now func() time.Time) *rateLimiter {
	if burst < 1 {
		burst = max(1, int(rate))
	}
	return &rateLimiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes one token from client's bucket.
func (l *rateLimiter) allow(client string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[client]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			if now.Sub(l.lastSweep) >= time.Second { // at most one O(n) sweep a second
				l.sweepLocked(now)
			}
			if len(l.buckets) >= maxBuckets {
				return false
			}
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[client] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// sweep forgets buckets that have refilled completely.
func (l *rateLimiter) sweep() {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(now)
}

// sweepLocked is sweep with mu held.
func (l *rateLimiter) sweepLocked(now time.Time) {
	l.lastSweep = now
	full := time.Duration(l.burst / l.rate * float64(time.Second))
	for k, b := range l.buckets {
		if now.Sub(b.last) >= full {
			delete(l.buckets, k)
		}
	}
}
