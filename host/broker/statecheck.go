package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
)

// The broker's state is a database (bbolt in the state directory, or
// PostgreSQL), the key-encryption key that seals its secrets and the key
// that signs its tokens. They must belong together: a broker started with
// a missing or replaced key would answer every guest with an error and
// seal new secrets under a second key, and a broker started on a missing
// or empty database would serve an empty broker while its keys show one
// was in use. openState checks them against each other before the broker
// serves:
//
//   - the store keeps a state record (store.StateRecord): a state id, a
//     value sealed by the KEK and the SHA-256 of the token key's public
//     key; a key that does not match is refused, and so is a missing key
//     while the record exists;
//   - the state directory keeps a marker (broker-state.json) naming the
//     state id; a store without a record, or with another id, is refused
//     while the marker exists, and so is a missing or empty bbolt file
//     while the directory holds a key or the marker;
//   - a store written by a broker from before these checks (workloads, no
//     record) is adopted when the KEK opens its sealed passphrases.
//
// Starting over is explicit: --start-over moves the state directory's
// database, keys and marker aside (into old-TIMESTAMP/) and wipes a
// PostgreSQL store, then creates a new state.

// markerName is the state directory's marker file.
const markerName = "broker-state.json"

// stateMarker is the content of the marker file.
type stateMarker struct {
	StateID   string    `json:"state_id"`
	Store     string    `json:"store"`
	CreatedAt time.Time `json:"created_at"`
}

// statePaths are the files of a broker's state.
type statePaths struct {
	dir, db, kek, token, marker string
	// kekInDir and tokenInDir: the key files are the state directory's
	// own (moved aside when starting over).
	kekInDir, tokenInDir bool
	kekFromEnv           bool
	postgres             bool
}

