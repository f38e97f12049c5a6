package broker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/wire/kbs"
)

// sessionIDPattern is the shape of every session id this broker issues:
// 128 random bits as lowercase hex. Anything else is rejected before it
// reaches the store.
var sessionIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// authTEEs are the evidence TEEs each dialect accepts at /auth.
var authTEEs = map[string]map[string]bool{
	kbs.DialectKrun:    {attest.TEESNP: true},
	kbs.DialectTrustee: {attest.TEESNP: true, attest.TEETDX: true, attest.TEECCA: true},
}

// handleAuth opens a session: POST /kbs/v0/auth in either dialect.
func (s *Server) handleAuth(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r, 16<<10)
	if err != nil {
		writeProblem(w, http.StatusRequestEntityTooLarge, kbs.ProblemInvalidRequest, err.Error())
		return
	}
	req, err := kbs.ParseRequest(body)
	if err != nil {
		writeProblem(w, http.StatusBadRequest, kbs.ProblemInvalidRequest, err.Error())
		return
	}
	dialect := kbs.DialectOf(req.Version)
	if dialect == "" {
		writeProblem(w, http.StatusBadRequest, kbs.ProblemProtocolVersion,
			fmt.Sprintf("protocol version %q is not supported: use %q (krun) or %q (trustee)", truncate(req.Version, 16), kbs.KrunVersion, kbs.TrusteeVersion))
		return
	}
	fail := func(code int, variant, msg string) {
		if dialect == kbs.DialectKrun {
			writeText(w, code, msg)
			return
		}
		writeProblem(w, code, variant, msg)
	}
	if !authTEEs[dialect][req.TEE] {
		fail(http.StatusBadRequest, kbs.ProblemUnsupportedTEE, fmt.Sprintf("tee %q is not supported in the %s dialect", truncate(req.TEE, 16), dialect))
		return
	}
	if s.cfg.Verifiers[req.TEE] == nil {
		fail(http.StatusBadRequest, kbs.ProblemUnsupportedTEE, fmt.Sprintf("this broker has no verifier for tee %q", req.TEE))
		return
	}
	var workloadID string
	switch dialect {
	case kbs.DialectKrun:
		if workloadID, err = req.KrunWorkloadID(); err != nil {
			fail(http.StatusBadRequest, kbs.ProblemInvalidRequest, err.Error())
			return
		}
	case kbs.DialectTrustee:
		if workloadID, err = trusteeWorkloadID(req.ExtraParams); err != nil {
			fail(http.StatusBadRequest, kbs.ProblemInvalidRequest, err.Error())
			return
		}
	}
	if workloadID != "" {
		if err := validateWorkloadID(workloadID); err != nil {
			fail(http.StatusBadRequest, kbs.ProblemInvalidRequest, err.Error())
			return
		}
	}
	sess, err := s.newSession(r.Context(), dialect, req.TEE, workloadID, s.clientIP(r))
	if errors.Is(err, errPendingFull) {
		s.metrics.rateLimited.Inc()
		w.Header().Set("Retry-After", "5")
		fail(http.StatusServiceUnavailable, kbs.ProblemRateLimited, "too many sessions are awaiting attestation; retry later")
		return
	}
	if err != nil {
		s.log.Error("creating session", "err", err)
		fail(http.StatusInternalServerError, kbs.ProblemInternal, "could not create a session")
		return
	}
	s.setCookie(w, r, sess)
	writeJSON(w, http.StatusOK, kbs.Challenge{Nonce: sess.Nonce, ExtraParams: kbs.EmptyExtraParams})
}

// trusteeWorkloadID reads sealroot's optional "workload_id" from Trustee
// extra-params, which must be present: an object or a string ("" from
// Trustee's agent).
func trusteeWorkloadID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("auth request: extra-params is missing")
	}
	var asString string
	if json.Unmarshal(raw, &asString) == nil {
		return "", nil
	}
	var p struct {
		WorkloadID *string `json:"workload_id"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", errors.New("auth request: extra-params is neither a string nor an object")
	}
	if p.WorkloadID == nil {
		return "", nil
	}
	if *p.WorkloadID == "" {
		return "", errors.New("auth request: extra-params workload_id is empty")
	}
	return *p.WorkloadID, nil
}

// newSession admits a fresh challenged session (in memory, or in the store
// for replicas: pending.go). In the krun dialect the
// nonce is the session id (reference-kbs's behaviour, which libkrun relies
// on); in the Trustee dialect it is 32 more random bytes in base64.
func (s *Server) newSession(ctx context.Context, dialect, tee, workloadID, client string) (*store.Session, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond) // as PostgreSQL keeps it
	sess := &store.Session{
		ID: hex.EncodeToString(id[:]), Dialect: dialect, TEE: tee, State: store.SessionChallenged,
		WorkloadID: workloadID, Client: client, CreatedAt: now, ExpiresAt: now.Add(s.cfg.SessionTTL),
	}
	sess.Nonce = sess.ID
	if dialect == kbs.DialectTrustee {
		var n [32]byte
		if _, err := rand.Read(n[:]); err != nil {
			return nil, err
		}
		sess.Nonce = kbs.NewTrusteeNonce(n)
	}
	if err := s.pending.add(ctx, sess, now); err != nil {
		return nil, err
	}
	return sess, nil
}

func cookieName(dialect string) string {
	if dialect == kbs.DialectTrustee {
		return kbs.TrusteeCookie
	}
	return kbs.KrunCookie
}

// setCookie sends the session cookie: reference-kbs's attributes for krun
// (HttpOnly, SameSite=Strict, Path=/), Trustee's Expires for trustee.
func (s *Server) setCookie(w http.ResponseWriter, r *http.Request, sess *store.Session) {
	c := &http.Cookie{Name: cookieName(sess.Dialect), Value: sess.ID, Path: "/", HttpOnly: true, Secure: r.TLS != nil} //nolint:gosec // KBS clients are not browsers (SameSite means nothing to them); Secure whenever the broker serves TLS
	if sess.Dialect == kbs.DialectTrustee {
		c.Expires = sess.ExpiresAt
	} else {
		c.SameSite = http.SameSiteStrictMode
	}
	http.SetCookie(w, c)
}

// sessionID returns the session id a request carries in either dialect's
// cookie, and the dialect the cookie names.
func sessionID(r *http.Request) (id, dialect string, ok bool) {
	for _, d := range []string{kbs.DialectTrustee, kbs.DialectKrun} {
		if c, err := r.Cookie(cookieName(d)); err == nil {
			return c.Value, d, sessionIDPattern.MatchString(c.Value)
		}
	}
	return "", "", false
}
