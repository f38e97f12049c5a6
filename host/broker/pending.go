package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/store"
)

// Where sessions live (docs/broker.md "Sessions and flooding").
//
// /auth is unauthenticated, so whatever it costs, anyone can make the
// broker pay again and again. A challenged session is therefore never
// written to disk by a broker in memory mode (the default on bbolt): it
// lives in memory, at most MaxPendingSessions of them (and at most
// MaxPendingPerClient from one client address), each until its TTL (plus a
// minute of grace, so a late /attest still hears "expired" rather than
// "unknown"). /attest spends the nonce by taking the session out of that
// table, and the session it settles stays in memory too, in a second table
// of settled sessions: attested (with the guest key and the verified
// claims, read by /key and the resource endpoints) when the attestation
// succeeds, consumed when it is refused, so that a second /attest on the
// nonce is refused as a reuse. A handshake then writes nothing to disk.
// The settled table holds at most MaxPendingSessions sessions until their
// TTL plus the grace; past that cap, /attest writes the session to the
// store once, as before, so a storm larger than the cap still completes.
// A restart forgets what memory held: a spent nonce is then unknown (and
// still refused), and a guest between /attest and /key hears "unknown
// session" and runs the handshake again.
//
// Replicas on one PostgreSQL database must let a guest call /auth on one
// and /attest on another, so there (PendingShared) /auth writes the
// session to the shared store as before, and the cap bounds the rows each
// replica may have outstanding: storage stays at most replicas × cap rows,
// which the periodic purge removes after expiry. A deployment that routes
// each client to one replica (sticky sessions) can keep sessions in memory
// on PostgreSQL too (--pending-sessions memory): then /key must reach the
// replica that settled the session, as /attest the one that challenged it.

// Pending-session modes (Config.PendingSessions, --pending-sessions).
const (
	PendingMemory = "memory"
	PendingShared = "store"
)

// defaultPending is the mode for st: shared on PostgreSQL (replicas),
// memory on bbolt (one process owns the file). Wrappers (store.Guarded,
// which Run puts around every store) are looked through.
func defaultPending(st store.Store) string {
	for {
		if _, ok := st.(*store.Postgres); ok {
			return PendingShared
		}
		u, ok := st.(interface{ Unwrap() store.Store })
		if !ok {
			return PendingMemory
		}
		st = u.Unwrap()
	}
}

// DefaultMaxPendingSessions bounds the challenged sessions a broker holds.
const DefaultMaxPendingSessions = 10000

// pendingGrace is how long an expired session is still known, to answer
// "expired" rather than "unknown".
const pendingGrace = time.Minute

// errPendingFull is /auth refused because the cap is reached.
var errPendingFull = errors.New("too many sessions awaiting attestation")

type pendingEntry struct {
	id      string
	expires time.Time
}

// pendingSessions holds (memory mode) or counts (shared mode) the
// challenged sessions of this broker.
type pendingSessions struct {
	shared    bool
	max       int
	perClient int
	st        store.Store

	mu       sync.Mutex
	live     map[string]*store.Session // memory mode: the session; shared: a stub with the expiry and client
	queue    []pendingEntry            // in creation (and so expiry) order
	byClient map[string]int            // live sessions per client address

	// Memory mode: sessions /attest settled (attested or consumed), at
	// most max of them, in the order they were settled. That order is
	// expiry order give or take one TTL (a session settles within its
	// TTL), so forget may release one up to a TTL late; every read checks
	// the expiry itself.
	settled      map[string]*settledSession
	settledQueue []pendingEntry
}

// settledSession is a session /attest settled in memory, with its verified
// claims as a value, so /key need not parse them again (sess.Claims is nil).
type settledSession struct {
	sess   store.Session
	claims *attest.Claims // nil for a consumed session
}

// newPendingSessions holds at most max sessions, at most perClient of
// them from one client address (0: a tenth of max), so that one flooding
// client cannot lock every other client out.
func newPendingSessions(st store.Store, shared bool, limit, perClient int) *pendingSessions {
	if limit <= 0 {
		limit = DefaultMaxPendingSessions
	}
	if perClient <= 0 {
		perClient = max(1, limit/10)
	}
	return &pendingSessions{shared: shared, max: limit, perClient: perClient, st: st,
		live: map[string]*store.Session{}, byClient: map[string]int{}, settled: map[string]*settledSession{}}
}

