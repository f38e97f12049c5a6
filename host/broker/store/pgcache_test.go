package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/broker/store/storetest"
)

// replicas opens two stores on one fresh schema, as two broker replicas,
// and a plain connection to it, as an operator's psql; it waits until
// the first store's workload cache listens.
func replicas(t *testing.T) (a, b *store.Postgres, sql *pgx.Conn) {
	t.Helper()
	dsn := storetest.PostgresDSN(t)
	ctx := context.Background()
	var err error
	if a, err = store.OpenPostgres(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if b, err = store.OpenPostgres(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if sql, err = pgx.Connect(ctx, dsn); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sql.Close(context.Background()) })
	eventually(t, "the cache is in use", a.CacheLive)
	return a, b, sql
}

// eventually waits up to 10 s for cond: a notification is delivered
// asynchronously, in milliseconds on an idle machine.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: not %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// createCached creates workload id (policy "before") on replica b and
// waits until replica a has it cached, alone.
func createCached(t *testing.T, a, b *store.Postgres, id string) {
	t.Helper()
	if err := b.CreateWorkload(context.Background(), withPolicy(id, "before")); err != nil {
		t.Fatal(err)
	}
	eventually(t, id+" is cached", func() bool {
		return strings.Contains(policyOf(t, a, id), "before") && len(a.CachedIDs()) == 1
	})
}

func policyOf(t *testing.T, s store.Store, id string) string {
	t.Helper()
	w, err := s.GetWorkload(context.Background(), id)
	if err != nil {
		return err.Error()
	}
	return string(w.Policy)
}

func withPolicy(id, m string) *store.Workload {
	w := workload(id)
	w.Policy = json.RawMessage(`{"measurements":["` + m + `"]}`)
	return w
}

