// Package store keeps the key broker's state: registered workloads (policy
// and sealed passphrase), their other resources, and attestation sessions
// with their single-use nonces.
//
// Two implementations share one interface and one conformance test suite:
// bbolt, an embedded file in the broker's state directory (the default; every
// commit is fsync'd before it returns), and PostgreSQL, which lets several
// broker replicas serve one client: a guest may call /auth on one replica and
// /attest on another. Both carry versioned schema migrations.
//
// The store never sees a secret in the clear: passphrases and resource values
// arrive sealed by the broker's key-encryption key. What the store does
// guarantee is atomicity where security depends on it: a workload id is
// created once (CreateWorkload fails with ErrExists), and a challenge is
// consumed once (ConsumeChallenge moves a session out of the challenged
// state in a single conditional write, so two replicas racing on one nonce
// cannot both win).
//
// Each store also keeps a state record (StateKeeper) that ties it to the
// broker's keys. The bbolt file is checked before it is served (its meta
// pages and size, bbolt's consistency check, a sequence file that catches
// a fallback to an older meta page), and a panic inside bbolt marks the
// store broken instead of leaving a lock behind. Guard bounds every call
// with a deadline, classifies failures (ErrUnavailable, ErrCorrupt) so that
// the broker can answer 503, and reports write health for readiness.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors callers tell apart with errors.Is.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrExpired   = errors.New("session expired")
	ErrNonceUsed = errors.New("nonce already used")
	ErrState     = errors.New("session not in the expected state")
	// ErrDamaged: one record does not decode (or fails authentication);
	// the rest of the store serves.
	ErrDamaged = errors.New("damaged record")
	// ErrCorrupt: the database itself is damaged; the store stops serving.
	ErrCorrupt = errors.New("database damaged")
	// ErrUnavailable: the store did not answer in time or cannot take
	// writes now (disk full, connection lost); retrying later may work.
	ErrUnavailable = errors.New("store unavailable")
	// ErrRolledBack: the database is older than its last acknowledged
	// write.
	ErrRolledBack = errors.New("database rolled back")
)

// Workload is one registered confidential workload.
type Workload struct {
	ID string `json:"id"`
	// TEE is the TEE the workload was registered for (snp, tdx, cca, sim).
	TEE string `json:"tee"`
	// Policy is the broker's JSON policy document; the store does not
	// interpret it.
	Policy json.RawMessage `json:"policy"`
	// SealedPassphrase is the LUKS passphrase sealed by the broker's KEK.
	SealedPassphrase []byte `json:"sealed_passphrase,omitempty"`
	// TEEConfig is buildah's tee_config string, kept verbatim.
	TEEConfig string `json:"tee_config,omitempty"`
	// Origin says how the workload was created: "register" (the
	// unauthenticated buildah endpoint) or "admin".
	Origin    string    `json:"origin"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// PolicyMAC authenticates ID, TEE and Policy under the broker's KEK;
	// the store keeps it and does not check it.
	PolicyMAC []byte `json:"policy_mac,omitempty"`
	// Damaged is set, in listings only, on a record that could not be
	// read: it says why, and the other fields but ID are empty.
	Damaged string `json:"-"`
}

// Resource is an extra secret of a workload, addressed like a Trustee
// resource: "repository/type/tag".
type Resource struct {
	WorkloadID string    `json:"workload_id"`
	Path       string    `json:"path"`
	Sealed     []byte    `json:"sealed"`
	UpdatedAt  time.Time `json:"updated_at"`
	// Damaged is set, in listings only, on a record that could not be
	// read.
	Damaged string `json:"-"`
}

// SessionState is where a session is in the handshake.
type SessionState string

// Session states. A session is challenged after /auth, consumed once its
// nonce has been spent on an /attest (whatever the outcome), and attested
// when that attestation succeeded.
const (
	SessionChallenged SessionState = "challenged"
	SessionConsumed   SessionState = "consumed"
	SessionAttested   SessionState = "attested"
)

// Session is one attestation handshake.
type Session struct {
	ID      string       `json:"id"`
	Dialect string       `json:"dialect"`
	TEE     string       `json:"tee"`
	Nonce   string       `json:"nonce"`
	State   SessionState `json:"state"`
	// WorkloadID is the workload the client named at /auth (krun), or the
	// one named in Trustee extra-params; empty when none was named.
	WorkloadID string `json:"workload_id,omitempty"`
	// Client is the peer address at /auth, for audit records.
	Client     string    `json:"client,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	AttestedAt time.Time `json:"attested_at,omitzero"`
	// PubKey is the guest's key as the dialect sent it (JSON).
	PubKey []byte `json:"pub_key,omitempty"`
	// Claims is the JSON of the verified attest.Claims.
	Claims []byte `json:"claims,omitempty"`
	// MAC authenticates an attested session's ID, workload, guest key and
	// claims under the broker's KEK; the store keeps it and does not
	// check it.
	MAC []byte `json:"mac,omitempty"`
}

