package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// pgMigrations are the schema versions, applied in order, each in its own
// transaction together with its row in schema_migrations. Append, never
// edit: replicas of different ages may share one database.
var pgMigrations = []string{
	// 1: workloads, resources, sessions.
	`CREATE TABLE workloads (
		id          text PRIMARY KEY,
		tee         text NOT NULL,
		policy      jsonb NOT NULL,
		passphrase  bytea,
		tee_config  text NOT NULL DEFAULT '',
		origin      text NOT NULL DEFAULT '',
		created_at  timestamptz NOT NULL,
		updated_at  timestamptz NOT NULL
	);
	CREATE TABLE resources (
		workload_id text NOT NULL REFERENCES workloads(id) ON DELETE CASCADE,
		path        text NOT NULL,
		value       bytea NOT NULL,
		updated_at  timestamptz NOT NULL,
		PRIMARY KEY (workload_id, path)
	);
	CREATE TABLE sessions (
		id          text PRIMARY KEY,
		dialect     text NOT NULL,
		tee         text NOT NULL,
		nonce       text NOT NULL UNIQUE,
		state       text NOT NULL,
		workload_id text NOT NULL DEFAULT '',
		client      text NOT NULL DEFAULT '',
		created_at  timestamptz NOT NULL,
		expires_at  timestamptz NOT NULL,
		attested_at timestamptz,
		pub_key     bytea,
		claims      bytea
	);
	CREATE INDEX sessions_expires_at ON sessions (expires_at);`,
	// 2: the state record, authenticated policies.
	`CREATE TABLE broker_state (
		key   text PRIMARY KEY,
		value bytea NOT NULL
	);
	ALTER TABLE workloads ADD COLUMN policy_mac bytea;`,
	// 3: notify workload changes, for the replicas' workload caches
	// (pgcache.go). The payload is the ID; empty (every workload) for
	// TRUNCATE, and for an ID too long for a notification.
	`CREATE FUNCTION sealroot_workload_changed() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF TG_OP = 'TRUNCATE' THEN
			PERFORM pg_notify('` + workloadsChannel + `', '');
			RETURN NULL;
		END IF;
		IF TG_OP <> 'INSERT' THEN
			PERFORM pg_notify('` + workloadsChannel + `', CASE WHEN octet_length(OLD.id) <= 1000 THEN OLD.id ELSE '' END);
		END IF;
		IF TG_OP <> 'DELETE' THEN
			PERFORM pg_notify('` + workloadsChannel + `', CASE WHEN octet_length(NEW.id) <= 1000 THEN NEW.id ELSE '' END);
		END IF;
		RETURN NULL;
	END $$;
	CREATE TRIGGER workloads_changed AFTER INSERT OR UPDATE OR DELETE ON workloads
		FOR EACH ROW EXECUTE FUNCTION sealroot_workload_changed();
	CREATE TRIGGER workloads_truncated AFTER TRUNCATE ON workloads
		FOR EACH STATEMENT EXECUTE FUNCTION sealroot_workload_changed();`,
	// 4: authenticated attested sessions.
	`ALTER TABLE sessions ADD COLUMN mac bytea;`,
	// 5: the workload triggers fire whatever session_replication_role
	// says (logical replication's apply, pg_restore's data load), so the
	// caches hear those writes too.
	`ALTER TABLE workloads ENABLE ALWAYS TRIGGER workloads_changed;
	ALTER TABLE workloads ENABLE ALWAYS TRIGGER workloads_truncated;`,
}

// migrationLock is the advisory lock key that serializes migrations of
// replicas starting together ("sealroot" in ASCII).
const migrationLock = 0x7365616c726f6f74

// Postgres is the shared store for several broker replicas.
type Postgres struct {
	pool *pgxpool.Pool

	// The workload cache (pgcache.go) and its listener.
	cache      workloadCache
	stopListen context.CancelFunc
	listenDone chan struct{}
	closeOnce  sync.Once
	listenPID  atomic.Uint32 // the listener's server process (tests)
	log        *slog.Logger
}

