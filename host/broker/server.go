// Package broker is sealroot's key broker: the HTTP service that hands a
// confidential workload its LUKS passphrase (and other secrets) once the
// workload has proved, with hardware-signed evidence, that it is the
// expected code in a genuine TEE.
//
// One server speaks both broker dialects on one port (docs/interop.md §3–4); the
// version in POST /kbs/v0/auth picks the dialect of the session it opens:
//
//   - krun ("0.0.0"): reference-kbs's protocol, spoken by libkrun's
//     historical init and by buildah's registration. Wire-identical for
//     well-behaved clients: session_id cookie, nonce = session id, empty 200
//     on /attest, a JSON string of hex on /key/{workload}.
//   - trustee ("0.4.0"): Confidential Containers' KBS protocol: a
//     kbs-session-id cookie, a signed JWT from /attest, JWE-wrapped resources
//     at /resource/{repo}/{type}/{tag}, RFC 7807 errors.
//
// Where reference-kbs is unsafe this broker is not (docs/design.md, "The broker"):
// a secret goes only to a session that attested as the workload owning it;
// registration cannot replace a workload without admin credentials; each
// nonce is random and spent by the first /attest on it, whatever its
// outcome; sessions expire; evidence must pass the workload's policy (its
// registered TEE, a listed measurement, no debug, VMPL 0, a minimum TCB,
// HOST_DATA when registered) and bind the session's nonce and the guest's key
// in report_data. Every key release and every refusal writes an audit
// record naming the workload and the check that failed; no secret is ever
// logged.
//
// Verification (is the evidence genuine?) is delegated to attest.Verifiers
// per TEE; judging it (is it what this workload expects?) is host/verify/policy
// fed from the workload's stored WorkloadPolicy. State lives behind
// store.Store (bbolt or PostgreSQL), secrets sealed by a kek.KEK.
package broker

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/wire/kbs"
)

// Registration modes of POST /kbs/v0/register_workload.
const (
	// RegistrationOpen lets anyone create a workload id that does not exist
	// yet (what buildah expects); replacing one needs admin credentials.
	RegistrationOpen = "open"
	// RegistrationToken requires the registration token (or the admin
	// token) as a bearer token or as the basic-auth password.
	RegistrationToken = "token"
	// RegistrationClosed accepts registrations from admins only.
	RegistrationClosed = "closed"
)

// Config holds a Server's dependencies and settings.
type Config struct {
	Store store.Store
	KEK   *kek.KEK
	// Verifiers verify evidence by its wire TEE: "snp", "tdx", "cca". A TEE
	// without a verifier is refused at /auth.
	Verifiers map[string]attest.Verifier
	// TrustSimulated accepts evidence that chains to the simulated root
	// (the snp verifier must then be one that knows that root).
	TrustSimulated bool
	// TokenKey signs Trustee attestation tokens (ES256).
	TokenKey *ecdsa.PrivateKey
	// AdminToken enables the admin API for bearer callers; empty disables
	// token access.
	AdminToken string
	// AdminClientCerts accepts callers presenting a client certificate the
	// TLS listener verified (mTLS admin access).
	AdminClientCerts bool
	// SeparateAdmin takes the admin API and the metrics off ServeHTTP:
	// AdminHandler serves them on a listener of their own (--admin-listen).
	SeparateAdmin bool
	// Registration is open, token or closed; RegistrationToken is the token
	// for the token mode.
	Registration      string
	RegistrationToken string
	// SessionTTL bounds a session from /auth (default 5 minutes).
	SessionTTL time.Duration
	// PendingSessions is where sessions live: PendingMemory (challenged
	// and settled sessions in memory; a handshake writes nothing) or
	// PendingShared (the store, for replicas without sticky routing); ""
	// picks shared on PostgreSQL, memory otherwise. MaxPendingSessions caps
	// the challenged ones (default DefaultMaxPendingSessions), and in memory
	// mode the settled ones too (past it they are written to the store);
	// MaxPendingPerClient caps the challenged ones of one client address
	// (default a tenth of the cap). See pending.go.
	PendingSessions     string
	MaxPendingSessions  int
	MaxPendingPerClient int
	// VerifyTimeout bounds one evidence verification (default 30 s; an SNP
	// verifier may fetch a VCEK from AMD).
	VerifyTimeout time.Duration
	// RateLimit is requests per second per client address (0: no limit);
	// RateBurst the bucket size.
	RateLimit float64
	RateBurst int
	// TrustedProxies are the CIDRs whose X-Forwarded-For is believed when
	// naming clients in audit records and rate limiting.
	TrustedProxies []*net.IPNet
	// Logger receives operational logs; Audit receives audit records.
	Logger *slog.Logger
	Audit  *slog.Logger
	// MinTCB, when set, is the broker-wide lowest acceptable TCB of snp
	// and sim workloads; a workload's own min_tcb can raise it, not lower
	// it (defaults.go).
	MinTCB *attest.TCB
	// Registry receives the broker's metrics; nil makes a private one.
	Registry *prometheus.Registry
	// Now is the clock (tests); nil is time.Now.
	Now func() time.Time
}

