package broker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/broker/store/storetest"
)

// TestBackupRestore: a backup taken from a serving state, restored into a
// new state directory (and a new PostgreSQL database) after the old one is
// gone, serves the same passphrase to an attested guest; restores refuse
// to overwrite state, damaged archives, and a running bbolt broker.
func TestBackupRestore(t *testing.T) {
	for _, backend := range []string{"bbolt", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dsn := ""
			if backend == "postgres" {
				dsn = storetest.PostgresDSN(t)
			}
			e := newFaultEnv(t, dsn, "--trust-sim-root", simDir)
			p := e.start(t)
			tb := &testBroker{URL: p.url}
			m := measurement(81)
			pass := tb.registerSim(t, "bk-1", m)
			tb.registerBuildah(t, "bk-2", measurement(82))
			if code, body := tb.adminDo(t, http.MethodPut, "/admin/v1/workloads/bk-1/resources/app/cfg/token", "resource-value"); code != http.StatusNoContent {
				t.Fatalf("put resource: %d %s", code, body)
			}
			// Backup and restore log to a handler that keeps every record,
			// which must name no secret.
			logs := &syncBuffer{}
			o := Options{State: e.state, Store: dsn, Logger: JSONLogger(logs)}
			if dsn == "" {
				_, err := Backup(context.Background(), o, filepath.Join(t.TempDir(), "x.tar"), false)
				if err == nil || !strings.Contains(err.Error(), "stop the broker first") {
					t.Fatalf("bbolt backup while the broker runs: %v", err)
				}
			}
			p.stop(t)

			archive := filepath.Join(t.TempDir(), "broker.tar")
			man, err := Backup(context.Background(), o, archive, false)
			if err != nil {
				t.Fatal(err)
			}
			if man.Workloads != 2 || man.Resources != 1 || !man.HasKEK {
				t.Fatalf("manifest %+v", man)
			}
			if fi, _ := os.Stat(archive); fi.Mode().Perm() != 0o600 {
				t.Fatalf("archive mode %v", fi.Mode().Perm())
			}

			kekFile, err := os.ReadFile(filepath.Join(e.state, "kek"))
			if err != nil {
				t.Fatal(err)
			}
			// The disaster: the state directory (and database) are gone.
			os.RemoveAll(e.state)
			newDSN := ""
			if dsn != "" {
				newDSN = storetest.PostgresDSN(t)
			}
			n := newFaultEnv(t, newDSN, "--trust-sim-root", simDir)
			no := Options{State: n.state, Store: newDSN, Logger: JSONLogger(logs)}
			f, _ := os.Open(archive)
			if _, err := Restore(context.Background(), no, f, false); err != nil {
				t.Fatal(err)
			}
			f.Close()

			p = n.start(t)
			c := newKrunClient(t, p.url, 0)
			nonce, code := c.auth(t, "bk-1")
			if code != http.StatusOK {
				t.Fatalf("auth: %d", code)
			}
			if code, body := c.attest(t, nonce, m); code != http.StatusOK {
				t.Fatalf("attest after restore: %d %s", code, body)
			}
			if got, code := c.key(t, "bk-1"); code != http.StatusOK || got != pass {
				t.Fatalf("key after restore: %d (same passphrase: %v)", code, got == pass)
			}
			have := listIDs(t, p.url)
			if _, ok := have["bk-2"]; !ok || len(have) != 2 {
				t.Fatalf("workloads after restore: %v", have)
			}
			p.stop(t)

			// Restoring over state needs --replace.
			f, _ = os.Open(archive)
			_, err = Restore(context.Background(), no, f, false)
			f.Close()
			if err == nil || !strings.Contains(err.Error(), "--replace") {
				t.Fatalf("restore over state: %v", err)
			}
			f, _ = os.Open(archive)
			if _, err = Restore(context.Background(), no, f, true); err != nil {
				t.Fatalf("restore --replace: %v", err)
			}
			f.Close()
			p = n.start(t)
			p.stop(t)

			// A damaged archive is refused before anything is written.
			b, _ := os.ReadFile(archive)
			i := bytes.Index(b, []byte(`"measurements"`))
			b[i+2] ^= 0x20
			_, err = Restore(context.Background(), Options{State: t.TempDir()}, bytes.NewReader(b), false)
			if err == nil || !strings.Contains(err.Error(), "does not match its hash") {
				t.Fatalf("damaged archive: %v", err)
			}
			for _, want := range []string{`"msg":"backup written"`, `"msg":"backup restored"`} {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("no %s record:\n%s", want, logs.String())
				}
			}
			for what, secret := range map[string]string{"passphrase": pass, "resource": "resource-value", "key-encryption key": strings.TrimSpace(string(kekFile))} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the %s is in the backup's log", what)
				}
			}
		})
	}
}