var _ Store = (*Postgres)(nil)

// PostgresOptions tune OpenPostgresWith.
type PostgresOptions struct {
	// Password, when not empty, is the password for the connection (it
	// overrides one in the DSN, and PGPASSWORD / PGPASSFILE).
	Password string
	// StatementTimeout is the server-side limit of one statement
	// (default 10 s): a stalled query ends on the server too.
	StatementTimeout time.Duration
	// NoWorkloadCache reads every workload from the database (the cache
	// is described in pgcache.go).
	NoWorkloadCache bool
	// Logger receives the workload cache's state changes (nil: none).
	Logger *slog.Logger
}

// OpenPostgres connects to dsn and applies pending migrations.
func OpenPostgres(ctx context.Context, dsn string) (*Postgres, error) {
	return OpenPostgresWith(ctx, dsn, PostgresOptions{})
}

// OpenPostgresWith is OpenPostgres with options.
func OpenPostgresWith(ctx context.Context, dsn string, o PostgresOptions) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx errors can quote the DSN; keep the password out.
		return nil, fmt.Errorf("postgres dsn %s: invalid", RedactDSN(dsn))
	}
	if o.Password != "" {
		cfg.ConnConfig.Password = o.Password
	}
	if o.StatementTimeout <= 0 {
		o.StatementTimeout = 10 * time.Second
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	if _, set := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !set {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = fmt.Sprint(o.StatementTimeout.Milliseconds())
	}
	if _, set := cfg.ConnConfig.RuntimeParams["lock_timeout"]; !set {
		cfg.ConnConfig.RuntimeParams["lock_timeout"] = fmt.Sprint(o.StatementTimeout.Milliseconds())
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > 5*time.Second {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", RedactDSN(dsn), err)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Postgres{pool: pool, cache: workloadCache{m: map[string]*Workload{}}, log: log}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrating %s: %w", RedactDSN(dsn), err)
	}
	if !o.NoWorkloadCache {
		lctx, cancel := context.WithCancel(context.Background())
		s.stopListen, s.listenDone = cancel, make(chan struct{})
		go s.listen(lctx, cfg.ConnConfig.Copy())
	}
	return s, nil
}

func (s *Postgres) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		var version int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
			return err
		}
		if version > len(pgMigrations) {
			return fmt.Errorf("database schema version %d is newer than this broker (%d)", version, len(pgMigrations))
		}
		for i := version; i < len(pgMigrations); i++ {
			if _, err := tx.Exec(ctx, pgMigrations[i]); err != nil {
				return fmt.Errorf("migration %d: %w", i+1, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, i+1); err != nil {
				return err
			}
		}
		return nil
	})
}

// SchemaVersion reports the applied schema version.
func (s *Postgres) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

func (s *Postgres) Close() error {
	s.closeOnce.Do(func() {
		if s.stopListen != nil {
			s.stopListen()
			<-s.listenDone
		}
		s.pool.Close()
	})
	return nil
}

