package tdx

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestPCSGetter: headers and body of a 200, the status of anything else,
// and a bound on the body.
func TestPCSGetter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/tcb":
			w.Header().Set("Tcb-Info-Issuer-Chain", "chain")
			w.Write([]byte(`{"tcbInfo":{}}`))
		case "/big":
			w.Write([]byte(strings.Repeat("x", maxPCSBody+1)))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	g := &pcsGetter{ctx: context.Background(), client: srv.Client()}
	h, body, err := g.Get(srv.URL + "/tcb")
	if err != nil || string(body) != `{"tcbInfo":{}}` || http.Header(h).Get("Tcb-Info-Issuer-Chain") != "chain" {
		t.Fatalf("200: %v %q %v", err, body, h)
	}
	if _, _, err := g.Get(srv.URL + "/missing"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("404: %v", err)
	}
	if _, _, err := g.Get(srv.URL + "/big"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized: %v", err)
	}
}

// TestNetworkGetterHonoursDeadline: a PCS that never answers holds a
// verification no longer than its context allows (go-tdx-guest's default
// getter waited two minutes per URL whatever the deadline).
func TestNetworkGetterHonoursDeadline(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, _, err := networkGetter(ctx).Get(srv.URL + "/tcb")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a PCS that never answered gave an answer")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the getter outlived its 300 ms deadline by 20 s")
	}
}
