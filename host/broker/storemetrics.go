package broker

import (
	"context"
	"time"

	"github.com/sealroot/sealroot/host/broker/store"
)

// timedStore measures every store operation into
// sealroot_broker_store_seconds{op}.
type timedStore struct {
	s store.Store
	m *metrics
}

func instrumentStore(s store.Store, m *metrics) store.Store {
	if _, ok := s.(*timedStore); ok {
		return s
	}
	return &timedStore{s: s, m: m}
}

func (t *timedStore) done(op string, start time.Time) { observe(t.m.storeOps, op, start) }

func (t *timedStore) CreateWorkload(ctx context.Context, w *store.Workload) error {
	defer t.done("create_workload", time.Now())
	return t.s.CreateWorkload(ctx, w)
}

func (t *timedStore) PutWorkload(ctx context.Context, w *store.Workload) error {
	defer t.done("put_workload", time.Now())
	return t.s.PutWorkload(ctx, w)
}

func (t *timedStore) UpdateWorkload(ctx context.Context, id string, fn func(*store.Workload) error) error {
	defer t.done("update_workload", time.Now())
	return t.s.UpdateWorkload(ctx, id, fn)
}

func (t *timedStore) GetWorkload(ctx context.Context, id string) (*store.Workload, error) {
	defer t.done("get_workload", time.Now())
	return t.s.GetWorkload(ctx, id)
}

func (t *timedStore) ListWorkloads(ctx context.Context) ([]*store.Workload, error) {
	defer t.done("list_workloads", time.Now())
	return t.s.ListWorkloads(ctx)
}

func (t *timedStore) DeleteWorkload(ctx context.Context, id string) error {
	defer t.done("delete_workload", time.Now())
	return t.s.DeleteWorkload(ctx, id)
}

func (t *timedStore) PutResource(ctx context.Context, r *store.Resource) error {
	defer t.done("put_resource", time.Now())
	return t.s.PutResource(ctx, r)
}

func (t *timedStore) GetResource(ctx context.Context, workloadID, path string) (*store.Resource, error) {
	defer t.done("get_resource", time.Now())
	return t.s.GetResource(ctx, workloadID, path)
}

func (t *timedStore) ListResources(ctx context.Context, workloadID string) ([]*store.Resource, error) {
	defer t.done("list_resources", time.Now())
	return t.s.ListResources(ctx, workloadID)
}

func (t *timedStore) DeleteResource(ctx context.Context, workloadID, path string) error {
	defer t.done("delete_resource", time.Now())
	return t.s.DeleteResource(ctx, workloadID, path)
}

func (t *timedStore) CreateSession(ctx context.Context, s *store.Session) error {
	defer t.done("create_session", time.Now())
	return t.s.CreateSession(ctx, s)
}

func (t *timedStore) GetSession(ctx context.Context, id string, now time.Time) (*store.Session, error) {
	defer t.done("get_session", time.Now())
	return t.s.GetSession(ctx, id, now)
}

func (t *timedStore) ConsumeChallenge(ctx context.Context, id string, now time.Time) (*store.Session, error) {
	defer t.done("consume_challenge", time.Now())
	return t.s.ConsumeChallenge(ctx, id, now)
}

func (t *timedStore) ConsumeChallengeRead(ctx context.Context, id string, now time.Time) (*store.Session, *store.Workload, error) {
	defer t.done("consume_challenge_read", time.Now())
	return t.s.ConsumeChallengeRead(ctx, id, now)
}

func (t *timedStore) GetSessionRead(ctx context.Context, id, workloadID string, now time.Time) (*store.Session, *store.Workload, error) {
	defer t.done("get_session_read", time.Now())
	return t.s.GetSessionRead(ctx, id, workloadID, now)
}

func (t *timedStore) MarkAttested(ctx context.Context, id, workloadID string, pubKey, claims, mac []byte, at time.Time) error {
	defer t.done("mark_attested", time.Now())
	return t.s.MarkAttested(ctx, id, workloadID, pubKey, claims, mac, at)
}

func (t *timedStore) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	defer t.done("delete_expired_sessions", time.Now())
	return t.s.DeleteExpiredSessions(ctx, now)
}

func (t *timedStore) Ping(ctx context.Context) error {
	defer t.done("ping", time.Now())
	return t.s.Ping(ctx)
}

func (t *timedStore) Close() error { return t.s.Close() }
