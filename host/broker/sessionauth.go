package broker

import (
	"context"
	"crypto/hmac"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
)

// Attested sessions in the store are authenticated like policies
// (policyauth.go). A key release trusts an attested session's workload,
// guest key and verified claims as the store returns them, so whoever can
// write the database could otherwise insert an "attested" session of their
// own, with claims copied from a policy (policies are not secret) and a
// key they hold, and be served any workload's secrets. authStore stores
// with every attested session a MAC under the KEK over its ID, workload,
// guest key and claims, and refuses an attested session whose MAC does not
// verify: GetSession, GetSessionRead and the consume calls fail with
// store.ErrDamaged. Challenged and consumed sessions release nothing and
// carry no MAC. An attested session written by a broker from before this
// (or before a KEK rotation) is refused the same way; its guest runs the
// handshake again.

// sessionMAC authenticates what a release uses of an attested session.
// The key and the claims are bytes of any content, so the message is the
// key's length, the key, and the claims.
func sessionMAC(k *kek.KEK, id, workloadID string, pubKey, claims []byte) []byte {
	msg := make([]byte, 0, 8+len(pubKey)+len(claims))
	msg = binary.BigEndian.AppendUint64(msg, uint64(len(pubKey)))
	msg = append(msg, pubKey...)
	msg = append(msg, claims...)
	return k.MAC(msg, "attested-session", id, workloadID)
}

// verifySession checks an attested session's MAC, for the ID it was
// looked up by (a store keyed apart from the record, as bbolt is, could
// otherwise return a copy filed under another key); other states pass.
func (a *authStore) verifySession(s *store.Session, id string) error {
	if s == nil || s.State != store.SessionAttested {
		return nil
	}
	if s.ID != id {
		return fmt.Errorf("session: %w: the record found under this ID names another", store.ErrDamaged)
	}
	want := sessionMAC(a.k, s.ID, s.WorkloadID, s.PubKey, s.Claims)
	if !hmac.Equal(s.MAC, want) {
		return fmt.Errorf("session: %w: the attested session fails authentication under the key-encryption key (written outside the broker, or before its key changed)", store.ErrDamaged)
	}
	return nil
}

func (a *authStore) CreateSession(ctx context.Context, s *store.Session) error {
	if s.State == store.SessionAttested {
		c := *s
		c.MAC = sessionMAC(a.k, s.ID, s.WorkloadID, s.PubKey, s.Claims)
		s = &c
	}
	return a.Store.CreateSession(ctx, s)
}

func (a *authStore) MarkAttested(ctx context.Context, id, workloadID string, pubKey, claims, _ []byte, at time.Time) error {
	return a.Store.MarkAttested(ctx, id, workloadID, pubKey, claims, sessionMAC(a.k, id, workloadID, pubKey, claims), at)
}

func (a *authStore) GetSession(ctx context.Context, id string, now time.Time) (*store.Session, error) {
	s, err := a.Store.GetSession(ctx, id, now)
	if err != nil {
		return nil, err
	}
	if err := a.verifySession(s, id); err != nil {
		return nil, err
	}
	return s, nil
}

func (a *authStore) ConsumeChallenge(ctx context.Context, id string, now time.Time) (*store.Session, error) {
	s, err := a.Store.ConsumeChallenge(ctx, id, now)
	if err != nil {
		return nil, err
	}
	if err := a.verifySession(s, id); err != nil {
		return nil, err
	}
	return s, nil
}