func pathsFor(o Options) statePaths {
	p := statePaths{dir: o.State, db: filepath.Join(o.State, "broker.db"), marker: filepath.Join(o.State, markerName),
		kek: o.KEKFile, token: o.TokenKeyFile, postgres: store.IsPostgres(o.Store)}
	if p.kek == "" {
		p.kek, p.kekInDir = filepath.Join(o.State, "kek"), true
	}
	if p.token == "" {
		p.token, p.tokenInDir = filepath.Join(o.State, "token-key.pem"), true
	}
	p.kekFromEnv = os.Getenv(EnvKEK) != ""
	return p
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// restoreHint ends every refusal.
const restoreHint = "restore the state from its backup (`sealroot broker restore`), or, to discard it and start " +
	"a new one, start once with --start-over"

// tokenKeyCheck is the check value of a token key: the SHA-256 of its
// public key (nothing secret).
func tokenKeyCheck(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(der)
	return h[:], nil
}

// openedState is what openState hands the broker.
type openedState struct {
	KEK      *kek.KEK
	TokenKey *ecdsa.PrivateKey
	// Store is guarded (deadlines, classified errors, readiness).
	Store store.Store
}

// openState loads the keys, opens the store and checks that they belong
// together (see above), creating a new state only on a first start.
func openState(ctx context.Context, o Options, log *slog.Logger) (*openedState, error) {
	p := pathsFor(o)
	if exists(filepath.Join(p.dir, restoringName)) {
		return nil, fmt.Errorf("a restore into %s did not finish (%s exists): run `sealroot broker restore --replace` again", p.dir, restoringName)
	}
	if o.StartOver {
		if err := moveStateAside(p, log); err != nil {
			return nil, err
		}
	}

	// What the directory says about its past.
	var used []string
	marker, err := readMarker(p.marker)
	if err != nil {
		return nil, err
	}
	if marker != nil {
		used = append(used, markerName)
	}
	if exists(filepath.Join(p.dir, "kek")) {
		used = append(used, "kek")
	}
	if exists(filepath.Join(p.dir, "token-key.pem")) {
		used = append(used, "token-key.pem")
	}
	if !p.postgres && len(used) > 0 {
		fi, err := os.Stat(p.db)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("the database %s is missing, but the state directory shows it was in use (%s); %s",
				p.db, strings.Join(used, ", "), restoreHint)
		case err != nil:
			return nil, fmt.Errorf("database %s: %w", p.db, err)
		case fi.Size() == 0:
			return nil, fmt.Errorf("the database %s is empty (0 bytes), but the state directory shows it was in use (%s); %s",
				p.db, strings.Join(used, ", "), restoreHint)
		}
	}

	k, err := loadKEK(p)
	if err != nil {
		return nil, err
	}
	tokenKey, err := loadTokenKey(p.token)
	if err != nil {
		return nil, err
	}

	raw, err := openStore(ctx, o, p)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			raw.Close()
		}
	}()
	keeper, isKeeper := raw.(store.StateKeeper)
	if !isKeeper {
		return nil, errors.New("the store keeps no state record")
	}
	if o.StartOver && p.postgres {
		if err := keeper.Wipe(ctx); err != nil {
			return nil, err
		}
		log.Warn("started over: wiped every workload, resource and session of the PostgreSQL store", "store", store.RedactDSN(o.Store))
	}
	rec, err := keeper.LoadState(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("reading the state record: %w", err)
	}
	usage, err := keeper.Usage(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the store: %w", err)
	}
	where := storeWhere(o, p)

	switch {
	case rec != nil:
		if marker != nil && marker.StateID != rec.ID {
			return nil, fmt.Errorf("%s holds broker state %s, but the state directory %s belongs to state %s: "+
				"the wrong --store, or a database of another broker; %s", where, rec.ID, p.dir, marker.StateID, restoreHint)
		}
		if k == nil {
			return nil, fmt.Errorf("the key-encryption key %s is missing, but %s holds state %s (created %s) with %d sealed secrets; %s",
				kekWhere(p), where, rec.ID, rec.CreatedAt.Format(time.RFC3339), usage.Sealed, restoreHint)
		}
		if !k.VerifyCheckValue(rec.KEKCheck, rec.ID) {
			return nil, fmt.Errorf("the key-encryption key %s is not the key of %s (state %s, created %s, %d sealed secrets): "+
				"its check value does not open; give the broker its own key (replicas share one), or %s",
				kekWhere(p), where, rec.ID, rec.CreatedAt.Format(time.RFC3339), usage.Sealed, restoreHint)
		}
		if tokenKey == nil {
			return nil, fmt.Errorf("the token signing key %s is missing, but %s holds state %s; replicas share one (--token-key); %s",
				p.token, where, rec.ID, restoreHint)
		}
		check, err := tokenKeyCheck(tokenKey)
		if err != nil {
			return nil, err
		}
		if subtle.ConstantTimeCompare(check, rec.TokenKeyCheck) != 1 {
			return nil, fmt.Errorf("the token signing key %s is not the key of %s (state %s); replicas share one (--token-key); %s",
				p.token, where, rec.ID, restoreHint)
		}
		if marker == nil {
			if err := writeMarker(p, rec); err != nil {
				return nil, err
			}
		}

	case usage.Workloads+usage.Resources > 0:
		// Written by a broker from before the state record.
		if marker != nil {
			return nil, fmt.Errorf("%s holds %d workloads but no state record, while the state directory belongs to state %s; %s",
				where, usage.Workloads, marker.StateID, restoreHint)
		}
		if k == nil {
			return nil, fmt.Errorf("the key-encryption key %s is missing, but %s holds %d sealed secrets; %s",
				kekWhere(p), where, usage.Sealed, restoreHint)
		}
		opened, failed, err := trySealed(ctx, raw, k)
		if err != nil {
			return nil, err
		}
		if failed > 0 && opened == 0 {
			return nil, fmt.Errorf("the key-encryption key %s opens none of the %d sealed passphrases in %s: it is not their key; %s",
				kekWhere(p), failed, where, restoreHint)
		}
		if failed > 0 {
			log.Warn("some sealed passphrases do not open with the key-encryption key (sealed under another key by an older broker); "+
				"set them again with `sealroot workloads set-passphrase`", "opened", opened, "failed", failed)
		}
		if tokenKey == nil {
			if tokenKey, err = createTokenKey(p.token, log); err != nil {
				return nil, err
			}
		}
		if rec, err = newStateRecord(ctx, keeper, p, k, tokenKey); err != nil {
			return nil, err
		}
		log.Info("recorded the state checks of an existing store", "state_id", rec.ID, "workloads", usage.Workloads)

	default:
		// An empty store: a first start, unless the directory says
		// otherwise.
		if marker != nil {
			return nil, fmt.Errorf("%s is empty (no state record, no workloads), but the state directory %s belongs to state %s: "+
				"the database was lost or replaced, or --store names another one; %s", where, p.dir, marker.StateID, restoreHint)
		}
		if p.postgres && len(used) > 0 {
			return nil, fmt.Errorf("%s is empty, but the state directory %s shows it was in use (%s); %s",
				where, p.dir, strings.Join(used, ", "), restoreHint)
		}
		if k == nil {
			var created bool
			if k, created, err = kek.LoadOrCreate(p.kek); err != nil {
				return nil, err
			}
			if created {
				log.Warn("generated a new key-encryption key; back it up (sealroot broker backup), and give replicas the same one", "path", p.kek)
			}
		}
		if tokenKey == nil {
			if tokenKey, err = createTokenKey(p.token, log); err != nil {
				return nil, err
			}
		}
		if rec, err = newStateRecord(ctx, keeper, p, k, tokenKey); err != nil {
			return nil, err
		}
		log.Info("created a new broker state", "state_id", rec.ID)
	}

	n, err := authenticateLegacyPolicies(ctx, raw, k)
	if err != nil {
		return nil, err
	}
	if n > 0 {
		log.Warn("authenticated the policies of workloads written before policies were authenticated; review them with `sealroot workloads list`", "count", n)
	}
	ok = true
	return &openedState{KEK: k, TokenKey: tokenKey, Store: store.Guard(raw, store.GuardOptions{
		Timeout: o.StoreTimeout,
		OnFault: func(op string, err error) { log.Warn("store call failed", "op", op, "err", err) },
	})}, nil
}

