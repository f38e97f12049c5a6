package broker

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/verify/tdx"
	"github.com/sealroot/sealroot/wire/kbs"
)

// refusal is a request the broker turns down: the HTTP answer and what the
// audit record says.
type refusal struct {
	code    int
	variant string // Trustee error variant
	check   string // the failed check, for audit and metrics
	reason  string // detail for audit; never a secret
	public  string // what the client is told
}

func refuse(code int, variant, check, public, reason string) *refusal {
	return &refusal{code: code, variant: variant, check: check, public: public, reason: reason}
}

// send writes the refusal in the session's dialect.
func (r *refusal) send(w http.ResponseWriter, dialect string) {
	if dialect == kbs.DialectKrun {
		writeText(w, r.code, r.public)
		return
	}
	writeProblem(w, r.code, r.variant, r.public)
}

// sessionRefusal maps a store error on a session lookup.
func sessionRefusal(err error) *refusal {
	switch {
	case errors.Is(err, store.ErrNotFound):
		return refuse(http.StatusUnauthorized, kbs.ProblemInvalidCookie, "session", "unknown session", "no such session")
	case errors.Is(err, store.ErrExpired):
		return refuse(http.StatusUnauthorized, kbs.ProblemExpiredCookie, "session_expired", "session expired", "session expired (stale nonce)")
	case errors.Is(err, store.ErrNonceUsed):
		return refuse(http.StatusUnauthorized, kbs.ProblemNonceReused, "nonce_reused", "nonce already used; start again at /auth", "the session's nonce was already spent on an attestation")
	}
	return refuse(http.StatusInternalServerError, kbs.ProblemInternal, "store", "internal error", err.Error())
}

// attempt is one /attest after dialect decoding.
type attempt struct {
	sess       *store.Session
	evidence   *attest.Evidence
	reportData []byte // the binding the dialect expects in report_data
	pubKey     []byte // the guest key as the dialect sent it (JSON)
	initData   []byte // Trustee init-data digest, nil without init-data (trustee.go)
	// workload is the session's workload as the store read it when it
	// spent the nonce, at workloadAt, or nil (see loadWorkload).
	workload   *store.Workload
	workloadAt time.Time
}

// maxPrefetchAge is how old a workload read with the session may be when
// /attest judges the evidence against it; an older one is read again.
// Verification usually takes about a millisecond, but may take up to
// --verify-timeout when certificates are fetched, and the policy judged
// must be as current as a read after verification would give, within
// this margin. (A variable so that a test can force the re-read.)
var maxPrefetchAge = 250 * time.Millisecond

