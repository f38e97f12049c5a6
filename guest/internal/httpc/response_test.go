package httpc

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func read(raw string, maxBody int64) (*Response, error) {
	return ReadResponse(bufio.NewReader(strings.NewReader(raw)), 0, maxBody)
}

func TestReadResponse(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		status int
		body   string
		close  bool
		rest   string // what must be left unread on the connection
	}{
		{name: "content-length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloNEXT", status: 200, body: "hello", rest: "NEXT"},
		{name: "no reason phrase", raw: "HTTP/1.1 204\r\n\r\n", status: 204},
		{name: "empty reason phrase", raw: "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", status: 200},
		{name: "bare LF lines", raw: "HTTP/1.1 200 OK\nContent-Length: 2\n\nok", status: 200, body: "ok"},
		{name: "chunked", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT", status: 200, body: "hello world", rest: "NEXT"},
		{name: "chunked upper-case hex and trailer", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\nX-Trailer: 1\r\n\r\n", status: 200, body: "0123456789"},
		{name: "chunked wins over content-length and closes", raw: "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n", status: 200, body: "ab", close: true},
		{name: "until close", raw: "HTTP/1.1 200 OK\r\n\r\nuntil the end", status: 200, body: "until the end", close: true},
		{name: "connection close", raw: "HTTP/1.1 401 Unauthorized\r\nConnection: keep-alive, Close\r\nContent-Length: 0\r\n\r\n", status: 401, close: true},
		{name: "HTTP/1.0 is not reused", raw: "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", status: 200, body: "x", close: true},
		{name: "HTTP/1.0 ignores transfer-encoding", raw: "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx", status: 200, body: "1\r\nx", close: true},
		{name: "1xx skipped", raw: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ny", status: 200, body: "y"},
		{name: "304 has no body", raw: "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\nNEXT", status: 304, rest: "NEXT"},
		{name: "repeated equal content-length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nab", status: 200, body: "ab"},
		{name: "redirect", raw: "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://elsewhere/\r\nContent-Length: 0\r\n\r\n", status: 307},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.raw))
			r, err := ReadResponse(br, 0, 1<<20)
			if err != nil {
				t.Fatalf("ReadResponse: %v", err)
			}
			if r.Status != tt.status || string(r.Body) != tt.body || r.Close != tt.close {
				t.Fatalf("got status %d body %q close %v; want %d %q %v", r.Status, r.Body, r.Close, tt.status, tt.body, tt.close)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != tt.rest {
				t.Fatalf("left %q unread, want %q", rest, tt.rest)
			}
		})
	}
}

func TestReadResponseHeader(t *testing.T) {
	r, err := read("HTTP/1.1 429 Too Many Requests\r\nretry-AFTER:  7 \r\nSet-Cookie: session_id=abc; Path=/; HttpOnly\r\n"+
		"Set-Cookie: bad name=x\r\nSet-Cookie: q=\"quoted\"\r\nSet-Cookie: noequals\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Header.Get("Retry-After"); got != "7" {
		t.Fatalf("Retry-After = %q", got)
	}
	if got := r.Header.Get("location"); got != "/x" {
		t.Fatalf("Location = %q", got)
	}
	want := []Cookie{{"session_id", "abc"}, {"q", "quoted"}}
	got := r.Cookies()
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("cookies = %+v, want %+v", got, want)
	}
}

