package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Bucket names. Resources are keyed "workloadID\x00path" so that one
// workload's resources are contiguous and ordered by path.
var (
	bucketMeta      = []byte("meta")
	bucketWorkloads = []byte("workloads")
	bucketResources = []byte("resources")
	bucketSessions  = []byte("sessions")
	keySchema       = []byte("schema_version")
)

// boltMigrations are applied in order inside one transaction each; the
// schema version is stored in the meta bucket. Append, never edit.
var boltMigrations = []func(tx *bolt.Tx) error{
	// 1: the initial buckets.
	func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketWorkloads, bucketResources, bucketSessions} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	},
}

// lockTimeout bounds the wait for another process's lock on the file.
var lockTimeout = 5 * time.Second

// batchDelay is how long a session write waits for others to share its
// fsync: short enough not to show in one handshake's latency, long enough
// to coalesce writers under load.
var batchDelay = 2 * time.Millisecond

// Bolt is the embedded store.
type Bolt struct {
	db *bolt.DB
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (creating when needed, mode 0600) the database at path and
// applies pending migrations. A second process on the same file fails after
// a few seconds instead of waiting forever for the lock.
func OpenBolt(path string) (*Bolt, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("opening %s: another broker holds its lock", path)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	s := &Bolt{db: db}
	if err := s.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrating %s: %w", path, err)
	}
	return s, nil
}

func (s *Bolt) migrate() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		var version uint64
		if v := meta.Get(keySchema); v != nil {
			if len(v) != 8 {
				return errors.New("corrupt schema version")
			}
			version = binary.BigEndian.Uint64(v)
		}
		if version > uint64(len(boltMigrations)) {
			return fmt.Errorf("database schema version %d is newer than this broker (%d)", version, len(boltMigrations))
		}
		for i := version; i < uint64(len(boltMigrations)); i++ {
			if err := boltMigrations[i](tx); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, uint64(len(boltMigrations))))
	})
}

// SchemaVersion reports the applied schema version.
func (s *Bolt) SchemaVersion() (int, error) {
	var v int
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta).Get(keySchema)
		if len(b) != 8 {
			return errors.New("no schema version")
		}
		v = int(binary.BigEndian.Uint64(b))
		return nil
	})
	return v, err
}

func (s *Bolt) Close() error { return s.db.Close() }

func (s *Bolt) Ping(ctx context.Context) error {
	return s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketWorkloads) == nil {
			return errors.New("workloads bucket missing")
		}
		return nil
	})
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decoding record %q: %w", key, err)
	}
	return nil
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding record %q: %w", key, err)
	}
	return b.Put(key, raw)
}

func (s *Bolt) CreateWorkload(ctx context.Context, w *Workload) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWorkloads)
		if b.Get([]byte(w.ID)) != nil {
			return fmt.Errorf("workload %q: %w", w.ID, ErrExists)
		}
		return putJSON(b, []byte(w.ID), w)
	})
}

func (s *Bolt) PutWorkload(ctx context.Context, w *Workload) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWorkloads)
		var old Workload
		if err := getJSON(b, []byte(w.ID), &old); err == nil {
			cp := *w
			cp.CreatedAt = old.CreatedAt
			return putJSON(b, []byte(w.ID), &cp)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		return putJSON(b, []byte(w.ID), w)
	})
}

func (s *Bolt) UpdateWorkload(ctx context.Context, id string, update func(*Workload) error) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWorkloads)
		var w Workload
		if err := getJSON(b, []byte(id), &w); err != nil {
			if errors.Is(err, ErrNotFound) {
				return fmt.Errorf("workload %q: %w", id, ErrNotFound)
			}
			return err
		}
		if err := update(&w); err != nil {
			return err
		}
		w.ID = id
		return putJSON(b, []byte(id), &w)
	})
}

func (s *Bolt) GetWorkload(ctx context.Context, id string) (*Workload, error) {
	var w Workload
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketWorkloads), []byte(id), &w)
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("workload %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &w, nil
}

func (s *Bolt) ListWorkloads(ctx context.Context) ([]*Workload, error) {
	var out []*Workload
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWorkloads).ForEach(func(k, v []byte) error {
			var w Workload
			if err := json.Unmarshal(v, &w); err != nil {
				return fmt.Errorf("decoding workload %q: %w", k, err)
			}
			out = append(out, &w)
			return nil
		})
	})
	return out, err
}

