package broker

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/store"
)

// TestSpentSessionSurvivesRestart: with pending sessions in memory (bbolt),
// /attest writes the session once: as attested when it succeeds (so /key
// works on a restarted broker, and its nonce stays spent there), as
// consumed when it is refused (so a retry after a restart hears "nonce
// reused", not "unknown session").
func TestSpentSessionSurvivesRestart(t *testing.T) {
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
		sess, err := b.st.GetSession(ctx, nonce, time.Now())
		if err != nil {
			t.Fatalf("session of nonce %s…: %v", nonce[:8], err)
		}
		if sess.State != want {
			t.Errorf("session of nonce %s… is %q, want %q", nonce[:8], sess.State, want)
		}
	}

	// A restarted broker on the same store: nothing in memory.
	r := newTestBrokerOn(t, b.st)
	ok.base, bad.base = r.URL, r.URL // the cookie jar keys cookies by host, not port
	if got, code := ok.key(t, "wl"); code != http.StatusOK || got != pass {
		t.Fatalf("key after restart: %d", code)
	}
	if code, _ := ok.attest(t, okNonce, m); code != http.StatusUnauthorized {
		t.Fatal("a spent nonce was accepted again after a restart")
	}
	if rec := r.audit.lastRefusal(t); rec["check"] != "nonce_reused" {
		t.Fatalf("replay of an attested nonce: audit %v", rec)
	}
	if code, _ := bad.attest(t, badNonce, m); code != http.StatusUnauthorized {
		t.Fatal("the nonce of a refused attestation was accepted after a restart")
	}
	if rec := r.audit.lastRefusal(t); rec["check"] != "nonce_reused" || rec["workload"] != "wl" {
		t.Fatalf("retry of a refused nonce: audit %v", rec)
	}
	if _, code := bad.key(t, "wl"); code != http.StatusUnauthorized {
		t.Fatal("key released to a session whose attestation was refused")
	}
}
