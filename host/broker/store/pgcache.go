package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
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
// The cache is only used while its listener is connected, listening, and
// current: every listenHeartbeat the listener sends a notification of its
// own, on a channel only it listens to, and notifications arrive in commit
// order, so when its heartbeat comes back it has applied every change
// committed before the heartbeat was sent. The cache is used only while
// the last heartbeat back was sent less than quietLimit ago. So a
// connection that broke silently (a partition drops packets rather than
// closing the socket), a flood of notifications that delays a change, or
// a connection pooler that drops LISTEN turns the cache off within about
// a second. The same statement reads the firing mode of the workload
// triggers: they must be ENABLE ALWAYS (migration 5), else the listener
// starts over and the cache stays off. When the listener's connection fails the cache is
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
	heardAt   time.Time // every change committed before it has been applied
	everHeard bool      // heard since the listener connected
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

// setListening turns the listener's state on or off; either way the
// cache starts empty, and it is used only once heard says the listener
// is current. It reports whether the cache was in use.
func (c *workloadCache) setListening(on bool) (wasLive bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	wasLive = c.everHeard && c.live()
	c.listening = on
	c.heardAt = time.Time{}
	c.everHeard = false
	c.gen++
	clear(c.m)
	return wasLive
}

// heard records that the listener had applied, at t, every change
// committed before t. It reports whether this is the first time since the
// listener connected.
func (c *workloadCache) heard(t time.Time) (first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.heardAt = t
	first = !c.everHeard
	c.everHeard = true
	return first
}

func cloneWorkload(w *Workload) *Workload {
	c := *w
	c.Policy = bytes.Clone(w.Policy)
	c.SealedPassphrase = bytes.Clone(w.SealedPassphrase)
	c.PolicyMAC = bytes.Clone(w.PolicyMAC)
	return &c
}

// listen keeps a connection of its own LISTENing on workloadsChannel and
// feeds the cache, until ctx ends. It logs when the cache goes off and
// when it is in use again.
func (s *Postgres) listen(ctx context.Context, cfg *pgx.ConnConfig) {
	defer close(s.listenDone)
	for {
		err := s.listenOnce(ctx, cfg)
		if s.cache.setListening(false) && ctx.Err() == nil {
			s.log.Warn("workload cache off: every workload read goes to the database until its listener hears the server again", "err", err)
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(listenRetry):
		}
	}
}

// heartbeatGiveUp is how long the listener waits for its own heartbeat
// before it starts over on a new connection.
const heartbeatGiveUp = 10 * time.Second

// triggerCheckSQL sends the listener's heartbeat and reads the firing mode
// of the workload triggers in one statement: "AA" (ENABLE ALWAYS, both
// present) when every write to workloads is heard.
const triggerCheckSQL = `SELECT coalesce((SELECT string_agg(tgenabled::text, '' ORDER BY tgname) FROM pg_trigger
	WHERE tgrelid = 'workloads'::regclass AND tgname IN ('workloads_changed', 'workloads_truncated')), '')
	FROM (SELECT pg_notify($1, $2)) AS heartbeat`

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
	// The heartbeat channel is this connection's own.
	var tok [8]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return err
	}
	beat := "sealroot_heartbeat_" + hex.EncodeToString(tok[:])
	for _, ch := range []string{workloadsChannel, beat} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return err
		}
	}
	s.cache.setListening(true)
	var (
		seq         uint64
		sentAt      time.Time
		outstanding bool
		nextAt      time.Time // when the next heartbeat is due
	)
	for {
		if !outstanding && !time.Now().Before(nextAt) {
			seq++
			sentAt = time.Now()
			ectx, cancel := context.WithTimeout(ctx, quietLimit)
			var modes string
			err := conn.QueryRow(ectx, triggerCheckSQL, beat, strconv.FormatUint(seq, 10)).Scan(&modes)
			cancel()
			if err != nil {
				return fmt.Errorf("heartbeat: %w", err)
			}
			if modes != "AA" {
				return fmt.Errorf("the workload triggers are not both enabled always (firing modes %q): changes may go unheard", modes)
			}
			outstanding = true
		}
		wait := listenHeartbeat
		if !outstanding {
			wait = time.Until(nextAt)
		}
		s.cache.wait()
		wctx, cancel := context.WithTimeout(ctx, wait)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		s.cache.wait()
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case !pgconn.Timeout(err):
			return err
		case outstanding && time.Since(sentAt) > heartbeatGiveUp:
			return fmt.Errorf("the listener's own heartbeat did not come back within %s (a flood of notifications, or a pooler that drops LISTEN)", heartbeatGiveUp)
		default:
			continue
		}
		switch n.Channel {
		case workloadsChannel:
			s.cache.changed(n.Payload)
		case beat:
			// Notifications come in commit order: with its own heartbeat
			// back, the listener has applied every change committed
			// before the heartbeat was sent.
			if outstanding && n.Payload == strconv.FormatUint(seq, 10) {
				if s.cache.heard(sentAt) {
					s.log.Info("workload cache in use: its listener hears the server")
				}
				outstanding = false
				nextAt = sentAt.Add(listenHeartbeat)
			}
		}
	}
}

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
