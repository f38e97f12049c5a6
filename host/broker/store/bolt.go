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
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// maxBatch bounds the writes that share one transaction.
const maxBatch = 256

// BoltOptions tune OpenBoltWith.
type BoltOptions struct {
	// CheckTimeout bounds the consistency check at open (default 30 s);
	// a check that does not finish in time fails the open.
	CheckTimeout time.Duration
	// SkipCheck opens without the page-by-page consistency check (the
	// meta pages and the file size are checked regardless).
	SkipCheck bool
	// AcceptRollback opens a database whose last transaction is older than
	// the one the sequence file recorded (after a deliberate restore of an
	// older file).
	AcceptRollback bool
}

// Bolt is the embedded store.
//
// bbolt panics on some damaged pages, sometimes with its write lock held.
// Every call into bbolt therefore goes through view or update, which turn
// a panic (or a memory fault on a truncated file) into ErrCorrupt and mark
// the store broken: later calls fail at once instead of waiting for a lock
// that will never be released, and Close does not wait for it either.
type Bolt struct {
	db   *bolt.DB
	path string
	seq  *seqFile

	broken atomic.Pointer[string]

	bmu   sync.Mutex
	group *batchGroup
	// cmu is held by the leader committing a group (boltbatch.go).
	cmu sync.Mutex
}

var _ Store = (*Bolt)(nil)

// OpenBolt opens (creating when needed, mode 0600) the database at path,
// checks it and applies pending migrations. A second process on the same
// file fails after a few seconds instead of waiting forever for the lock.
func OpenBolt(path string) (*Bolt, error) { return OpenBoltWith(path, BoltOptions{}) }