// Store is the broker's persistence. Every method is safe for concurrent
// use; times are supplied by the caller so that tests control them.
type Store interface {
	// CreateWorkload stores a new workload; ErrExists when the id is taken.
	CreateWorkload(ctx context.Context, w *Workload) error
	// PutWorkload creates or replaces a workload, keeping the original
	// CreatedAt when it replaces.
	PutWorkload(ctx context.Context, w *Workload) error
	// UpdateWorkload reads, modifies and writes one workload atomically.
	UpdateWorkload(ctx context.Context, id string, update func(*Workload) error) error
	GetWorkload(ctx context.Context, id string) (*Workload, error)
	// ListWorkloads returns all workloads ordered by id; a record that
	// cannot be read is listed with Damaged set.
	ListWorkloads(ctx context.Context) ([]*Workload, error)
	// DeleteWorkload removes a workload and its resources.
	DeleteWorkload(ctx context.Context, id string) error

	// PutResource creates or replaces a resource of an existing workload
	// (ErrNotFound when the workload does not exist).
	PutResource(ctx context.Context, r *Resource) error
	GetResource(ctx context.Context, workloadID, path string) (*Resource, error)
	// ListResources returns a workload's resources ordered by path.
	ListResources(ctx context.Context, workloadID string) ([]*Resource, error)
	DeleteResource(ctx context.Context, workloadID, path string) error

	CreateSession(ctx context.Context, s *Session) error
	// GetSession returns a live session: ErrNotFound when unknown, ErrExpired
	// when its time is over at now.
	GetSession(ctx context.Context, id string, now time.Time) (*Session, error)
	// ConsumeChallenge spends a session's nonce: it moves a challenged,
	// unexpired session to consumed and returns it. ErrNonceUsed when the
	// nonce was already spent, ErrExpired, ErrNotFound.
	ConsumeChallenge(ctx context.Context, id string, now time.Time) (*Session, error)
	// ConsumeChallengeRead is ConsumeChallenge that also reads the
	// workload the session names, in the same round trip to the database.
	// The workload is nil when the session names none, or when it is not
	// registered or its record does not decode: the caller then reads it
	// with GetWorkload, which says why. When the database fails the read
	// itself, the call fails ("reading the session's workload"), and the
	// challenge may or may not have been spent: the attempt is over
	// either way, and the guest starts again at /auth.
	ConsumeChallengeRead(ctx context.Context, id string, now time.Time) (*Session, *Workload, error)
	// GetSessionRead is GetSession that also reads workload workloadID,
	// in the same round trip to the database. The workload is nil when
	// workloadID is "" or in any case where it could not be read: the
	// session is returned all the same.
	GetSessionRead(ctx context.Context, id, workloadID string, now time.Time) (*Session, *Workload, error)
	// MarkAttested records a successful attestation on a consumed session,
	// with the MAC that authenticates it (Session.MAC).
	MarkAttested(ctx context.Context, id, workloadID string, pubKey, claims, mac []byte, at time.Time) error
	// DeleteExpiredSessions removes sessions whose time is over at now.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)

	// Ping checks that the store can serve requests.
	Ping(ctx context.Context) error
	Close() error
}

// IsPostgres reports whether spec names a PostgreSQL store.
func IsPostgres(spec string) bool {
	return strings.HasPrefix(spec, "postgres://") || strings.HasPrefix(spec, "postgresql://")
}

// Open opens the store spec names: "" or "bbolt" for the embedded file
// broker.db in stateDir, or a postgres:// URL.
func Open(ctx context.Context, spec, stateDir string) (Store, error) {
	switch {
	case spec == "" || spec == "bbolt":
		return OpenBolt(stateDir + "/broker.db")
	case IsPostgres(spec):
		return OpenPostgres(ctx, spec)
	}
	return nil, fmt.Errorf("store %q: want bbolt or a postgres:// URL", RedactDSN(spec))
}

// RedactDSN hides the password of a postgres URL for logs and errors.
func RedactDSN(spec string) string {
	scheme, rest, ok := strings.Cut(spec, "://")
	if !ok {
		return spec
	}
	at := strings.LastIndexByte(rest, '@')
	if at < 0 {
		return spec
	}
	user, _, hasPass := strings.Cut(rest[:at], ":")
	if !hasPass {
		return spec
	}
	return scheme + "://" + user + ":xxxxx" + rest[at:]
}
