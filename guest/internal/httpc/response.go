package httpc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/sealroot/sealroot/internal/textclip"
)

// Limits on what a response may hold.
const (
	// DefaultMaxHeader bounds the status line and header fields together
	// (and, separately, a chunked body's trailer fields).
	DefaultMaxHeader = 64 << 10
	// maxInformational bounds the 1xx responses skipped before the final
	// one.
	maxInformational = 5
)

// ErrBodyTooLarge is returned (wrapped) when a body exceeds the limit; the
// Response read so far comes back with it.
var ErrBodyTooLarge = errors.New("reply body exceeds the limit")

// ErrHeaderTooLarge is returned (wrapped) when the header exceeds the limit.
var ErrHeaderTooLarge = errors.New("reply header exceeds the limit")

// Header holds response header fields by lower-case name, values in the
// order they came.
type Header map[string][]string

// Get returns the first value of the field name (any case), or "".
func (h Header) Get(name string) string {
	if v := h[strings.ToLower(name)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns every value of the field name (any case).
func (h Header) Values(name string) []string { return h[strings.ToLower(name)] }

// Response is one HTTP/1.x response, its body read in full.
type Response struct {
	// Status is the three-digit status code.
	Status int
	// Proto is "HTTP/1.0" or "HTTP/1.1".
	Proto  string
	Header Header
	Body   []byte
	// Close reports whether the connection cannot carry another request:
	// the server said so, the body ran until the connection closed, or the
	// framing was one that should not be trusted for a next response.
	Close bool
}

// Cookies returns the valid name=value pairs of the Set-Cookie fields
// (attributes are dropped; the client sends back only name and value).
func (r *Response) Cookies() []Cookie {
	var cs []Cookie
	for _, v := range r.Header.Values("Set-Cookie") {
		if c, ok := parseSetCookie(v); ok {
			cs = append(cs, c)
		}
	}
	return cs
}

// ReadResponse reads one response from br. maxHeader bounds the status line
// plus header fields (DefaultMaxHeader when zero or less), maxBody the body.
// Informational (1xx) responses are skipped. When only the body fails, the
// Response is returned with the error (its Body holds what was read), so a
// caller still sees the status; ErrBodyTooLarge is one such error.
func ReadResponse(br *bufio.Reader, maxHeader int, maxBody int64) (*Response, error) {
	if maxHeader <= 0 {
		maxHeader = DefaultMaxHeader
	}
	var r *Response
	for i := 0; ; i++ {
		var err error
		if r, err = readHead(br, maxHeader); err != nil {
			return nil, err
		}
		if r.Status >= 200 {
			break
		}
		if r.Status == 101 {
			return nil, errors.New("reply: 101 Switching Protocols was not asked for")
		}
		if i == maxInformational {
			return nil, fmt.Errorf("reply: more than %d informational (1xx) responses", maxInformational)
		}
	}
	f, n, err := bodyFraming(r)
	if err != nil {
		return nil, err
	}
	body, err := readBody(br, f, n, maxHeader, maxBody)
	r.Body = body
	if err != nil {
		r.Close = true
		return r, err
	}
	return r, nil
}

// readHead reads a status line and the header fields.
func readHead(br *bufio.Reader, maxHeader int) (*Response, error) {
	budget := maxHeader
	line, err := readLine(br, &budget)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("reading the status line: %w", err)
	}
	r, err := parseStatusLine(line)
	if err != nil {
		return nil, err
	}
	r.Header = Header{}
	if err := readFields(br, &budget, r.Header, "header"); err != nil {
		return nil, err
	}
	conn := strings.ToLower(strings.Join(r.Header.Values("Connection"), ","))
	switch r.Proto {
	case "HTTP/1.1":
		r.Close = hasToken(conn, "close")
	default:
		// An HTTP/1.0 connection is not kept alive unless the server
		// asks; this client does not ask, so it does not reuse one.
		r.Close = true
	}
	return r, nil
}

// parseStatusLine parses "HTTP/1.x SSS reason".
func parseStatusLine(line []byte) (*Response, error) {
	proto, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok {
		return nil, fmt.Errorf("malformed status line %q", clip(line))
	}
	p := string(proto)
	if p != "HTTP/1.1" && p != "HTTP/1.0" {
		return nil, fmt.Errorf("status line %q: protocol is not HTTP/1.0 or HTTP/1.1", clip(line))
	}
	code, reason, _ := bytes.Cut(rest, []byte(" "))
	if len(code) != 3 || !allDigits(code) || code[0] == '0' {
		return nil, fmt.Errorf("status line %q: status code is not three digits 100-999", clip(line))
	}
	for _, c := range reason {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return nil, fmt.Errorf("status line %q: control character in the reason phrase", clip(line))
		}
	}
	n, _ := strconv.Atoi(string(code))
	return &Response{Status: n, Proto: p}, nil
}

// readFields reads header (or trailer) fields up to the empty line into h.
func readFields(br *bufio.Reader, budget *int, h Header, what string) error {
	for {
		line, err := readLine(br, budget)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("reading the %s: %w", what, err)
		}
		if len(line) == 0 {
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return fmt.Errorf("%s line %q: continuation lines (obs-fold) are not accepted", what, clip(line))
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || !isToken(name) {
			return fmt.Errorf("malformed %s line %q", what, clip(line))
		}
		value = bytes.Trim(value, " \t")
		for _, c := range value {
			if c < 0x20 && c != '\t' || c == 0x7f {
				return fmt.Errorf("%s field %q: control character in its value", what, clip(name))
			}
		}
		k := strings.ToLower(string(name))
		h[k] = append(h[k], string(value))
	}
}