func storeWhere(o Options, p statePaths) string {
	if p.postgres {
		return "the PostgreSQL store " + store.RedactDSN(o.Store)
	}
	return "the database " + p.db
}

func kekWhere(p statePaths) string {
	if p.kekFromEnv {
		return "in $" + EnvKEK
	}
	return p.kek
}

// loadKEK loads the KEK without creating it: nil when the file is missing.
func loadKEK(p statePaths) (*kek.KEK, error) {
	if v := os.Getenv(EnvKEK); v != "" {
		k, err := kek.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("$%s: %w", EnvKEK, err)
		}
		return k, nil
	}
	k, err := kek.Load(p.kek)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return k, err
}

// loadTokenKey loads the token key without creating it: nil when missing.
func loadTokenKey(path string) (*ecdsa.PrivateKey, error) {
	if !exists(path) {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("token key: %w", err)
		}
		return nil, nil
	}
	k, _, err := LoadOrCreateTokenKey(path)
	return k, err
}

func createTokenKey(path string, log *slog.Logger) (*ecdsa.PrivateKey, error) {
	k, created, err := LoadOrCreateTokenKey(path)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("generated the attestation token signing key", "path", path)
	}
	return k, nil
}

// openStore opens the store the options name, not yet guarded.
func openStore(ctx context.Context, o Options, p statePaths) (store.Store, error) {
	if !p.postgres {
		if o.Store != "" && o.Store != "bbolt" {
			return nil, fmt.Errorf("store %q: want bbolt or a postgres:// URL", store.RedactDSN(o.Store))
		}
		return store.OpenBoltWith(p.db, store.BoltOptions{})
	}
	pw, err := storePassword(o)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	if level, err := parseLogLevel(o.LogLevel); err == nil {
		log = slog.New(levelGate{h: o.logger().Handler(), min: level})
	}
	return store.OpenPostgresWith(cctx, o.Store, store.PostgresOptions{Password: pw, StatementTimeout: o.StoreTimeout,
		NoWorkloadCache: o.NoWorkloadCache, Logger: log})
}