// handleAttest spends the session's nonce, then verifies and judges the
// evidence: POST /kbs/v0/attest in either dialect.
func (s *Server) handleAttest(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id, cookieDialect, ok := sessionID(r)
	rec := auditRecord{Event: eventRefusal, Client: s.clientIP(r), Dialect: cookieDialect, Session: sessionRef(id)}
	fail := func(ref *refusal) {
		if rec.Dialect != "" {
			s.metrics.attestations.WithLabelValues(rec.Dialect, rec.TEE, "refused", ref.check).Inc()
		}
		s.refused(ctx, w, rec, ref)
	}
	if !ok {
		fail(refuse(http.StatusUnauthorized, kbs.ProblemMissingCookie, "session", "missing or malformed session cookie", "no valid session cookie"))
		return
	}
	body, err := readBody(w, r, kbs.MaxRequestBody)
	if err != nil {
		fail(refuse(http.StatusRequestEntityTooLarge, kbs.ProblemInvalidRequest, "request", err.Error(), err.Error()))
		return
	}
	// The nonce is spent before anything else is looked at: a failed
	// attestation can not be retried against the same challenge.
	sess, pre, deferred, err := s.pending.consume(ctx, id, s.cfg.Now())
	preAt := time.Now()
	if err != nil {
		s.describeSession(ctx, id, &rec)
		fail(sessionRefusal(err))
		return
	}
	refuseSpent := fail
	if deferred {
		// A session spent in memory is settled once: as consumed when
		// this attempt is refused, as attested when it succeeds; in
		// memory while the settled table has room (pending.go).
		refused := fail
		fail = func(ref *refusal) {
			if err := s.pending.settle(ctx, sess, nil, s.cfg.Now()); err != nil {
				s.log.Warn("recording a spent session", "session", rec.Session, "err", err)
			}
			refused(ref)
		}
	}
	rec.Dialect, rec.TEE, rec.Workload = sess.Dialect, sess.TEE, sess.WorkloadID

	var a *attempt
	var ref *refusal
	switch sess.Dialect {
	case kbs.DialectKrun:
		a, ref = decodeKrunAttest(sess, body)
	case kbs.DialectTrustee:
		a, ref = decodeTrusteeAttest(sess, body)
	default:
		ref = refuse(http.StatusInternalServerError, kbs.ProblemInternal, "session", "internal error", "session has unknown dialect "+sess.Dialect)
	}
	if ref != nil {
		fail(ref)
		return
	}
	a.workload, a.workloadAt = pre, preAt
	claims, workloads, ref := s.judge(ctx, a)
	if claims != nil {
		rec.Measurement = hex.EncodeToString(claims.Measurement)
	}
	if ref != nil {
		fail(ref)
		return
	}
	var err2 error
	if deferred {
		done := *sess
		done.State, done.PubKey, done.AttestedAt = store.SessionAttested, a.pubKey, s.cfg.Now().UTC()
		err2 = s.pending.settle(ctx, &done, claims, s.cfg.Now())
	} else {
		cj, err := json.Marshal(claims)
		if err != nil {
			fail(refuse(http.StatusInternalServerError, kbs.ProblemInternal, "store", "internal error", err.Error()))
			return
		}
		err2 = s.store.MarkAttested(ctx, sess.ID, sess.WorkloadID, a.pubKey, cj, nil, s.cfg.Now().UTC()) // authStore adds the MAC
	}
	if err := err2; err != nil {
		refuseSpent(sessionRefusal(err)) // not stored; spent all the same (it has left memory)
		return
	}
	s.metrics.attestations.WithLabelValues(sess.Dialect, sess.TEE, "success", "").Inc()
	rec.Event, rec.Workload = eventAttested, strings.Join(workloads, ",")
	s.audit.write(ctx, rec)

	if sess.Dialect == kbs.DialectKrun {
		w.WriteHeader(http.StatusOK) // reference-kbs: empty body
		return
	}
	s.replyToken(ctx, w, sess, claims, a)
}

// describeSession fills an audit record from a session that could not be
// used (expired or spent), so refusals still name the workload.
func (s *Server) describeSession(ctx context.Context, id string, rec *auditRecord) {
	sess, ok := s.pending.peek(id)
	if !ok {
		// The zero time is before every expiry: this reads expired sessions too.
		var err error
		if sess, err = s.store.GetSession(ctx, id, time.Time{}); err != nil {
			return
		}
	}
	rec.Dialect, rec.TEE, rec.Workload = sess.Dialect, sess.TEE, sess.WorkloadID
}

// refused writes the audit record of a refusal and answers.
func (s *Server) refused(ctx context.Context, w http.ResponseWriter, rec auditRecord, ref *refusal) {
	rec.Event, rec.Check, rec.Reason = eventRefusal, ref.check, ref.reason
	s.audit.write(ctx, rec)
	ref.send(w, rec.Dialect)
}

