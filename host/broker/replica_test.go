package broker

import (
	"context"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/broker/store/storetest"
	"github.com/sealroot/sealroot/wire/kbs"
)

// TestReplicasShareOnePostgres: two brokers on one database serve one
// guest: /auth on the first, /attest on the second, /key on the first, and
// a nonce spent on one replica is spent on the other.
func TestReplicasShareOnePostgres(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	open := func() store.Store {
		s, err := store.OpenPostgres(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := newTestBrokerOn(t, open()), newTestBrokerOn(t, open())
	m := measurement(40)
	pass := a.registerSim(t, "shared", m)

	for _, kind := range []string{"krun", "trustee"} {
		t.Run(kind, func(t *testing.T) {
			switch kind {
			case "krun":
				c := newKrunClient(t, a.URL, 0)
				nonce, _ := c.auth(t, "shared")
				c.base = b.URL
				if code, body := c.attest(t, nonce, m); code != http.StatusOK {
					t.Fatalf("attest on replica b: %d %s", code, body)
				}
				c.base = a.URL
				if got, code := c.key(t, "shared"); code != http.StatusOK || got != pass {
					t.Fatalf("key on replica a: %d", code)
				}
				// The spent nonce is spent everywhere.
				if code, _ := c.attest(t, nonce, m); code != http.StatusUnauthorized {
					t.Fatalf("nonce reuse across replicas: %d", code)
				}
			case "trustee":
				c := newTrusteeClient(t, a.URL, "ec")
				nonce, _ := c.auth(t)
				c.base = b.URL
				if code, body := c.attest(t, nonce, m); code != http.StatusOK {
					t.Fatalf("attest on replica b: %d %s", code, body)
				}
				c.base = a.URL
				if got, code, _ := c.resource(t, kbs.PassphrasePath("shared"), true); code != http.StatusOK || got != pass {
					t.Fatalf("resource with replica b's token on replica a: %d", code)
				}
			}
		})
	}
}

// TestNoErrorsNoGoroutineGrowth runs many full attestations concurrently
// and checks that none fails and that goroutines return to their level.
// `go test ./host/broker -run NoGoroutine -attestations=10000` runs the full count.
func TestNoErrorsNoGoroutineGrowth(t *testing.T) {
	n := *attestations
	if testing.Short() {
		n = 50
	}
	b := newTestBroker(t)
	m := measurement(41)
	pass := b.registerSim(t, "load", m)
	// Warm up: one full handshake creates the pools and keep-alive
	// connections that then persist.
	c := newKrunClient(t, b.URL, 0)
	nonce, _ := c.auth(t, "load")
	c.attest(t, nonce, m)
	c.key(t, "load")
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()

	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	work := make(chan int)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newKrunClient(t, b.URL, w)
			for range work {
				nonce, code := c.auth(t, "load")
				ok := code == http.StatusOK
				if ok {
					code, _ = c.attest(t, nonce, m)
					ok = code == http.StatusOK
				}
				if ok {
					got, code := c.key(t, "load")
					ok = code == http.StatusOK && got == pass
				}
				if !ok {
					mu.Lock()
					failures++
					mu.Unlock()
				}
			}
			c.hc.CloseIdleConnections()
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	if failures > 0 {
		t.Fatalf("%d of %d attestations failed", failures, n)
	}
	// Goroutines come back (allow the runtime a moment to reap).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if after := runtime.NumGoroutine(); after > before+2 {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines grew from %d to %d after %d attestations:\n%s", before, after, n, buf[:runtime.Stack(buf, true)])
	}
}
