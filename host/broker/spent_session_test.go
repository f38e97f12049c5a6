package broker

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/store"
)

// TestSpentSessionRestart: with sessions in memory (bbolt), /attest writes
// nothing: the spent session stays in memory, attested when it succeeds
// (so /key works) and consumed when it is refused (so a retry hears "nonce
// reused"). A restarted broker has forgotten both: the old cookies are
// refused as unknown (the nonces stay unusable), and a fresh handshake
// works.
func TestSpentSessionRestart(t *testing.T) {
	m := measurement(61)
	b := newTestBroker(t)
	pass := b.registerSim(t, "wl", m)
	ctx := context.Background()

	ok := newKrunClient(t, b.URL, 1)
	okNonce, _ := ok.auth(t, "wl")
	if code, body := ok.attest(t, okNonce, m); code != http.StatusOK {
		t.Fatalf("attest: %d %s", code, body)
	}
	bad := newKrunClient(t, b.URL, 2)
	badNonce, _ := bad.auth(t, "wl")
	if code, _ := bad.attest(t, badNonce, measurement(62)); code != http.StatusUnauthorized {
		t.Fatal("wrong measurement accepted")
	}
	for nonce, want := range map[string]store.SessionState{okNonce: store.SessionAttested, badNonce: store.SessionConsumed} {
		if _, err := b.st.GetSession(ctx, nonce, time.Now()); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("session of nonce %s… in the store: %v, want not found", nonce[:8], err)
		}
		if sess, held := b.pending.peek(nonce); !held || sess.State != want {
			t.Errorf("session of nonce %s… in memory: %v, want %q", nonce[:8], sess, want)
		}
	}
	if got, code := ok.key(t, "wl"); code != http.StatusOK || got != pass {
		t.Fatalf("key: %d", code)
	}
	if code, _ := ok.attest(t, okNonce, m); code != http.StatusUnauthorized {
		t.Fatal("a spent nonce was accepted again")
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "nonce_reused" {
		t.Fatalf("replay of an attested nonce: audit %v", rec)
	}

	// A restarted broker on the same store: nothing in memory.
	r := newTestBrokerOn(t, b.st)
	ok.base, bad.base = r.URL, r.URL // the cookie jar keys cookies by host, not port
	if _, code := ok.key(t, "wl"); code != http.StatusUnauthorized {
		t.Fatalf("key after restart on a forgotten session: %d, want 401", code)
	}
	if rec := r.audit.lastRefusal(t); rec["check"] != "session" {
		t.Fatalf("key on a forgotten session: audit %v", rec)
	}
	if code, _ := ok.attest(t, okNonce, m); code != http.StatusUnauthorized {
		t.Fatal("a spent nonce was accepted again after a restart")
	}
	if rec := r.audit.lastRefusal(t); rec["check"] != "session" {
		t.Fatalf("replay of an attested nonce after a restart: audit %v", rec)
	}
	if code, _ := bad.attest(t, badNonce, m); code != http.StatusUnauthorized {
		t.Fatal("the nonce of a refused attestation was accepted after a restart")
	}
	if rec := r.audit.lastRefusal(t); rec["check"] != "session" {
		t.Fatalf("retry of a refused nonce after a restart: audit %v", rec)
	}
	if _, code := bad.key(t, "wl"); code != http.StatusUnauthorized {
		t.Fatal("key released to a session whose attestation was refused")
	}
	// The guest runs the handshake again, as sealroot's agent does on 401.
	nonce, _ := ok.auth(t, "wl")
	if code, body := ok.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("fresh attest after restart: %d %s", code, body)
	}
	if got, code := ok.key(t, "wl"); code != http.StatusOK || got != pass {
		t.Fatalf("key after a fresh handshake: %d", code)
	}
}