// Server is the broker's HTTP handler.
type Server struct {
	cfg     Config
	store   store.Store
	log     *slog.Logger
	audit   *auditor
	metrics *metrics
	limiter *rateLimiter
	pending *pendingSessions
	tokens  *tokenSigner
	mux     *http.ServeMux
	// adminMux serves the admin API when it has a listener of its own.
	adminMux *http.ServeMux
}

// New checks cfg and builds a Server.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.KEK == nil || cfg.TokenKey == nil {
		return nil, errors.New("broker: store, key-encryption key and token key are required")
	}
	switch cfg.Registration {
	case "":
		cfg.Registration = RegistrationOpen
	case RegistrationOpen, RegistrationClosed:
	case RegistrationToken:
		if cfg.RegistrationToken == "" && cfg.AdminToken == "" {
			return nil, errors.New("broker: --registration token needs a registration or admin token")
		}
	default:
		return nil, fmt.Errorf("broker: registration mode %q: want open, token or closed", cfg.Registration)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 5 * time.Minute
	}
	switch cfg.PendingSessions {
	case "":
		cfg.PendingSessions = defaultPending(cfg.Store)
	case PendingMemory, PendingShared:
	default:
		return nil, fmt.Errorf("broker: pending sessions %q: want memory or store", cfg.PendingSessions)
	}
	if cfg.VerifyTimeout <= 0 {
		cfg.VerifyTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Audit == nil {
		cfg.Audit = cfg.Logger
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		store:   instrumentStore(authenticatePolicies(cfg.Store, cfg.KEK), m),
		log:     cfg.Logger,
		audit:   &auditor{log: cfg.Audit},
		metrics: m,
		tokens:  newTokenSigner(cfg.TokenKey),
	}
	if cfg.RateLimit > 0 {
		s.limiter = newRateLimiter(cfg.RateLimit, cfg.RateBurst, cfg.Now)
	}
	s.pending = newPendingSessions(s.store, cfg.PendingSessions == PendingShared, cfg.MaxPendingSessions, cfg.MaxPendingPerClient)
	if err := cfg.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sealroot_broker_pending_sessions",
		Help: "Sessions challenged at /auth and awaiting /attest, held or counted by this broker."},
		func() float64 { return float64(s.pending.count()) })); err != nil {
		return nil, err
	}
	if err := cfg.Registry.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sealroot_broker_settled_sessions",
		Help: "Sessions past /attest (attested or consumed) held in memory by this broker (memory mode)."},
		func() float64 { return float64(s.pending.countSettled()) })); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	mux := http.NewServeMux()
	// With a listener of its own (listeners.go) the admin API, and the
	// metrics, are on adminMux only: the guest-facing mux has no route to
	// them, whatever the path's spelling.
	adminMux := mux
	if s.cfg.SeparateAdmin {
		adminMux = http.NewServeMux()
	}
	handle := func(pattern, route string, h http.HandlerFunc) {
		m := mux
		if strings.Contains(pattern, " /admin/") {
			m = adminMux
		}
		m.Handle(pattern, s.instrument(route, h))
	}
	handle("POST /kbs/v0/auth", "auth", s.handleAuth)
	handle("POST /kbs/v0/attest", "attest", s.handleAttest)
	handle("GET /kbs/v0/key/{id}", "key", s.handleKrunKey)
	handle("GET /kbs/v0/resource/{repo}/{type}/{tag}", "resource", s.handleResource)
	handle("POST /kbs/v0/register_workload", "register", s.handleRegister)
	handle("/kbs/v0/", "other", s.handleKBSNotFound)

	handle("GET /admin/v1/workloads", "admin", s.admin(s.handleAdminList))
	handle("POST /admin/v1/workloads", "admin", s.admin(s.handleAdminCreate))
	handle("GET /admin/v1/workloads/{id}", "admin", s.admin(s.handleAdminShow))
	handle("DELETE /admin/v1/workloads/{id}", "admin", s.admin(s.handleAdminDelete))
	handle("PUT /admin/v1/workloads/{id}/policy", "admin", s.admin(s.handleAdminPolicy))
	handle("PUT /admin/v1/workloads/{id}/passphrase", "admin", s.admin(s.handleAdminPassphrase))
	handle("GET /admin/v1/workloads/{id}/resources", "admin", s.admin(s.handleAdminListResources))
	handle("PUT /admin/v1/workloads/{id}/resources/{repo}/{type}/{tag}", "admin", s.admin(s.handleAdminPutResource))
	handle("DELETE /admin/v1/workloads/{id}/resources/{repo}/{type}/{tag}", "admin", s.admin(s.handleAdminDeleteResource))

	handle("GET /healthz", "health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	handle("GET /readyz", "health", s.handleReady)
	adminMux.Handle("GET /metrics", s.metrics.handler(s.cfg.Registry))
	s.mux = mux
	if s.cfg.SeparateAdmin {
		adminMux.Handle("GET /healthz", mux)
		adminMux.Handle("GET /readyz", mux)
		adminMux.Handle("/", http.HandlerFunc(s.handleAdminNotFound))
		s.adminMux = adminMux
	}
}