// judge verifies the evidence and decides which workload it proves. For a
// session that named its workload, that workload's policy must accept the
// claims (with report_data equal to the binding). For an unnamed Trustee
// session, report_data must equal the binding and at least one registered
// workload's policy must accept the claims; resources are authorized
// against their owner's policy when they are read. It returns the workloads
// the evidence satisfies.
func (s *Server) judge(ctx context.Context, a *attempt) (*attest.Claims, []string, *refusal) {
	v := s.cfg.Verifiers[a.evidence.TEE]
	if v == nil {
		return nil, nil, refuse(http.StatusUnauthorized, kbs.ProblemUnsupportedTEE, "tee", "unsupported tee", "no verifier for tee "+a.evidence.TEE)
	}
	vctx, cancel := context.WithTimeout(ctx, s.cfg.VerifyTimeout)
	start := time.Now()
	claims, err := v.Verify(vctx, a.evidence)
	cancel()
	observe(s.metrics.verify, a.evidence.TEE, start)
	if err != nil {
		return nil, nil, refuse(http.StatusUnauthorized, kbs.ProblemAttestationFailed, "evidence", "evidence verification failed", err.Error())
	}
	// verify.Broker never checks a TDX quote on its chain alone; a verifier
	// given in Config by other code must not either.
	if tdx.ChainOnly(claims) {
		return nil, nil, refuse(http.StatusUnauthorized, kbs.ProblemAttestationFailed, "evidence", "evidence verification failed",
			"the TDX quote was checked on its signature and PCK chain only: its TCB status, QE identity and revocation were not")
	}
	// A workload's runtime report (kbs.RuntimeReportData) is never a boot.
	if kbs.IsRuntimeReportData(claims.ReportData) {
		return claims, nil, refuse(http.StatusUnauthorized, kbs.ProblemPolicyDeny, "runtime_evidence", "evidence does not satisfy the policy",
			"report_data is in the runtime-evidence domain: a running workload's report, not a boot's")
	}
	if ref := checkInitData(a.evidence.TEE, a.initData, claims); ref != nil {
		return claims, nil, ref
	}

	if a.sess.WorkloadID != "" {
		pre := a.workload
		if time.Since(a.workloadAt) > maxPrefetchAge {
			pre = nil
		}
		w, doc, ref := s.loadWorkload(ctx, a.sess.WorkloadID, pre)
		if ref != nil {
			return claims, nil, ref
		}
		if err := validateClaims(w.TEE, doc, claims, s.cfg.TrustSimulated, a.reportData); err != nil {
			return claims, nil, refuse(http.StatusUnauthorized, kbs.ProblemPolicyDeny, checkName(err), "evidence does not satisfy the workload's policy", err.Error())
		}
		return claims, []string{w.ID}, nil
	}

	if !bindingEqual(a.reportData, claims.ReportData) {
		return claims, nil, refuse(http.StatusUnauthorized, kbs.ProblemPolicyDeny, "report_data", "evidence does not satisfy the policy",
			fmt.Sprintf("report_data mismatch: expected %x, found %x", a.reportData, claims.ReportData))
	}
	ids, rejected, err := s.acceptingWorkloads(ctx, claims)
	if err != nil {
		return claims, nil, refuse(http.StatusInternalServerError, kbs.ProblemInternal, "store", "internal error", err.Error())
	}
	if len(ids) == 0 {
		return claims, nil, refuse(http.StatusUnauthorized, kbs.ProblemPolicyDeny, "no_workload", "evidence does not satisfy any workload's policy",
			fmt.Sprintf("no registered workload accepts %s evidence with measurement %x%s", claims.TEE, claims.Measurement, rejected))
	}
	return claims, ids, nil
}

// bindingEqual compares report_data with the expected binding zero-padded
// to its length.
func bindingEqual(want, got []byte) bool {
	if len(want) > len(got) || len(got) == 0 {
		return false
	}
	padded := make([]byte, len(got))
	copy(padded, want)
	return subtle.ConstantTimeCompare(padded, got) == 1
}

// loadWorkload reads a workload and its policy document. pre, when not
// nil, is workload id as the store read it moments ago, in the round trip
// that spent or read the session (store.Store.ConsumeChallengeRead,
// GetSessionRead; its policy's MAC checked like GetWorkload's): used as
// read, it saves a second round trip to a database. Without it, or when
// it is another workload, the store is asked.
func (s *Server) loadWorkload(ctx context.Context, id string, pre *store.Workload) (*store.Workload, *WorkloadPolicy, *refusal) {
	w, err := pre, error(nil)
	if w == nil || w.ID != id {
		w, err = s.store.GetWorkload(ctx, id)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, refuse(http.StatusUnauthorized, kbs.ProblemPolicyDeny, "unknown_workload", "unknown workload", "workload is not registered")
	}
	if err != nil {
		return nil, nil, refuse(http.StatusInternalServerError, kbs.ProblemInternal, "store", "internal error", err.Error())
	}
	doc, err := parsePolicy(w.Policy)
	if err == nil {
		doc, err = s.withBrokerMinimums(w.TEE, doc)
	}
	if err != nil {
		return nil, nil, refuse(http.StatusInternalServerError, kbs.ProblemInternal, "policy", "internal error", err.Error())
	}
	return w, doc, nil
}

