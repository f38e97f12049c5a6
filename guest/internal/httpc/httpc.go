// Package httpc is the guest's HTTP/1.1 client: just what the attestation
// agent's exchange with its key broker needs, so that the init does not link
// net/http (about 1 MB of the init, with its HTTP/2, proxy, MIME and IDNA
// closure; docs/libkrunfw.md "Initrd size").
//
// A Client sends one request at a time over ONE kept-alive connection,
// which the exchange's requests (auth, attest, key) reuse. Requests carry a
// Content-Length body or none; responses may be framed by Content-Length,
// chunked transfer coding or the end of the connection. Before a request is
// written on an idle connection, the client checks without blocking whether
// the server has closed it, and dials once more if so: such a request never
// reached the server. A request that was written is never sent again; its
// failure is the caller's to classify. Redirects are not followed, proxies
// are not used, and cookies are only parsed (Response.Cookies) and sent as
// the caller asks: there is no cookie jar.
//
// Each request is bounded by its context: the deadline is set on the
// connection, and cancellation interrupts a blocked read or write. The
// response header is bounded (DefaultMaxHeader) and the body by
// Client.MaxBody.
package httpc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Dialer opens a connection ready to carry HTTP: for https, the TLS
// handshake is done.
type Dialer func(ctx context.Context) (net.Conn, error)

// Field is one request header field.
type Field struct {
	Name, Value string
}

// Request is one HTTP request.
type Request struct {
	// Method is the request method, e.g. "GET" or "POST".
	Method string
	// Target is the request-target in origin form: an escaped absolute
	// path, starting with "/".
	Target string
	// Header holds the fields to send besides Host, Content-Length and
	// Cookie.
	Header []Field
	// Cookie, when set, is sent in a Cookie field.
	Cookie *Cookie
	// Body is the request body; nil sends none (and no Content-Length
	// unless the method is POST or PUT).
	Body []byte
}

// Client is an HTTP/1.1 client over one kept-alive connection. It is safe
// for concurrent use; requests are sent one at a time.
type Client struct {
	// Dial opens a connection. Required.
	Dial Dialer
	// Host is the Host field of every request ("host[:port]").
	Host string
	// MaxHeader bounds a response header; zero is DefaultMaxHeader.
	MaxHeader int
	// MaxBody bounds a response body; zero is 1 MiB.
	MaxBody int64

	mu   sync.Mutex
	conn net.Conn
	br   *bufio.Reader
}

// Do sends req and reads the response. An error after the status line and
// header were read comes back with the Response (its body incomplete); a
// body over MaxBody is ErrBodyTooLarge. When ctx ends first, the error
// wraps ctx.Err().
func (c *Client) Do(ctx context.Context, req *Request) (*Response, error) {
	msg, err := c.encode(req)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.conn != nil && !c.idleAlive() {
		c.drop()
	}
	reused := c.conn != nil
	dl, _ := ctx.Deadline()
	if c.conn == nil {
		conn, err := c.Dial(ctx)
		if err != nil {
			if cerr := settle(ctx, dl); cerr != nil && !errors.Is(err, cerr) {
				return nil, fmt.Errorf("%w (%w)", err, cerr)
			}
			return nil, err
		}
		c.conn, c.br = conn, bufio.NewReader(conn)
	}
	conn := c.conn
	if err := conn.SetDeadline(dl); err != nil {
		c.drop()
		return nil, fmt.Errorf("setting the connection deadline: %w", err)
	}
	// Cancellation moves the deadline into the past, which ends a blocked
	// read or write.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	resp, err := c.exchange(msg, req.Method, reused)
	fired := !stop()
	if err != nil {
		c.drop()
		if cerr := settle(ctx, dl); cerr != nil && !errors.Is(err, cerr) {
			return resp, fmt.Errorf("%w (%w)", err, cerr)
		}
		return resp, err
	}
	if fired || resp.Close {
		c.drop()
	} else if err := conn.SetDeadline(time.Time{}); err != nil {
		c.drop()
	}
	return resp, nil
}