// readLine reads one line ending in LF (a CR before it is dropped) and
// charges it against budget.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > *budget {
			return nil, ErrHeaderTooLarge
		}
		line = append(line, frag...)
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	*budget -= len(line)
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// framing is how a body is delimited (RFC 9112 §6.3).
type framing int

const (
	frameNone framing = iota
	frameLength
	frameChunked
	frameClose
)

// bodyFraming decides the framing of r's body from its header. A
// malformed or unsupported framing is an error of the header.
func bodyFraming(r *Response) (framing, int64, error) {
	if r.Status == 204 || r.Status == 304 {
		return frameNone, 0, nil
	}
	te := r.Header.Values("Transfer-Encoding")
	cl := r.Header.Values("Content-Length")
	if len(te) > 0 && r.Proto == "HTTP/1.1" {
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return 0, 0, fmt.Errorf("transfer-encoding %q is not \"chunked\"", clipS(strings.Join(te, ", ")))
		}
		if len(cl) > 0 {
			// Both framings: chunked wins (RFC 9112 §6.3), and the
			// connection is not trusted for another response.
			r.Close = true
		}
		return frameChunked, 0, nil
	}
	if len(cl) > 0 {
		n, err := contentLength(cl)
		return frameLength, n, err
	}
	// Neither: the body runs until the server closes the connection.
	r.Close = true
	return frameClose, 0, nil
}

// readBody reads the body as framed.
func readBody(br *bufio.Reader, f framing, n int64, maxHeader int, maxBody int64) ([]byte, error) {
	switch f {
	case frameNone:
		return nil, nil
	case frameChunked:
		return readChunked(br, maxHeader, maxBody)
	case frameLength:
		if n > maxBody {
			return nil, fmt.Errorf("%w: content-length %d, limit %d", ErrBodyTooLarge, n, maxBody)
		}
		b := make([]byte, n)
		if k, err := io.ReadFull(br, b); err != nil {
			return b[:k], fmt.Errorf("reading the body (%d of %d bytes): %w", k, n, err)
		}
		return b, nil
	}
	b, err := io.ReadAll(io.LimitReader(br, maxBody+1))
	if err != nil {
		return b, fmt.Errorf("reading the body: %w", err)
	}
	if int64(len(b)) > maxBody {
		return b[:maxBody], fmt.Errorf("%w (%d bytes)", ErrBodyTooLarge, maxBody)
	}
	return b, nil
}

// contentLength parses the Content-Length values: all equal, decimal digits.
func contentLength(vs []string) (int64, error) {
	var v string
	for _, f := range vs {
		for _, p := range strings.Split(f, ",") {
			p = strings.Trim(p, " \t")
			if v != "" && p != v {
				return 0, fmt.Errorf("content-length values %q differ", clipS(strings.Join(vs, ", ")))
			}
			v = p
		}
	}
	if v == "" || len(v) > 18 || !allDigits([]byte(v)) {
		return 0, fmt.Errorf("content-length %q is not a decimal number", clipS(v))
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n, nil
}

// readChunked reads a chunked body and its trailer fields.
func readChunked(br *bufio.Reader, maxHeader int, maxBody int64) ([]byte, error) {
	var body []byte
	budget := maxHeader
	for {
		line, err := readLine(br, &budget)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return body, fmt.Errorf("reading a chunk size: %w", err)
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		size = bytes.TrimRight(size, " \t")
		if len(size) == 0 || len(size) > 15 || !isHex(size) {
			return body, fmt.Errorf("chunk size %q is not a hex number", clip(line))
		}
		n, _ := strconv.ParseInt(string(size), 16, 64)
		if n == 0 {
			break
		}
		if int64(len(body))+n > maxBody {
			return body, fmt.Errorf("%w (%d bytes)", ErrBodyTooLarge, maxBody)
		}
		start := len(body)
		body = append(body, make([]byte, n)...)
		if k, err := io.ReadFull(br, body[start:]); err != nil {
			return body[:start+k], fmt.Errorf("reading a chunk of %d bytes: %w", n, err)
		}
		var crlf [2]byte
		if _, err := io.ReadFull(br, crlf[:]); err != nil {
			return body, fmt.Errorf("reading a chunk's end: %w", err)
		}
		if crlf != [2]byte{'\r', '\n'} {
			return body, errors.New("a chunk does not end with CRLF")
		}
	}
	trailer := Header{}
	budget = maxHeader
	if err := readFields(br, &budget, trailer, "trailer"); err != nil {
		return body, err
	}
	return body, nil
}

// hasToken reports whether the comma-separated list holds tok.
func hasToken(list, tok string) bool {
	for _, p := range strings.Split(list, ",") {
		if strings.TrimSpace(p) == tok {
			return true
		}
	}
	return false
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(b) > 0
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isToken reports whether b is an RFC 9110 token.
func isToken(b []byte) bool {
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return len(b) > 0
}

// clip and clipS shorten untrusted text quoted in errors.
func clip(b []byte) string { return clipS(string(b)) }

func clipS(s string) string { return textclip.Clip(s, 64) }