// drop removes a live entry. Called with mu held.
func (p *pendingSessions) drop(id string) {
	s, ok := p.live[id]
	if !ok {
		return
	}
	delete(p.live, id)
	if p.byClient[s.Client]--; p.byClient[s.Client] <= 0 {
		delete(p.byClient, s.Client)
	}
}

// forget drops entries whose grace is over. Sessions share one TTL, so the
// queue is in expiry order. Called with mu held.
func (p *pendingSessions) forget(now time.Time) {
	i := 0
	for ; i < len(p.queue); i++ {
		e := p.queue[i]
		if now.Before(e.expires.Add(pendingGrace)) {
			break
		}
		if s, ok := p.live[e.id]; ok && s.ExpiresAt.Equal(e.expires) {
			p.drop(e.id)
		}
	}
	p.queue = p.queue[i:]
	// Consumed entries leave the map at once but their queue slot only
	// here; rebuild the queue when it is mostly such leftovers.
	if len(p.queue) > 2*p.max {
		q := make([]pendingEntry, 0, len(p.live))
		for _, e := range p.queue {
			if s, ok := p.live[e.id]; ok && s.ExpiresAt.Equal(e.expires) {
				q = append(q, e)
			}
		}
		p.queue = q
	}
	i = 0
	for ; i < len(p.settledQueue); i++ {
		e := p.settledQueue[i]
		if now.Before(e.expires.Add(pendingGrace)) {
			break
		}
		delete(p.settled, e.id)
	}
	p.settledQueue = p.settledQueue[i:]
}

// add admits a new challenged session, or refuses with errPendingFull.
func (p *pendingSessions) add(ctx context.Context, sess *store.Session, now time.Time) error {
	p.mu.Lock()
	p.forget(now)
	if len(p.live) >= p.max || p.byClient[sess.Client] >= p.perClient {
		p.mu.Unlock()
		return errPendingFull
	}
	entry := sess
	if p.shared {
		entry = &store.Session{ExpiresAt: sess.ExpiresAt, Client: sess.Client}
	}
	p.live[sess.ID] = entry
	p.byClient[sess.Client]++
	p.queue = append(p.queue, pendingEntry{id: sess.ID, expires: sess.ExpiresAt})
	p.mu.Unlock()
	if !p.shared {
		return nil
	}
	if err := p.st.CreateSession(ctx, sess); err != nil {
		p.mu.Lock()
		p.drop(sess.ID)
		p.mu.Unlock()
		return err
	}
	return nil
}

// take removes a live session from memory and returns it (memory mode);
// an expired one stays until its grace is over, so that every later try
// hears "expired" too.
func (p *pendingSessions) take(id string, now time.Time) (sess *store.Session, held bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.live[id]
	if !ok {
		return nil, false, nil
	}
	if !now.Before(s.ExpiresAt) {
		return nil, !p.shared, fmt.Errorf("session: %w", store.ErrExpired)
	}
	p.drop(id)
	return s, !p.shared, nil
}