func (s *Postgres) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// Probe checks that the database takes writes: it commits one small row.
func (s *Postgres) Probe(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO broker_state (key, value) VALUES ('probe', convert_to(now()::text, 'UTF8'))
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`)
	if err != nil {
		return fmt.Errorf("write probe: %w", err)
	}
	return nil
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

const workloadCols = `id, tee, policy, passphrase, tee_config, origin, created_at, updated_at, policy_mac`

func scanWorkload(row pgx.Row) (*Workload, error) {
	var w Workload
	var policy []byte
	if err := row.Scan(&w.ID, &w.TEE, &policy, &w.SealedPassphrase, &w.TEEConfig, &w.Origin, &w.CreatedAt, &w.UpdatedAt, &w.PolicyMAC); err != nil {
		return nil, err
	}
	w.Policy = json.RawMessage(policy)
	return &w, nil
}

func policyJSON(w *Workload) string {
	if len(w.Policy) == 0 {
		return "{}"
	}
	return string(w.Policy)
}

func (s *Postgres) CreateWorkload(ctx context.Context, w *Workload) error {
	defer s.cache.changed(w.ID) // this replica reads its own writes; others hear the trigger
	_, err := s.pool.Exec(ctx, `INSERT INTO workloads (`+workloadCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
		w.ID, w.TEE, policyJSON(w), w.SealedPassphrase, w.TEEConfig, w.Origin, w.CreatedAt, w.UpdatedAt, w.PolicyMAC)
	if isUniqueViolation(err) {
		return fmt.Errorf("workload %q: %w", w.ID, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("inserting workload: %w", err)
	}
	return nil
}

func (s *Postgres) PutWorkload(ctx context.Context, w *Workload) error {
	defer s.cache.changed(w.ID) // this replica reads its own writes; others hear the trigger
	_, err := s.pool.Exec(ctx, `INSERT INTO workloads (`+workloadCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)
		ON CONFLICT (id) DO UPDATE SET tee = excluded.tee, policy = excluded.policy, passphrase = excluded.passphrase,
			tee_config = excluded.tee_config, origin = excluded.origin, updated_at = excluded.updated_at,
			policy_mac = excluded.policy_mac`,
		w.ID, w.TEE, policyJSON(w), w.SealedPassphrase, w.TEEConfig, w.Origin, w.CreatedAt, w.UpdatedAt, w.PolicyMAC)
	if err != nil {
		return fmt.Errorf("upserting workload: %w", err)
	}
	return nil
}

func (s *Postgres) UpdateWorkload(ctx context.Context, id string, update func(*Workload) error) error {
	defer s.cache.changed(id) // this replica reads its own writes; others hear the trigger
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		w, err := scanWorkload(tx.QueryRow(ctx, `SELECT `+workloadCols+` FROM workloads WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("workload %q: %w", id, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("reading workload: %w", err)
		}
		if err := update(w); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE workloads SET tee = $2, policy = $3, passphrase = $4, tee_config = $5,
			origin = $6, updated_at = $7, policy_mac = $8 WHERE id = $1`,
			id, w.TEE, policyJSON(w), w.SealedPassphrase, w.TEEConfig, w.Origin, w.UpdatedAt, w.PolicyMAC)
		if err != nil {
			return fmt.Errorf("updating workload: %w", err)
		}
		return nil
	})
}

func (s *Postgres) GetWorkload(ctx context.Context, id string) (*Workload, error) {
	if s.stopListen == nil {
		return s.readWorkload(ctx, id)
	}
	return s.getWorkloadCached(ctx, id)
}

