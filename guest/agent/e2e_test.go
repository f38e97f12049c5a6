package agent

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/host/verify/snp"
)

// authority is the simulated secure processor every test signs reports
// with; TestMain creates it once (its RSA-4096 ARK and ASK are slow to
// make).
var authority *sim.Authority

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "agent-sim-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := sim.Init(dir); err != nil {
			fmt.Fprintln(os.Stderr, "sim init:", err)
			return 1
		}
		if authority, err = sim.Load(dir); err != nil {
			fmt.Fprintln(os.Stderr, "sim load:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// The launch measurements used below: the guest's and another one.
var (
	measurement      = [48]byte{1, 2, 3, 4, 5, 6, 7, 8}
	otherMeasurement = [48]byte{9, 9, 9}
)

// passphrase is what tests register; every error and log line is checked
// for it.
const passphrase = "6f1c0e9a5d3b47f2a8c4e1d0b9a7f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a9"

// testBroker is a real broker.Server on a loopback listener, restartable
// on the same address.
type testBroker struct {
	t    *testing.T
	addr string
	kek  *kek.KEK

	mu   sync.Mutex
	hs   *http.Server
	st   store.Store
	wrap func(http.Handler) http.Handler
}

// newTestBroker starts a broker on a fresh loopback port; wrap (may be nil)
// wraps its handler, to inject faults.
func newTestBroker(t *testing.T, wrap func(http.Handler) http.Handler) *testBroker {
	t.Helper()
	b := &testBroker{t: t, kek: newKEK(t), wrap: wrap}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	b.start(ln)
	t.Cleanup(b.stop)
	return b
}

// reserveAddr returns a loopback address nothing listens on (now).
func reserveAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func newKEK(t *testing.T) *kek.KEK {
	t.Helper()
	key := make([]byte, kek.Size)
	rand.Read(key)
	k, err := kek.New(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// brokerHandler builds a broker.Server over st that trusts the simulated
// root.
func brokerHandler(t *testing.T, st store.Store, k *kek.KEK) http.Handler {
	t.Helper()
	tok, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := broker.New(broker.Config{
		Store:          st,
		KEK:            k,
		Verifiers:      map[string]attest.Verifier{attest.TEESNP: sim.NewVerifier(authority, snp.Options{Offline: true})},
		TrustSimulated: true,
		AdminToken:     testAdminToken,
		TokenKey:       tok,
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// start serves a broker with a fresh, empty store on ln.
func (b *testBroker) start(ln net.Listener) {
	b.t.Helper()
	st, err := store.OpenBolt(filepath.Join(b.t.TempDir(), "broker.db"))
	if err != nil {
		b.t.Fatal(err)
	}
	h := brokerHandler(b.t, st, b.kek)
	if b.wrap != nil {
		h = b.wrap(h)
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln)
	b.mu.Lock()
	b.hs, b.st = hs, st
	b.mu.Unlock()
}

// listenAndStart starts the broker on its address (after a stop, or for a
// broker that was not running yet).
func (b *testBroker) listenAndStart() {
	b.t.Helper()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.t.Fatalf("listening again on %s: %v", b.addr, err)
	}
	b.start(ln)
}

func (b *testBroker) stop() {
	b.mu.Lock()
	hs, st := b.hs, b.st
	b.hs, b.st = nil, nil
	b.mu.Unlock()
	if hs != nil {
		hs.Close()
	}
	if st != nil {
		st.Close()
	}
}

// restart stops the broker and starts a new one on the same address with a
// new, empty store: every session is gone. Registrations must be made
// again.
func (b *testBroker) restart() {
	b.stop()
	b.listenAndStart()
}

func (b *testBroker) url() string { return "http://" + b.addr }

func newBoltStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testAdminToken opens the test broker's admin API.
const testAdminToken = "agent-test-admin-token-0123456789"

// registration is the admin API's body registering workload id for the
// simulated TEE with launch measurement m: the broker accepts simulated
// evidence only for a "sim" workload, never for an snp one such as
// buildah's registration creates.
func registration(id string, m [48]byte) []byte {
	pass := passphrase
	body, _ := json.Marshal(broker.AdminRegistration{
		WorkloadID: id, TEE: attest.TEESim, Passphrase: &pass,
		Policy: broker.WorkloadPolicy{Measurements: []string{hex.EncodeToString(m[:])}},
	})
	return body
}

// registerIn registers a workload by calling the broker's handler directly.
func registerIn(t *testing.T, h http.Handler, id string, m [48]byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/admin/v1/workloads", bytes.NewReader(registration(id, m)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	h.ServeHTTP(rec, req)
	if rec.Code/100 != 2 {
		t.Fatalf("register %s: HTTP %d: %s", id, rec.Code, rec.Body)
	}
}

// register creates a sim workload through the admin API, over HTTP.
func register(t *testing.T, baseURL, id string, m [48]byte) {
	t.Helper()
	// No keep-alive: the broker may be restarted between registrations.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, err := http.NewRequest(http.MethodPost, baseURL+"/admin/v1/workloads", bytes.NewReader(registration(id, m)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("register %s: HTTP %d: %s", id, resp.StatusCode, msg)
	}
}

// simAttester is the guest half of a simulated secure processor whose
// launch measurement is m, connected to its host half by a net.Pipe.
func simAttester(t *testing.T, m [48]byte) attest.Attester {
	t.Helper()
	guest, host := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&sim.Server{Authority: authority, Measurement: m}).Serve(ctx, host)
	}()
	t.Cleanup(func() {
		cancel()
		guest.Close()
		host.Close()
		<-done
	})
	return sim.NewAttester(guest)
}

// hookAttester runs before on each Attest call (with the call's number,
// from 1) and then delegates.
type hookAttester struct {
	attest.Attester
	calls  atomic.Int32
	before func(n int)
}

func (h *hookAttester) Attest(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	n := int(h.calls.Add(1))
	if h.before != nil {
		h.before(n)
	}
	return h.Attester.Attest(ctx, rd)
}

// logBuffer collects Logf lines.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) logf(format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, a...))
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// testConfig is a sim guest's disk config for workload id at url.
func testConfig(id, url, dialect, timeout string) *Config {
	d, err := time.ParseDuration(timeout)
	if err != nil {
		panic(err)
	}
	return &Config{TEE: attest.TEESim, TEEData: `{"gen":"milan"}`, WorkloadID: id,
		AttestationURL: url, KBSProtocol: dialect, AttestTimeout: d}
}

// testOptions has short timings so that failing cases end quickly.
func testOptions(cfg *Config, att attest.Attester, logs *logBuffer) Options {
	return Options{Config: cfg, Attester: att, Logf: logs.logf,
		AttemptTimeout: 5 * time.Second, BackoffInitial: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond}
}

// checkNoSecret fails when the passphrase shows up in err or the logs.
func checkNoSecret(t *testing.T, err error, logs *logBuffer) {
	t.Helper()
	if err != nil && strings.Contains(err.Error(), passphrase) {
		t.Errorf("error carries the passphrase: %v", err)
	}
	if strings.Contains(logs.String(), passphrase) {
		t.Errorf("logs carry the passphrase")
	}
}

// dialects are the configurations every end-to-end case runs in.
var dialects = []struct {
	name, protocol, key string
}{
	{"krun", "", ""},
	{"trustee-ec", "trustee", KeyEC},
	{"trustee-rsa", "trustee", KeyRSA},
}

func TestFetchPassphrase(t *testing.T) {
	b := newTestBroker(t, nil)
	register(t, b.url(), "wl-1", measurement)
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			logs := &logBuffer{}
			o := testOptions(testConfig("wl-1", b.url(), d.protocol, "20s"), simAttester(t, measurement), logs)
			o.TrusteeKey = d.key
			got, err := FetchPassphrase(context.Background(), o)
			checkNoSecret(t, err, logs)
			if err != nil {
				t.Fatalf("FetchPassphrase: %v\nlogs:\n%s", err, logs)
			}
			if string(got) != passphrase {
				t.Fatalf("passphrase differs from the registered one (%d bytes)", len(got))
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	b := newTestBroker(t, nil)
	register(t, b.url(), "wl-1", measurement)
	register(t, b.url(), "wl-other", otherMeasurement)
	cases := []struct {
		name     string
		workload string
		guest    [48]byte
	}{
		// The registered measurement is not the guest's.
		{"wrong measurement", "wl-other", measurement},
		// The guest names a workload the broker does not know.
		{"unknown workload", "wl-unknown", measurement},
	}
	for _, c := range cases {
		for _, d := range dialects {
			t.Run(c.name+"/"+d.name, func(t *testing.T) {
				logs := &logBuffer{}
				att := &hookAttester{Attester: simAttester(t, c.guest)}
				o := testOptions(testConfig(c.workload, b.url(), d.protocol, "20s"), att, logs)
				o.TrusteeKey = d.key
				_, err := FetchPassphrase(context.Background(), o)
				checkNoSecret(t, err, logs)
				var ae *Error
				if !errors.As(err, &ae) {
					t.Fatalf("error %v is not an *agent.Error", err)
				}
				if ae.Step != StepAttest || ae.HTTPStatus != http.StatusUnauthorized {
					t.Fatalf("error = %v, want step attest with HTTP 401", err)
				}
				t.Logf("error: %v", err)
				if !strings.Contains(err.Error(), "attest") || !strings.Contains(err.Error(), "401") {
					t.Fatalf("message %q does not name the step and status", err)
				}
				// A refusal is final: no handshake is repeated.
				if n := att.calls.Load(); n != 1 {
					t.Fatalf("attested %d times, want 1: a refused attestation must not be retried", n)
				}
			})
		}
	}
}

func TestBrokerNotRunning(t *testing.T) {
	addr := reserveAddr(t)
	for _, d := range dialects[:2] {
		t.Run(d.name, func(t *testing.T) {
			logs := &logBuffer{}
			o := testOptions(testConfig("wl-1", "http://"+addr, d.protocol, "300ms"), simAttester(t, measurement), logs)
			_, err := FetchPassphrase(context.Background(), o)
			var ae *Error
			if !errors.As(err, &ae) || ae.Step != StepAuth || ae.HTTPStatus != 0 {
				t.Fatalf("error = %v, want step auth without a status", err)
			}
			t.Logf("error: %v", err)
			if !ae.Retryable() || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error = %v, want a retryable failure ended by the deadline", err)
			}
			if !strings.Contains(err.Error(), "connection refused") {
				t.Fatalf("error = %v, want the transport cause", err)
			}
			if !strings.Contains(logs.String(), "retry 2 in") {
				t.Fatalf("no retries logged:\n%s", logs)
			}
		})
	}
}

func TestBrokerStartsDuringRetries(t *testing.T) {
	for _, d := range dialects[:2] {
		t.Run(d.name, func(t *testing.T) {
			b := &testBroker{t: t, addr: reserveAddr(t), kek: newKEK(t)}
			t.Cleanup(b.stop)
			logs := &logBuffer{}
			o := testOptions(testConfig("wl-1", b.url(), d.protocol, "20s"), simAttester(t, measurement), logs)
			// The broker comes up after the agent's third failed
			// attempt: the test's Sleep hook starts it.
			var failures atomic.Int32
			o.Sleep = func(ctx context.Context, dur time.Duration) error {
				if failures.Add(1) == 3 {
					b.listenAndStart()
					register(t, b.url(), "wl-1", measurement)
				}
				return sleep(ctx, dur)
			}
			got, err := FetchPassphrase(context.Background(), o)
			checkNoSecret(t, err, logs)
			if err != nil {
				t.Fatalf("FetchPassphrase: %v\nlogs:\n%s", err, logs)
			}
			if string(got) != passphrase {
				t.Fatal("wrong passphrase")
			}
			if n := failures.Load(); n != 3 {
				t.Fatalf("slept %d times, want 3", n)
			}
		})
	}
}

func TestSessionLostBetweenAuthAndAttest(t *testing.T) {
	for _, d := range dialects[:2] {
		t.Run(d.name, func(t *testing.T) {
			b := newTestBroker(t, nil)
			register(t, b.url(), "wl-1", measurement)
			// After /auth and before /attest, the broker restarts
			// with its sessions gone.
			att := &hookAttester{Attester: simAttester(t, measurement), before: func(n int) {
				if n == 1 {
					b.restart()
					register(t, b.url(), "wl-1", measurement)
				}
			}}
			logs := &logBuffer{}
			o := testOptions(testConfig("wl-1", b.url(), d.protocol, "20s"), att, logs)
			got, err := FetchPassphrase(context.Background(), o)
			checkNoSecret(t, err, logs)
			if err != nil {
				t.Fatalf("FetchPassphrase: %v\nlogs:\n%s", err, logs)
			}
			if string(got) != passphrase {
				t.Fatal("wrong passphrase")
			}
			t.Logf("logs:\n%s", logs)
			if n := att.calls.Load(); n != 2 {
				t.Fatalf("attested %d times, want 2 (one lost session, one new handshake)", n)
			}
			if !strings.Contains(logs.String(), "starting a new session") {
				t.Fatalf("the re-handshake was not logged:\n%s", logs)
			}
		})
	}
}

func TestSessionLostRepeatedlyIsBounded(t *testing.T) {
	b := newTestBroker(t, nil)
	register(t, b.url(), "wl-1", measurement)
	// Every attestation loses its session.
	att := &hookAttester{Attester: simAttester(t, measurement), before: func(int) {
		b.restart()
		register(t, b.url(), "wl-1", measurement)
	}}
	logs := &logBuffer{}
	_, err := FetchPassphrase(context.Background(), testOptions(testConfig("wl-1", b.url(), "trustee", "20s"), att, logs))
	var ae *Error
	if !errors.As(err, &ae) || ae.Step != StepAttest || ae.HTTPStatus != http.StatusUnauthorized {
		t.Fatalf("error = %v, want step attest with HTTP 401", err)
	}
	if n := att.calls.Load(); n != MaxRehandshakes+1 {
		t.Fatalf("attested %d times, want %d", n, MaxRehandshakes+1)
	}
}

// faults wraps a broker handler: fail(path, n) returns a status (0: pass)
// for the n-th request (from 1) to path.
func faults(fail func(path string, n int) int) func(http.Handler) http.Handler {
	var mu sync.Mutex
	counts := map[string]int{}
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.URL.Path
			if strings.HasPrefix(key, "/kbs/v0/key/") || strings.HasPrefix(key, "/kbs/v0/resource/") {
				key = "secret"
			}
			mu.Lock()
			counts[key]++
			n := counts[key]
			mu.Unlock()
			if code := fail(key, n); code != 0 {
				w.Header().Set("Retry-After", "0")
				http.Error(w, "injected fault", code)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}

func TestTransientFailures(t *testing.T) {
	cases := []struct {
		name string
		fail func(path string, n int) int
		// attestations is how many handshakes reach the Attester.
		attestations int32
	}{
		{"auth 503 twice", func(p string, n int) int {
			if p == "/kbs/v0/auth" && n <= 2 {
				return http.StatusServiceUnavailable
			}
			return 0
		}, 1},
		{"auth 429", func(p string, n int) int {
			if p == "/kbs/v0/auth" && n == 1 {
				return http.StatusTooManyRequests
			}
			return 0
		}, 1},
		{"attest 502 restarts the handshake", func(p string, n int) int {
			if p == "/kbs/v0/attest" && n == 1 {
				return http.StatusBadGateway
			}
			return 0
		}, 2},
		{"secret 500 keeps the session", func(p string, n int) int {
			if p == "secret" && n <= 2 {
				return http.StatusInternalServerError
			}
			return 0
		}, 1},
	}
	for _, c := range cases {
		for _, d := range dialects[:2] {
			t.Run(c.name+"/"+d.name, func(t *testing.T) {
				b := newTestBroker(t, faults(c.fail))
				register(t, b.url(), "wl-1", measurement)
				att := &hookAttester{Attester: simAttester(t, measurement)}
				logs := &logBuffer{}
				got, err := FetchPassphrase(context.Background(), testOptions(testConfig("wl-1", b.url(), d.protocol, "20s"), att, logs))
				if err != nil {
					t.Fatalf("FetchPassphrase: %v\nlogs:\n%s", err, logs)
				}
				if string(got) != passphrase {
					t.Fatal("wrong passphrase")
				}
				if n := att.calls.Load(); n != c.attestations {
					t.Fatalf("attested %d times, want %d", n, c.attestations)
				}
			})
		}
	}
}

func TestFinalFailuresStopAtOnce(t *testing.T) {
	cases := []struct {
		name   string
		fail   func(path string, n int) int
		step   string
		status int
	}{
		{"auth 400", func(p string, n int) int {
			if p == "/kbs/v0/auth" {
				return http.StatusBadRequest
			}
			return 0
		}, StepAuth, 400},
		{"secret 403", func(p string, n int) int {
			if p == "secret" {
				return http.StatusForbidden
			}
			return 0
		}, StepKey, 403},
		{"secret 404", func(p string, n int) int {
			if p == "secret" {
				return http.StatusNotFound
			}
			return 0
		}, StepKey, 404},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newTestBroker(t, faults(c.fail))
			register(t, b.url(), "wl-1", measurement)
			logs := &logBuffer{}
			o := testOptions(testConfig("wl-1", b.url(), "", "20s"), simAttester(t, measurement), logs)
			slept := 0
			o.Sleep = func(context.Context, time.Duration) error { slept++; return nil }
			_, err := FetchPassphrase(context.Background(), o)
			var ae *Error
			if !errors.As(err, &ae) || ae.Step != c.step || ae.HTTPStatus != c.status || ae.Retryable() {
				t.Fatalf("error = %v, want a final failure at step %s with HTTP %d", err, c.step, c.status)
			}
			if slept != 0 {
				t.Fatalf("backed off %d times before a final failure", slept)
			}
			if !strings.Contains(err.Error(), "injected fault") {
				t.Fatalf("error %q does not carry the broker's text", err)
			}
		})
	}
}

// TestBrokerAnomalies: replies no honest broker sends end the exchange with
// a final error naming the step.
func TestBrokerAnomalies(t *testing.T) {
	cases := []struct {
		name    string
		dialect string
		wrap    func(h http.Handler) http.Handler
		step    string
		wantErr string
	}{
		{"secret that does not decrypt (krun)", "", rewrite("secret", func(w http.ResponseWriter) {
			w.Write([]byte(`"00ff"`))
		}), StepDecrypt, "ciphertext is 2 bytes"},
		{"secret that does not decrypt (trustee)", "trustee", rewrite("secret", func(w http.ResponseWriter) {
			w.Write([]byte(`{"protected":"e30","encrypted_key":"","iv":"AAAAAAAAAAAAAAAA","ciphertext":"","tag":"AAAAAAAAAAAAAAAAAAAAAA"}`))
		}), StepDecrypt, "jwe"},
		{"redirect", "", rewrite("/kbs/v0/auth", func(w http.ResponseWriter) {
			w.Header().Set("Location", "http://198.51.100.7/kbs/v0/auth")
			w.WriteHeader(http.StatusTemporaryRedirect)
		}), StepAuth, "redirects to"},
		{"huge reply", "", rewrite("/kbs/v0/auth", func(w http.ResponseWriter) {
			w.Write(bytes.Repeat([]byte("x"), maxResponse+10))
		}), StepAuth, "exceeds"},
		{"no cookie (krun)", "", func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes())
			})
		}, StepAuth, "no session_id cookie"},
		{"no cookie (trustee)", "trustee", func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, r)
				w.WriteHeader(rec.Code)
				w.Write(rec.Body.Bytes())
			})
		}, StepAuth, "no kbs-session-id cookie"},
		{"challenge that is not JSON", "", rewrite("/kbs/v0/auth", func(w http.ResponseWriter) {
			w.Write([]byte("<html>captive portal</html>"))
		}), StepAuth, "not a JSON object"},
		{"hash the agent did not offer", "trustee", rewrite("/kbs/v0/auth", func(w http.ResponseWriter) {
			http.SetCookie(w, &http.Cookie{Name: "kbs-session-id", Value: "0123456789abcdef0123456789abcdef"})
			w.Write([]byte(`{"nonce":"` + vectorNonce + `","extra-params":{"selected-hash-algorithm":"sm3"}}`))
		}), StepAuth, `"sm3"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newTestBroker(t, c.wrap)
			register(t, b.url(), "wl-1", measurement)
			logs := &logBuffer{}
			o := testOptions(testConfig("wl-1", b.url(), c.dialect, "20s"), simAttester(t, measurement), logs)
			slept := 0
			o.Sleep = func(context.Context, time.Duration) error { slept++; return nil }
			_, err := FetchPassphrase(context.Background(), o)
			checkNoSecret(t, err, logs)
			var ae *Error
			if !errors.As(err, &ae) || ae.Step != c.step || ae.Retryable() || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("error = %v, want a final %s failure containing %q", err, c.step, c.wantErr)
			}
			if slept != 0 {
				t.Fatalf("retried %d times", slept)
			}
		})
	}
}

// rewrite answers requests to path ("secret" for key and resource
// requests) with reply instead of the broker.
func rewrite(path string, reply func(w http.ResponseWriter)) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := r.URL.Path
			if strings.HasPrefix(p, "/kbs/v0/key/") || strings.HasPrefix(p, "/kbs/v0/resource/") {
				p = "secret"
			}
			if p == path {
				reply(w)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
}
