package broker

import (
	"encoding/json"
	"net/http"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/wire/kbs"
)

// decodeKrunAttest reads a krun /attest body: an RSA key as base64 texts
// and SNP evidence as a JSON string holding the report in hex. The
// expected report_data is SHA-512 over the session's nonce (32 hex
// characters the broker issued) and the key texts as sent.
func decodeKrunAttest(sess *store.Session, body []byte) (*attempt, *refusal) {
	bad := func(err error) *refusal {
		return refuse(http.StatusBadRequest, kbs.ProblemInvalidRequest, "request", err.Error(), err.Error())
	}
	a, err := kbs.ParseKrunAttestation(body)
	if err != nil {
		return nil, bad(err)
	}
	// Exactly an RSA-2048 key in canonical base64: with any other modulus
	// length the separator-less binding below could be satisfied by a key
	// the guest never made (see kbs.KrunPubKey.RSAPublicKey).
	if _, err := a.TEEPubKey.RSAPublicKey(); err != nil {
		return nil, refuse(http.StatusBadRequest, kbs.ProblemInvalidRequest, "tee_pubkey", err.Error(), err.Error())
	}
	report, certs, err := kbs.DecodeKrunSNPEvidence(a.TEEEvidence)
	if err != nil {
		return nil, bad(err)
	}
	pk, err := json.Marshal(a.TEEPubKey)
	if err != nil {
		return nil, bad(err)
	}
	rd := kbs.KrunBinding(sess.Nonce, a.TEEPubKey)
	return &attempt{
		sess:       sess,
		evidence:   &attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: certs},
		reportData: rd[:],
		pubKey:     pk,
	}, nil
}

// handleKrunKey releases a workload's passphrase to the session that
// attested as it: GET /kbs/v0/key/{workload_id}, the reply a JSON string
// holding hex of the passphrase encrypted (RSA PKCS#1 v1.5) to the guest
// key from /attest. Unlike reference-kbs, the path's workload must be the
// one the session attested as.
func (s *Server) handleKrunKey(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	want := r.PathValue("id")
	rec := auditRecord{Dialect: kbs.DialectKrun, Client: s.clientIP(r), Workload: truncate(want, 128), Resource: "key/" + truncate(want, 128)}
	c, err := r.Cookie(kbs.KrunCookie)
	if err != nil || !sessionIDPattern.MatchString(c.Value) {
		s.refused(ctx, w, rec, refuse(http.StatusUnauthorized, "", "session", "Missing cookie", "no valid session_id cookie"))
		return
	}
	rec.Session = sessionRef(c.Value)
	sess, claims, pre, err := s.pending.lookup(ctx, c.Value, want, s.cfg.Now())
	if err != nil {
		s.describeSession(ctx, c.Value, &rec)
		rec.Workload = truncate(want, 128) // name the workload asked for
		s.refused(ctx, w, rec, sessionRefusal(err))
		return
	}
	rec.TEE = sess.TEE
	if sess.Dialect != kbs.DialectKrun {
		s.refused(ctx, w, rec, refuse(http.StatusUnauthorized, "", "dialect", "Invalid session", "a trustee session asked the krun key endpoint"))
		return
	}
	wl, ref := s.authorize(ctx, sess, claims, want, pre)
	if ref != nil {
		s.refused(ctx, w, rec, ref)
		return
	}
	secret, ref := s.openPassphrase(wl)
	if ref != nil {
		s.refused(ctx, w, rec, ref)
		return
	}
	defer clear(secret)
	var pk kbs.KrunPubKey
	if err := json.Unmarshal(sess.PubKey, &pk); err != nil {
		s.refused(ctx, w, rec, refuse(http.StatusInternalServerError, "", "session", "internal error", "stored guest key unreadable"))
		return
	}
	pub, err := pk.RSAPublicKey()
	if err != nil {
		s.refused(ctx, w, rec, refuse(http.StatusInternalServerError, "", "session", "internal error", "stored guest key invalid"))
		return
	}
	reply, err := kbs.KrunEncryptSecret(pub, secret)
	if err != nil {
		s.refused(ctx, w, rec, refuse(http.StatusInternalServerError, "", "encrypt", "internal error", err.Error()))
		return
	}
	s.released(r, rec)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(reply)
}

// openPassphrase unseals a workload's passphrase.
func (s *Server) openPassphrase(wl *store.Workload) ([]byte, *refusal) {
	if len(wl.SealedPassphrase) == 0 {
		return nil, refuse(http.StatusNotFound, kbs.ProblemResourceNotFound, "not_found", "workload has no passphrase", "workload has no passphrase registered")
	}
	secret, err := s.cfg.KEK.Open(wl.SealedPassphrase, passphraseAAD(wl.ID))
	if err != nil {
		s.log.Error("unsealing passphrase", "workload", wl.ID, "err", err)
		return nil, refuse(http.StatusInternalServerError, kbs.ProblemInternal, "unseal", "internal error", err.Error())
	}
	return secret, nil
}

// released writes the audit record and metric of a key release.
func (s *Server) released(r *http.Request, rec auditRecord) {
	rec.Event = eventKeyRelease
	s.audit.write(r.Context(), rec)
	s.metrics.releases.WithLabelValues(rec.Dialect).Inc()
}