// readWorkload reads workload id from the database.
func (s *Postgres) readWorkload(ctx context.Context, id string) (*Workload, error) {
	w, err := scanWorkload(s.pool.QueryRow(ctx, `SELECT `+workloadCols+` FROM workloads WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("workload %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading workload: %w", err)
	}
	return w, nil
}

func (s *Postgres) ListWorkloads(ctx context.Context) ([]*Workload, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+workloadCols+` FROM workloads ORDER BY id COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("listing workloads: %w", err)
	}
	defer rows.Close()
	var out []*Workload
	for rows.Next() {
		w, err := scanWorkload(rows)
		if err != nil {
			return nil, fmt.Errorf("listing workloads: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

func (s *Postgres) DeleteWorkload(ctx context.Context, id string) error {
	defer s.cache.changed(id) // this replica reads its own writes; others hear the trigger
	tag, err := s.pool.Exec(ctx, `DELETE FROM workloads WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("deleting workload: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("workload %q: %w", id, ErrNotFound)
	}
	return nil
}

func (s *Postgres) PutResource(ctx context.Context, r *Resource) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO resources (workload_id, path, value, updated_at) VALUES ($1,$2,$3,$4)
		ON CONFLICT (workload_id, path) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		r.WorkloadID, r.Path, r.Sealed, r.UpdatedAt)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" { // foreign key: no such workload
		return fmt.Errorf("workload %q: %w", r.WorkloadID, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("storing resource: %w", err)
	}
	return nil
}

func (s *Postgres) GetResource(ctx context.Context, workloadID, path string) (*Resource, error) {
	r := Resource{WorkloadID: workloadID, Path: path}
	err := s.pool.QueryRow(ctx, `SELECT value, updated_at FROM resources WHERE workload_id = $1 AND path = $2`,
		workloadID, path).Scan(&r.Sealed, &r.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("resource %q of workload %q: %w", path, workloadID, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading resource: %w", err)
	}
	return &r, nil
}

func (s *Postgres) ListResources(ctx context.Context, workloadID string) ([]*Resource, error) {
	rows, err := s.pool.Query(ctx, `SELECT path, value, updated_at FROM resources WHERE workload_id = $1
		ORDER BY path COLLATE "C"`, workloadID)
	if err != nil {
		return nil, fmt.Errorf("listing resources: %w", err)
	}
	defer rows.Close()
	var out []*Resource
	for rows.Next() {
		r := Resource{WorkloadID: workloadID}
		if err := rows.Scan(&r.Path, &r.Sealed, &r.UpdatedAt); err != nil {
			return nil, fmt.Errorf("listing resources: %w", err)
		}
		out = append(out, &r)
	}
	return out, rows.Err()
}

func (s *Postgres) DeleteResource(ctx context.Context, workloadID, path string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM resources WHERE workload_id = $1 AND path = $2`, workloadID, path)
	if err != nil {
		return fmt.Errorf("deleting resource: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("resource %q of workload %q: %w", path, workloadID, ErrNotFound)
	}
	return nil
}

const sessionCols = `id, dialect, tee, nonce, state, workload_id, client, created_at, expires_at, attested_at, pub_key, claims, mac`

func scanSession(row pgx.Row) (*Session, error) {
	var s Session
	var state string
	var attested *time.Time
	if err := row.Scan(&s.ID, &s.Dialect, &s.TEE, &s.Nonce, &state, &s.WorkloadID, &s.Client,
		&s.CreatedAt, &s.ExpiresAt, &attested, &s.PubKey, &s.Claims, &s.MAC); err != nil {
		return nil, err
	}
	s.State = SessionState(state)
	if attested != nil {
		s.AttestedAt = *attested
	}
	return &s, nil
}

func (s *Postgres) CreateSession(ctx context.Context, sess *Session) error {
	var attested *time.Time
	if !sess.AttestedAt.IsZero() {
		attested = &sess.AttestedAt
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (`+sessionCols+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)`,
		sess.ID, sess.Dialect, sess.TEE, sess.Nonce, string(sess.State), sess.WorkloadID, sess.Client,
		sess.CreatedAt, sess.ExpiresAt, attested, sess.PubKey, sess.Claims, sess.MAC)
	if isUniqueViolation(err) {
		return fmt.Errorf("session: %w", ErrExists)
	}
	if err != nil {
		return fmt.Errorf("inserting session: %w", err)
	}
	return nil
}

func (s *Postgres) GetSession(ctx context.Context, id string, now time.Time) (*Session, error) {
	sess, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading session: %w", err)
	}
	if !now.Before(sess.ExpiresAt) {
		return nil, fmt.Errorf("session: %w", ErrExpired)
	}
	return sess, nil
}

func (s *Postgres) ConsumeChallenge(ctx context.Context, id string, now time.Time) (*Session, error) {
	sess, err := scanSession(s.pool.QueryRow(ctx, consumeSQL, id, now, string(SessionConsumed), string(SessionChallenged)))
	if err == nil {
		return sess, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("consuming challenge: %w", err)
	}
	return nil, s.whyNotConsumed(ctx, id, now)
}

// consumeSQL spends a challenge in one conditional write: of two replicas
// racing on one nonce, exactly one sees a row come back.
const consumeSQL = `UPDATE sessions SET state = $3
	WHERE id = $1 AND state = $4 AND expires_at > $2 RETURNING ` + sessionCols

// whyNotConsumed says why consumeSQL returned no row.
func (s *Postgres) whyNotConsumed(ctx context.Context, id string, now time.Time) error {
	cur, err := s.GetSession(ctx, id, now)
	if err != nil {
		return err
	}
	if cur.State != SessionChallenged {
		return fmt.Errorf("session: %w", ErrNonceUsed)
	}
	return fmt.Errorf("session: %w", ErrExpired)
}

// ConsumeChallengeRead sends the conditional write and the read of the
// session's workload as one pipelined batch: one round trip, one implicit
// transaction, in which the read sees the write.
func (s *Postgres) ConsumeChallengeRead(ctx context.Context, id string, now time.Time) (*Session, *Workload, error) {
	b := &pgx.Batch{}
	b.Queue(consumeSQL, id, now, string(SessionConsumed), string(SessionChallenged))
	b.Queue(`SELECT `+workloadCols+` FROM workloads WHERE id = (SELECT workload_id FROM sessions WHERE id = $1)`, id)
	br := s.pool.SendBatch(ctx, b)
	sess, err := scanSession(br.QueryRow())
	if errors.Is(err, pgx.ErrNoRows) {
		br.Close()
		return nil, nil, s.whyNotConsumed(ctx, id, now)
	}
	if err != nil {
		br.Close()
		return nil, nil, fmt.Errorf("consuming challenge: %w", err)
	}
	w, werr := scanWorkload(br.QueryRow())
	if errors.Is(werr, pgx.ErrNoRows) {
		w, werr = nil, nil // none registered: the caller reads it and hears why
	}
	if cerr := br.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		// A statement the server refuses aborts the batch's
		// transaction, and the challenge is not spent; a row that does
		// not scan leaves the spend committed. Either way the attempt
		// fails.
		return nil, nil, fmt.Errorf("consuming challenge: reading the session's workload: %w", werr)
	}
	return sess, w, nil
}

// GetSessionRead reads the session and the workload in one pipelined
// batch.
func (s *Postgres) GetSessionRead(ctx context.Context, id, workloadID string, now time.Time) (*Session, *Workload, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT `+sessionCols+` FROM sessions WHERE id = $1`, id)
	b.Queue(`SELECT `+workloadCols+` FROM workloads WHERE id = $1`, workloadID)
	br := s.pool.SendBatch(ctx, b)
	sess, err := scanSession(br.QueryRow())
	var w *Workload
	if err == nil {
		// Any failure of the workload read leaves w nil, and the
		// caller's GetWorkload says what it was; the session read stands.
		w, _ = scanWorkload(br.QueryRow())
	}
	// Both results, or their errors, are in hand: a read-only batch has
	// nothing more to report.
	_ = br.Close()
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, nil, fmt.Errorf("session: %w", ErrNotFound)
	case err != nil:
		return nil, nil, fmt.Errorf("reading session: %w", err)
	case !now.Before(sess.ExpiresAt):
		return nil, nil, fmt.Errorf("session: %w", ErrExpired)
	}
	return sess, w, nil
}

func (s *Postgres) MarkAttested(ctx context.Context, id, workloadID string, pubKey, claims, mac []byte, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET state = $2, workload_id = $3, pub_key = $4, claims = $5, attested_at = $6, mac = $8
		WHERE id = $1 AND state = $7`,
		id, string(SessionAttested), workloadID, pubKey, claims, at, string(SessionConsumed), mac)
	if err != nil {
		return fmt.Errorf("marking session attested: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("session: %w", ErrState)
	}
	return nil
}

func (s *Postgres) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, now)
	if err != nil {
		return 0, fmt.Errorf("deleting expired sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}
