package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// GuardOptions tune Guard.
type GuardOptions struct {
	// Timeout bounds every store call (default 5 s).
	Timeout time.Duration
	// MaxInFlight bounds the calls running at once (default 64); beyond it
	// calls fail at once with ErrUnavailable, so a stalled store cannot
	// pile up goroutines.
	MaxInFlight int
	// OnFault, when not nil, is told about each call that failed with
	// ErrUnavailable or ErrCorrupt (for logs).
	OnFault func(op string, err error)
}

// Guarded bounds the calls into a store: each one runs with a deadline
// (and in a goroutine of its own, so that a call that ignores its context,
// such as a bbolt write stuck in fsync, still returns on time), panics
// become errors, failures are classified into ErrUnavailable (retry later)
// and ErrCorrupt (the database is damaged), and Ping reports write health
// for readiness.
type Guarded struct {
	s   Store
	o   GuardOptions
	sem chan struct{}

	panicked atomic.Pointer[string]
}

var _ Store = (*Guarded)(nil)

// Guard wraps s.
func Guard(s Store, o GuardOptions) *Guarded {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 64
	}
	return &Guarded{s: s, o: o, sem: make(chan struct{}, o.MaxInFlight)}
}

// Unwrap returns the guarded store.
func (g *Guarded) Unwrap() Store { return g.s }

// faultNote records, for one request, that a store call failed because the
// store is unavailable, so that the answer can be 503 instead of 500.
type faultNote struct{ unavailable atomic.Bool }

type faultKey struct{}

// WithFaultNote returns a context in which guarded store calls note an
// outage, and a function that reports whether one was noted.
func WithFaultNote(ctx context.Context) (context.Context, func() bool) {
	n := &faultNote{}
	return context.WithValue(ctx, faultKey{}, n), n.unavailable.Load
}

func noteFault(ctx context.Context) {
	if n, ok := ctx.Value(faultKey{}).(*faultNote); ok {
		n.unavailable.Store(true)
	}
}

// Classify maps an error of a store call to the package's errors: the
// sentinel errors pass, failures that retrying may cure become
// ErrUnavailable, and the rest pass as they are.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{ErrNotFound, ErrExists, ErrExpired, ErrNonceUsed, ErrState, ErrDamaged, ErrCorrupt, ErrUnavailable, ErrRolledBack} {
		if errors.Is(err, known) {
			return err
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if len(pe.Code) >= 2 {
			switch pe.Code[:2] {
			case "08", "40", "53", "57", "58", "55", "25":
				// connection, transaction rollback, insufficient
				// resources (disk full), operator intervention and
				// query cancel (statement_timeout), system error,
				// object not in prerequisite state (lock timeout),
				// read-only transaction.
				return fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
		}
		return err
	}
	var errno syscall.Errno
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.As(err, &errno), errors.As(err, &ne), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.Timeout(err), pgconn.SafeToRetry(err):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// call runs fn under the guard.
func (g *Guarded) call(ctx context.Context, op string, write bool, fn func(ctx context.Context) error) error {
	_, err := guardCall(g, ctx, op, write, func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) })
	return err
}

type result[T any] struct {
	v   T
	err error
}

// guardCall runs fn in a goroutine of its own with the call deadline; its
// result travels back only through a channel, so a call abandoned at its
// deadline shares nothing with the caller.
func guardCall[T any](g *Guarded, ctx context.Context, op string, write bool, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	if why := g.panicked.Load(); why != nil {
		noteFault(ctx)
		return zero, fmt.Errorf("%s: %w: %s", op, ErrCorrupt, *why)
	}
	select {
	case g.sem <- struct{}{}:
	default:
		err := fmt.Errorf("%s: %w: %d store calls already waiting", op, ErrUnavailable, cap(g.sem))
		g.failed(ctx, op, write, err)
		return zero, err
	}
	cctx, cancel := context.WithTimeout(ctx, g.o.Timeout)
	defer cancel()
	done := make(chan result[T], 1)
	go func() {
		defer func() { <-g.sem }()
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() {
			if p := recover(); p != nil {
				why := fmt.Sprintf("panic in store call %s: %v", op, p)
				g.panicked.CompareAndSwap(nil, &why)
				done <- result[T]{err: fmt.Errorf("%w: %s", ErrCorrupt, why)}
			}
		}()
		v, err := fn(cctx)
		done <- result[T]{v, err}
	}()
	var res result[T]
	select {
	case res = <-done:
	case <-cctx.Done():
		if ctx.Err() != nil {
			// The caller gave up (client gone, shutdown): not an outage.
			return zero, fmt.Errorf("%s: %w", op, ctx.Err())
		}
		res.err = fmt.Errorf("%w: %s did not finish within %v", ErrUnavailable, op, g.o.Timeout)
	}
	v, err := res.v, res.err
	if err != nil && ctx.Err() != nil {
		return zero, fmt.Errorf("%s: %w", op, err)
	}
	err = Classify(err)
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCorrupt) {
		g.failed(ctx, op, write, err)
		return zero, err
	}
	return v, err
}

func (g *Guarded) failed(ctx context.Context, op string, write bool, err error) {
	noteFault(ctx)
	if g.o.OnFault != nil {
		g.o.OnFault(op, err)
	}
}

// prober is a store with a write probe.
type prober interface {
	Probe(ctx context.Context) error
}

// breakable is a store that can stop serving on damage.
type breakable interface{ Broken() string }

