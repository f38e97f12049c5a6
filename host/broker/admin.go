package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/wire/kbs"
)

// The admin API, under /admin/v1, authenticated by the admin bearer token
// or a verified TLS client certificate:
//
//	GET    /admin/v1/workloads                          list
//	POST   /admin/v1/workloads                          register (AdminRegistration)
//	GET    /admin/v1/workloads/{id}                     show, with resource paths
//	DELETE /admin/v1/workloads/{id}                     delete with its resources
//	PUT    /admin/v1/workloads/{id}/policy              replace the policy (WorkloadPolicy)
//	PUT    /admin/v1/workloads/{id}/passphrase          set the passphrase ({"passphrase": …})
//	GET    /admin/v1/workloads/{id}/resources           list resource paths
//	PUT    /admin/v1/workloads/{id}/resources/{r}/{t}/{g}  store a resource (raw body)
//	DELETE /admin/v1/workloads/{id}/resources/{r}/{t}/{g}  delete a resource
//
// No endpoint ever returns a secret.

// AdminWorkload is the admin API's view of a workload.
type AdminWorkload struct {
	WorkloadID    string         `json:"workload_id"`
	TEE           string         `json:"tee"`
	Policy        WorkloadPolicy `json:"policy"`
	HasPassphrase bool           `json:"has_passphrase"`
	// PassphraseResource is where a Trustee-dialect guest fetches the
	// passphrase.
	PassphraseResource string    `json:"passphrase_resource"`
	TEEConfig          string    `json:"tee_config,omitempty"`
	Origin             string    `json:"origin"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
	// Resources lists resource paths (show only).
	Resources []AdminResource `json:"resources,omitempty"`
	// Damaged, in listings, says why a workload's record could not be
	// read or authenticated; only WorkloadID is set then.
	Damaged string `json:"damaged,omitempty"`
	// MeasurementOnly marks a workload without host_data: its evidence
	// identity is the launch measurement alone, which every guest booted
	// with the same kernel, initrd, command line and size shares (every
	// buildah registration is one).
	MeasurementOnly bool `json:"measurement_only,omitempty"`
}

// AdminResource describes one stored resource.
type AdminResource struct {
	Path      string    `json:"path"`
	Size      int       `json:"size"`
	UpdatedAt time.Time `json:"updated_at"`
}

// AdminRegistration is the body of POST /admin/v1/workloads.
type AdminRegistration struct {
	WorkloadID string         `json:"workload_id"`
	TEE        string         `json:"tee"`
	Policy     WorkloadPolicy `json:"policy"`
	// Passphrase is the LUKS passphrase; absent registers (or, with
	// Replace, keeps) none.
	Passphrase *string `json:"passphrase,omitempty"`
	TEEConfig  string  `json:"tee_config,omitempty"`
	// Replace allows overwriting an existing workload.
	Replace bool `json:"replace,omitempty"`
}

// AdminPassphrase is the body of PUT .../passphrase.
type AdminPassphrase struct {
	Passphrase string `json:"passphrase"`
}

// AdminError is the body of every admin API error.
type AdminError struct {
	Error string `json:"error"`
}

const maxResource = 64 << 10

type adminHandler func(w http.ResponseWriter, r *http.Request, how string)

// admin wraps a handler with the admin credential check.
func (s *Server) admin(h adminHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminToken == "" && !s.cfg.AdminClientCerts {
			adminError(w, http.StatusForbidden, "the admin API is disabled: start the broker with --admin-token-file or --admin-client-ca")
			return
		}
		ok, how := s.isAdmin(r)
		if !ok {
			s.audit.write(r.Context(), auditRecord{Event: eventRefusal, Client: s.clientIP(r), Check: "admin_auth",
				Reason: "admin request without valid credentials", Action: r.Method + " " + r.URL.Path})
			w.Header().Set("WWW-Authenticate", `Bearer realm="sealroot-broker"`)
			adminError(w, http.StatusUnauthorized, "admin credentials required (Authorization: Bearer <admin token>)")
			return
		}
		h(w, r, how)
	}
}

func adminError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, AdminError{Error: msg})
}

// storeError answers a store failure.
func (s *Server) storeError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		adminError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, store.ErrExists):
		adminError(w, http.StatusConflict, err.Error())
	case errors.Is(err, store.ErrDamaged):
		s.log.Error("damaged record", "err", err)
		adminError(w, http.StatusInternalServerError, err.Error())
	default:
		s.log.Error("admin store operation", "err", err)
		adminError(w, http.StatusInternalServerError, "internal error")
	}
}

func (s *Server) adminAudit(ctx context.Context, r *http.Request, how, action, workload, resource string) {
	s.audit.write(ctx, auditRecord{Event: eventAdmin, Client: s.clientIP(r), Admin: how, Action: action, Workload: workload, Resource: resource})
}

func (s *Server) view(w *store.Workload) (AdminWorkload, error) {
	doc, err := parsePolicy(w.Policy)
	if err != nil {
		return AdminWorkload{}, err
	}
	return AdminWorkload{WorkloadID: w.ID, TEE: w.TEE, Policy: *doc, HasPassphrase: len(w.SealedPassphrase) > 0,
		PassphraseResource: kbs.PassphrasePath(w.ID), TEEConfig: w.TEEConfig, Origin: w.Origin,
		CreatedAt: w.CreatedAt, UpdatedAt: w.UpdatedAt, MeasurementOnly: doc.HostData == ""}, nil
}

func (s *Server) handleAdminList(w http.ResponseWriter, r *http.Request, how string) {
	all, err := s.store.ListWorkloads(r.Context())
	if err != nil {
		s.storeError(w, err)
		return
	}
	out := make([]AdminWorkload, 0, len(all))
	for _, wl := range all {
		v, err := s.view(wl)
		if wl.Damaged != "" || err != nil {
			why := wl.Damaged
			if why == "" {
				why = err.Error()
			}
			s.log.Error("damaged workload record", "workload", wl.ID, "reason", why)
			out = append(out, AdminWorkload{WorkloadID: wl.ID, Damaged: why})
			continue
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleAdminShow(w http.ResponseWriter, r *http.Request, how string) {
	wl, err := s.store.GetWorkload(r.Context(), r.PathValue("id"))
	if err != nil {
		s.storeError(w, err)
		return
	}
	v, err := s.view(wl)
	if err != nil {
		s.storeError(w, err)
		return
	}
	if v.Resources, err = s.resourceViews(r.Context(), wl.ID); err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) resourceViews(ctx context.Context, id string) ([]AdminResource, error) {
	res, err := s.store.ListResources(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]AdminResource, 0, len(res))
	for _, x := range res {
		// The sealed size less the sealing overhead is the value's size.
		out = append(out, AdminResource{Path: x.Path, Size: max(0, len(x.Sealed)-kek.Overhead), UpdatedAt: x.UpdatedAt})
	}
	return out, nil
}

func decodeAdminBody(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := readBody(w, r, 128<<10)
	if err != nil {
		adminError(w, http.StatusRequestEntityTooLarge, err.Error())
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		adminError(w, http.StatusBadRequest, fmt.Sprintf("request body: %v", err))
		return false
	}
	return true
}

func (s *Server) handleAdminCreate(w http.ResponseWriter, r *http.Request, how string) {
	var req AdminRegistration
	if !decodeAdminBody(w, r, &req) {
		return
	}
	if err := validateWorkloadID(req.WorkloadID); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := req.Policy.Validate(req.TEE); err != nil {
		adminError(w, http.StatusBadRequest, err.Error())
		return
	}
	pol, _ := json.Marshal(req.Policy)
	now := s.cfg.Now().UTC().Truncate(time.Microsecond)
	wl := &store.Workload{ID: req.WorkloadID, TEE: req.TEE, Policy: pol, TEEConfig: req.TEEConfig,
		Origin: "admin", CreatedAt: now, UpdatedAt: now}
	if req.Passphrase != nil {
		if *req.Passphrase == "" || len(*req.Passphrase) > maxPassphrase {
			adminError(w, http.StatusBadRequest, fmt.Sprintf("passphrase must be 1 to %d bytes", maxPassphrase))
			return
		}
		sealed, err := s.cfg.KEK.Seal([]byte(*req.Passphrase), passphraseAAD(req.WorkloadID))
		if err != nil {
			s.storeError(w, err)
			return
		}
		wl.SealedPassphrase = sealed
	}
	ctx := r.Context()
	action := "create"
	err := s.store.CreateWorkload(ctx, wl)
	if errors.Is(err, store.ErrExists) && req.Replace {
		action = "replace"
		err = s.store.UpdateWorkload(ctx, wl.ID, func(old *store.Workload) error {
			old.TEE, old.Policy, old.TEEConfig, old.Origin, old.UpdatedAt = wl.TEE, wl.Policy, wl.TEEConfig, wl.Origin, now
			if wl.SealedPassphrase != nil {
				old.SealedPassphrase = wl.SealedPassphrase
			}
			return nil
		})
	}
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			adminError(w, http.StatusConflict, fmt.Sprintf("workload %q already exists (set replace to overwrite it)", wl.ID))
			return
		}
		s.storeError(w, err)
		return
	}
	s.adminAudit(ctx, r, how, action, wl.ID, "")
	stored, err := s.store.GetWorkload(ctx, wl.ID)
	if err != nil {
		s.storeError(w, err)
		return
	}
	v, err := s.view(stored)
	if err != nil {
		s.storeError(w, err)
		return
	}
	code := http.StatusCreated
	if action == "replace" {
		code = http.StatusOK
	}
	writeJSON(w, code, v)
}

func (s *Server) handleAdminDelete(w http.ResponseWriter, r *http.Request, how string) {
	id := r.PathValue("id")
	if err := s.store.DeleteWorkload(r.Context(), id); err != nil {
		s.storeError(w, err)
		return
	}
	s.adminAudit(r.Context(), r, how, "delete", id, "")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAdminPolicy(w http.ResponseWriter, r *http.Request, how string) {
	id := r.PathValue("id")
	var doc WorkloadPolicy
	if !decodeAdminBody(w, r, &doc) {
		return
	}
	var invalid error
	err := s.store.UpdateWorkload(r.Context(), id, func(wl *store.Workload) error {
		if invalid = doc.Validate(wl.TEE); invalid != nil {
			return invalid
		}
		wl.Policy, _ = json.Marshal(doc)
		wl.UpdatedAt = s.cfg.Now().UTC().Truncate(time.Microsecond)
		return nil
	})
	if invalid != nil {
		adminError(w, http.StatusBadRequest, invalid.Error())
		return
	}
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.adminAudit(r.Context(), r, how, "update_policy", id, "")
	s.handleAdminShow(w, r, how)
}

func (s *Server) handleAdminPassphrase(w http.ResponseWriter, r *http.Request, how string) {
	id := r.PathValue("id")
	var req AdminPassphrase
	if !decodeAdminBody(w, r, &req) {
		return
	}
	if req.Passphrase == "" || len(req.Passphrase) > maxPassphrase {
		adminError(w, http.StatusBadRequest, fmt.Sprintf("passphrase must be 1 to %d bytes", maxPassphrase))
		return
	}
	sealed, err := s.cfg.KEK.Seal([]byte(req.Passphrase), passphraseAAD(id))
	if err != nil {
		s.storeError(w, err)
		return
	}
	err = s.store.UpdateWorkload(r.Context(), id, func(wl *store.Workload) error {
		wl.SealedPassphrase = sealed
		wl.UpdatedAt = s.cfg.Now().UTC().Truncate(time.Microsecond)
		return nil
	})
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.adminAudit(r.Context(), r, how, "set_passphrase", id, "")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAdminListResources(w http.ResponseWriter, r *http.Request, how string) {
	id := r.PathValue("id")
	if _, err := s.store.GetWorkload(r.Context(), id); err != nil {
		s.storeError(w, err)
		return
	}
	out, err := s.resourceViews(r.Context(), id)
	if err != nil {
		s.storeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// adminResourcePath checks a resource path of the admin API.
func adminResourcePath(w http.ResponseWriter, r *http.Request) (string, bool) {
	repo, typ, tag := r.PathValue("repo"), r.PathValue("type"), r.PathValue("tag")
	if !kbs.ValidResourcePath(repo, typ, tag) {
		adminError(w, http.StatusBadRequest, "resource path segments must match [A-Za-z0-9_-][A-Za-z0-9_.-]*")
		return "", false
	}
	if _, ok := kbs.IsPassphrasePath(repo, typ, tag); ok {
		adminError(w, http.StatusBadRequest, "default/<workload>/passphrase is the workload's passphrase: set it with PUT .../passphrase")
		return "", false
	}
	return repo + "/" + typ + "/" + tag, true
}

func (s *Server) handleAdminPutResource(w http.ResponseWriter, r *http.Request, how string) {
	id := r.PathValue("id")
	path, ok := adminResourcePath(w, r)
	if !ok {
		return
	}
	value, err := readBody(w, r, maxResource)
	if err != nil {
		adminError(w, http.StatusRequestEntityTooLarge, err.Error())
		return
	}
	sealed, err := s.cfg.KEK.Seal(value, resourceAAD(id, path))
	clear(value)
	if err != nil {
		s.storeError(w, err)
		return
	}
	err = s.store.PutResource(r.Context(), &store.Resource{WorkloadID: id, Path: path, Sealed: sealed,
		UpdatedAt: s.cfg.Now().UTC().Truncate(time.Microsecond)})
	if err != nil {
		s.storeError(w, err)
		return
	}
	s.adminAudit(r.Context(), r, how, "put_resource", id, path)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAdminDeleteResource(w http.ResponseWriter, r *http.Request, how string) {
	id := r.PathValue("id")
	path, ok := adminResourcePath(w, r)
	if !ok {
		return
	}
	if err := s.store.DeleteResource(r.Context(), id, path); err != nil {
		s.storeError(w, err)
		return
	}
	s.adminAudit(r.Context(), r, how, "delete_resource", id, path)
	w.WriteHeader(http.StatusNoContent)
}
