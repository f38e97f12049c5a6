package store

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The workload cache of a PostgreSQL store (docs/broker.md, "Storage and
// replicas").
//
// A handshake reads its workload at /attest and again at /key, so that it
// is judged and served against the policy current at that moment. On
// PostgreSQL each read is a round trip. The cache keeps the workloads read
// in memory and drops an entry as soon as the database says the row
// changed: migration 3 puts a trigger on the workloads table that sends a
// notification (pg_notify on workloadsChannel, the workload's ID as the
// payload, an empty payload for TRUNCATE) in the same transaction as any
// insert, update or delete, whoever makes it (this replica, another one,
// `sealroot broker` commands, or an operator's SQL). PostgreSQL delivers it
// to every listening session when that transaction commits.
//
// The cache is only used while its listener is connected and listening,
// and has heard from the database within the last quietLimit: when no
// notification comes for listenHeartbeat, the listener pings the server
// on its connection, so a connection that broke silently (a partition
// drops packets rather than closing the socket) turns the cache off within
// about a second. When the listener's connection fails the cache is
// emptied and every read goes to the database until a new connection
// listens again, and the cache is emptied once more then (changes made in
// between were not heard). A read that races with a change cannot leave a
// stale entry: each notification bumps a generation counter, and a row
// read from the database is cached only if no notification arrived while
// it was being read. So an entry is at most as old as the delivery of the notification
// that would drop it, a few milliseconds on a healthy database, against a
// policy change made while a handshake is between its reads anyway.
//
// Every read returns its own copy, which the wrappers above the store
// (the policy MAC check, store.Guarded) handle as a fresh read; only rows
// found are cached, at most maxCachedWorkloads of them.

// workloadsChannel is the notification channel of workload changes.
const workloadsChannel = "sealroot_workloads"

// maxCachedWorkloads bounds the cache; past it, it is emptied and refills
// with the workloads in use.
const maxCachedWorkloads = 10000

// listenRetry is how long the listener waits before it reconnects.
var listenRetry = time.Second

// listenHeartbeat is how long the listener waits for a notification
// before it pings the server; quietLimit is how long the cache is used
// after the listener last heard from the server.
const (
	listenHeartbeat = 250 * time.Millisecond
	quietLimit      = time.Second
)

type workloadCache struct {
	mu        sync.Mutex
	listening bool      // the listener is connected and LISTENs
	heardAt   time.Time // when the listener last heard from the server
	gen       uint64
	m         map[string]*Workload

	// afterRead, when set (tests), runs between a database read and the
	// decision to cache its row.
	afterRead func()
	// hold, when set (tests), runs in the listener before it waits and
	// before it applies what it heard: a test freezes the listener there.
	hold func()
}

// wait runs the hold hook, if any.
func (c *workloadCache) wait() {
	c.mu.Lock()
	h := c.hold
	c.mu.Unlock()
	if h != nil {
		h()
	}
}

// get returns a copy of the cached workload id, or the generation to
// pass to put after reading it from the database.
func (c *workloadCache) get(id string) (*Workload, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live() {
		// Entries from before a silence are not trusted after it.
		clear(c.m)
		return nil, 0, false
	}
	if w, ok := c.m[id]; ok {
		return cloneWorkload(w), 0, true
	}
	return nil, c.gen, false
}

// put caches w, read from the database when the generation was gen, if
// nothing changed since.
func (c *workloadCache) put(w *Workload, gen uint64) {
	if c.afterRead != nil {
		c.afterRead()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live() || c.gen != gen {
		return
	}
	if len(c.m) >= maxCachedWorkloads {
		clear(c.m)
	}
	c.m[w.ID] = cloneWorkload(w)
}

// changed drops id (every entry for ""), and makes reads in flight
// uncacheable.
func (c *workloadCache) changed(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if id == "" {
		clear(c.m)
		return
	}
	delete(c.m, id)
}

// live reports whether the cache may be used. Called with mu held.
func (c *workloadCache) live() bool {
	return c.listening && time.Since(c.heardAt) < quietLimit
}

// setListening turns the cache on or off; either way it starts empty.
func (c *workloadCache) setListening(on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listening = on
	c.heardAt = time.Now()
	c.gen++
	clear(c.m)
}

// heard records that the listener heard from the server at t.
func (c *workloadCache) heard(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.heardAt = t
}

func cloneWorkload(w *Workload) *Workload {
	c := *w
	c.Policy = bytes.Clone(w.Policy)
	c.SealedPassphrase = bytes.Clone(w.SealedPassphrase)
	c.PolicyMAC = bytes.Clone(w.PolicyMAC)
	return &c
}

// listen keeps a connection of its own LISTENing on workloadsChannel and
// feeds the cache, until ctx ends.
func (s *Postgres) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	defer close(s.listenDone)
	for {
		err := s.listenOnce(ctx, cfg)
		s.cache.setListening(false)
		if ctx.Err() != nil {
			return
		}
		_ = err // the cache is off until the next connection listens
		select {
		case <-ctx.Done():
			return
		case <-time.After(listenRetry):
		}
	}
}

func (s *Postgres) listenOnce(ctx context.Context, cfg *pgx.ConnConfig) error {
	cctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+time.Second)
	conn, err := pgx.ConnectConfig(cctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	s.listenPID.Store(conn.PgConn().PID())
	if _, err := conn.Exec(ctx, "LISTEN "+workloadsChannel); err != nil {
		return err
	}
	s.cache.setListening(true)
	for {
		s.cache.wait()
		wctx, cancel := context.WithTimeout(ctx, listenHeartbeat)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		s.cache.wait()
		switch {
		case err == nil:
			if n.Channel == workloadsChannel {
				s.cache.changed(n.Payload)
			}
			s.cache.heard(time.Now())
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		case !pgconn.Timeout(err):
			return err
		}
		// Quiet for a heartbeat: ask the server. A notification that
		// arrives with the reply is applied before the cache is trusted
		// again.
		sent := time.Now()
		pctx, cancel := context.WithTimeout(ctx, quietLimit)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return err
		}
		for {
			n, err := conn.WaitForNotification(doneCtx)
			if err != nil || n == nil {
				break
			}
			if n.Channel == workloadsChannel {
				s.cache.changed(n.Payload)
			}
		}
		s.cache.heard(sent)
	}
}

// doneCtx is a context that is already done: WaitForNotification with it
// returns the notifications already received, and then an error at once.
var doneCtx = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

// getWorkloadCached is GetWorkload through the cache.
func (s *Postgres) getWorkloadCached(ctx context.Context, id string) (*Workload, error) {
	w, gen, ok := s.cache.get(id)
	if ok {
		return w, nil
	}
	w, err := s.readWorkload(ctx, id)
	if err != nil {
		return nil, err
	}
	s.cache.put(w, gen)
	return w, nil
}
