package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mdlayher/vsock"

	"github.com/sealroot/sealroot/guest/internal/httpc"

	"github.com/sealroot/sealroot/internal/textclip"
)

// anyVsock is VMADDR_CID_ANY and VMADDR_PORT_ANY.
const anyVsock = 0xFFFFFFFF

// Target is a parsed attestation_url: where the broker is and how to reach
// it.
type Target struct {
	// Scheme is "http", "https" or "vsock".
	Scheme string
	// Base is the URL requests are made against: the attestation URL
	// itself for http(s), and http://CID:PORT for vsock (HTTP runs over
	// the vsock stream). It never ends with a slash.
	Base *url.URL
	// CID and Port are set for vsock.
	CID, Port uint32
}

// ParseTarget parses an attestation_url: http://host[:port][/prefix],
// https://host[:port][/prefix] or vsock://CID:PORT[/prefix]. A query or
// fragment is refused, as is user information (a broker URL carries no
// credentials).
func ParseTarget(raw string) (*Target, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return nil, errors.New("attestation_url is empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("attestation_url %q: %w", clip(raw), errors.Unwrap(err))
	}
	if u.User != nil {
		return nil, errors.New("attestation_url must not carry user information")
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("attestation_url %q: a query or fragment is not allowed", clip(raw))
	}
	if u.Opaque != "" || u.Host == "" {
		return nil, fmt.Errorf("attestation_url %q: no host", clip(raw))
	}
	t := &Target{Scheme: strings.ToLower(u.Scheme)}
	base := &url.URL{Path: strings.TrimRight(u.Path, "/")}
	switch t.Scheme {
	case "http", "https":
		if u.Hostname() == "" {
			return nil, fmt.Errorf("attestation_url %q: no host", clip(raw))
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
				return nil, fmt.Errorf("attestation_url %q: port %q is not 1-65535", clip(raw), clip(p))
			}
		}
		base.Scheme, base.Host = t.Scheme, u.Host
	case "vsock":
		cid, port, ok := strings.Cut(u.Host, ":")
		c, err1 := strconv.ParseUint(cid, 10, 32)
		p, err2 := strconv.ParseUint(port, 10, 32)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("attestation_url %q: want vsock://CID:PORT with decimal numbers", clip(raw))
		}
		if c == anyVsock || p == anyVsock {
			return nil, fmt.Errorf("attestation_url %q: CID or port %d means \"any\", not an address", clip(raw), anyVsock)
		}
		t.CID, t.Port = uint32(c), uint32(p)
		// The stream already reaches the broker; the HTTP host is only
		// what the Host header says.
		base.Scheme, base.Host = "http", u.Host
	default:
		return nil, fmt.Errorf("attestation_url %q: scheme %q is not http, https or vsock", clip(raw), clip(u.Scheme))
	}
	t.Base = base
	return t, nil
}

// String is the target for logs.
func (t *Target) String() string {
	if t.Scheme == "vsock" {
		return fmt.Sprintf("vsock://%d:%d%s", t.CID, t.Port, t.Base.Path)
	}
	return t.Base.String()
}

// VsockDialer opens a stream to a vsock address. vsock.DialContext in
// production; tests inject a net.Pipe or unix socket.
type VsockDialer func(ctx context.Context, cid, port uint32) (net.Conn, error)

func dialVsock(ctx context.Context, cid, port uint32) (net.Conn, error) {
	return vsock.DialContext(ctx, cid, port, nil)
}

// Transport carries the exchange's HTTP requests: the *httpc.Client that
// NewTransport builds, or a caller's own.
type Transport interface {
	Do(ctx context.Context, req *httpc.Request) (*httpc.Response, error)
	// Close drops the kept-alive connection.
	Close() error
}

// Timeouts of a connection to the broker.
const (
	dialTimeout      = 10 * time.Second
	handshakeTimeout = 10 * time.Second
	tcpKeepAlive     = 15 * time.Second
)

// NewTransport builds the HTTP transport for t: plain TCP for http, TLS 1.2
// or later for https (trusting the PEM certificates in caBundle when it is
// not empty, the system roots otherwise), and HTTP over a vsock stream for
// vsock (dial is nil for vsock.DialContext). It keeps one connection alive
// across the exchange's requests. Proxies are never used: the guest talks
// to its broker directly.
func NewTransport(t *Target, caBundle string, dial VsockDialer) (Transport, error) {
	return NewTransportDialers(t, caBundle, dial, nil)
}

// TCPDialer opens a TCP connection to addr (host:port).
type TCPDialer func(ctx context.Context, addr string) (net.Conn, error)

// NewTransportDialers is NewTransport with the TCP connections of http and
// https URLs opened by tcp (nil is a net.Dialer with the package's
// timeouts).
func NewTransportDialers(t *Target, caBundle string, dial VsockDialer, tcp TCPDialer) (Transport, error) {
	var d func(ctx context.Context) (net.Conn, error)
	if tcp == nil {
		nd := &net.Dialer{Timeout: dialTimeout, KeepAlive: tcpKeepAlive}
		tcp = func(ctx context.Context, addr string) (net.Conn, error) { return nd.DialContext(ctx, "tcp", addr) }
	}
	switch t.Scheme {
	case "http":
		addr := t.TCPAddr()
		d = func(ctx context.Context) (net.Conn, error) { return tcp(ctx, addr) }
	case "https":
		addr := t.TCPAddr()
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.Base.Hostname()}
		if strings.TrimSpace(caBundle) != "" {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM([]byte(caBundle)) {
				return nil, errors.New("ca_bundle holds no PEM certificate")
			}
			cfg.RootCAs = pool
		}
		d = func(ctx context.Context) (net.Conn, error) {
			c, err := tcp(ctx, addr)
			if err != nil {
				return nil, err
			}
			return tlsHandshake(ctx, c, cfg)
		}
	case "vsock":
		if dial == nil {
			dial = dialVsock
		}
		cid, port := t.CID, t.Port
		d = func(ctx context.Context) (net.Conn, error) {
			c, err := dial(ctx, cid, port)
			if err != nil {
				return nil, fmt.Errorf("dialing vsock %d:%d: %w", cid, port, err)
			}
			return c, nil
		}
	default:
		return nil, fmt.Errorf("no transport for scheme %q", t.Scheme)
	}
	return &httpc.Client{Dial: d, Host: t.Base.Host, MaxHeader: maxHeader, MaxBody: maxResponse}, nil
}

// maxHeader bounds a reply's header: the exchange's are a few hundred bytes.
const maxHeader = 64 << 10

// tlsHandshake runs the client handshake on c. A server that answers the
// ClientHello in plain HTTP (an https URL for an http broker) is named as
// such; the error still wraps the tls.RecordHeaderError.
func tlsHandshake(ctx context.Context, c net.Conn, cfg *tls.Config) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = c.Close()
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && string(rh.RecordHeader[:]) == "HTTP/" {
			return nil, fmt.Errorf("the broker answered the TLS handshake in plain HTTP (an https attestation_url for an http server?): %w", err)
		}
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// TCPAddr is the host:port an http or https target is dialed at (the
// port defaulting to 80 or 443), and "" for vsock.
func (t *Target) TCPAddr() string {
	def := map[string]string{"http": "80", "https": "443"}[t.Scheme]
	if def == "" {
		return ""
	}
	p := t.Base.Port()
	if p == "" {
		p = def
	}
	return net.JoinHostPort(t.Base.Hostname(), p)
}

// clip shortens untrusted or user text quoted in errors: the package's
// limit for textclip.Clip.
func clip(s string) string { return textclip.Clip(s, 80) }
