package broker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
)

// A backup keeps a broker's state together: the state record, every
// workload (policy, its MAC, sealed passphrase) and resource (sealed), the
// token signing key and, unless left out on purpose, the key-encryption
// key. It is a tar archive of:
//
//	manifest.json     BackupManifest: format, state id, counts, SHA-256 of each member
//	state.json        the store's state record
//	workloads.jsonl   one workload a line (the store's JSON form)
//	resources.jsonl   one resource a line
//	token-key.pem     the token signing key
//	kek               the key-encryption key (64 hex characters), unless --without-kek
//
// Sessions are not kept: they live minutes. The archive is as secret as the
// KEK it holds (mode 0600): whoever has both can open every sealed value.

// BackupFormat names the archive format.
const BackupFormat = "sealroot-broker-backup/1"

// BackupManifest describes a backup.
type BackupManifest struct {
	Format    string            `json:"format"`
	StateID   string            `json:"state_id"`
	CreatedAt time.Time         `json:"created_at"`
	Store     string            `json:"store"`
	Workloads int               `json:"workloads"`
	Resources int               `json:"resources"`
	HasKEK    bool              `json:"has_kek"`
	SHA256    map[string]string `json:"sha256"`
}

// maxBackupMember bounds one archive member when restoring.
const maxBackupMember = 1 << 30

// backupStatePaths checks that the state can be read for a backup: the
// keys and the store belong together (as at start), nothing is created.
func openForBackup(ctx context.Context, o Options) (store.Store, store.StateKeeper, *store.StateRecord, *kek.KEK, []byte, error) {
	p := pathsFor(o)
	k, err := loadKEK(p)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	if k == nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("the key-encryption key %s is missing: a backup without it cannot be restored", kekWhere(p))
	}
	tokenPEM, err := os.ReadFile(p.token)
	if err != nil {
		return nil, nil, nil, nil, nil, fmt.Errorf("reading the token key: %w", err)
	}
	tokenKey, err := loadTokenKey(p.token)
	if err != nil {
		return nil, nil, nil, nil, nil, err
	}
	if !p.postgres && !exists(p.db) {
		return nil, nil, nil, nil, nil, fmt.Errorf("the database %s does not exist", p.db)
	}
	st, err := openStore(ctx, o, p)
	if err != nil {
		if strings.Contains(err.Error(), "another broker holds its lock") {
			err = fmt.Errorf("%w: stop the broker first (bbolt backups are taken with the broker stopped)", err)
		}
		return nil, nil, nil, nil, nil, err
	}
	keeper := st.(store.StateKeeper)
	rec, err := keeper.LoadState(ctx)
	if err != nil {
		st.Close()
		return nil, nil, nil, nil, nil, fmt.Errorf("reading the state record (start the broker once to create it): %w", err)
	}
	check, err := tokenKeyCheck(tokenKey)
	if err == nil && !k.VerifyCheckValue(rec.KEKCheck, rec.ID) {
		err = fmt.Errorf("the key-encryption key %s is not the key of %s", kekWhere(p), storeWhere(o, p))
	}
	if err == nil && subtle.ConstantTimeCompare(check, rec.TokenKeyCheck) != 1 {
		err = fmt.Errorf("the token key %s is not the key of %s", p.token, storeWhere(o, p))
	}
	if err != nil {
		st.Close()
		return nil, nil, nil, nil, nil, err
	}
	return st, keeper, rec, k, tokenPEM, nil
}

