package broker

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/verify"
	"github.com/sealroot/sealroot/wire/kbs"
)

// decodeTrusteeAttest reads a Trustee /attest body. The runtime-data nonce
// must be the session's; report_data must be SHA-384 of the canonical
// runtime data, zero-padded to 64 bytes.
func decodeTrusteeAttest(sess *store.Session, body []byte) (*attempt, *refusal) {
	bad := func(err error) *refusal {
		return refuse(http.StatusBadRequest, kbs.ProblemInvalidRequest, "request", err.Error(), err.Error())
	}
	a, err := kbs.ParseAttestation(body)
	if err != nil {
		return nil, bad(err)
	}
	if subtle.ConstantTimeCompare([]byte(a.RuntimeData.Nonce), []byte(sess.Nonce)) != 1 {
		return nil, refuse(http.StatusUnauthorized, kbs.ProblemAttestationFailed, "nonce",
			"runtime-data nonce is not this session's challenge", "runtime-data nonce differs from the session's challenge")
	}
	if _, err := a.RuntimeData.TEEPubKey.PublicKey(); err != nil {
		return nil, bad(err)
	}
	// init-data and additional-evidence are checked as Trustee's KBS
	// checks them, and refused with 401 as it refuses them.
	initData, err := parseInitData(a.InitData)
	if err != nil {
		return nil, refuse(http.StatusUnauthorized, kbs.ProblemAttestationFailed, "init_data", err.Error(), err.Error())
	}
	if ref := refuseAdditionalEvidence(a.TEEEvidence.AdditionalEvidence); ref != nil {
		return nil, ref
	}
	ev, err := trusteeEvidence(sess.TEE, a.TEEEvidence.PrimaryEvidence)
	if err != nil {
		return nil, bad(err)
	}
	pk, err := json.Marshal(a.RuntimeData.TEEPubKey)
	if err != nil {
		return nil, bad(err)
	}
	return &attempt{
		sess:       sess,
		evidence:   ev,
		reportData: kbs.TrusteeReportData(a.RuntimeData.Nonce, a.RuntimeData.TEEPubKey, a.TEEEvidence.AdditionalEvidence, 64),
		pubKey:     pk,
		initData:   initData,
	}, nil
}

// refuseAdditionalEvidence parses additional-evidence and refuses any
// device evidence in it. Trustee's KBS verifies each device's evidence
// (GPUs, other TEEs) as independent evidence; this broker has no verifier
// for any of them, and evidence that was sent but not verified must not
// pass as if it were: the guest could claim a device it does not have.
// "" and "{}" carry none and pass.
func refuseAdditionalEvidence(s string) *refusal {
	entries, err := kbs.ParseAdditionalEvidence(s)
	if err != nil {
		return refuse(http.StatusUnauthorized, kbs.ProblemAttestationFailed, "additional_evidence", err.Error(), err.Error())
	}
	if len(entries) == 0 {
		return nil
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)
	msg := fmt.Sprintf("additional-evidence carries evidence for %s, which this broker cannot verify; it refuses device evidence rather than ignoring it",
		strings.Join(names, ", "))
	return refuse(http.StatusUnauthorized, kbs.ProblemAttestationFailed, "additional_evidence", msg, msg)
}

// checkInitData compares an init-data digest (nil: the guest sent none)
// with the verified evidence's host field: the digest cut or zero-padded
// to the field's size (kbs.InitDataBinding), as Trustee's verifiers
// compare it.
func checkInitData(tee string, digest []byte, claims *attest.Claims) *refusal {
	if digest == nil {
		return nil
	}
	// The launch-time host field that carries the init-data digest is the
	// one a hardware TEE binds the config into (the table in package attest).
	var f struct {
		name string
		size int
	}
	t, _ := attest.Lookup(tee)
	if t.Hardware {
		f.name, f.size = t.BindingField, t.BindingSize
	}
	if f.size == 0 || len(claims.HostData) != f.size {
		msg := fmt.Sprintf("init-data given, but %s evidence has no %d-byte host field to bind it", tee, f.size)
		return refuse(http.StatusUnauthorized, kbs.ProblemAttestationFailed, "init_data", msg, msg)
	}
	want := kbs.InitDataBinding(digest, f.size)
	if subtle.ConstantTimeCompare(want, claims.HostData) != 1 {
		return refuse(http.StatusUnauthorized, kbs.ProblemAttestationFailed, "init_data",
			fmt.Sprintf("init-data digest does not match the evidence's %s", f.name),
			fmt.Sprintf("init-data digest %x is not the evidence's %s %x", digest, f.name, claims.HostData))
	}
	return nil
}