func TestReadResponseMalformed(t *testing.T) {
	big := strings.Repeat("a", DefaultMaxHeader)
	tests := []struct {
		name, raw, want string
		withResp        bool // the status and header were read; only the body failed
	}{
		{name: "empty", raw: "", want: "unexpected EOF"},
		{name: "closed inside the status line", raw: "HTTP/1.1 200", want: "unexpected EOF"},
		{name: "no space", raw: "HTTP/1.1\r\n\r\n", want: "malformed status line"},
		{name: "HTTP/2", raw: "HTTP/2 200 OK\r\n\r\n", want: "not HTTP/1.0 or HTTP/1.1"},
		{name: "lower-case protocol", raw: "http/1.1 200 OK\r\n\r\n", want: "not HTTP/1.0"},
		{name: "TLS bytes", raw: "\x15\x03\x01\x00\x02\x02\x46", want: "unexpected EOF"},
		{name: "two-digit status", raw: "HTTP/1.1 20 OK\r\n\r\n", want: "three digits"},
		{name: "four-digit status", raw: "HTTP/1.1 2000 OK\r\n\r\n", want: "three digits"},
		{name: "status with sign", raw: "HTTP/1.1 +20 OK\r\n\r\n", want: "three digits"},
		{name: "status 099", raw: "HTTP/1.1 099 OK\r\n\r\n", want: "three digits"},
		{name: "control in reason", raw: "HTTP/1.1 200 O\x00K\r\n\r\n", want: "control character"},
		{name: "101", raw: "HTTP/1.1 101 Switching Protocols\r\n\r\n", want: "101"},
		{name: "endless 1xx", raw: strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 7), want: "informational"},
		{name: "header without colon", raw: "HTTP/1.1 200 OK\r\nfoo\r\n\r\n", want: "malformed header line"},
		{name: "space in field name", raw: "HTTP/1.1 200 OK\r\nContent Length: 1\r\n\r\n", want: "malformed header line"},
		{name: "empty field name", raw: "HTTP/1.1 200 OK\r\n: x\r\n\r\n", want: "malformed header line"},
		{name: "obs-fold", raw: "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", want: "continuation"},
		{name: "control in value", raw: "HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n", want: "control character"},
		{name: "header never ends", raw: "HTTP/1.1 200 OK\r\nX: a\r\n", want: "unexpected EOF"},
		{name: "oversized header line", raw: "HTTP/1.1 200 OK\r\nX: " + big + "\r\n\r\n", want: "header exceeds"},
		{name: "oversized header in many lines", raw: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X: "+strings.Repeat("b", 1000)+"\r\n", 70) + "\r\n", want: "header exceeds"},
		{name: "oversized status line", raw: "HTTP/1.1 200 " + big + "\r\n\r\n", want: "header exceeds"},
		{name: "content-length letters", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1e3\r\n\r\n", want: "not a decimal number"},
		{name: "content-length negative", raw: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", want: "not a decimal number"},
		{name: "content-length empty", raw: "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n", want: "not a decimal number"},
		{name: "content-length overflow", raw: "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n", want: "not a decimal number"},
		{name: "content-length differ", raw: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", want: "differ"},
		{name: "content-length over the limit", raw: "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", want: "exceeds the limit", withResp: true},
		{name: "body shorter than content-length", raw: "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", want: "3 of 10 bytes", withResp: true},
		{name: "until close over the limit", raw: "HTTP/1.1 200 OK\r\n\r\n0123456789A", want: "exceeds the limit", withResp: true},
		{name: "gzip transfer-encoding", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", want: "not \"chunked\""},
		{name: "two transfer-encodings", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", want: "not \"chunked\""},
		{name: "chunk size not hex", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", want: "not a hex number", withResp: true},
		{name: "chunk size negative", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", want: "not a hex number", withResp: true},
		{name: "chunk size empty", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", want: "not a hex number", withResp: true},
		{name: "chunk size overflow", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", want: "not a hex number", withResp: true},
		{name: "chunk over the limit", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n5\r\n67890\r\n0\r\n\r\n", want: "exceeds the limit", withResp: true},
		{name: "chunk without CRLF", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXX0\r\n\r\n", want: "CRLF", withResp: true},
		{name: "chunked closed early", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", want: "unexpected EOF", withResp: true},
		{name: "chunked without last chunk", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", want: "unexpected EOF", withResp: true},
		{name: "chunked trailer never ends", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\r\n", want: "unexpected EOF", withResp: true},
		{name: "malformed trailer", raw: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nnot a field\r\n\r\n", want: "malformed trailer", withResp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := read(tt.raw, 10)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadResponse = %+v, %v; want an error containing %q", r, err, tt.want)
			}
			if (r != nil) != tt.withResp {
				t.Fatalf("response %+v returned with the error, want one: %v", r, tt.withResp)
			}
			if r != nil && (!r.Close || int64(len(r.Body)) > 10) {
				t.Fatalf("failed response %+v is reusable or over the limit", r)
			}
		})
	}
	if _, err := read("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", 10); !errors.Is(err, ErrBodyTooLarge) {
		t.Fatalf("error %v is not ErrBodyTooLarge", err)
	}
	if _, err := read("HTTP/1.1 200 OK\r\nX: "+big+"\r\n\r\n", 10); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("error %v is not ErrHeaderTooLarge", err)
	}
}

// wellFormed are responses net/http and this package must read alike.
var wellFormed = []string{
	"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"nonce\":\"x\"}",
	"HTTP/1.1 200 OK\r\nSet-Cookie: kbs-session-id=0123456789abcdef; Path=/; Max-Age=300\r\nContent-Length: 2\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\nSet-Cookie: session_id=\"abc\"; HttpOnly\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n3;name=value\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
	"HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 75\r\n\r\n{\"type\":\"https://github.com/confidential-containers/kbs/errors/Unauth\",\"x\"}",
	"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2\r\nConnection: close\r\n\r\ndown for maintenance",
	"HTTP/1.0 200 OK\r\n\r\nold server",
	"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://198.51.100.7/kbs\r\nContent-Length: 0\r\n\r\n",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 599 Whatever\r\nX-Empty:\r\nContent-Length: 1\r\n\r\nz",
}

// TestDifferential reads well-formed responses with this package and with
// net/http's ReadResponse: status, body, header values, cookies and whether
// the connection can be reused must agree.
func TestDifferential(t *testing.T) {
	for _, raw := range wellFormed {
		ours, err := read(raw, 1<<20)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		theirs, err := stdRead(raw)
		if err != nil {
			t.Fatalf("%q: net/http: %v", raw, err)
		}
		compare(t, raw, ours, theirs)
	}
}

type stdResponse struct {
	resp *http.Response
	body []byte
}

func stdRead(raw string) (*stdResponse, error) {
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(raw)), &http.Request{Method: "GET"})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &stdResponse{resp, b}, nil
}

func compare(t *testing.T, raw string, ours *Response, theirs *stdResponse) {
	t.Helper()
	if theirs.resp.StatusCode < 200 {
		// net/http's ReadResponse returns an informational response
		// itself (its Transport skips them); compare what follows.
		rest := raw[strings.Index(raw, "\r\n\r\n")+4:]
		next, err := stdRead(rest)
		if err != nil {
			t.Fatalf("%q: net/http after the 1xx: %v", raw, err)
		}
		theirs = next
	}
	if ours.Status != theirs.resp.StatusCode || !bytes.Equal(ours.Body, theirs.body) {
		t.Fatalf("%q: ours %d %q, net/http %d %q", raw, ours.Status, ours.Body, theirs.resp.StatusCode, theirs.body)
	}
	if ours.Proto != theirs.resp.Proto {
		t.Fatalf("%q: proto %q, net/http %q", raw, ours.Proto, theirs.resp.Proto)
	}
	for _, k := range []string{"Retry-After", "Location", "Content-Type"} {
		if a, b := ours.Header.Get(k), theirs.resp.Header.Get(k); a != b {
			t.Fatalf("%q: %s %q, net/http %q", raw, k, a, b)
		}
	}
	var want []Cookie
	for _, c := range theirs.resp.Cookies() {
		want = append(want, Cookie{c.Name, c.Value})
	}
	got := ours.Cookies()
	if len(got) != len(want) {
		t.Fatalf("%q: cookies %+v, net/http %+v", raw, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%q: cookies %+v, net/http %+v", raw, got, want)
		}
	}
	// net/http keeps a connection unless the response says close or its
	// body runs to the end of the stream.
	if !ours.Close && theirs.resp.Close {
		t.Fatalf("%q: ours would reuse a connection net/http closes", raw)
	}
}

// FuzzReadResponse feeds arbitrary bytes to the parser: it must not panic,
// must keep its limits, and when both it and net/http accept a response,
// must read the same status and body.
func FuzzReadResponse(f *testing.F) {
	for _, s := range wellFormed {
		f.Add([]byte(s))
	}
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		const maxHeader, maxBody = 4096, 512
		br := bufio.NewReader(bytes.NewReader(raw))
		r, err := ReadResponse(br, maxHeader, maxBody)
		if r == nil {
			if err == nil {
				t.Fatal("no response and no error")
			}
			return
		}
		if int64(len(r.Body)) > maxBody {
			t.Fatalf("body of %d bytes over the limit %d", len(r.Body), maxBody)
		}
		if r.Status < 100 || r.Status > 999 {
			t.Fatalf("status %d", r.Status)
		}
		for _, c := range r.Cookies() {
			if !c.Valid() || strings.ContainsAny(c.String(), "\r\n;") {
				t.Fatalf("invalid cookie %+v returned", c)
			}
		}
		if err != nil || len(raw) > maxHeader {
			return
		}
		theirs, serr := stdRead(string(raw))
		if serr != nil || theirs.resp.StatusCode < 200 {
			return
		}
		if r.Status != theirs.resp.StatusCode || !bytes.Equal(r.Body, theirs.body) {
			t.Fatalf("ours %d %q, net/http %d %q", r.Status, r.Body, theirs.resp.StatusCode, theirs.body)
		}
	})
}
