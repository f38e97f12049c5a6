package harness

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Exchange is one request the guest sent through a Proxy.
type Exchange struct {
	Method, Path string
	Cookie       string
	Body         []byte
	Status       int
}

// Proxy sits between the guest and a broker on loopback: it forwards every
// request to Target (which a test may change, e.g. to a restarted broker),
// records the exchanges, and calls Before (when set) ahead of forwarding,
// so a test can act at a precise step of the protocol.
type Proxy struct {
	Addr   string
	mu     sync.Mutex
	target string
	log    []Exchange
	Before func(r *http.Request)
	srv    *httptest.Server
}

// StartProxy forwards to target (a host:port on loopback).
func StartProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p := &Proxy{target: target}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	p.Addr = strings.TrimPrefix(p.srv.URL, "http://")
	t.Cleanup(p.srv.Close)
	return p
}

// SetTarget points the proxy at another broker.
func (p *Proxy) SetTarget(addr string) {
	p.mu.Lock()
	p.target = addr
	p.mu.Unlock()
}

// Exchanges returns what went through so far.
func (p *Proxy) Exchanges() []Exchange {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Exchange(nil), p.log...)
}

// Count counts the exchanges for path with status (0: any).
func (p *Proxy) Count(path string, status int) int {
	n := 0
	for _, e := range p.Exchanges() {
		if e.Path == path && (status == 0 || e.Status == status) {
			n++
		}
	}
	return n
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if p.Before != nil {
		p.Before(r)
	}
	p.mu.Lock()
	target := p.target
	p.mu.Unlock()
	out, _ := http.NewRequest(r.Method, "http://"+target+r.URL.RequestURI(), bytes.NewReader(body))
	out.Header = r.Header.Clone()
	resp, err := noRedirect.Do(out)
	ex := Exchange{Method: r.Method, Path: r.URL.Path, Cookie: r.Header.Get("Cookie"), Body: body}
	if err != nil {
		ex.Status = http.StatusBadGateway
		p.record(ex)
		http.Error(w, "broker unreachable", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	ex.Status = resp.StatusCode
	p.record(ex)
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func (p *Proxy) record(e Exchange) {
	p.mu.Lock()
	p.log = append(p.log, e)
	p.mu.Unlock()
}
