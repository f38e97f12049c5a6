package broker

import (
	"context"
	"fmt"
	"io"
	"net"
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

// flood sends n unauthenticated krun /auth requests from 16 connections,
// request i naming client address client(i) in X-Forwarded-For (the test
// broker trusts loopback as a proxy), and returns how many were answered
// 200 and 503.
func flood(t *testing.T, url string, n int, client func(i int) string) (ok, full int) {
	t.Helper()
	var okN, fullN, other atomic.Int64
	work := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 30 * time.Second}
			for i := range work {
				req, _ := http.NewRequest(http.MethodPost, url+"/kbs/v0/auth",
					strings.NewReader(`{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"flood\"}"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Forwarded-For", client(i))
				resp, err := hc.Do(req)
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
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if other.Load() != 0 {
		t.Fatalf("%d /auth requests failed otherwise", other.Load())
	}
	return int(okN.Load()), int(fullN.Load())
}

// proxied names every request's client in X-Forwarded-For.
type proxied struct {
	rt     http.RoundTripper
	client string
}

func (p proxied) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", p.client)
	return p.rt.RoundTrip(r)
}

// responsive checks /healthz and a full krun handshake from client.
func responsive(t *testing.T, b *testBroker, m [48]byte, pass, client string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/healthz", nil)
	if code, _ := do(t, http.DefaultClient, req); code != http.StatusOK {
		t.Fatalf("healthz: %d", code)
	}
	c := newKrunClient(t, b.URL, 1)
	c.hc.Transport = proxied{rt: http.DefaultTransport, client: client}
	nonce, code := c.auth(t, "flood")
	if code != http.StatusOK {
		t.Fatalf("auth of %s: %d", client, code)
	}
	if code, body := c.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("attest of %s: %d %s", client, code, body)
	}
	if got, code := c.key(t, "flood"); code != http.StatusOK || got != pass {
		t.Fatalf("key of %s: %d", client, code)
	}
}

func behindProxy(c *Config) {
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	c.TrustedProxies = []*net.IPNet{loopback}
}

// TestAuthFloodBbolt: 10,000 unauthenticated /auth calls from one client
// write nothing to a bbolt broker's database (its size is unchanged and
// it holds no session), hold at most MaxPendingPerClient sessions for that
// client, and leave another client free to attest at once. Spread over
// many addresses, a flood holds at most MaxPendingSessions in memory and
// is refused with 503 beyond; once its sessions expire, guests attest
// again.
func TestAuthFloodBbolt(t *testing.T) {
	const calls, limit, perClient = 10000, 1000, 100
	path := filepath.Join(t.TempDir(), "broker.db")
	st, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := newTestBrokerOn(t, st, behindProxy, func(c *Config) { c.MaxPendingSessions, c.MaxPendingPerClient = limit, perClient })
	m := measurement(90)
	pass := b.registerSim(t, "flood", m)
	before, _ := os.Stat(path)

	ok, full := flood(t, b.URL, calls, func(int) string { return "203.0.113.66" })
	if ok != perClient || full != calls-perClient {
		t.Fatalf("one client: %d accepted, %d refused as full; want %d and %d", ok, full, perClient, calls-perClient)
	}
	responsive(t, b, m, pass, "198.51.100.7") // at once, no waiting for expiry

	// Many addresses: the broker-wide cap holds.
	ok, _ = flood(t, b.URL, calls/2, func(i int) string { return fmt.Sprintf("203.0.113.%d", i%100) })
	if held := b.pending.count(); held != limit || ok != limit-perClient {
		t.Fatalf("many clients: %d more accepted, %d held; want %d and the cap %d", ok, held, limit-perClient, limit)
	}
	after, _ := os.Stat(path)
	if after.Size() != before.Size() {
		t.Fatalf("broker.db grew from %d to %d bytes under the flood", before.Size(), after.Size())
	}
	// The store holds no session (the one attested session is in memory):
	// purging after expiry finds nothing, and memory is empty after it.
	if n := b.pending.countSettled(); n != 1 {
		t.Fatalf("%d settled sessions in memory, want the one attested", n)
	}
	b.clock.Advance(5*time.Minute + pendingGrace + time.Second)
	if n, err := b.PurgeExpired(context.Background()); err != nil || n != 0 {
		t.Fatalf("store held %d expired sessions after the flood (%v), want 0", n, err)
	}
	if n, m := b.pending.count(), b.pending.countSettled(); n != 0 || m != 0 {
		t.Fatalf("%d pending and %d settled sessions still held after their expiry", n, m)
	}
	responsive(t, b, m, pass, "203.0.113.66")
}

// TestAuthFloodPostgres: on PostgreSQL (sessions shared by replicas) a
// flood of 10,000 /auth calls leaves at most MaxPendingSessions rows per
// replica, all purged after expiry.
func TestAuthFloodPostgres(t *testing.T) {
	const calls, limit = 10000, 1000
	st, err := store.OpenPostgres(context.Background(), storetest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := newTestBrokerOn(t, st, behindProxy, func(c *Config) { c.MaxPendingSessions = limit })
	m := measurement(91)
	pass := b.registerSim(t, "flood", m)

	ok, full := flood(t, b.URL, calls, func(i int) string { return fmt.Sprintf("203.0.113.%d", i%100) })
	if ok != limit || full != calls-limit {
		t.Fatalf("%d accepted, %d refused as full; want %d and %d", ok, full, limit, calls-limit)
	}
	b.clock.Advance(5*time.Minute + pendingGrace + time.Second)
	n, err := b.PurgeExpired(context.Background())
	if err != nil || n != limit {
		t.Fatalf("purged %d rows (%v), want the cap %d", n, err, limit)
	}
	responsive(t, b, m, pass, "198.51.100.7")
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