// settle returns ctx's error once an operation bounded by ctx's deadline dl
// has failed. When dl has passed, it waits for ctx's own timer, which may
// fire a moment after the connection's deadline: an error the deadline
// caused then always wraps context.DeadlineExceeded.
func settle(ctx context.Context, dl time.Time) error {
	if !dl.IsZero() && !time.Now().Before(dl) {
		<-ctx.Done()
	}
	return ctx.Err()
}

// exchange writes msg and reads the response.
func (c *Client) exchange(msg []byte, method string, reused bool) (*Response, error) {
	if _, err := c.conn.Write(msg); err != nil {
		return nil, fmt.Errorf("sending the %s request: %w", method, err)
	}
	maxBody := c.MaxBody
	if maxBody <= 0 {
		maxBody = 1 << 20
	}
	resp, err := ReadResponse(c.br, c.MaxHeader, maxBody)
	if err != nil && resp == nil && reused && c.br.Buffered() == 0 && isEOF(err) {
		return nil, fmt.Errorf("the server closed the kept-alive connection without replying to the %s request (it may have received it): %w", method, err)
	}
	if err != nil && resp == nil {
		return nil, fmt.Errorf("reading the reply: %w", err)
	}
	return resp, err
}

// idleProbe is how long idleAlive waits for a closed connection to show.
const idleProbe = time.Millisecond

// idleAlive checks, without blocking for more than idleProbe, that the idle connection is still
// open: a read that would block means it is. End of stream or an error means
// the server closed it; bytes nobody asked for mean it cannot be trusted.
func (c *Client) idleAlive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	// A deadline already past would fail the read before it is tried;
	// a short one lets it see an end of stream that has arrived.
	if err := c.conn.SetReadDeadline(time.Now().Add(idleProbe)); err != nil {
		return false
	}
	_, err := c.br.Peek(1)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return false
	}
	return c.conn.SetReadDeadline(time.Time{}) == nil
}

// Close closes the kept-alive connection, if any. The Client may be used
// again: the next request dials.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeLocked()
}

// drop discards the connection: its close error says nothing the caller
// needs.
func (c *Client) drop() { _ = c.closeLocked() }

func (c *Client) closeLocked() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn, c.br = nil, nil
	return err
}

// encode renders req, refusing what would not be one well-formed request.
func (c *Client) encode(req *Request) ([]byte, error) {
	if !isToken([]byte(req.Method)) {
		return nil, fmt.Errorf("request method %q is not a token", clipS(req.Method))
	}
	if len(req.Target) == 0 || req.Target[0] != '/' || !visible(req.Target) {
		return nil, fmt.Errorf("request target %q is not an escaped absolute path", clipS(req.Target))
	}
	if c.Host == "" || !visible(c.Host) {
		return nil, fmt.Errorf("host %q is empty or not printable", clipS(c.Host))
	}
	var b bytes.Buffer
	b.Grow(256 + len(req.Body))
	b.WriteString(req.Method + " " + req.Target + " HTTP/1.1\r\nHost: " + c.Host + "\r\n")
	for _, f := range req.Header {
		if !isToken([]byte(f.Name)) || !fieldValue(f.Value) {
			return nil, fmt.Errorf("request header field %q is malformed", clipS(f.Name))
		}
		b.WriteString(f.Name + ": " + f.Value + "\r\n")
	}
	if req.Cookie != nil {
		if !req.Cookie.Valid() {
			return nil, fmt.Errorf("cookie %q is malformed", clipS(req.Cookie.Name))
		}
		b.WriteString("Cookie: " + req.Cookie.String() + "\r\n")
	}
	if req.Body != nil || req.Method == "POST" || req.Method == "PUT" {
		b.WriteString("Content-Length: " + strconv.Itoa(len(req.Body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(req.Body)
	return b.Bytes(), nil
}

// visible reports whether s is printable ASCII without spaces.
func visible(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// fieldValue accepts a field value without control characters but HTAB.
func fieldValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' && s[i] != '\t' || s[i] == 0x7f {
			return false
		}
	}
	return true
}

func isEOF(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}
