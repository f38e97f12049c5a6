package agent

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/vsock"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in, scheme, base string
		cid, port        uint32
		wantErr          string
	}{
		{in: "http://10.0.2.100:8000", scheme: "http", base: "http://10.0.2.100:8000"},
		{in: "http://10.0.2.100:8000/", scheme: "http", base: "http://10.0.2.100:8000"},
		{in: "https://kbs.example/prefix/", scheme: "https", base: "https://kbs.example/prefix"},
		{in: "HTTPS://kbs.example:8443", scheme: "https", base: "https://kbs.example:8443"},
		{in: " http://[fd00::1]:80 ", scheme: "http", base: "http://[fd00::1]:80"},
		{in: "vsock://2:1024", scheme: "vsock", base: "http://2:1024", cid: 2, port: 1024},
		{in: "vsock://3:8000/kbs", scheme: "vsock", base: "http://3:8000/kbs", cid: 3, port: 8000},
		{in: "", wantErr: "empty"},
		{in: "ftp://x", wantErr: "scheme"},
		{in: "http://", wantErr: "no host"},
		{in: "http:///path", wantErr: "no host"},
		{in: "http://user:pw@host", wantErr: "user information"},
		{in: "http://host?x=1", wantErr: "query"},
		{in: "http://host#frag", wantErr: "query or fragment"},
		{in: "http://host:0", wantErr: "port"},
		{in: "http://host:99999", wantErr: "port"},
		{in: "vsock://2", wantErr: "vsock://CID:PORT"},
		{in: "vsock://x:1", wantErr: "vsock://CID:PORT"},
		{in: "vsock://2:-1", wantErr: "attestation_url"},
		{in: "vsock://4294967295:1", wantErr: "any"},
		{in: "vsock://2:4294967295", wantErr: "any"},
		{in: "vsock://2:4294967296", wantErr: "vsock://CID:PORT"},
		{in: "http:opaque", wantErr: "no host"},
		{in: "http://bad host/", wantErr: "attestation_url"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseTarget(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTarget(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTarget(%q): %v", tt.in, err)
			}
			if got.Scheme != tt.scheme || got.Base.String() != tt.base || got.CID != tt.cid || got.Port != tt.port {
				t.Fatalf("ParseTarget(%q) = %s %s cid %d port %d; want %s %s cid %d port %d",
					tt.in, got.Scheme, got.Base, got.CID, got.Port, tt.scheme, tt.base, tt.cid, tt.port)
			}
		})
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"http://10.0.2.100:8000", "vsock://2:1024/x", "https://a/b/", "vsock://:", "http://[::1", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		if tg.Base == nil || tg.Base.Host == "" || strings.HasSuffix(tg.Base.Path, "/") {
			t.Fatalf("ParseTarget(%q) = %+v: bad base", s, tg)
		}
		if tg.Scheme == "vsock" && (tg.CID == anyVsock || tg.Port == anyVsock) {
			t.Fatalf("ParseTarget(%q) accepted a wildcard vsock address", s)
		}
		if _, err := NewTransport(tg, "", func(context.Context, uint32, uint32) (net.Conn, error) {
			return nil, errors.New("not dialing in a fuzz test")
		}); err != nil {
			t.Fatalf("NewTransport for accepted target %q: %v", s, err)
		}
	})
}

