package httpc

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingDial dials addr over TCP and counts the dials.
func countingDial(addr string, n *atomic.Int32) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		n.Add(1)
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func TestKeepAliveExchange(t *testing.T) {
	type seen struct{ method, uri, host, cookie, body, ctype string }
	var mu sync.Mutex
	var got []seen
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.RequestURI, r.Host, r.Header.Get("Cookie"), string(b), r.Header.Get("Content-Type")})
		mu.Unlock()
		switch r.URL.EscapedPath() {
		case "/auth":
			http.SetCookie(w, &http.Cookie{Name: "session_id", Value: "s1", Path: "/"})
			w.Write([]byte(`{"nonce":"n"}`))
		case "/key/a%20b":
			// A chunked reply: no Content-Length, flushed in parts.
			w.Write([]byte("part1"))
			w.(http.Flusher).Flush()
			w.Write([]byte("part2"))
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	defer ts.Close()
	var dials atomic.Int32
	c := &Client{Dial: countingDial(ts.Listener.Addr().String(), &dials), Host: "broker.test:8000", MaxBody: 1 << 10}
	defer c.Close()
	ctx := context.Background()
	r, err := c.Do(ctx, &Request{Method: "POST", Target: "/auth", Body: []byte(`{"x":1}`),
		Header: []Field{{"Content-Type", "application/json"}}})
	if err != nil || r.Status != 200 || string(r.Body) != `{"nonce":"n"}` {
		t.Fatalf("auth: %+v, %v", r, err)
	}
	cs := r.Cookies()
	if len(cs) != 1 || cs[0] != (Cookie{"session_id", "s1"}) {
		t.Fatalf("cookies %+v", cs)
	}
	if r, err = c.Do(ctx, &Request{Method: "POST", Target: "/attest", Cookie: &cs[0]}); err != nil || r.Status != 204 {
		t.Fatalf("attest: %+v, %v", r, err)
	}
	if r, err = c.Do(ctx, &Request{Method: "GET", Target: "/key/a%20b", Cookie: &cs[0]}); err != nil || string(r.Body) != "part1part2" {
		t.Fatalf("key: %+v, %v", r, err)
	}
	if n := dials.Load(); n != 1 {
		t.Fatalf("dialed %d times for three requests, want 1", n)
	}
	want := []seen{
		{"POST", "/auth", "broker.test:8000", "", `{"x":1}`, "application/json"},
		{"POST", "/attest", "broker.test:8000", "session_id=s1", "", ""},
		{"GET", "/key/a%20b", "broker.test:8000", "session_id=s1", "", ""},
	}
	mu.Lock()
	defer mu.Unlock()
	for i := range want {
		if i >= len(got) || got[i] != want[i] {
			t.Fatalf("server saw %+v, want %+v", got, want)
		}
	}
}

// rawServer runs handle for every connection to a TCP listener.
func rawServer(t *testing.T, handle func(n int, conn net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for n := 1; ; n++ {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(n int) {
				defer conn.Close()
				handle(n, conn, bufio.NewReader(conn))
			}(n)
		}
	}()
	return ln.Addr().String()
}

const okReply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

func TestRedialWhenIdleConnectionClosed(t *testing.T) {
	var requests atomic.Int32
	closed := make(chan struct{}, 1)
	addr := rawServer(t, func(_ int, conn net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		requests.Add(1)
		io.WriteString(conn, okReply)
		// One request per connection, then an idle close the
		// client only sees later: no Connection: close.
		conn.Close()
		closed <- struct{}{}
	})
	var dials atomic.Int32
	c := &Client{Dial: countingDial(addr, &dials), Host: "h"}
	defer c.Close()
	for i := range 3 {
		r, err := c.Do(context.Background(), &Request{Method: "POST", Target: "/attest", Body: []byte("{}")})
		if err != nil || string(r.Body) != "ok" {
			t.Fatalf("request %d: %+v, %v", i, r, err)
		}
		<-closed
	}
	if d, n := dials.Load(), requests.Load(); d != 3 || n != 3 {
		t.Fatalf("%d dials and %d requests received, want 3 and 3", d, n)
	}
}

func TestWrittenRequestIsNotResent(t *testing.T) {
	var requests atomic.Int32
	addr := rawServer(t, func(_ int, conn net.Conn, br *bufio.Reader) {
		for i := 0; ; i++ {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			requests.Add(1)
			if i == 1 {
				return // the second request reached the server, which died
			}
			io.WriteString(conn, okReply)
		}
	})
	var dials atomic.Int32
	c := &Client{Dial: countingDial(addr, &dials), Host: "h"}
	defer c.Close()
	if _, err := c.Do(context.Background(), &Request{Method: "POST", Target: "/auth", Body: []byte("{}")}); err != nil {
		t.Fatal(err)
	}
	r, err := c.Do(context.Background(), &Request{Method: "POST", Target: "/attest", Body: []byte("{}")})
	if err == nil || r != nil || !strings.Contains(err.Error(), "may have received it") {
		t.Fatalf("second request: %+v, %v; want an error saying the server may have it", r, err)
	}
	if d, n := dials.Load(), requests.Load(); d != 1 || n != 2 {
		t.Fatalf("%d dials and %d requests received, want 1 and 2 (nothing sent again)", d, n)
	}
	// The broken connection is gone: the next request dials.
	if _, err := c.Do(context.Background(), &Request{Method: "GET", Target: "/key"}); err != nil {
		t.Fatal(err)
	}
	if d := dials.Load(); d != 2 {
		t.Fatalf("%d dials, want 2", d)
	}
}