// acceptingWorkloads lists the workloads whose policy accepts claims
// (report_data aside), and says for the first few others which check they
// failed. It reads every workload: fine for the hundreds a broker serves;
// name the workload in extra-params to skip it.
func (s *Server) acceptingWorkloads(ctx context.Context, claims *attest.Claims) (ids []string, rejected string, err error) {
	all, err := s.store.ListWorkloads(ctx)
	if err != nil {
		return nil, "", err
	}
	var why []string
	for _, w := range all {
		doc, err := parsePolicy(w.Policy)
		if err == nil {
			doc, err = s.withBrokerMinimums(w.TEE, doc)
		}
		if err != nil {
			s.log.Warn("skipping workload with unreadable policy", "workload", w.ID, "err", err)
			continue
		}
		if err := validateClaims(w.TEE, doc, claims, s.cfg.TrustSimulated, nil); err != nil {
			if len(why) < 5 {
				why = append(why, w.ID+": "+checkName(err))
			}
			continue
		}
		ids = append(ids, w.ID)
	}
	if len(why) > 0 {
		rejected = " (" + strings.Join(why, ", ") + ")"
	}
	return ids, rejected, nil
}

// authorize decides whether an attested session may read a secret of
// workload id, against the workload's policy as it is now (an admin may
// have tightened it since the attestation). It returns the workload.
//
// claims are the session's verified claims when memory holds them (see
// pendingSessions.lookup); nil reads them from sess.Claims. pre is as in
// loadWorkload.
func (s *Server) authorize(ctx context.Context, sess *store.Session, claims *attest.Claims, id string, pre *store.Workload) (*store.Workload, *refusal) {
	if sess.State != store.SessionAttested {
		return nil, refuse(http.StatusUnauthorized, kbs.ProblemUnauthenticated, "not_attested", "session has not attested", "session has not attested")
	}
	if sess.WorkloadID != "" && sess.WorkloadID != id {
		return nil, refuse(http.StatusUnauthorized, kbs.ProblemPolicyDeny, "workload_mismatch", "session did not attest as this workload",
			fmt.Sprintf("session attested as workload %q, asked for a secret of %q", sess.WorkloadID, truncate(id, 128)))
	}
	w, doc, ref := s.loadWorkload(ctx, id, pre)
	if ref != nil {
		return nil, ref
	}
	claims, ref = sessionClaims(sess, claims)
	if ref != nil {
		return nil, ref
	}
	if err := validateClaims(w.TEE, doc, claims, s.cfg.TrustSimulated, nil); err != nil {
		check := checkName(err)
		if sess.WorkloadID == "" {
			check = "workload_mismatch" // the evidence is some other workload's
		}
		return nil, refuse(http.StatusUnauthorized, kbs.ProblemPolicyDeny, check, "session did not attest as this workload", err.Error())
	}
	return w, nil
}

// passphraseAAD and resourceAAD bind sealed values to their owner.
func passphraseAAD(workloadID string) []byte { return kek.AAD("passphrase", workloadID) }
func resourceAAD(workloadID, path string) []byte {
	return kek.AAD("resource", workloadID, path)
}

// sessionClaims returns held, the claims memory keeps for the session, or
// else the claims the store keeps as JSON in sess.Claims.
func sessionClaims(sess *store.Session, held *attest.Claims) (*attest.Claims, *refusal) {
	if held != nil {
		return held, nil
	}
	var claims attest.Claims
	if err := json.Unmarshal(sess.Claims, &claims); err != nil {
		return nil, refuse(http.StatusInternalServerError, kbs.ProblemInternal, "session", "internal error", "stored claims unreadable")
	}
	return &claims, nil
}
