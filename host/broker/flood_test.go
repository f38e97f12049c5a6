package broker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/broker/store/storetest"
)

// flood sends n unauthenticated krun /auth requests from 16 clients and
// returns how many were answered 200 and 503.
func flood(t *testing.T, url string, n int) (ok, full int) {
	t.Helper()
	var okN, fullN, other atomic.Int64
	work := make(chan struct{})
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			for range work {
				resp, err := hc.Post(url+"/kbs/v0/auth", "application/json",
					strings.NewReader(`{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"flood\"}"}`))
				if err != nil {
					other.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					okN.Add(1)
				case http.StatusServiceUnavailable:
					fullN.Add(1)
				default:
					other.Add(1)
				}
			}
			hc.CloseIdleConnections()
		}()
	}
	for range n {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	if other.Load() != 0 {
		t.Fatalf("%d /auth requests failed otherwise", other.Load())
	}
	return int(okN.Load()), int(fullN.Load())
}

// responsive checks /healthz and a full krun handshake.
func responsive(t *testing.T, b *testBroker, m [48]byte, pass string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/healthz", nil)
	if code, _ := do(t, http.DefaultClient, req); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	c := newKrunClient(t, b.URL, 1)
	nonce, code := c.auth(t, "flood")
	if code != http.StatusOK {
		t.Fatalf("auth after the flood: %d", code)
	}
	if code, body := c.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("attest after the flood: %d %s", code, body)
	}
	if got, code := c.key(t, "flood"); code != http.StatusOK || got != pass {
		t.Fatalf("key after the flood: %d", code)
	}
}

// TestAuthFloodBbolt: 10,000 unauthenticated /auth calls write nothing to
// a bbolt broker's database (its size is unchanged and it holds no
// session), hold at most MaxPendingSessions in memory, are refused with
// 503 beyond that, and leave the broker answering; once the flood's
// sessions expire a guest attests again.
func TestAuthFloodBbolt(t *testing.T) {
	const calls, max = 10000, 1000
	path := filepath.Join(t.TempDir(), "broker.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := newTestBrokerOn(t, st, func(c *Config) { c.MaxPendingSessions = max })
	m := measurement(90)
	pass := b.registerSim(t, "flood", m)
	before, _ := os.Stat(path)

	ok, full := flood(t, b.URL, calls)
	if ok != max || full != calls-max {
		t.Fatalf("%d accepted, %d refused as full; want %d and %d", ok, full, max, calls-max)
	}
	if n := b.pending.count(); n != max {
		t.Fatalf("%d sessions held, want the cap %d", n, max)
	}
	after, _ := os.Stat(path)
	if after.Size() != before.Size() {
		t.Fatalf("broker.db grew from %d to %d bytes under the flood", before.Size(), after.Size())
	}
	// The store never saw a session: nothing to purge, even after expiry.
	b.clock.Advance(5*time.Minute + pendingGrace + time.Second)
	if n, err := b.PurgeExpired(context.Background()); err != nil || n != 0 {
		t.Fatalf("store held %d sessions after the flood (%v)", n, err)
	}
	if n := b.pending.count(); n != 0 {
		t.Fatalf("%d sessions still held after their expiry", n)
	}
	responsive(t, b, m, pass)
}

// TestAuthFloodPostgres: on PostgreSQL (sessions shared by replicas) the
// same flood leaves at most MaxPendingSessions rows per replica, all
// purged after expiry.
func TestAuthFloodPostgres(t *testing.T) {
	const calls, max = 10000, 1000
	st, err := store.OpenPostgres(context.Background(), storetest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := newTestBrokerOn(t, st, func(c *Config) { c.MaxPendingSessions = max })
	m := measurement(91)
	pass := b.registerSim(t, "flood", m)

	ok, full := flood(t, b.URL, calls)
	if ok != max || full != calls-max {
		t.Fatalf("%d accepted, %d refused as full; want %d and %d", ok, full, max, calls-max)
	}
	b.clock.Advance(5*time.Minute + pendingGrace + time.Second)
	n, err := b.PurgeExpired(context.Background())
	if err != nil || n != max {
		t.Fatalf("purged %d rows (%v), want the cap %d", n, err, max)
	}
	responsive(t, b, m, pass)
}

// TestRateLimitSparesAdmins: with a limit on, unauthenticated callers are
// limited and authenticated admin API calls are not; a wrong admin token
// counts as unauthenticated.
func TestRateLimitSparesAdmins(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.RateLimit, c.RateBurst = 1, 2 })
	for i := range 10 {
		if code, body := b.adminDo(t, http.MethodGet, "/admin/v1/workloads", ""); code != http.StatusOK {
			t.Fatalf("admin call %d: %d %s", i, code, body)
		}
	}
	var codes []int
	for range 4 {
		req, _ := http.NewRequest(http.MethodGet, b.URL+"/admin/v1/workloads", nil)
		req.Header.Set("Authorization", "Bearer not-the-admin-token-0123")
		code, _ := do(t, http.DefaultClient, req)
		codes = append(codes, code)
	}
	if codes[0] != http.StatusUnauthorized || codes[3] != http.StatusTooManyRequests {
		t.Fatalf("wrong-token codes %v, want 401 then 429", codes)
	}
}

// TestRateLimiterBoundsClients: the limiter tracks at most maxBuckets
// clients; a new client past that is refused until a sweep frees room.
func TestRateLimiterBoundsClients(t *testing.T) {
	clk := &clock{t: time.Now()}
	l := newRateLimiter(10, 10, clk.Now)
	for i := range maxBuckets {
		if !l.allow(fmt.Sprint("c", i)) {
			t.Fatalf("client %d refused below the bound", i)
		}
	}
	if l.allow("one-too-many") {
		t.Fatal("a client past the bound was tracked")
	}
	if !l.allow("c0") {
		t.Fatal("a tracked client was refused")
	}
	clk.Advance(2 * time.Second) // every bucket full again: the sweep empties the table
	if !l.allow("one-too-many") || len(l.buckets) != 1 {
		t.Fatalf("after the sweep: %d buckets", len(l.buckets))
	}
}