// trusteeEvidence decodes primary_evidence for the session's TEE.
func trusteeEvidence(tee string, primary json.RawMessage) (*attest.Evidence, error) {
	ev, err := verify.DecodeTrustee(tee, primary)
	if err != nil && tee == attest.TEESNP {
		return nil, fmt.Errorf("snp evidence: %w", err)
	}
	return ev, err
}

// replyToken answers a successful Trustee attestation with a signed JWT
// that expires with the session.
func (s *Server) replyToken(ctx context.Context, w http.ResponseWriter, sess *store.Session, claims *attest.Claims, a *attempt) {
	var jwk kbs.JWK
	_ = json.Unmarshal(a.pubKey, &jwk) // encoded by us a moment ago
	tok, err := s.tokens.issue(tokenClaims{
		Claims: jwt.Claims{
			Issuer: tokenIssuer, Subject: sess.WorkloadID, ID: sess.ID,
			IssuedAt: jwt.NewNumericDate(s.cfg.Now()), Expiry: jwt.NewNumericDate(sess.ExpiresAt),
		},
		TEE: sess.TEE, Workload: sess.WorkloadID, Measurement: hex.EncodeToString(claims.Measurement),
		Simulated: claims.Simulated, TEEPubKey: &jwk,
	})
	if err != nil {
		s.log.Error("issuing token", "err", err)
		writeProblem(w, http.StatusInternalServerError, kbs.ProblemInternal, "could not issue a token")
		return
	}
	writeJSON(w, http.StatusOK, kbs.AttestationResult{Token: tok})
}

// trusteeSession finds the attested session of a resource request: from a
// Bearer token (signed by this broker; its jti names the session) or from
// the kbs-session-id cookie, and its claims when memory holds them.
// workloadID, when not "", is the workload the request is for: read with
// the session from a shared store (pendingSessions.lookup), as pre.
func (s *Server) trusteeSession(r *http.Request, workloadID string) (sess *store.Session, claims *attest.Claims, pre *store.Workload, ref *refusal) {
	var id string
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok {
			return nil, nil, nil, refuse(http.StatusUnauthorized, kbs.ProblemInvalidToken, "token", "Authorization is not a Bearer token", "authorization header is not a bearer token")
		}
		c, err := s.tokens.verify(strings.TrimSpace(tok), s.cfg.Now())
		if err != nil {
			return nil, nil, nil, refuse(http.StatusUnauthorized, kbs.ProblemInvalidToken, "token", "invalid attestation token", err.Error())
		}
		id = c.ID
	} else if c, err := r.Cookie(kbs.TrusteeCookie); err == nil {
		id = c.Value
	} else {
		return nil, nil, nil, refuse(http.StatusUnauthorized, kbs.ProblemTokenNotFound, "session", "attestation token not found", "no token and no session cookie")
	}
	if !sessionIDPattern.MatchString(id) {
		return nil, nil, nil, refuse(http.StatusUnauthorized, kbs.ProblemInvalidCookie, "session", "invalid session", "malformed session id")
	}
	sess, claims, pre, err := s.pending.lookup(r.Context(), id, workloadID, s.cfg.Now())
	if err != nil {
		return nil, nil, nil, sessionRefusal(err)
	}
	if sess.Dialect != kbs.DialectTrustee {
		return nil, nil, nil, refuse(http.StatusUnauthorized, kbs.ProblemInvalidCookie, "dialect", "invalid session", "a krun session asked for a trustee resource")
	}
	if sess.State != store.SessionAttested {
		return sess, nil, nil, refuse(http.StatusUnauthorized, kbs.ProblemUnauthenticated, "not_attested", "session has not attested", "session has not attested")
	}
	return sess, claims, pre, nil
}