// Ping reports whether the store serves reads and writes: not after a
// panic inside it, and only when its write probe (or, lacking one, its
// ping) succeeds in time. A store that failed a write is judged by the
// probe, a real write, so that it is ready again as soon as writes work.
func (g *Guarded) Ping(ctx context.Context) error {
	if why := g.panicked.Load(); why != nil {
		return fmt.Errorf("%w: %s", ErrCorrupt, *why)
	}
	if b, ok := g.s.(breakable); ok && b.Broken() != "" {
		return fmt.Errorf("%w: %s", ErrCorrupt, b.Broken())
	}
	return g.call(ctx, "probe", true, func(ctx context.Context) error {
		if p, ok := g.s.(prober); ok {
			return p.Probe(ctx)
		}
		return g.s.Ping(ctx)
	})
}

// Close closes the store, waiting at most the call timeout: a store stuck
// on a lock is left behind so that the process can exit.
func (g *Guarded) Close() error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("closing the store: %v", p)
			}
		}()
		done <- g.s.Close()
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(g.o.Timeout):
		return fmt.Errorf("the store did not close within %v", g.o.Timeout)
	}
}

func (g *Guarded) CreateWorkload(ctx context.Context, w *Workload) error {
	return g.call(ctx, "create_workload", true, func(ctx context.Context) error { return g.s.CreateWorkload(ctx, w) })
}

func (g *Guarded) PutWorkload(ctx context.Context, w *Workload) error {
	return g.call(ctx, "put_workload", true, func(ctx context.Context) error { return g.s.PutWorkload(ctx, w) })
}

func (g *Guarded) UpdateWorkload(ctx context.Context, id string, update func(*Workload) error) error {
	return g.call(ctx, "update_workload", true, func(ctx context.Context) error { return g.s.UpdateWorkload(ctx, id, update) })
}

func (g *Guarded) GetWorkload(ctx context.Context, id string) (*Workload, error) {
	return guardCall(g, ctx, "get_workload", false, func(ctx context.Context) (*Workload, error) { return g.s.GetWorkload(ctx, id) })
}

func (g *Guarded) ListWorkloads(ctx context.Context) ([]*Workload, error) {
	return guardCall(g, ctx, "list_workloads", false, func(ctx context.Context) ([]*Workload, error) { return g.s.ListWorkloads(ctx) })
}

func (g *Guarded) DeleteWorkload(ctx context.Context, id string) error {
	return g.call(ctx, "delete_workload", true, func(ctx context.Context) error { return g.s.DeleteWorkload(ctx, id) })
}

func (g *Guarded) PutResource(ctx context.Context, r *Resource) error {
	return g.call(ctx, "put_resource", true, func(ctx context.Context) error { return g.s.PutResource(ctx, r) })
}

func (g *Guarded) GetResource(ctx context.Context, workloadID, path string) (*Resource, error) {
	return guardCall(g, ctx, "get_resource", false, func(ctx context.Context) (*Resource, error) { return g.s.GetResource(ctx, workloadID, path) })
}

func (g *Guarded) ListResources(ctx context.Context, workloadID string) ([]*Resource, error) {
	return guardCall(g, ctx, "list_resources", false, func(ctx context.Context) ([]*Resource, error) { return g.s.ListResources(ctx, workloadID) })
}

func (g *Guarded) DeleteResource(ctx context.Context, workloadID, path string) error {
	return g.call(ctx, "delete_resource", true, func(ctx context.Context) error { return g.s.DeleteResource(ctx, workloadID, path) })
}

func (g *Guarded) CreateSession(ctx context.Context, sess *Session) error {
	return g.call(ctx, "create_session", true, func(ctx context.Context) error { return g.s.CreateSession(ctx, sess) })
}

func (g *Guarded) GetSession(ctx context.Context, id string, now time.Time) (*Session, error) {
	return guardCall(g, ctx, "get_session", false, func(ctx context.Context) (*Session, error) { return g.s.GetSession(ctx, id, now) })
}

func (g *Guarded) ConsumeChallenge(ctx context.Context, id string, now time.Time) (*Session, error) {
	return guardCall(g, ctx, "consume_challenge", true, func(ctx context.Context) (*Session, error) { return g.s.ConsumeChallenge(ctx, id, now) })
}

// sessionRead is a session and the workload read with it.
type sessionRead struct {
	s *Session
	w *Workload
}

func (g *Guarded) ConsumeChallengeRead(ctx context.Context, id string, now time.Time) (*Session, *Workload, error) {
	r, err := guardCall(g, ctx, "consume_challenge_read", true, func(ctx context.Context) (sessionRead, error) {
		s, w, err := g.s.ConsumeChallengeRead(ctx, id, now)
		return sessionRead{s, w}, err
	})
	return r.s, r.w, err
}

func (g *Guarded) GetSessionRead(ctx context.Context, id, workloadID string, now time.Time) (*Session, *Workload, error) {
	r, err := guardCall(g, ctx, "get_session_read", false, func(ctx context.Context) (sessionRead, error) {
		s, w, err := g.s.GetSessionRead(ctx, id, workloadID, now)
		return sessionRead{s, w}, err
	})
	return r.s, r.w, err
}

func (g *Guarded) MarkAttested(ctx context.Context, id, workloadID string, pubKey, claims, mac []byte, at time.Time) error {
	return g.call(ctx, "mark_attested", true, func(ctx context.Context) error {
		return g.s.MarkAttested(ctx, id, workloadID, pubKey, claims, mac, at)
	})
}

func (g *Guarded) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	return guardCall(g, ctx, "delete_expired_sessions", true, func(ctx context.Context) (int, error) { return g.s.DeleteExpiredSessions(ctx, now) })
}