// TestWorkloadCache: a replica's cached workload follows every change to
// its row, whoever makes it: this replica (at once), another replica, an
// operator's SQL (update, delete, truncate); and each read is a copy.
func TestWorkloadCache(t *testing.T) {
	a, b, sql := replicas(t)
	ctx := context.Background()
	if err := a.CreateWorkload(ctx, withPolicy("x", "aa")); err != nil {
		t.Fatal(err)
	}
	if p := policyOf(t, a, "x"); !strings.Contains(p, "aa") {
		t.Fatalf("read %s", p)
	}
	// A read that overlaps the notification of the insert is not cached;
	// the next one is.
	eventually(t, "x is cached", func() bool {
		policyOf(t, a, "x")
		return slices.Equal(a.CachedIDs(), []string{"x"})
	})
	// A copy per read: changing one changes neither the cache nor the next.
	w, _ := a.GetWorkload(ctx, "x")
	w.Policy[2] = 'X'
	w.SealedPassphrase[0] = 9
	if w2, _ := a.GetWorkload(ctx, "x"); w2.Policy[2] == 'X' || w2.SealedPassphrase[0] == 9 {
		t.Fatal("a read shares memory with the cache")
	}
	// Missing workloads are not cached.
	if _, err := a.GetWorkload(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}

	// This replica's own write is read back at once, before its listener
	// hears of it.
	release := a.HoldListener()
	defer release() // idempotent; before Close, which waits for the listener
	if err := a.PutWorkload(ctx, withPolicy("x", "a1")); err != nil {
		t.Fatal(err)
	}
	if p := policyOf(t, a, "x"); !strings.Contains(p, "a1") {
		t.Fatalf("after its own put, replica a read %s", p)
	}
	if err := a.UpdateWorkload(ctx, "x", func(w *store.Workload) error {
		w.Policy = json.RawMessage(`{"measurements":["a2"]}`)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if p := policyOf(t, a, "x"); !strings.Contains(p, "a2") {
		t.Fatalf("after its own update, replica a read %s", p)
	}
	release()

	// Another replica's write.
	if err := b.PutWorkload(ctx, withPolicy("x", "bb")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica a reads replica b's policy", func() bool { return strings.Contains(policyOf(t, a, "x"), "bb") })

	// An operator's SQL.
	if _, err := sql.Exec(ctx, `UPDATE workloads SET policy = '{"measurements":["cc"]}' WHERE id = 'x'`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica a reads the operator's policy", func() bool { return strings.Contains(policyOf(t, a, "x"), "cc") })
	if _, err := sql.Exec(ctx, `DELETE FROM workloads WHERE id = 'x'`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted workload is gone", func() bool {
		_, err := a.GetWorkload(ctx, "x")
		return errors.Is(err, store.ErrNotFound)
	})
	for _, id := range []string{"y", "z"} {
		if err := b.CreateWorkload(ctx, withPolicy(id, "dd")); err != nil {
			t.Fatal(err)
		}
		if p := policyOf(t, a, id); !strings.Contains(p, "dd") {
			t.Fatalf("read %s", p)
		}
	}
	if _, err := sql.Exec(ctx, `TRUNCATE workloads CASCADE`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the truncated workloads are gone", func() bool {
		_, err := a.GetWorkload(ctx, "y")
		return errors.Is(err, store.ErrNotFound) && len(a.CachedIDs()) == 0
	})
}

// TestWorkloadCacheRace: a row read just before a change commits, whose
// notification arrives before the row would be cached, is returned (it
// was current when read) but not cached.
func TestWorkloadCacheRace(t *testing.T) {
	a, b, _ := replicas(t)
	ctx := context.Background()
	gen := a.CacheGeneration()
	if err := b.CreateWorkload(ctx, withPolicy("r", "old")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica a hears the insert", func() bool { return a.CacheGeneration() > gen })
	var once sync.Once
	a.SetCacheAfterRead(func() {
		once.Do(func() {
			gen := a.CacheGeneration()
			if err := b.PutWorkload(ctx, withPolicy("r", "new")); err != nil {
				t.Error(err)
			}
			eventually(t, "replica a hears the change", func() bool { return a.CacheGeneration() > gen })
		})
	})
	if p := policyOf(t, a, "r"); !strings.Contains(p, "old") {
		t.Fatalf("first read %s, want the row as read", p)
	}
	if ids := a.CachedIDs(); len(ids) != 0 {
		t.Fatalf("cached %v: a row older than a change heard meanwhile", ids)
	}
	if p := policyOf(t, a, "r"); !strings.Contains(p, "new") {
		t.Fatalf("second read %s, want the new policy", p)
	}
}

// TestWorkloadCacheListenerLost: when the listener's connection dies, the
// cache is emptied and off until a new connection listens, so a change
// made meanwhile, which the replica never hears of, is read from the
// database.
func TestWorkloadCacheListenerLost(t *testing.T) {
	a, b, sql := replicas(t)
	ctx := context.Background()
	createCached(t, a, b, "l")
	pid := a.ListenerPID()
	if _, err := sql.Exec(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache is off", func() bool { return !a.CacheListening() })
	if err := b.PutWorkload(ctx, withPolicy("l", "after")); err != nil {
		t.Fatal(err)
	}
	if p := policyOf(t, a, "l"); !strings.Contains(p, "after") {
		t.Fatalf("with its listener gone, replica a read %s", p)
	}
	// It listens again on a new connection, and caches again.
	eventually(t, "the cache is in use again", func() bool { return a.CacheLive() && a.ListenerPID() != pid })
	eventually(t, "l is cached again", func() bool {
		policyOf(t, a, "l")
		return slices.Equal(a.CachedIDs(), []string{"l"})
	})
}

// TestWorkloadCacheOff: with NoWorkloadCache every read goes to the
// database.
func TestWorkloadCacheOff(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	s, err := store.OpenPostgresWith(context.Background(), dsn, store.PostgresOptions{NoWorkloadCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateWorkload(context.Background(), withPolicy("o", "aa")); err != nil {
		t.Fatal(err)
	}
	policyOf(t, s, "o")
	if s.CacheListening() || len(s.CachedIDs()) != 0 {
		t.Fatal("the cache is on")
	}
}

// TestWorkloadCacheSilentListener: a listener that hears nothing, not even
// its heartbeat's reply (a connection broken without a reset), turns the
// cache off within about a second, so a change it missed is read from the
// database.
func TestWorkloadCacheSilentListener(t *testing.T) {
	a, b, _ := replicas(t)
	ctx := context.Background()
	createCached(t, a, b, "s")
	release := a.HoldListener()
	defer release()
	if err := b.PutWorkload(ctx, withPolicy("s", "after")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the frozen replica reads the change", func() bool { return strings.Contains(policyOf(t, a, "s"), "after") })
	if ids := a.CachedIDs(); len(ids) != 0 {
		t.Fatalf("cached %v while the listener is silent", ids)
	}
}

// TestWorkloadCacheFlood: a flood of notifications, which anyone who can
// log in to the database may send, delays a change's notification; the
// cache is not used past a second after the change committed, because
// the listener's own heartbeat, sent after the change, is stuck behind
// the flood too.
func TestWorkloadCacheFlood(t *testing.T) {
	a, b, sql := replicas(t)
	ctx := context.Background()
	createCached(t, a, b, "f")
	if _, err := sql.Exec(ctx, `SELECT pg_notify('sealroot_workloads', 'junk' || g) FROM generate_series(1, 600000) g`); err != nil {
		t.Fatal(err)
	}
	if err := b.PutWorkload(ctx, withPolicy("f", "after")); err != nil {
		t.Fatal(err)
	}
	committed := time.Now()
	stale := 0
	for time.Since(committed) < 3*time.Second {
		start := time.Now()
		p := policyOf(t, a, "f")
		if strings.Contains(p, "before") {
			stale++
			if start.Sub(committed) > time.Second+10*time.Millisecond {
				t.Fatalf("read %s after the change committed: still the old policy", start.Sub(committed).Round(time.Millisecond))
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d reads within the first second saw the old policy", stale)
}

// TestWorkloadCacheTriggers: the triggers fire for writes made with
// session_replication_role = replica (logical replication, pg_restore);
// with a trigger disabled the cache turns itself off and every read goes
// to the database.
func TestWorkloadCacheTriggers(t *testing.T) {
	a, b, sql := replicas(t)
	ctx := context.Background()
	createCached(t, a, b, "g")
	tx, err := sql.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SET LOCAL session_replication_role = replica`,
		`UPDATE workloads SET policy = '{"measurements":["replica"]}' WHERE id = 'g'`} {
		if _, err := tx.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "replica a reads the replication-role write", func() bool { return strings.Contains(policyOf(t, a, "g"), "replica") })

	if _, err := sql.Exec(ctx, `ALTER TABLE workloads DISABLE TRIGGER workloads_changed`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = sql.Exec(context.Background(), `ALTER TABLE workloads ENABLE ALWAYS TRIGGER workloads_changed`)
	})
	eventually(t, "the cache is off", func() bool { return !a.CacheLive() })
	if _, err := sql.Exec(ctx, `UPDATE workloads SET policy = '{"measurements":["unheard"]}' WHERE id = 'g'`); err != nil {
		t.Fatal(err)
	}
	if p := policyOf(t, a, "g"); !strings.Contains(p, "unheard") {
		t.Fatalf("with a trigger disabled, replica a read %s", p)
	}
	if _, err := sql.Exec(ctx, `ALTER TABLE workloads ENABLE ALWAYS TRIGGER workloads_changed`); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache is in use again", a.CacheLive)
}