func (s *Bolt) DeleteWorkload(ctx context.Context, id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWorkloads)
		if b.Get([]byte(id)) == nil {
			return fmt.Errorf("workload %q: %w", id, ErrNotFound)
		}
		if err := b.Delete([]byte(id)); err != nil {
			return err
		}
		prefix := resourcePrefix(id)
		c := tx.Bucket(bucketResources).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

func resourcePrefix(workloadID string) []byte {
	return append([]byte(workloadID), 0)
}

func resourceKey(workloadID, path string) []byte {
	return append(resourcePrefix(workloadID), path...)
}

func (s *Bolt) PutResource(ctx context.Context, r *Resource) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketWorkloads).Get([]byte(r.WorkloadID)) == nil {
			return fmt.Errorf("workload %q: %w", r.WorkloadID, ErrNotFound)
		}
		return putJSON(tx.Bucket(bucketResources), resourceKey(r.WorkloadID, r.Path), r)
	})
}

func (s *Bolt) GetResource(ctx context.Context, workloadID, path string) (*Resource, error) {
	var r Resource
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketResources), resourceKey(workloadID, path), &r)
	})
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("resource %q of workload %q: %w", path, workloadID, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func (s *Bolt) ListResources(ctx context.Context, workloadID string) ([]*Resource, error) {
	var out []*Resource
	err := s.db.View(func(tx *bolt.Tx) error {
		prefix := resourcePrefix(workloadID)
		c := tx.Bucket(bucketResources).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r Resource
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decoding resource %q: %w", k, err)
			}
			out = append(out, &r)
		}
		return nil
	})
	return out, err
}

func (s *Bolt) DeleteResource(ctx context.Context, workloadID, path string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketResources)
		k := resourceKey(workloadID, path)
		if b.Get(k) == nil {
			return fmt.Errorf("resource %q of workload %q: %w", path, workloadID, ErrNotFound)
		}
		return b.Delete(k)
	})
}

// Session writes go through Batch, which coalesces concurrent writers into
// one fsync'd transaction. Batch may run a function twice (when another
// function in the batch fails), so each function recomputes its results
// from the transaction it is given.

func (s *Bolt) CreateSession(ctx context.Context, sess *Session) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b.Get([]byte(sess.ID)) != nil {
			return fmt.Errorf("session: %w", ErrExists)
		}
		return putJSON(b, []byte(sess.ID), sess)
	})
}

func (s *Bolt) GetSession(ctx context.Context, id string, now time.Time) (*Session, error) {
	var sess Session
	err := s.db.View(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketSessions), []byte(id), &sess)
	})
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	if !now.Before(sess.ExpiresAt) {
		return nil, fmt.Errorf("session: %w", ErrExpired)
	}
	return &sess, nil
}

func (s *Bolt) ConsumeChallenge(ctx context.Context, id string, now time.Time) (*Session, error) {
	var out *Session
	err := s.db.Batch(func(tx *bolt.Tx) error {
		out = nil
		b := tx.Bucket(bucketSessions)
		var sess Session
		if err := getJSON(b, []byte(id), &sess); err != nil {
			return err
		}
		if !now.Before(sess.ExpiresAt) {
			return ErrExpired
		}
		if sess.State != SessionChallenged {
			return ErrNonceUsed
		}
		sess.State = SessionConsumed
		if err := putJSON(b, []byte(id), &sess); err != nil {
			return err
		}
		out = &sess
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	return out, nil
}

func (s *Bolt) MarkAttested(ctx context.Context, id, workloadID string, pubKey, claims []byte, at time.Time) error {
	err := s.db.Batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		var sess Session
		if err := getJSON(b, []byte(id), &sess); err != nil {
			return err
		}
		if sess.State != SessionConsumed {
			return ErrState
		}
		sess.State, sess.WorkloadID, sess.PubKey, sess.Claims, sess.AttestedAt = SessionAttested, workloadID, pubKey, claims, at
		return putJSON(b, []byte(id), &sess)
	})
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return nil
}

func (s *Bolt) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		n = 0
		c := tx.Bucket(bucketSessions).Cursor()
		for k, v := c.First(); k != nil; {
			var sess Session
			if err := json.Unmarshal(v, &sess); err != nil || !now.Before(sess.ExpiresAt) {
				deleted := bytes.Clone(k)
				if err := c.Delete(); err != nil {
					return err
				}
				n++
				// Re-seek: the next key is the first one after the
				// deleted key.
				k, v = c.Seek(deleted)
				continue
			}
			k, v = c.Next()
		}
		return nil
	})
	return n, err
}
