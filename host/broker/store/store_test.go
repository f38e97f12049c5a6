package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/broker/store/storetest"
)

func forEachBackend(t *testing.T, fn func(t *testing.T, s store.Store)) {
	for name, open := range storetest.Backends() {
		t.Run(name, func(t *testing.T) { fn(t, open(t)) })
	}
}

// now is a fixed instant at microsecond precision (what PostgreSQL keeps).
var now = time.Date(2026, 11, 28, 10, 0, 0, 123456000, time.UTC)

func workload(id string) *store.Workload {
	return &store.Workload{ID: id, TEE: "snp", Policy: json.RawMessage(`{"measurements":["aa"]}`),
		SealedPassphrase: []byte{1, 2, 3}, TEEConfig: `{"flags":{"bits":15}}`, Origin: "register",
		CreatedAt: now, UpdatedAt: now}
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func TestWorkloads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		if err := s.CreateWorkload(ctx, workload("b")); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateWorkload(ctx, workload("b")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		if err := s.CreateWorkload(ctx, workload("a")); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetWorkload(ctx, "b")
		if err != nil {
			t.Fatal(err)
		}
		want := workload("b")
		if got.ID != "b" || got.TEE != want.TEE || string(got.SealedPassphrase) != string(want.SealedPassphrase) ||
			got.TEEConfig != want.TEEConfig || got.Origin != want.Origin || !got.CreatedAt.Equal(now) ||
			!sameJSON(t, got.Policy, want.Policy) {
			t.Fatalf("read back %+v", got)
		}
		if _, err := s.GetWorkload(ctx, "zz"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("missing workload: %v", err)
		}

		// Replace keeps CreatedAt.
		later := now.Add(time.Hour)
		repl := workload("b")
		repl.TEE, repl.CreatedAt, repl.UpdatedAt, repl.Origin = "tdx", later, later, "admin"
		if err := s.PutWorkload(ctx, repl); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetWorkload(ctx, "b")
		if got.TEE != "tdx" || !got.CreatedAt.Equal(now) || !got.UpdatedAt.Equal(later) || got.Origin != "admin" {
			t.Fatalf("after put %+v", got)
		}

		// Update is read-modify-write; an error from the function aborts.
		if err := s.UpdateWorkload(ctx, "b", func(w *store.Workload) error {
			w.SealedPassphrase = []byte("new")
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("boom")
		if err := s.UpdateWorkload(ctx, "b", func(w *store.Workload) error {
			w.SealedPassphrase = []byte("lost")
			return boom
		}); !errors.Is(err, boom) {
			t.Fatalf("update error %v", err)
		}
		got, _ = s.GetWorkload(ctx, "b")
		if string(got.SealedPassphrase) != "new" {
			t.Fatalf("passphrase %q after updates", got.SealedPassphrase)
		}
		if err := s.UpdateWorkload(ctx, "zz", func(*store.Workload) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update missing: %v", err)
		}

		list, err := s.ListWorkloads(ctx)
		if err != nil || len(list) != 2 || list[0].ID != "a" || list[1].ID != "b" {
			t.Fatalf("list %v %v", list, err)
		}
		if err := s.DeleteWorkload(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteWorkload(ctx, "a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestResources(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		if err := s.PutResource(ctx, &store.Resource{WorkloadID: "w", Path: "a/b/c", Sealed: []byte("x"), UpdatedAt: now}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("resource of a missing workload: %v", err)
		}
		for _, id := range []string{"w", "w2"} {
			if err := s.CreateWorkload(ctx, workload(id)); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range []string{"r/t/b", "r/t/a"} {
			if err := s.PutResource(ctx, &store.Resource{WorkloadID: "w", Path: p, Sealed: []byte(p), UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
		}
		// The same path under another workload is a different resource.
		if err := s.PutResource(ctx, &store.Resource{WorkloadID: "w2", Path: "r/t/a", Sealed: []byte("other"), UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutResource(ctx, &store.Resource{WorkloadID: "w", Path: "r/t/a", Sealed: []byte("v2"), UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		r, err := s.GetResource(ctx, "w", "r/t/a")
		if err != nil || string(r.Sealed) != "v2" {
			t.Fatalf("get %v %v", r, err)
		}
		list, err := s.ListResources(ctx, "w")
		if err != nil || len(list) != 2 || list[0].Path != "r/t/a" || list[1].Path != "r/t/b" {
			t.Fatalf("list %v %v", list, err)
		}
		if err := s.DeleteResource(ctx, "w", "r/t/b"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteResource(ctx, "w", "r/t/b"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete %v", err)
		}
		// Deleting a workload deletes its resources and only its own.
		if err := s.DeleteWorkload(ctx, "w"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetResource(ctx, "w", "r/t/a"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("resource survived its workload: %v", err)
		}
		if r, err := s.GetResource(ctx, "w2", "r/t/a"); err != nil || string(r.Sealed) != "other" {
			t.Fatalf("other workload's resource: %v", err)
		}
	})
}

func session(id string) *store.Session {
	return &store.Session{ID: id, Dialect: "krun", TEE: "snp", Nonce: "nonce-" + id, State: store.SessionChallenged,
		WorkloadID: "w", Client: "127.0.0.1:1", CreatedAt: now, ExpiresAt: now.Add(5 * time.Minute)}
}

func TestSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		if err := s.CreateSession(ctx, session("s1")); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSession(ctx, session("s1")); !errors.Is(err, store.ErrExists) {
			t.Fatalf("duplicate session: %v", err)
		}
		got, err := s.GetSession(ctx, "s1", now)
		if err != nil || got.Nonce != "nonce-s1" || got.State != store.SessionChallenged || got.WorkloadID != "w" {
			t.Fatalf("get %+v %v", got, err)
		}
		if _, err := s.GetSession(ctx, "nope", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown session: %v", err)
		}
		if _, err := s.GetSession(ctx, "s1", now.Add(5*time.Minute)); !errors.Is(err, store.ErrExpired) {
			t.Fatalf("expired session: %v", err)
		}

		// Marking attested requires a consumed challenge.
		if err := s.MarkAttested(ctx, "s1", "w", nil, nil, nil, now); !errors.Is(err, store.ErrState) {
			t.Fatalf("attested before consume: %v", err)
		}
		c, err := s.ConsumeChallenge(ctx, "s1", now)
		if err != nil || c.State != store.SessionConsumed || c.Nonce != "nonce-s1" {
			t.Fatalf("consume %+v %v", c, err)
		}
		if _, err := s.ConsumeChallenge(ctx, "s1", now); !errors.Is(err, store.ErrNonceUsed) {
			t.Fatalf("second consume: %v", err)
		}
		if err := s.MarkAttested(ctx, "s1", "w", []byte("pk"), []byte(`{"tee":"snp"}`), []byte("mac"), now.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		got, _ = s.GetSession(ctx, "s1", now)
		if got.State != store.SessionAttested || string(got.PubKey) != "pk" || string(got.MAC) != "mac" || !got.AttestedAt.Equal(now.Add(time.Second)) {
			t.Fatalf("attested session %+v", got)
		}
		if _, err := s.ConsumeChallenge(ctx, "s1", now); !errors.Is(err, store.ErrNonceUsed) {
			t.Fatalf("consume after attest: %v", err)
		}

		// A stale challenge cannot be consumed.
		if err := s.CreateSession(ctx, session("s2")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ConsumeChallenge(ctx, "s2", now.Add(6*time.Minute)); !errors.Is(err, store.ErrExpired) {
			t.Fatalf("stale consume: %v", err)
		}
		if _, err := s.ConsumeChallenge(ctx, "nope", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown consume: %v", err)
		}

		n, err := s.DeleteExpiredSessions(ctx, now.Add(10*time.Minute))
		if err != nil || n != 2 {
			t.Fatalf("purged %d, %v", n, err)
		}
		if _, err := s.GetSession(ctx, "s1", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("purged session still there: %v", err)
		}
	})
}

// TestSessionReads: ConsumeChallengeRead and GetSessionRead do what
// ConsumeChallenge and GetSession do, and bring the workload along (nil
// when there is none to bring); a failed read changes nothing.
func TestSessionReads(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		if err := s.CreateWorkload(ctx, workload("w")); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"r1", "r2", "r3"} {
			if err := s.CreateSession(ctx, session(id)); err != nil {
				t.Fatal(err)
			}
		}
		orphan := session("r4")
		orphan.WorkloadID = "gone"
		unnamed := session("r5")
		unnamed.WorkloadID = ""
		for _, sess := range []*store.Session{orphan, unnamed} {
			if err := s.CreateSession(ctx, sess); err != nil {
				t.Fatal(err)
			}
		}

		// Failures spend nothing: unknown, expired.
		if _, _, err := s.ConsumeChallengeRead(ctx, "nope", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
		if _, _, err := s.ConsumeChallengeRead(ctx, "r2", now.Add(6*time.Minute)); !errors.Is(err, store.ErrExpired) {
			t.Fatalf("stale: %v", err)
		}
		if got, _ := s.GetSession(ctx, "r2", now); got.State != store.SessionChallenged {
			t.Fatalf("a stale consume changed the session: %+v", got)
		}

		c, w, err := s.ConsumeChallengeRead(ctx, "r1", now)
		if err != nil || c.State != store.SessionConsumed || c.Nonce != "nonce-r1" {
			t.Fatalf("consume %+v %v", c, err)
		}
		if w == nil || w.ID != "w" || w.TEE != "snp" || !sameJSON(t, w.Policy, workload("w").Policy) || string(w.SealedPassphrase) != "\x01\x02\x03" {
			t.Fatalf("workload read with the consume: %+v", w)
		}
		if got, _ := s.GetSession(ctx, "r1", now); got.State != store.SessionConsumed {
			t.Fatalf("consumed session reads back as %q", got.State)
		}
		if _, _, err := s.ConsumeChallengeRead(ctx, "r1", now); !errors.Is(err, store.ErrNonceUsed) {
			t.Fatalf("second consume: %v", err)
		}
		if _, err := s.ConsumeChallenge(ctx, "r1", now); !errors.Is(err, store.ErrNonceUsed) {
			t.Fatalf("plain consume after the pipelined one: %v", err)
		}
		for _, id := range []string{"r4", "r5"} {
			c, w, err := s.ConsumeChallengeRead(ctx, id, now)
			if err != nil || c.ID != id || w != nil {
				t.Fatalf("%s: session %+v workload %+v, %v; want the session and no workload", id, c, w, err)
			}
		}

		if err := s.MarkAttested(ctx, "r1", "w", []byte("pk"), nil, nil, now); err != nil {
			t.Fatal(err)
		}
		g, w, err := s.GetSessionRead(ctx, "r1", "w", now)
		if err != nil || g.State != store.SessionAttested || string(g.PubKey) != "pk" || w == nil || w.ID != "w" {
			t.Fatalf("get-read: %+v %+v %v", g, w, err)
		}
		if g, w, err := s.GetSessionRead(ctx, "r1", "other", now); err != nil || g.ID != "r1" || w != nil {
			t.Fatalf("get-read of an unknown workload: %+v %+v %v", g, w, err)
		}
		if _, _, err := s.GetSessionRead(ctx, "nope", "w", now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("get-read unknown: %v", err)
		}
		if _, _, err := s.GetSessionRead(ctx, "r1", "w", now.Add(5*time.Minute)); !errors.Is(err, store.ErrExpired) {
			t.Fatalf("get-read expired: %v", err)
		}
	})
}

// TestConsumeRace: of many concurrent consumers of one nonce, exactly one
// wins, on each backend (two PostgreSQL handles play two replicas).
func TestConsumeRace(t *testing.T) {
	for name, open := range storetest.Backends() {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			handles := []store.Store{s}
			if name == "postgres" {
				dsn := storetest.PostgresDSN(t)
				a, err := store.OpenPostgres(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				b, err := store.OpenPostgres(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { a.Close(); b.Close() })
				handles = []store.Store{a, b}
			}
			ctx := context.Background()
			for round := range 5 {
				id := fmt.Sprintf("race-%d", round)
				if err := handles[0].CreateSession(ctx, session(id)); err != nil {
					t.Fatal(err)
				}
				var wins, used atomic.Int32
				var wg sync.WaitGroup
				for i := range 16 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						var err error
						if i%3 == 0 { // the pipelined form races as the plain one does
							_, _, err = handles[i%len(handles)].ConsumeChallengeRead(ctx, id, now)
						} else {
							_, err = handles[i%len(handles)].ConsumeChallenge(ctx, id, now)
						}
						switch {
						case err == nil:
							wins.Add(1)
						case errors.Is(err, store.ErrNonceUsed):
							used.Add(1)
						default:
							t.Errorf("consume: %v", err)
						}
					}()
				}
				wg.Wait()
				if wins.Load() != 1 || used.Load() != 15 {
					t.Fatalf("round %d: %d winners, %d refused", round, wins.Load(), used.Load())
				}
			}
		})
	}
}

func TestMigrationsIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	for range 2 {
		s, err := store.OpenBolt(path)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := s.SchemaVersion(); err != nil || v != 1 {
			t.Fatalf("bbolt schema version %d, %v", v, err)
		}
		s.Close()
	}
	t.Run("postgres", func(t *testing.T) {
		dsn := storetest.PostgresDSN(t)
		// Replicas starting together serialize on the advisory lock.
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := store.OpenPostgres(context.Background(), dsn)
				if err != nil {
					errs <- err
					return
				}
				defer s.Close()
				if v, err := s.SchemaVersion(context.Background()); err != nil || v != 5 {
					errs <- fmt.Errorf("schema version %d, %w", v, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}

func TestBoltLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	s, err := store.OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := store.OpenBolt(path); err == nil {
		t.Fatal("a second broker opened a locked database")
	}
}

func TestOpenAndRedact(t *testing.T) {
	if _, err := store.Open(context.Background(), "mysql://x", t.TempDir()); err == nil {
		t.Fatal("unknown store accepted")
	}
	s, err := store.Open(context.Background(), "bbolt", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for in, want := range map[string]string{
		"postgres://u:secret@h:5432/db?x=y": "postgres://u:xxxxx@h:5432/db?x=y",
		"postgres://u@h/db":                 "postgres://u@h/db",
		"postgresql://u:p:q@h/db":           "postgresql://u:xxxxx@h/db",
	} {
		if got := store.RedactDSN(in); got != want {
			t.Errorf("RedactDSN(%q) = %q, want %q", in, got, want)
		}
	}
	_, err = store.Open(context.Background(), "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=1", t.TempDir())
	if err == nil {
		t.Fatal("connected to a closed port")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error carries the password: %v", err)
	}
}