// OpenBoltWith is OpenBolt with options. An existing file is refused when
// it is empty, truncated, has two damaged meta pages, fails bbolt's
// consistency check, or is older than the last acknowledged write the
// sequence file (path + ".seq") recorded; the error names the file and
// says what to run.
func OpenBoltWith(path string, o BoltOptions) (*Bolt, error) {
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 30 * time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	var info *boltFileInfo
	if _, err := os.Stat(path); err == nil {
		if info, err = inspectBoltFile(path); err != nil {
			return nil, damagedFileError(path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db, err := openBoltRecovering(path)
	if err != nil {
		if errors.Is(err, bolterrors.ErrTimeout) {
			return nil, fmt.Errorf("opening %s: another broker holds its lock", path)
		}
		if errors.Is(err, ErrCorrupt) {
			return nil, damagedFileError(path, err)
		}
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	db.MaxBatchDelay = batchDelay
	s := &Bolt{db: db, path: path}
	fail := func(err error) (*Bolt, error) {
		s.Close()
		return nil, err
	}
	if info != nil && !o.SkipCheck {
		if err := s.check(o.CheckTimeout); err != nil {
			if errors.Is(err, ErrUnavailable) {
				return fail(fmt.Errorf("%s: %w; check it with `bbolt check %s` while no broker runs", path, err, path))
			}
			return fail(damagedFileError(path, err))
		}
	}
	if s.seq, err = openSeqFile(path + ".seq"); err != nil {
		return fail(err)
	}
	txid, err := s.TxID()
	if err != nil {
		return fail(damagedFileError(path, err))
	}
	if rec := s.seq.get(); rec > txid && !o.AcceptRollback {
		why := ""
		if info != nil && info.Damaged != "" {
			why = " (" + info.Damaged + ", so bbolt fell back to the older one)"
		}
		return fail(fmt.Errorf("%s: %w: its last transaction is %d but writes up to transaction %d were acknowledged%s; "+
			"restore the newest backup with `sealroot broker restore`, or, to serve this older state knowingly, "+
			"remove %s.seq", path, ErrRolledBack, txid, rec, why, path))
	}
	if err := s.migrate(); err != nil {
		return fail(fmt.Errorf("migrating %s: %w", path, err))
	}
	return s, nil
}

// damagedFileError says what to do about a damaged database file.
func damagedFileError(path string, err error) error {
	return fmt.Errorf("the database file %s is damaged and will not be served: %w; "+
		"inspect it with `bbolt check %s` (go.etcd.io/bbolt/cmd/bbolt), then restore the last backup "+
		"(`sealroot broker restore`) or start over (`sealroot broker --start-over`)", path, err, path)
}

// openBoltRecovering opens the file, turning a panic or fault inside bbolt
// into ErrCorrupt.
func openBoltRecovering(path string) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			db, err = nil, fmt.Errorf("%w: bbolt failed opening it: %v", ErrCorrupt, p)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
}

// check runs bbolt's consistency check (every page reachable once, keys
// ordered, freelist sound) for at most timeout.
func (s *Bolt) check(timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		errc <- s.view(func(tx *bolt.Tx) error {
			var errs []string
			for err := range tx.Check() {
				if len(errs) < 5 {
					errs = append(errs, err.Error())
				}
			}
			if len(errs) > 0 {
				return fmt.Errorf("%w: consistency check: %s", ErrCorrupt, strings.Join(errs, "; "))
			}
			return nil
		})
	}()
	select {
	case err := <-errc:
		return err
	case <-time.After(timeout):
		// The check still holds a read transaction: closing would wait
		// for it, so the store is left broken instead.
		s.markBroken("the consistency check did not finish")
		return fmt.Errorf("%w: the consistency check did not finish within %v", ErrUnavailable, timeout)
	}
}

// TxID is the id of the last committed transaction.
func (s *Bolt) TxID() (uint64, error) {
	var id uint64
	err := s.view(func(tx *bolt.Tx) error {
		id = uint64(tx.ID())
		return nil
	})
	return id, err
}

// Path is the database file.
func (s *Bolt) Path() string { return s.path }

// Broken reports why the store stopped serving ("" when it serves).
func (s *Bolt) Broken() string {
	if p := s.broken.Load(); p != nil {
		return *p
	}
	return ""
}

func (s *Bolt) markBroken(why string) {
	s.broken.CompareAndSwap(nil, &why)
}

// guardBolt runs fn, turning a panic or memory fault into ErrCorrupt.
func (s *Bolt) guardBolt(fn func() error) (err error) {
	if why := s.Broken(); why != "" {
		return fmt.Errorf("%w: %s", ErrCorrupt, why)
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			why := fmt.Sprintf("bbolt panicked on %s: %v", s.path, p)
			s.markBroken(why)
			err = fmt.Errorf("%w: %s", ErrCorrupt, why)
		}
	}()
	return fn()
}

func (s *Bolt) view(fn func(*bolt.Tx) error) error {
	return s.guardBolt(func() error { return s.db.View(fn) })
}

// update runs fn in a write transaction.
func (s *Bolt) update(fn func(*bolt.Tx) error) error {
	return s.guardBolt(func() error { return s.db.Update(fn) })
}

// durable runs fn in a write transaction whose commit is an acknowledged
// change of workloads, resources or the state record: its transaction id
// goes to the sequence file once it is committed, so a later fallback to
// an older meta page is detected at open.
func (s *Bolt) durable(fn func(*bolt.Tx) error) error {
	var id uint64
	err := s.update(func(tx *bolt.Tx) error {
		id = uint64(tx.ID())
		return fn(tx)
	})
	if err == nil && s.seq != nil {
		if serr := s.seq.advance(id); serr != nil {
			// The change is committed; only the rollback check is weaker.
			return nil
		}
	}
	return err
}

func (s *Bolt) migrate() error {
	return s.durable(func(tx *bolt.Tx) error {
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
		if version == uint64(len(boltMigrations)) {
			return nil
		}
		return meta.Put(keySchema, binary.BigEndian.AppendUint64(nil, uint64(len(boltMigrations))))
	})
}

// SchemaVersion reports the applied schema version.
func (s *Bolt) SchemaVersion() (int, error) {
	var v int
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta).Get(keySchema)
		if len(b) != 8 {
			return errors.New("no schema version")
		}
		v = int(binary.BigEndian.Uint64(b))
		return nil
	})
	return v, err
}

// Close closes the database. A broken store is not closed (bbolt may hold
// its own lock forever); the process is expected to exit.
func (s *Bolt) Close() error {
	if s.seq != nil {
		s.seq.close()
	}
	if why := s.Broken(); why != "" {
		return fmt.Errorf("not closing %s: %s", s.path, why)
	}
	return s.guardBolt(s.db.Close)
}

func (s *Bolt) Ping(ctx context.Context) error {
	return s.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketWorkloads) == nil {
			return fmt.Errorf("%w: workloads bucket missing", ErrCorrupt)
		}
		return nil
	})
}

// minFreeBytes is the free space below which a bbolt store reports itself
// not ready: bbolt grows its file in steps, and a full disk fails writes
// while reads go on.
var minFreeBytes uint64 = 1 << 20

// Probe checks that the store can take writes: it commits a small write
// and checks the free space of the file system holding the file.
func (s *Bolt) Probe(ctx context.Context) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(s.path), &st); err == nil {
		if free := st.Bavail * uint64(st.Bsize); free < minFreeBytes {
			return fmt.Errorf("%w: the file system of %s has %d bytes free", ErrUnavailable, s.path, free)
		}
	}
	return s.update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte("probe"), []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	})
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("record %q: %w: %v", key, ErrDamaged, err)
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
	return s.durable(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketWorkloads)
		if b.Get([]byte(w.ID)) != nil {
			return fmt.Errorf("workload %q: %w", w.ID, ErrExists)
		}
		return putJSON(b, []byte(w.ID), w)
	})
}

