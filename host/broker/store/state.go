package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	bolt "go.etcd.io/bbolt"
)

// StateRecord ties a store to the keys that belong with it. The broker
// writes it when it creates a new state and checks it on every start, so
// that a missing or replaced key-encryption key, or a database that is not
// the one the keys were made for, is refused instead of served.
type StateRecord struct {
	// ID names the state; the state directory's marker file repeats it.
	ID string `json:"id"`
	// CreatedAt is when the state was created.
	CreatedAt time.Time `json:"created_at"`
	// KEKCheck is a value sealed by the key-encryption key; it opens only
	// with that key (see the broker's state check).
	KEKCheck []byte `json:"kek_check"`
	// TokenKeyCheck is the SHA-256 of the token signing key's public key.
	TokenKeyCheck []byte `json:"token_key_check"`
}

// Usage counts what a store holds.
type Usage struct {
	Workloads int
	Resources int
	// Sealed counts workloads with a sealed passphrase plus resources.
	Sealed int
}

// StateKeeper is implemented by the stores: the state record and the
// operations that starting over and restoring need.
type StateKeeper interface {
	// LoadState returns the state record, ErrNotFound when there is none.
	LoadState(ctx context.Context) (*StateRecord, error)
	// SaveState writes the state record.
	SaveState(ctx context.Context, rec *StateRecord) error
	// Usage counts workloads, resources and sealed values.
	Usage(ctx context.Context) (Usage, error)
	// Wipe deletes every workload, resource, session and the state record,
	// in one transaction.
	Wipe(ctx context.Context) error
}

var (
	_ StateKeeper = (*Bolt)(nil)
	_ StateKeeper = (*Postgres)(nil)
)

var keyState = []byte("state")

func (s *Bolt) LoadState(ctx context.Context) (*StateRecord, error) {
	var rec StateRecord
	err := s.view(func(tx *bolt.Tx) error {
		return getJSON(tx.Bucket(bucketMeta), keyState, &rec)
	})
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

func (s *Bolt) SaveState(ctx context.Context, rec *StateRecord) error {
	return s.update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketMeta), keyState, rec)
	})
}

func (s *Bolt) Usage(ctx context.Context) (Usage, error) {
	var u Usage
	err := s.view(func(tx *bolt.Tx) error {
		u = Usage{}
		if err := tx.Bucket(bucketWorkloads).ForEach(func(k, v []byte) error {
			u.Workloads++
			var w struct {
				Sealed []byte `json:"sealed_passphrase"`
			}
			// A record that does not decode still counts as sealed: it
			// may well hold a passphrase.
			if json.Unmarshal(v, &w) != nil || len(w.Sealed) > 0 {
				u.Sealed++
			}
			return nil
		}); err != nil {
			return err
		}
		u.Resources = tx.Bucket(bucketResources).Stats().KeyN
		u.Sealed += u.Resources
		return nil
	})
	return u, err
}

func (s *Bolt) Wipe(ctx context.Context) error {
	return s.update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketWorkloads, bucketResources, bucketSessions} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		err := tx.Bucket(bucketMeta).Delete(keyState)
		return err
	})
}

func (s *Postgres) LoadState(ctx context.Context) (*StateRecord, error) {
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT value FROM broker_state WHERE key = 'state'`).Scan(&raw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading state record: %w", err)
	}
	var rec StateRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("state record: %w: %v", ErrDamaged, err)
	}
	return &rec, nil
}

func (s *Postgres) SaveState(ctx context.Context, rec *StateRecord) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO broker_state (key, value) VALUES ('state', $1)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, raw)
	if err != nil {
		return fmt.Errorf("writing state record: %w", err)
	}
	return nil
}

func (s *Postgres) Usage(ctx context.Context) (Usage, error) {
	var u Usage
	err := s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM workloads),
		(SELECT count(*) FROM resources),
		(SELECT count(*) FROM workloads WHERE passphrase IS NOT NULL AND length(passphrase) > 0)`).
		Scan(&u.Workloads, &u.Resources, &u.Sealed)
	if err != nil {
		return Usage{}, fmt.Errorf("counting records: %w", err)
	}
	u.Sealed += u.Resources
	return u, nil
}

func (s *Postgres) Wipe(ctx context.Context) error {
	defer s.cache.changed("")
	_, err := s.pool.Exec(ctx, `TRUNCATE resources, workloads, sessions, broker_state`)
	if err != nil {
		return fmt.Errorf("wiping the database: %w", err)
	}
	return nil
}