// unlimitedPaths are never rate limited: monitoring must see an overloaded
// broker.
var unlimitedPaths = map[string]bool{"/healthz": true, "/readyz": true, "/metrics": true}

// ServeHTTP serves the broker's API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.limited(w, r) {
		return
	}
	s.serveNoting(s.mux, w, r)
}

// serveNoting serves r on h with a note that store calls fill in when the
// store is out, so that the answer becomes 503 with Retry-After.
func (s *Server) serveNoting(h http.Handler, w http.ResponseWriter, r *http.Request) {
	ctx, outage := store.WithFaultNote(r.Context())
	h.ServeHTTP(&outageWriter{ResponseWriter: w, outage: outage}, r.WithContext(ctx))
}

// limited answers 429 and returns true when r is over its client's rate.
func (s *Server) limited(w http.ResponseWriter, r *http.Request) bool {
	if s.limiter != nil && !unlimitedPaths[r.URL.Path] && !s.adminCaller(r) {
		if !s.limiter.allow(s.clientIP(r)) {
			s.metrics.rateLimited.Inc()
			w.Header().Set("Retry-After", "1")
			writeProblem(w, http.StatusTooManyRequests, kbs.ProblemRateLimited, "too many requests from this client")
			return true
		}
	}
	return false
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readiness check failed", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "store unavailable\n")
		return
	}
	io.WriteString(w, "ready\n")
}

func (s *Server) handleKBSNotFound(w http.ResponseWriter, r *http.Request) {
	writeProblem(w, http.StatusNotFound, kbs.ProblemInvalidRequestPath, "no such endpoint")
}

// PurgeExpired deletes sessions whose time is over; Run calls it
// periodically.
func (s *Server) PurgeExpired(ctx context.Context) (int, error) {
	s.pending.sweep(s.cfg.Now())
	n, err := s.store.DeleteExpiredSessions(ctx, s.cfg.Now())
	if s.limiter != nil {
		s.limiter.sweep()
	}
	return n, err
}

// readPresize bounds how much of a declared Content-Length readBody
// allocates before the bytes arrive.
const readPresize = 32 << 10

// readBody reads at most limit bytes of the request body.
//
// The buffer is sized once from Content-Length, so a typical /attest body
// is read without io.ReadAll's repeated growth; the declared length
// counts only up to readPresize, so a client that declares a large body
// and sends none holds no more memory than that.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 {
		buf.Grow(int(min(n, limit, readPresize)) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	b := buf.Bytes()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("request body exceeds %d bytes", limit)
		}
		return nil, errors.New("reading request body failed")
	}
	return b, nil
}

// clientIP names the peer: the remote address, or the last untrusted hop of
// X-Forwarded-For when the peer is a trusted proxy.
func (s *Server) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(s.cfg.TrustedProxies) == 0 || !s.trustedProxy(host) {
		return host
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		if !s.trustedProxy(h) {
			return h
		}
	}
	return host
}

func (s *Server) trustedProxy(host string) bool {
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	for _, n := range s.cfg.TrustedProxies {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

// writeJSON writes v as JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(b)
}

// writeProblem writes an RFC 7807 document (Trustee's error shape).
func writeProblem(w http.ResponseWriter, code int, variant, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(kbs.NewProblem(variant, detail)) // fails only when the client has gone
}

// writeText writes a krun-dialect error: reference-kbs answers with a short
// text body.
func writeText(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg)
}

// secretsEqual compares two secrets in constant time.
func secretsEqual(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// sessionRef is how audit records and logs name a session: the session id
// is a bearer credential, so only a short hash of it is written.
func sessionRef(id string) string {
	if id == "" {
		return ""
	}
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:6])
}