// TestVsockTransport runs a whole krun exchange over the vsock transport,
// with the vsock dialer replaced by one that reaches the broker on a unix
// socket. It checks the CID and port the agent dials.
func TestVsockTransport(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "broker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	st := newBoltStore(t)
	hs := &http.Server{Handler: brokerHandler(t, st, newKEK(t))}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	registerIn(t, hs.Handler, "wl-vsock", measurement)

	var mu sync.Mutex
	var dialed []string
	dial := func(ctx context.Context, cid, port uint32) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, formatAddr(cid, port))
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}
	for _, d := range dialects[:2] {
		t.Run(d.name, func(t *testing.T) {
			logs := &logBuffer{}
			o := testOptions(testConfig("wl-vsock", "vsock://2:1024", d.protocol, "20s"), simAttester(t, measurement), logs)
			o.VsockDial = dial
			got, err := FetchPassphrase(context.Background(), o)
			if err != nil {
				t.Fatalf("FetchPassphrase over vsock: %v\n%s", err, logs)
			}
			if string(got) != passphrase {
				t.Fatal("wrong passphrase")
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialed) == 0 {
		t.Fatal("the vsock dialer was never used")
	}
	for _, a := range dialed {
		if a != "2:1024" {
			t.Fatalf("dialed vsock %s, want 2:1024", a)
		}
	}
}

func formatAddr(cid, port uint32) string { return fmt.Sprintf("%d:%d", cid, port) }

// TestVsockDialFailureRetries: a vsock port nobody serves is a transport
// error, retried until the deadline.
func TestVsockDialFailureRetries(t *testing.T) {
	logs := &logBuffer{}
	o := testOptions(testConfig("wl-1", "vsock://2:1024", "", "200ms"), simAttester(t, measurement), logs)
	o.VsockDial = func(context.Context, uint32, uint32) (net.Conn, error) {
		return nil, errors.New("connection reset by peer")
	}
	_, err := FetchPassphrase(context.Background(), o)
	var ae *Error
	if !errors.As(err, &ae) || ae.Step != StepAuth || !ae.Retryable() || !strings.Contains(err.Error(), "dialing vsock 2:1024") {
		t.Fatalf("error = %v, want a retried auth failure naming the vsock address", err)
	}
}

// TestVsockLoopback uses a real AF_VSOCK loopback (CID 1) when the kernel
// has vsock_loopback; development machines usually do not, and it skips.
func TestVsockLoopback(t *testing.T) {
	ln, err := vsock.ListenContextID(vsock.Local, 0, nil)
	if err != nil {
		t.Skipf("no vsock loopback here: %v", err)
	}
	port := ln.Addr().(*vsock.Addr).Port
	hs := &http.Server{Handler: brokerHandler(t, newBoltStore(t), newKEK(t))}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	registerIn(t, hs.Handler, "wl-vsock", measurement)
	logs := &logBuffer{}
	o := testOptions(testConfig("wl-vsock", fmt.Sprintf("vsock://1:%d", port), "", "20s"), simAttester(t, measurement), logs)
	got, err := FetchPassphrase(context.Background(), o)
	if err != nil || string(got) != passphrase {
		t.Fatalf("FetchPassphrase over vsock loopback: %v\n%s", err, logs)
	}
}

func TestHTTPS(t *testing.T) {
	ts := httptest.NewUnstartedServer(brokerHandler(t, newBoltStore(t), newKEK(t)))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate case makes it complain
	ts.StartTLS()
	t.Cleanup(ts.Close)
	registerIn(t, ts.Config.Handler, "wl-tls", measurement)
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw}))

	t.Run("ca_bundle", func(t *testing.T) {
		for _, d := range dialects[:2] {
			logs := &logBuffer{}
			cfg := testConfig("wl-tls", ts.URL, d.protocol, "20s")
			cfg.CABundle = caPEM
			got, err := FetchPassphrase(context.Background(), testOptions(cfg, simAttester(t, measurement), logs))
			if err != nil || string(got) != passphrase {
				t.Fatalf("%s over https: %v\n%s", d.name, err, logs)
			}
		}
	})
	t.Run("untrusted certificate fails at once", func(t *testing.T) {
		logs := &logBuffer{}
		o := testOptions(testConfig("wl-tls", ts.URL, "", "20s"), simAttester(t, measurement), logs)
		slept := 0
		o.Sleep = func(context.Context, time.Duration) error { slept++; return nil }
		_, err := FetchPassphrase(context.Background(), o)
		var ae *Error
		if !errors.As(err, &ae) || ae.Step != StepAuth || ae.Retryable() || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("error = %v, want a final auth failure about the certificate", err)
		}
		if slept != 0 {
			t.Fatalf("retried %d times", slept)
		}
	})
	t.Run("bad ca_bundle", func(t *testing.T) {
		cfg := testConfig("wl-tls", ts.URL, "", "20s")
		cfg.CABundle = "not PEM"
		_, err := FetchPassphrase(context.Background(), testOptions(cfg, simAttester(t, measurement), &logBuffer{}))
		if err == nil || !strings.Contains(err.Error(), "ca_bundle holds no PEM certificate") {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("plain http server behind https", func(t *testing.T) {
		b := newTestBroker(t, nil)
		cfg := testConfig("wl-tls", "https://"+b.addr, "", "20s")
		_, err := FetchPassphrase(context.Background(), testOptions(cfg, simAttester(t, measurement), &logBuffer{}))
		var ae *Error
		t.Logf("error: %v", err)
		if !errors.As(err, &ae) || ae.Retryable() || !strings.Contains(err.Error(), "plain HTTP") {
			t.Fatalf("error = %v, want a final failure naming plain HTTP", err)
		}
	})
}

// TestTCPDial: an http or https exchange opens its TCP connections through
// Options.TCPDial (the init hands its pre-dialed connection over that
// way), at the URL's host:port, and TLS runs on top of what it returns.
func TestTCPDial(t *testing.T) {
	plain := httptest.NewServer(brokerHandler(t, newBoltStore(t), newKEK(t)))
	t.Cleanup(plain.Close)
	tlsSrv := httptest.NewUnstartedServer(brokerHandler(t, newBoltStore(t), newKEK(t)))
	tlsSrv.StartTLS()
	t.Cleanup(tlsSrv.Close)
	for _, tc := range []struct {
		name string
		srv  *httptest.Server
		ca   string
	}{
		{"http", plain, ""},
		{"https", tlsSrv, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			registerIn(t, tc.srv.Config.Handler, "wl-dial", measurement)
			cfg := testConfig("wl-dial", tc.srv.URL, "", "20s")
			cfg.CABundle = tc.ca
			o := testOptions(cfg, simAttester(t, measurement), &logBuffer{})
			var mu sync.Mutex
			var addrs []string
			o.TCPDial = func(ctx context.Context, addr string) (net.Conn, error) {
				mu.Lock()
				addrs = append(addrs, addr)
				mu.Unlock()
				var d net.Dialer
				return d.DialContext(ctx, "tcp", addr)
			}
			got, err := FetchPassphrase(context.Background(), o)
			if err != nil || string(got) != passphrase {
				t.Fatalf("exchange: %v", err)
			}
			want := strings.TrimPrefix(strings.TrimPrefix(tc.srv.URL, "http://"), "https://")
			if len(addrs) != 1 || addrs[0] != want {
				t.Fatalf("dialed %v, want %s once (one kept-alive connection)", addrs, want)
			}
		})
	}
}

func TestTargetTCPAddr(t *testing.T) {
	for in, want := range map[string]string{
		"http://10.0.2.100:8000/p": "10.0.2.100:8000", "http://10.0.2.100": "10.0.2.100:80",
		"https://kbs.example": "kbs.example:443", "https://[fd00::1]:8443": "[fd00::1]:8443", "vsock://2:8000": "",
	} {
		tg, err := ParseTarget(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.TCPAddr(); got != want {
			t.Errorf("TCPAddr(%s) = %q, want %q", in, got, want)
		}
	}
}