// Backup writes a backup of the state o names to out (a file created with
// mode 0600, through a temporary file). withoutKEK leaves the KEK out.
// It logs to o.Logger.
func Backup(ctx context.Context, o Options, out string, withoutKEK bool) (*BackupManifest, error) {
	log := o.logger()
	st, _, rec, _, tokenPEM, err := openForBackup(ctx, o)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	p := pathsFor(o)

	members := map[string][]byte{}
	man := &BackupManifest{Format: BackupFormat, StateID: rec.ID, CreatedAt: time.Now().UTC().Truncate(time.Second),
		Store: "bbolt", SHA256: map[string]string{}}
	if p.postgres {
		man.Store = "postgres"
	}
	if members["state.json"], err = json.Marshal(rec); err != nil {
		return nil, err
	}
	all, err := st.ListWorkloads(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing workloads: %w", err)
	}
	var wl, rs bytes.Buffer
	for _, w := range all {
		if w.Damaged != "" {
			return nil, fmt.Errorf("workload %q is damaged (%s): repair or delete it before the backup", w.ID, w.Damaged)
		}
		b, err := json.Marshal(w)
		if err != nil {
			return nil, err
		}
		wl.Write(append(b, '\n'))
		man.Workloads++
		res, err := st.ListResources(ctx, w.ID)
		if err != nil {
			return nil, fmt.Errorf("listing resources of %q: %w", w.ID, err)
		}
		for _, r := range res {
			if r.Damaged != "" {
				return nil, fmt.Errorf("resource %q of workload %q is damaged: repair or delete it before the backup", r.Path, w.ID)
			}
			b, err := json.Marshal(r)
			if err != nil {
				return nil, err
			}
			rs.Write(append(b, '\n'))
			man.Resources++
		}
	}
	members["workloads.jsonl"], members["resources.jsonl"] = wl.Bytes(), rs.Bytes()
	members["token-key.pem"] = tokenPEM
	if !withoutKEK {
		text, err := kekText(p)
		if err != nil {
			return nil, err
		}
		members["kek"] = text
		man.HasKEK = true
	}
	for name, b := range members {
		h := sha256.Sum256(b)
		man.SHA256[name] = hex.EncodeToString(h[:])
	}
	manJSON, err := json.MarshalIndent(man, "", "  ")
	if err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	names := []string{"manifest.json"}
	for n := range members {
		names = append(names, n)
	}
	sort.Strings(names[1:])
	members["manifest.json"] = manJSON
	for _, n := range names {
		b := members[n]
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o600, Size: int64(len(b)), ModTime: man.CreatedAt, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := kek.ReplaceFile(out, buf.Bytes(), 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", out, err)
	}
	log.Info("backup written", "file", out, "state_id", man.StateID, "workloads", man.Workloads, "resources", man.Resources, "kek", man.HasKEK)
	return man, nil
}

// kekText returns the KEK as the broker reads it.
func kekText(p statePaths) ([]byte, error) {
	if v := os.Getenv(EnvKEK); v != "" {
		return []byte(strings.TrimSpace(v) + "\n"), nil
	}
	b, err := os.ReadFile(p.kek)
	if err != nil {
		return nil, fmt.Errorf("reading the key-encryption key: %w", err)
	}
	return b, nil
}

// readBackup reads and checks an archive: every member the manifest
// names, with its hash, and nothing else.
func readBackup(r io.Reader) (*BackupManifest, map[string][]byte, error) {
	tr := tar.NewReader(bufio.NewReader(r))
	members := map[string][]byte{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("backup archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg || h.Size > maxBackupMember || h.Size < 0 {
			return nil, nil, fmt.Errorf("backup archive: unexpected member %q", h.Name)
		}
		if _, dup := members[h.Name]; dup {
			return nil, nil, fmt.Errorf("backup archive: member %q twice", h.Name)
		}
		b, err := io.ReadAll(io.LimitReader(tr, h.Size))
		if err != nil {
			return nil, nil, fmt.Errorf("backup archive: %s: %w", h.Name, err)
		}
		members[h.Name] = b
	}
	var man BackupManifest
	if err := json.Unmarshal(members["manifest.json"], &man); err != nil {
		return nil, nil, errors.New("backup archive: no readable manifest.json (not a sealroot broker backup?)")
	}
	if man.Format != BackupFormat {
		return nil, nil, fmt.Errorf("backup archive: format %q, want %q", man.Format, BackupFormat)
	}
	for _, need := range []string{"state.json", "workloads.jsonl", "resources.jsonl", "token-key.pem"} {
		if _, ok := man.SHA256[need]; !ok {
			return nil, nil, fmt.Errorf("backup archive: the manifest lists no %s", need)
		}
	}
	if man.HasKEK != (man.SHA256["kek"] != "") {
		return nil, nil, errors.New("backup archive: the manifest disagrees with itself about the kek")
	}
	for name := range members {
		if name == "manifest.json" {
			continue
		}
		if _, ok := man.SHA256[name]; !ok {
			return nil, nil, fmt.Errorf("backup archive: member %q is not in the manifest", name)
		}
	}
	for name, want := range man.SHA256 {
		b, ok := members[name]
		if !ok {
			return nil, nil, fmt.Errorf("backup archive: member %s is missing", name)
		}
		h := sha256.Sum256(b)
		if hex.EncodeToString(h[:]) != want {
			return nil, nil, fmt.Errorf("backup archive: member %s does not match its hash (damaged)", name)
		}
	}
	return &man, members, nil
}

// restoringName marks a state directory whose restore has not finished.
const restoringName = "restore-incomplete"

// Restore writes the backup read from in into the state o names. The
// target must hold no state (no database, marker or keys in the state
// directory, an empty PostgreSQL store) unless replace is set: then the
// old files are moved aside (old-TIMESTAMP/) and a PostgreSQL store is
// wiped. The keys are checked against the backup's state record before
// anything is written. It logs to o.Logger.
func Restore(ctx context.Context, o Options, in io.Reader, replace bool) (*BackupManifest, error) {
	log := o.logger()
	man, members, err := readBackup(in)
	if err != nil {
		return nil, err
	}
	var rec store.StateRecord
	if err := json.Unmarshal(members["state.json"], &rec); err != nil || rec.ID != man.StateID {
		return nil, errors.New("backup archive: state.json is not the state the manifest names")
	}
	p := pathsFor(o)

	// The keys: from the backup, or (without one there) where the broker
	// reads them; either way they must open the state record.
	var k *kek.KEK
	if man.HasKEK {
		if k, err = kek.Parse(string(members["kek"])); err != nil {
			return nil, fmt.Errorf("backup archive: kek: %w", err)
		}
	} else if k, err = loadKEK(p); err != nil || k == nil {
		return nil, fmt.Errorf("the backup holds no key-encryption key and %s has none: %w", kekWhere(p), err)
	}
	if !k.VerifyCheckValue(rec.KEKCheck, rec.ID) {
		return nil, fmt.Errorf("the key-encryption key does not open the backup's check value: it is not the key of state %s", rec.ID)
	}
	tokenFile := filepath.Join(os.TempDir(), fmt.Sprintf("sealroot-restore-token-%d.pem", os.Getpid()))
	if err := os.WriteFile(tokenFile, members["token-key.pem"], 0o600); err != nil {
		return nil, err
	}
	tokenKey, err := loadTokenKey(tokenFile)
	os.Remove(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("backup archive: token key: %w", err)
	}
	if check, err := tokenKeyCheck(tokenKey); err != nil || subtle.ConstantTimeCompare(check, rec.TokenKeyCheck) != 1 {
		return nil, errors.New("backup archive: the token key is not the key of its state")
	}
	var workloads []*store.Workload
	if err := decodeLines(members["workloads.jsonl"], func(b []byte) error {
		var w store.Workload
		if err := json.Unmarshal(b, &w); err != nil {
			return err
		}
		if err := validateWorkloadID(w.ID); err != nil {
			return err
		}
		if !k.VerifyMAC(w.PolicyMAC, canonicalJSON(w.Policy), "workload-policy", w.ID, w.TEE) {
			return fmt.Errorf("workload %q: its policy fails authentication", w.ID)
		}
		workloads = append(workloads, &w)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("backup archive: workloads.jsonl: %w", err)
	}
	var resources []*store.Resource
	if err := decodeLines(members["resources.jsonl"], func(b []byte) error {
		var r store.Resource
		if err := json.Unmarshal(b, &r); err != nil {
			return err
		}
		resources = append(resources, &r)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("backup archive: resources.jsonl: %w", err)
	}
	if len(workloads) != man.Workloads || len(resources) != man.Resources {
		return nil, errors.New("backup archive: the counts disagree with the manifest")
	}

	// The target.
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	var present []string
	for _, n := range []string{markerName, "broker.db", "kek", "token-key.pem"} {
		if (n != "broker.db" || !p.postgres) && exists(filepath.Join(p.dir, n)) {
			present = append(present, n)
		}
	}
	if !p.kekInDir && exists(p.kek) {
		if cur, err := kek.Load(p.kek); err != nil || !cur.VerifyCheckValue(rec.KEKCheck, rec.ID) {
			return nil, fmt.Errorf("--kek-file %s holds another key-encryption key (restore never overwrites a key outside the state directory): name another --kek-file", p.kek)
		}
	}
	if len(present) > 0 {
		if !replace {
			return nil, fmt.Errorf("the state directory %s already holds state (%s): restore with --replace to move it aside", p.dir, strings.Join(present, ", "))
		}
		if err := moveStateAside(p, log); err != nil {
			return nil, err
		}
	}
	if exists(p.token) {
		if cur, err := os.ReadFile(p.token); err != nil || !bytes.Equal(cur, members["token-key.pem"]) {
			if !replace {
				return nil, fmt.Errorf("%s holds another token key: restore with --replace to overwrite it, or name another --token-key", p.token)
			}
		}
	}
	if !p.postgres && !exists(p.db) {
		// A sequence file without its database belongs to nothing; the
		// restored database starts its own.
		if err := os.Remove(p.db + ".seq"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	raw, err := openStore(ctx, o, p)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	keeper := raw.(store.StateKeeper)
	if u, err := keeper.Usage(ctx); err != nil {
		return nil, err
	} else if u.Workloads+u.Resources > 0 || stateExists(ctx, keeper) {
		if !replace {
			return nil, fmt.Errorf("%s is not empty: restore with --replace to wipe it", storeWhere(o, p))
		}
		if err := keeper.Wipe(ctx); err != nil {
			return nil, err
		}
	}
	// Until the end, a broker refuses to start on this directory.
	restoring := filepath.Join(p.dir, restoringName)
	if err := os.WriteFile(restoring, []byte(rec.ID+"\n"), 0o600); err != nil {
		return nil, err
	}
	for _, w := range workloads {
		if err := raw.PutWorkload(ctx, w); err != nil {
			return nil, fmt.Errorf("restoring workload %q: %w", w.ID, err)
		}
	}
	for _, r := range resources {
		if err := raw.PutResource(ctx, r); err != nil {
			return nil, fmt.Errorf("restoring resource %q of %q: %w", r.Path, r.WorkloadID, err)
		}
	}
	if err := keeper.SaveState(ctx, &rec); err != nil {
		return nil, err
	}
	// The keys, where the broker will read them.
	if man.HasKEK && !exists(p.kek) {
		if err := kek.WriteFileAtomic(p.kek, members["kek"], 0o600); err != nil {
			return nil, fmt.Errorf("writing the key-encryption key: %w", err)
		}
	}
	if cur, err := os.ReadFile(p.token); err != nil || !bytes.Equal(cur, members["token-key.pem"]) {
		if err := kek.ReplaceFile(p.token, members["token-key.pem"], 0o600); err != nil {
			return nil, fmt.Errorf("writing the token key: %w", err)
		}
	}
	if err := writeMarker(p, &rec); err != nil {
		return nil, err
	}
	if err := os.Remove(restoring); err != nil {
		return nil, err
	}
	log.Info("backup restored", "state_id", rec.ID, "workloads", len(workloads), "resources", len(resources))
	return man, nil
}

func stateExists(ctx context.Context, k store.StateKeeper) bool {
	_, err := k.LoadState(ctx)
	return err == nil
}

func decodeLines(b []byte, fn func([]byte) error) error {
	for i, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("line %d: %w", i+1, err)
		}
	}
	return nil
}
