package broker

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/store"
)

// Registration is the body of POST /kbs/v0/register_workload as buildah
// sends it (docs/interop.md §2).
type Registration struct {
	WorkloadID        string `json:"workload_id"`
	LaunchMeasurement string `json:"launch_measurement"`
	Passphrase        string `json:"passphrase"`
	// TEEConfig is JSON in a string ({"flags":{"bits":15},"minfw":…}); it
	// is stored verbatim and never loosens the policy.
	TEEConfig string `json:"tee_config"`
}

// maxPassphrase bounds a registered passphrase (buildah's is 64 hex
// characters; LUKS allows 512 bytes).
const maxPassphrase = 512

// parseRegistration decodes and checks a registration body. Errors never
// quote the passphrase.
func parseRegistration(body []byte) (*Registration, []byte, error) {
	var reg Registration
	if err := json.Unmarshal(body, &reg); err != nil {
		return nil, nil, errors.New("registration is not a JSON object with workload_id, launch_measurement, passphrase and tee_config")
	}
	if err := validateWorkloadID(reg.WorkloadID); err != nil {
		return nil, nil, err
	}
	m, err := hex.DecodeString(strings.ToLower(strings.TrimSpace(reg.LaunchMeasurement)))
	if err != nil || len(m) != 48 {
		return nil, nil, fmt.Errorf("launch_measurement is not 96 hex characters (48 bytes, an SNP measurement)")
	}
	if reg.Passphrase == "" || len(reg.Passphrase) > maxPassphrase {
		return nil, nil, fmt.Errorf("passphrase must be 1 to %d bytes", maxPassphrase)
	}
	if len(reg.TEEConfig) > 4096 {
		return nil, nil, errors.New("tee_config longer than 4096 bytes")
	}
	if reg.TEEConfig != "" && !json.Valid([]byte(reg.TEEConfig)) {
		return nil, nil, errors.New("tee_config is not JSON text")
	}
	return &reg, m, nil
}

// handleRegister is buildah's registration: it stores an SNP workload whose
// policy is the safe default (its measurement, no debug, VMPL 0). A new id
// is created as the registration mode allows; an existing id is replaced
// only for admin callers and otherwise answered with 409.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	rec := auditRecord{Event: eventRegistration, Client: s.clientIP(r)}
	fail := func(code int, check, msg string) {
		rec.Event, rec.Check, rec.Reason = eventRefusal, check, msg
		s.audit.write(ctx, rec)
		s.metrics.registered.WithLabelValues(check).Inc()
		writeText(w, code, msg)
	}
	isAdmin, how := s.isAdmin(r)
	switch s.cfg.Registration {
	case RegistrationClosed:
		if !isAdmin {
			fail(http.StatusUnauthorized, "registration_closed", "registration is closed: use the admin API or admin token")
			return
		}
	case RegistrationToken:
		if !isAdmin && !secretsEqual(requestToken(r), s.cfg.RegistrationToken) {
			fail(http.StatusUnauthorized, "registration_token", "registration needs the registration token (Bearer, or as the URL's password)")
			return
		}
	}
	body, err := readBody(w, r, 64<<10)
	if err != nil {
		fail(http.StatusRequestEntityTooLarge, "request", err.Error())
		return
	}
	reg, measurement, err := parseRegistration(body)
	if err != nil {
		fail(http.StatusBadRequest, "request", err.Error())
		return
	}
	rec.Workload, rec.TEE, rec.Measurement = reg.WorkloadID, attest.TEESNP, hex.EncodeToString(measurement)

	doc := WorkloadPolicy{Measurements: []string{hex.EncodeToString(measurement)}}
	pol, _ := json.Marshal(doc)
	sealed, err := s.cfg.KEK.Seal([]byte(reg.Passphrase), passphraseAAD(reg.WorkloadID))
	if err != nil {
		s.log.Error("sealing passphrase", "err", err)
		fail(http.StatusInternalServerError, "seal", "internal error")
		return
	}
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	wl := &store.Workload{ID: reg.WorkloadID, TEE: attest.TEESNP, Policy: pol, SealedPassphrase: sealed,
		TEEConfig: reg.TEEConfig, Origin: "register", CreatedAt: now, UpdatedAt: now}
	err = s.store.CreateWorkload(ctx, wl)
	if errors.Is(err, store.ErrExists) {
		if !isAdmin {
			fail(http.StatusConflict, "registration_conflict", "workload id already registered; replacing it needs admin credentials")
			return
		}
		err = s.store.PutWorkload(ctx, wl)
		rec.Action, rec.Admin = "replace", how
	} else {
		rec.Action = "create"
		if isAdmin {
			rec.Admin = how
		}
	}
	if err != nil {
		s.log.Error("storing workload", "workload", reg.WorkloadID, "err", err)
		fail(http.StatusInternalServerError, "store", "internal error")
		return
	}
	s.audit.write(ctx, rec)
	s.metrics.registered.WithLabelValues("ok").Inc()
	w.WriteHeader(http.StatusOK) // reference-kbs: empty 200
}

// requestToken returns the bearer token, or the basic-auth password (what
// Go and buildah send for a URL with userinfo).
func requestToken(r *http.Request) string {
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(tok)
	}
	if _, pass, ok := r.BasicAuth(); ok {
		return pass
	}
	return ""
}

// isAdmin reports whether the request carries admin credentials, and how.
func (s *Server) isAdmin(r *http.Request) (bool, string) {
	if s.cfg.AdminClientCerts && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return true, "mtls:" + r.TLS.VerifiedChains[0][0].Subject.CommonName
	}
	if s.cfg.AdminToken != "" && secretsEqual(requestToken(r), s.cfg.AdminToken) {
		return true, "token"
	}
	return false, ""
}