// trySealed opens the sealed passphrases of up to 100 workloads.
func trySealed(ctx context.Context, s store.Store, k *kek.KEK) (opened, failed int, err error) {
	all, err := s.ListWorkloads(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, w := range all {
		if len(w.SealedPassphrase) == 0 || w.Damaged != "" {
			continue
		}
		pt, err := k.Open(w.SealedPassphrase, passphraseAAD(w.ID))
		clear(pt)
		if err != nil {
			failed++
		} else {
			opened++
		}
		if opened+failed >= 100 {
			break
		}
	}
	return opened, failed, nil
}

func newStateRecord(ctx context.Context, keeper store.StateKeeper, p statePaths, k *kek.KEK, tokenKey *ecdsa.PrivateKey) (*store.StateRecord, error) {
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, err
	}
	rec := &store.StateRecord{ID: hex.EncodeToString(id[:]), CreatedAt: time.Now().UTC().Truncate(time.Second)}
	var err error
	if rec.KEKCheck, err = k.CheckValue(rec.ID); err != nil {
		return nil, err
	}
	if rec.TokenKeyCheck, err = tokenKeyCheck(tokenKey); err != nil {
		return nil, err
	}
	if err := keeper.SaveState(ctx, rec); err != nil {
		return nil, fmt.Errorf("writing the state record: %w", err)
	}
	if err := writeMarker(p, rec); err != nil {
		return nil, err
	}
	return rec, nil
}

func readMarker(path string) (*stateMarker, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the state marker: %w", err)
	}
	var m stateMarker
	if err := json.Unmarshal(b, &m); err != nil || m.StateID == "" {
		return nil, fmt.Errorf("the state marker %s is damaged (not JSON with a state_id); %s", path, restoreHint)
	}
	return &m, nil
}

func writeMarker(p statePaths, rec *store.StateRecord) error {
	kind := "bbolt"
	if p.postgres {
		kind = "postgres"
	}
	b, _ := json.MarshalIndent(stateMarker{StateID: rec.ID, Store: kind, CreatedAt: rec.CreatedAt}, "", "  ")
	err := kek.WriteFileAtomic(p.marker, append(b, '\n'), 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("writing the state marker: %w", err)
	}
	return nil
}

// moveStateAside moves the state directory's database, marker and own key
// files into old-TIMESTAMP/ (nothing is deleted).
func moveStateAside(p statePaths, log *slog.Logger) error {
	names := []string{markerName}
	if !p.postgres {
		names = append(names, "broker.db", "broker.db.seq")
	}
	if p.kekInDir {
		names = append(names, "kek")
	}
	if p.tokenInDir {
		names = append(names, "token-key.pem")
	}
	aside := filepath.Join(p.dir, "old-"+time.Now().UTC().Format("20060102T150405Z"))
	var moved []string
	for _, n := range names {
		src := filepath.Join(p.dir, n)
		if !exists(src) {
			continue
		}
		if err := os.MkdirAll(aside, 0o700); err != nil {
			return fmt.Errorf("--start-over: %w", err)
		}
		if err := os.Rename(src, filepath.Join(aside, n)); err != nil {
			return fmt.Errorf("--start-over: %w", err)
		}
		moved = append(moved, n)
	}
	if len(moved) > 0 {
		log.Warn("started over: moved the old state aside", "dir", aside, "files", moved)
	}
	return nil
}
