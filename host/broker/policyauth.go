package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
)

// Policies are not secret, but they decide who gets a secret: whoever can
// write the database could otherwise loosen one (add a measurement, drop
// HOST_DATA). authStore stores with every workload a MAC, under a key
// derived from the KEK, over its id, TEE and policy, and refuses to use a
// workload whose MAC does not verify: GetWorkload and UpdateWorkload fail
// with store.ErrDamaged, listings mark it damaged. Records written before
// policies were authenticated get their MAC once, at the start that first
// runs this version (authenticateLegacyPolicies).

// authStore authenticates workload policies under the KEK.
type authStore struct {
	store.Store
	k *kek.KEK
}

func authenticatePolicies(s store.Store, k *kek.KEK) store.Store {
	if _, ok := s.(*authStore); ok {
		return s
	}
	return &authStore{Store: s, k: k}
}

// canonicalJSON re-encodes JSON with sorted keys and no spaces (numbers
// kept as written), so that PostgreSQL's jsonb, which reorders keys,
// yields the same bytes as the broker wrote.
func canonicalJSON(raw []byte) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}

func policyMAC(k *kek.KEK, w *store.Workload) []byte {
	return k.MAC(canonicalJSON(w.Policy), "workload-policy", w.ID, w.TEE)
}

// verifyPolicy checks w's MAC.
func (a *authStore) verifyPolicy(w *store.Workload) error {
	if len(w.PolicyMAC) == 0 {
		return fmt.Errorf("workload %q: %w: its policy carries no authentication (written outside the broker?)", w.ID, store.ErrDamaged)
	}
	if !a.k.VerifyMAC(w.PolicyMAC, canonicalJSON(w.Policy), "workload-policy", w.ID, w.TEE) {
		return fmt.Errorf("workload %q: %w: its policy fails authentication under the key-encryption key (altered in the database?)", w.ID, store.ErrDamaged)
	}
	return nil
}

func (a *authStore) CreateWorkload(ctx context.Context, w *store.Workload) error {
	w.PolicyMAC = policyMAC(a.k, w)
	return a.Store.CreateWorkload(ctx, w)
}

func (a *authStore) PutWorkload(ctx context.Context, w *store.Workload) error {
	w.PolicyMAC = policyMAC(a.k, w)
	return a.Store.PutWorkload(ctx, w)
}

func (a *authStore) UpdateWorkload(ctx context.Context, id string, update func(*store.Workload) error) error {
	return a.Store.UpdateWorkload(ctx, id, func(w *store.Workload) error {
		if err := a.verifyPolicy(w); err != nil {
			return err
		}
		if err := update(w); err != nil {
			return err
		}
		w.ID = id
		w.PolicyMAC = policyMAC(a.k, w)
		return nil
	})
}

func (a *authStore) GetWorkload(ctx context.Context, id string) (*store.Workload, error) {
	w, err := a.Store.GetWorkload(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := a.verifyPolicy(w); err != nil {
		return nil, err
	}
	return w, nil
}

// ConsumeChallengeRead and GetSessionRead drop a workload whose MAC does
// not verify: the caller then reads it with GetWorkload, which refuses it
// with ErrDamaged. An attested session must pass its own MAC check
// (sessionauth.go).
func (a *authStore) ConsumeChallengeRead(ctx context.Context, id string, now time.Time) (*store.Session, *store.Workload, error) {
	sess, w, err := a.Store.ConsumeChallengeRead(ctx, id, now)
	if err != nil {
		return nil, nil, err
	}
	if err := a.verifySession(sess, id); err != nil {
		return nil, nil, err
	}
	return sess, a.verified(w), nil
}

func (a *authStore) GetSessionRead(ctx context.Context, id, workloadID string, now time.Time) (*store.Session, *store.Workload, error) {
	sess, w, err := a.Store.GetSessionRead(ctx, id, workloadID, now)
	if err != nil {
		return nil, nil, err
	}
	if err := a.verifySession(sess, id); err != nil {
		return nil, nil, err
	}
	return sess, a.verified(w), nil
}

// verified is w when its MAC verifies, else nil.
func (a *authStore) verified(w *store.Workload) *store.Workload {
	if w == nil || a.verifyPolicy(w) != nil {
		return nil
	}
	return w
}

func (a *authStore) ListWorkloads(ctx context.Context) ([]*store.Workload, error) {
	all, err := a.Store.ListWorkloads(ctx)
	if err != nil {
		return nil, err
	}
	for i, w := range all {
		if w.Damaged != "" {
			continue
		}
		if err := a.verifyPolicy(w); err != nil {
			all[i] = &store.Workload{ID: w.ID, Damaged: "policy fails authentication"}
		}
	}
	return all, nil
}

// authenticateLegacyPolicies gives a MAC to every workload that has none:
// records written by a broker from before policies were authenticated.
// It runs at start, before the broker serves. It returns how many it
// authenticated.
func authenticateLegacyPolicies(ctx context.Context, s store.Store, k *kek.KEK) (int, error) {
	all, err := s.ListWorkloads(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, w := range all {
		if w.Damaged != "" || len(w.PolicyMAC) > 0 {
			continue
		}
		err := s.UpdateWorkload(ctx, w.ID, func(cur *store.Workload) error {
			if len(cur.PolicyMAC) == 0 {
				cur.PolicyMAC = policyMAC(k, cur)
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("authenticating the policy of workload %q: %w", w.ID, err)
		}
		n++
	}
	return n, nil
}
