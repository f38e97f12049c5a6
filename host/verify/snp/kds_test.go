package snp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-sev-guest/verify/trust"

	"github.com/sealroot/sealroot/attest"
)

var (
	_ trust.HTTPSGetter        = (*KDSGetter)(nil)
	_ trust.ContextHTTPSGetter = (*KDSGetter)(nil)
)

// scripted answers each request with the next of a list of behaviours.
func scripted(t *testing.T, steps ...func(w http.ResponseWriter, r *http.Request)) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(steps) {
			i = len(steps) - 1
		}
		steps[i](w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func status(code int, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
	}
}

func body(s string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(s)) }
}

// hangUp closes the connection without an answer: a transport error.
func hangUp(w http.ResponseWriter, r *http.Request) {
	c, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		c.Close()
	}
}

func fastGetter(srv *httptest.Server) *KDSGetter {
	return &KDSGetter{Client: srv.Client(), BaseURL: srv.URL, InitialBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
}

func TestKDSGetterRetries(t *testing.T) {
	tests := []struct {
		name     string
		steps    []func(http.ResponseWriter, *http.Request)
		attempts int
		wantBody string
		wantErr  string
		requests int32
	}{
		{"ok", []func(http.ResponseWriter, *http.Request){body("cert")}, 0, "cert", "", 1},
		{"5xx then ok", []func(http.ResponseWriter, *http.Request){status(503), status(500), body("cert")}, 0, "cert", "", 3},
		{"transport error then ok", []func(http.ResponseWriter, *http.Request){hangUp, body("cert")}, 0, "cert", "", 2},
		{"429 with Retry-After then ok", []func(http.ResponseWriter, *http.Request){status(429, "Retry-After", "0"), body("cert")}, 0, "cert", "", 2},
		{"404 is final", []func(http.ResponseWriter, *http.Request){status(404), body("cert")}, 0, "", "HTTP 404", 1},
		{"400 is final", []func(http.ResponseWriter, *http.Request){status(400), body("cert")}, 0, "", "HTTP 400", 1},
		{"attempts are bounded", []func(http.ResponseWriter, *http.Request){status(502)}, 3, "", "after 3 attempts", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, n := scripted(t, tt.steps...)
			g := fastGetter(srv)
			g.MaxAttempts = tt.attempts
			got, err := g.Get(DefaultKDSBaseURL + "/vcek/v1/Milan/cert_chain")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Get = %q, %v; want an error containing %q", got, err, tt.wantErr)
				}
			} else if err != nil || string(got) != tt.wantBody {
				t.Fatalf("Get = %q, %v", got, err)
			}
			if n.Load() != tt.requests {
				t.Fatalf("%d requests, want %d", n.Load(), tt.requests)
			}
		})
	}
}

// A Retry-After longer than the time left is not waited out: the getter
// gives up at once, which also shows it read the header.
func TestKDSGetterRetryAfterBeyondDeadline(t *testing.T) {
	srv, n := scripted(t, status(429, "Retry-After", "3600"), body("cert"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := fastGetter(srv).GetContext(ctx, srv.URL+"/x")
	if err == nil || !strings.Contains(err.Error(), "HTTP 429") || !strings.Contains(err.Error(), "1h0m0s would pass the deadline") {
		t.Fatalf("GetContext = %v", err)
	}
	if n.Load() != 1 {
		t.Fatalf("%d requests, want 1", n.Load())
	}
}

func TestKDSGetterContext(t *testing.T) {
	srv, _ := scripted(t, status(503))
	g := fastGetter(srv)
	g.InitialBackoff, g.MaxBackoff = time.Hour, time.Hour
	g.MaxAttempts = 100
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	_, err := g.GetContext(ctx, srv.URL+"/x")
	if err == nil || !(errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "pass the deadline")) {
		t.Fatalf("GetContext = %v", err)
	}
	// Without a context deadline, Timeout bounds the call.
	g.Timeout = 50 * time.Millisecond
	g.InitialBackoff, g.MaxBackoff = 10*time.Millisecond, 10*time.Millisecond
	_, err = g.Get(srv.URL + "/x")
	if err == nil || !(errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "pass the deadline")) {
		t.Fatalf("Get = %v", err)
	}
}

func TestKDSGetterLimitsBody(t *testing.T) {
	srv, n := scripted(t, body(strings.Repeat("x", 100)))
	g := fastGetter(srv)
	g.MaxBodySize = 10
	if _, err := g.Get(srv.URL + "/x"); err == nil || !strings.Contains(err.Error(), "larger than 10 bytes") || n.Load() != 1 {
		t.Fatalf("Get = %v after %d requests", err, n.Load())
	}
}

func TestKDSGetterBaseURL(t *testing.T) {
	var path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { path.Store(r.URL.RequestURI()) }))
	defer srv.Close()
	g := &KDSGetter{Client: srv.Client(), BaseURL: srv.URL + "/"}
	if _, err := g.Get(DefaultKDSBaseURL + "/vcek/v1/Genoa/abc?blSPL=1"); err != nil {
		t.Fatal(err)
	}
	if got := path.Load(); got != "/vcek/v1/Genoa/abc?blSPL=1" {
		t.Fatalf("request went to %q", got)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"soon", 0},
		{"0", time.Millisecond},
		{"7", 7 * time.Second},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), time.Millisecond},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.in, now); got != tt.want {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestVCEKURL(t *testing.T) {
	chip := make([]byte, 64)
	chip[0], chip[7], chip[8] = 0xab, 0xcd, 0xef
	milan := vcekURL("Milan", chip, attest.TCB{Bootloader: 3, TEE: 0, SNP: 8, Microcode: 115})
	if !strings.HasPrefix(milan, DefaultKDSBaseURL+"/vcek/v1/Milan/ab000000000000cdef") || !strings.HasSuffix(milan, "?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115") {
		t.Errorf("Milan URL %s", milan)
	}
	turin := vcekURL("Turin", chip, attest.TCB{FMC: 1, Bootloader: 2, TEE: 3, SNP: 4, Microcode: 5})
	if turin != DefaultKDSBaseURL+"/vcek/v1/Turin/ab000000000000cd?fmcSPL=1&blSPL=2&teeSPL=3&snpSPL=4&ucodeSPL=5" {
		t.Errorf("Turin URL %s", turin)
	}
}