// handleResource releases a resource as JWE to the attested session's key:
// GET /kbs/v0/resource/{repo}/{type}/{tag}. default/<workload>/passphrase
// is the workload's passphrase; other paths are resources the admin stored
// for a workload, looked up in the workloads the session attested as.
func (s *Server) handleResource(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	repo, typ, tag := r.PathValue("repo"), r.PathValue("type"), r.PathValue("tag")
	rec := auditRecord{Dialect: kbs.DialectTrustee, Client: s.clientIP(r)}
	if !kbs.ValidResourcePath(repo, typ, tag) {
		writeProblem(w, http.StatusNotFound, kbs.ProblemInvalidRequestPath, "resource path segments must match [A-Za-z0-9_-][A-Za-z0-9_.-]*")
		return
	}
	path := repo + "/" + typ + "/" + tag
	rec.Resource = path
	// The passphrase path names its workload: it is read with the session.
	passID, isPass := kbs.IsPassphrasePath(repo, typ, tag)
	if !isPass {
		passID = ""
	}
	sess, claims, pre, ref := s.trusteeSession(r, passID)
	if sess != nil {
		rec.Session, rec.TEE, rec.Workload = sessionRef(sess.ID), sess.TEE, sess.WorkloadID
	}
	if ref != nil {
		s.refused(ctx, w, rec, ref)
		return
	}

	var secret []byte
	var owner string
	if isPass {
		wl, ref := s.authorize(ctx, sess, claims, passID, pre)
		rec.Workload = passID
		if ref != nil {
			s.refused(ctx, w, rec, ref)
			return
		}
		if secret, ref = s.openPassphrase(wl); ref != nil {
			s.refused(ctx, w, rec, ref)
			return
		}
	} else {
		var ref *refusal
		if secret, owner, ref = s.openResource(ctx, sess, claims, path); ref != nil {
			rec.Workload = owner
			s.refused(ctx, w, rec, ref)
			return
		}
		rec.Workload = owner
	}
	defer clear(secret)

	var jwk kbs.JWK
	if err := json.Unmarshal(sess.PubKey, &jwk); err != nil {
		s.refused(ctx, w, rec, refuse(http.StatusInternalServerError, kbs.ProblemInternal, "session", "internal error", "stored guest key unreadable"))
		return
	}
	jwe, err := kbs.EncryptJWE(jwk, secret)
	if err != nil {
		s.refused(ctx, w, rec, refuse(http.StatusInternalServerError, kbs.ProblemJWEFailed, "encrypt", "JWE encryption failed", err.Error()))
		return
	}
	s.released(r, rec)
	writeJSON(w, http.StatusOK, jwe)
}

// openResource finds path among the resources of the workloads the session
// attested as and unseals it. A session that named its workload looks only
// there; an unnamed one in every workload whose policy accepts its claims,
// and a path held by more than one of them is refused as ambiguous.
func (s *Server) openResource(ctx context.Context, sess *store.Session, claims *attest.Claims, path string) ([]byte, string, *refusal) {
	candidates := []string{sess.WorkloadID}
	if sess.WorkloadID == "" {
		var ref *refusal
		if claims, ref = sessionClaims(sess, claims); ref != nil {
			return nil, "", ref
		}
		ids, _, err := s.acceptingWorkloads(ctx, claims)
		if err != nil {
			return nil, "", refuse(http.StatusInternalServerError, kbs.ProblemInternal, "store", "internal error", err.Error())
		}
		candidates = ids
	}
	var found []*store.Resource
	for _, id := range candidates {
		res, err := s.store.GetResource(ctx, id, path)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, "", refuse(http.StatusInternalServerError, kbs.ProblemInternal, "store", "internal error", err.Error())
		}
		found = append(found, res)
	}
	switch len(found) {
	case 0:
		return nil, "", refuse(http.StatusNotFound, kbs.ProblemResourceNotFound, "not_found", "resource not found", "no workload the session attested as holds this resource")
	case 1:
	default:
		owners := make([]string, len(found))
		for i, f := range found {
			owners[i] = f.WorkloadID
		}
		return nil, "", refuse(http.StatusUnauthorized, kbs.ProblemPolicyDeny, "ambiguous_workload",
			"several workloads accept this evidence and hold this resource; name the workload in extra-params",
			"resource held by workloads "+strings.Join(owners, ","))
	}
	res := found[0]
	// Authorize against the owner as it is now.
	if _, ref := s.authorize(ctx, sess, claims, res.WorkloadID, nil); ref != nil {
		return nil, res.WorkloadID, ref
	}
	secret, err := s.cfg.KEK.Open(res.Sealed, resourceAAD(res.WorkloadID, path))
	if err != nil {
		s.log.Error("unsealing resource", "workload", res.WorkloadID, "resource", path, "err", err)
		return nil, res.WorkloadID, refuse(http.StatusInternalServerError, kbs.ProblemInternal, "unseal", "internal error", err.Error())
	}
	return secret, res.WorkloadID, nil
}