func TestConnectionCloseAndReadUntilClose(t *testing.T) {
	replies := []string{
		"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na",
		"HTTP/1.1 200 OK\r\n\r\nuntil close",
		"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nc",
	}
	addr := rawServer(t, func(n int, conn net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil || n > len(replies) {
			return
		}
		io.WriteString(conn, replies[n-1])
	})
	var dials atomic.Int32
	c := &Client{Dial: countingDial(addr, &dials), Host: "h"}
	defer c.Close()
	for i, want := range []string{"a", "until close", "c"} {
		r, err := c.Do(context.Background(), &Request{Method: "GET", Target: "/"})
		if err != nil || string(r.Body) != want || !r.Close {
			t.Fatalf("request %d: %+v, %v", i, r, err)
		}
	}
	if d := dials.Load(); d != 3 {
		t.Fatalf("%d dials, want 3 (no connection reused)", d)
	}
}

// silentServer reads requests and never answers.
func silentServer(t *testing.T) string {
	return rawServer(t, func(_ int, _ net.Conn, br *bufio.Reader) {
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
		}
	})
}

func TestDeadlineAndCancel(t *testing.T) {
	addr := silentServer(t)
	var dials atomic.Int32
	c := &Client{Dial: countingDial(addr, &dials), Host: "h"}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Do(ctx, &Request{Method: "GET", Target: "/"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the deadline took %s to end the request", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = c.Do(ctx, &Request{Method: "GET", Target: "/"})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v does not wrap context.Canceled", err)
	}
	if _, err := c.Do(ctx, &Request{Method: "GET", Target: "/"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("a request under an ended context: %v", err)
	}
}

func TestOversizedReplies(t *testing.T) {
	addr := rawServer(t, func(n int, conn net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		if n == 1 {
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nX: "+strings.Repeat("a", DefaultMaxHeader)+"\r\n\r\n")
			return
		}
		io.WriteString(conn, "HTTP/1.1 503 Busy\r\nContent-Length: 100\r\n\r\n")
	})
	var dials atomic.Int32
	c := &Client{Dial: countingDial(addr, &dials), Host: "h", MaxBody: 10}
	defer c.Close()
	if r, err := c.Do(context.Background(), &Request{Method: "GET", Target: "/"}); r != nil || !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("huge header: %+v, %v", r, err)
	}
	r, err := c.Do(context.Background(), &Request{Method: "GET", Target: "/"})
	if r == nil || r.Status != 503 || !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("huge body: %+v, %v", r, err)
	}
}

func TestMalformedRequestsAreRefused(t *testing.T) {
	c := &Client{Host: "h", Dial: func(context.Context) (net.Conn, error) {
		t.Fatal("dialed for a request that must be refused")
		return nil, nil
	}}
	for _, req := range []*Request{
		{Method: "GET", Target: "/a b"},
		{Method: "GET", Target: "relative"},
		{Method: "GET", Target: ""},
		{Method: "G ET", Target: "/"},
		{Method: "GET", Target: "/", Header: []Field{{"X", "a\r\nInjected: 1"}}},
		{Method: "GET", Target: "/", Header: []Field{{"X:", "a"}}},
		{Method: "GET", Target: "/", Cookie: &Cookie{"s", "a;b"}},
		{Method: "GET", Target: "/", Cookie: &Cookie{"s", "a\r\n"}},
	} {
		if _, err := c.Do(context.Background(), req); err == nil {
			t.Errorf("request %+v was accepted", req)
		}
	}
	bad := &Client{Host: "h\r\nX: y", Dial: c.Dial}
	if _, err := bad.Do(context.Background(), &Request{Method: "GET", Target: "/"}); err == nil {
		t.Error("a Host with CRLF was accepted")
	}
}

func TestCookieString(t *testing.T) {
	for _, tt := range []struct {
		c    Cookie
		want string
	}{
		{Cookie{"session_id", "0123abcd"}, "session_id=0123abcd"},
		{Cookie{"a", "b c"}, `a="b c"`},
		{Cookie{"a", "b,c"}, `a="b,c"`},
		{Cookie{"a", ""}, "a="},
	} {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.c, got, tt.want)
		}
	}
}