// peek returns a copy of a session held in memory, expired or not.
func (p *pendingSessions) peek(id string) (*store.Session, bool) {
	if p.shared {
		return nil, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.live[id]; ok {
		c := *s
		return &c, true
	}
	if s, ok := p.settled[id]; ok {
		c := s.sess
		return &c, true
	}
	return nil, false
}

// lookup returns the settled session id names, as store.GetSession does
// (ErrExpired past its expiry): from memory when this broker holds it,
// with a copy of its claims, else from the store (shared mode, a session
// written past the cap, or one written by a broker before it kept
// sessions in memory) with nil claims: the caller parses sess.Claims.
// From the store, workload workloadID (when not "") is read in the same
// round trip and returned as pre; nil otherwise (see loadWorkload).
func (p *pendingSessions) lookup(ctx context.Context, id, workloadID string, now time.Time) (sess *store.Session, claims *attest.Claims, pre *store.Workload, err error) {
	if !p.shared {
		p.mu.Lock()
		s, ok := p.settled[id]
		p.mu.Unlock()
		if ok {
			if !now.Before(s.sess.ExpiresAt) {
				return nil, nil, nil, fmt.Errorf("session: %w", store.ErrExpired)
			}
			c := s.sess
			if s.claims != nil {
				cl := *s.claims
				claims = &cl
			}
			return &c, claims, nil, nil
		}
	}
	if workloadID == "" {
		sess, err = p.st.GetSession(ctx, id, now)
		return sess, nil, nil, err
	}
	sess, pre, err = p.st.GetSessionRead(ctx, id, workloadID, now)
	return sess, nil, pre, err
}

// consume spends a session's nonce, as store.ConsumeChallenge does: it
// returns the session now consumed, or ErrNonceUsed, ErrExpired,
// ErrNotFound. In shared mode the store spends it. A session held in
// memory is spent by leaving memory, under the lock: no other /attest can
// take it from then on, and a restart forgets it. The attempt is then
// recorded once, when it is settled (settle): deferred is then true. A
// nonce already settled in memory is refused here as the store would
// refuse it (ErrExpired, else ErrNonceUsed). A session the store spends
// comes with the workload it names, read in the same round trip, as pre
// (nil when memory held the session; see loadWorkload).
func (p *pendingSessions) consume(ctx context.Context, id string, now time.Time) (sess *store.Session, pre *store.Workload, deferred bool, err error) {
	sess, held, err := p.take(id, now)
	if err != nil && held {
		return nil, nil, false, err
	}
	if !held && !p.shared {
		// Spent already, in memory: refused as the store refuses it.
		p.mu.Lock()
		s, ok := p.settled[id]
		p.mu.Unlock()
		switch {
		case ok && !now.Before(s.sess.ExpiresAt):
			return nil, nil, false, fmt.Errorf("session: %w", store.ErrExpired)
		case ok:
			return nil, nil, false, fmt.Errorf("session: %w", store.ErrNonceUsed)
		}
	}
	if !held {
		// Shared mode, or a session this process does not hold: the
		// store decides (consumed, unknown, or challenged by a replica).
		sess, pre, err := p.st.ConsumeChallengeRead(ctx, id, now)
		return sess, pre, false, err
	}
	spent := *sess
	spent.State = store.SessionConsumed
	return &spent, nil, true, nil
}

// settle records a session that consume took from memory: as attested
// (with the guest key and its verified claims) when the attestation
// succeeded, else as consumed (claims nil), so that a later /attest on its
// nonce finds it and is refused as a reuse. It keeps the session in the
// settled table while that has room, and otherwise writes it to the store
// (with the claims as JSON) in one conditional insert, which fails with
// ErrNonceUsed if the id is already there. Either way the nonce was spent
// by consume. The claims must not change afterwards.
func (p *pendingSessions) settle(ctx context.Context, sess *store.Session, claims *attest.Claims, now time.Time) error {
	p.mu.Lock()
	p.forget(now)
	if _, ok := p.settled[sess.ID]; ok {
		p.mu.Unlock()
		return fmt.Errorf("session: %w", store.ErrNonceUsed)
	}
	if len(p.settled) < p.max {
		p.settled[sess.ID] = &settledSession{sess: *sess, claims: claims}
		p.settledQueue = append(p.settledQueue, pendingEntry{id: sess.ID, expires: sess.ExpiresAt})
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	if claims != nil {
		cj, err := json.Marshal(claims)
		if err != nil {
			return fmt.Errorf("session claims: %w", err)
		}
		c := *sess
		c.Claims = cj
		sess = &c
	}
	if err := p.st.CreateSession(ctx, sess); err != nil {
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("session: %w", store.ErrNonceUsed)
		}
		return err
	}
	return nil
}

// sweep forgets sessions past their grace (PurgeExpired calls it).
func (p *pendingSessions) sweep(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.forget(now)
}

// count is the number of sessions held or counted.
func (p *pendingSessions) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.live)
}

// countSettled is the number of settled sessions held in memory.
func (p *pendingSessions) countSettled() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.settled)
}