func (s *Bolt) PutWorkload(ctx context.Context, w *Workload) error {
	return s.durable(func(tx *bolt.Tx) error {
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
	return s.durable(func(tx *bolt.Tx) error {
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
	err := s.view(func(tx *bolt.Tx) error {
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
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketWorkloads).ForEach(func(k, v []byte) error {
			var w Workload
			if err := json.Unmarshal(v, &w); err != nil || w.ID != string(k) {
				// One bad record never hides the others.
				why := "record does not decode"
				if err == nil {
					why = fmt.Sprintf("record holds workload %q", w.ID)
				}
				out = append(out, &Workload{ID: string(k), Damaged: why})
				return nil
			}
			out = append(out, &w)
			return nil
		})
	})
	return out, err
}

func (s *Bolt) DeleteWorkload(ctx context.Context, id string) error {
	return s.durable(func(tx *bolt.Tx) error {
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
	return s.durable(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketWorkloads).Get([]byte(r.WorkloadID)) == nil {
			return fmt.Errorf("workload %q: %w", r.WorkloadID, ErrNotFound)
		}
		return putJSON(tx.Bucket(bucketResources), resourceKey(r.WorkloadID, r.Path), r)
	})
}

func (s *Bolt) GetResource(ctx context.Context, workloadID, path string) (*Resource, error) {
	var r Resource
	err := s.view(func(tx *bolt.Tx) error {
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
	err := s.view(func(tx *bolt.Tx) error {
		prefix := resourcePrefix(workloadID)
		c := tx.Bucket(bucketResources).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r Resource
			if err := json.Unmarshal(v, &r); err != nil {
				out = append(out, &Resource{WorkloadID: workloadID, Path: string(k[len(prefix):]), Damaged: "record does not decode"})
				continue
			}
			out = append(out, &r)
		}
		return nil
	})
	return out, err
}

func (s *Bolt) DeleteResource(ctx context.Context, workloadID, path string) error {
	return s.durable(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketResources)
		k := resourceKey(workloadID, path)
		if b.Get(k) == nil {
			return fmt.Errorf("resource %q of workload %q: %w", path, workloadID, ErrNotFound)
		}
		return b.Delete(k)
	})
}

// Session writes go through batch, which coalesces concurrent writers into
// one fsync'd transaction. batch may run a function twice (when another
// function in the batch fails), so each function recomputes its results
// from the transaction it is given.

func (s *Bolt) CreateSession(ctx context.Context, sess *Session) error {
	return s.batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		if b.Get([]byte(sess.ID)) != nil {
			return fmt.Errorf("session: %w", ErrExists)
		}
		return putJSON(b, []byte(sess.ID), sess)
	})
}

func (s *Bolt) GetSession(ctx context.Context, id string, now time.Time) (*Session, error) {
	var sess Session
	err := s.view(func(tx *bolt.Tx) error {
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
	err := s.batch(func(tx *bolt.Tx) error {
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

// ConsumeChallengeRead reads the workload after the consuming commit:
// an embedded file has no round trip to save.
func (s *Bolt) ConsumeChallengeRead(ctx context.Context, id string, now time.Time) (*Session, *Workload, error) {
	sess, err := s.ConsumeChallenge(ctx, id, now)
	if err != nil {
		return nil, nil, err
	}
	return sess, s.readWorkload(ctx, sess.WorkloadID), nil
}

func (s *Bolt) GetSessionRead(ctx context.Context, id, workloadID string, now time.Time) (*Session, *Workload, error) {
	sess, err := s.GetSession(ctx, id, now)
	if err != nil {
		return nil, nil, err
	}
	return sess, s.readWorkload(ctx, workloadID), nil
}

// readWorkload is workload id, or nil when there is none or it cannot be
// read: the caller's GetWorkload then says why (a damaged database
// included).
func (s *Bolt) readWorkload(ctx context.Context, id string) *Workload {
	if id == "" {
		return nil
	}
	w, err := s.GetWorkload(ctx, id)
	if err != nil {
		return nil
	}
	return w
}

func (s *Bolt) MarkAttested(ctx context.Context, id, workloadID string, pubKey, claims, mac []byte, at time.Time) error {
	err := s.batch(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSessions)
		var sess Session
		if err := getJSON(b, []byte(id), &sess); err != nil {
			return err
		}
		if sess.State != SessionConsumed {
			return ErrState
		}
		sess.State, sess.WorkloadID, sess.PubKey, sess.Claims, sess.MAC, sess.AttestedAt = SessionAttested, workloadID, pubKey, claims, mac, at
		return putJSON(b, []byte(id), &sess)
	})
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	return nil
}

func (s *Bolt) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
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
