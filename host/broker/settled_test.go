package broker

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/store"
)

// TestSettledSessionsBoundedAndExpire: in memory mode the sessions /attest
// settles stay in memory, at most MaxPendingSessions of them; past the cap
// they are written to the store as before, and every one of them releases
// its key. At their TTL all are refused as expired, and after the grace
// memory holds none of them.
func TestSettledSessionsBoundedAndExpire(t *testing.T) {
	const limit, handshakes = 3, 5
	m := measurement(63)
	b := newTestBroker(t, func(c *Config) { c.MaxPendingSessions, c.MaxPendingPerClient = limit, limit })
	pass := b.registerSim(t, "wl", m)
	ctx := context.Background()

	var clients []*krunClient
	var nonces []string
	for i := range handshakes {
		c := newKrunClient(t, b.URL, i)
		nonce, _ := c.auth(t, "wl")
		if code, body := c.attest(t, nonce, m); code != http.StatusOK {
			t.Fatalf("attest %d: %d %s", i, code, body)
		}
		clients, nonces = append(clients, c), append(nonces, nonce)
	}
	if n := b.pending.countSettled(); n != limit {
		t.Fatalf("%d settled sessions in memory, want the cap %d", n, limit)
	}
	for i, nonce := range nonces {
		_, held := b.pending.peek(nonce)
		sess, err := b.st.GetSession(ctx, nonce, b.clock.Now())
		switch {
		case i < limit && (!held || !errors.Is(err, store.ErrNotFound)):
			t.Errorf("session %d: held %v, store %v; want in memory only", i, held, err)
		case i >= limit && (held || err != nil || sess.State != store.SessionAttested):
			t.Errorf("session %d: held %v, store %v; want attested in the store", i, held, err)
		}
		if got, code := clients[i].key(t, "wl"); code != http.StatusOK || got != pass {
			t.Errorf("key %d: %d", i, code)
		}
		if code, _ := clients[i].attest(t, nonce, m); code != http.StatusUnauthorized {
			t.Errorf("replay %d accepted", i)
		}
		if rec := b.audit.lastRefusal(t); rec["check"] != "nonce_reused" {
			t.Errorf("replay %d: audit %v", i, rec)
		}
	}

	b.clock.Advance(5 * time.Minute)
	for i, c := range clients {
		if _, code := c.key(t, "wl"); code != http.StatusUnauthorized {
			t.Errorf("key %d at expiry: %d, want 401", i, code)
		}
		if rec := b.audit.lastRefusal(t); rec["check"] != "session_expired" {
			t.Errorf("key %d at expiry: audit %v", i, rec)
		}
	}
	b.clock.Advance(pendingGrace + time.Second)
	if n, err := b.PurgeExpired(ctx); err != nil || n != handshakes-limit {
		t.Fatalf("purge removed %d stored sessions (%v), want %d", n, err, handshakes-limit)
	}
	if n := b.pending.countSettled(); n != 0 {
		t.Fatalf("%d settled sessions still in memory after their grace", n)
	}
	if _, code := clients[0].key(t, "wl"); code != http.StatusUnauthorized {
		t.Fatalf("key on a forgotten session: %d", code)
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "session" {
		t.Fatalf("key on a forgotten session: audit %v", rec)
	}
}