// FuzzReadBackup: a backup archive is read from wherever the operator kept
// it; damage must end in an error, never a panic.
func FuzzReadBackup(f *testing.F) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	man := `{"format":"` + BackupFormat + `","state_id":"x","sha256":{"state.json":"` + strings.Repeat("0", 64) + `"}}`
	tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o600, Size: int64(len(man)), Typeflag: tar.TypeReg})
	tw.Write([]byte(man))
	tw.Close()
	f.Add(buf.Bytes())
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, b []byte) {
		man, members, err := readBackup(bytes.NewReader(b))
		if err != nil {
			return
		}
		for name, sum := range man.SHA256 {
			h := sha256.Sum256(members[name])
			if hex.EncodeToString(h[:]) != sum {
				t.Fatalf("accepted member %s with a wrong hash", name)
			}
		}
	})
}

func TestStorePassword(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("s3cret\n"), 0o600)
	t.Setenv(EnvStorePassword, "from-env")
	if pw, err := storePassword(Options{StorePasswordFile: pwFile}); err != nil || pw != "s3cret" {
		t.Fatalf("file: %q %v", pw, err)
	}
	if pw, _ := storePassword(Options{}); pw != "from-env" {
		t.Fatalf("env: %q", pw)
	}
	t.Setenv(EnvStorePassword, "")
	os.WriteFile(filepath.Join(dir, storeCredential), []byte("from-credential\n"), 0o400)
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	if pw, _ := storePassword(Options{}); pw != "from-credential" {
		t.Fatalf("credential: %q", pw)
	}
	os.WriteFile(pwFile, nil, 0o600)
	if _, err := storePassword(Options{StorePasswordFile: pwFile}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("empty file: %v", err)
	}
	if !dsnHasPassword("postgres://u:p@h/db") || dsnHasPassword("postgres://u@h/db") {
		t.Fatal("dsnHasPassword")
	}
}

// TestStorePasswordOffTheCommandLine: a broker reaches PostgreSQL with the
// password from a file while --store names no password.
func TestStorePasswordOffTheCommandLine(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pw, ok := u.User.Password()
	if !ok {
		t.Skip("the test cluster's DSN carries no password")
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(pwFile, []byte(pw+"\n"), 0o600)
	u.User = url.User(u.User.Username())
	t.Setenv("PGPASSWORD", "")
	t.Setenv("PGPASSFILE", filepath.Join(t.TempDir(), "none"))
	e := newFaultEnv(t, u.String(), "--store-password-file", pwFile)
	p := e.start(t)
	if code, _ := register(t, p.url, "pw-1"); code != http.StatusOK {
		t.Fatalf("register: %d", code)
	}
	p.stop(t)
	if strings.Contains(p.errb.String(), pw) {
		t.Fatal("the password is in the log")
	}
	// Without it the broker cannot connect, and says so without a secret.
	bad := newFaultEnv(t, u.String())
	out := bad.refuse(t, "postgres")
	if strings.Contains(out, pw) {
		t.Fatal("the password is in the refusal")
	}
}
