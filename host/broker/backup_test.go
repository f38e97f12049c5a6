package broker

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
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
			log := slog.New(slog.DiscardHandler)
			o := Options{State: e.state, Store: dsn}
			if dsn == "" {
				_, err := Backup(context.Background(), o, filepath.Join(t.TempDir(), "x.tar"), false, log)
				if err == nil || !strings.Contains(err.Error(), "stop the broker first") {
					t.Fatalf("bbolt backup while the broker runs: %v", err)
				}
			}
			p.stop(t)

			archive := filepath.Join(t.TempDir(), "broker.tar")
			man, err := Backup(context.Background(), o, archive, false, log)
			if err != nil {
				t.Fatal(err)
			}
			if man.Workloads != 2 || man.Resources != 1 || !man.HasKEK {
				t.Fatalf("manifest %+v", man)
			}
			if fi, _ := os.Stat(archive); fi.Mode().Perm() != 0o600 {
				t.Fatalf("archive mode %v", fi.Mode().Perm())
			}

			// The disaster: the state directory (and database) are gone.
			os.RemoveAll(e.state)
			newDSN := ""
			if dsn != "" {
				newDSN = storetest.PostgresDSN(t)
			}
			n := newFaultEnv(t, newDSN, "--trust-sim-root", simDir)
			no := Options{State: n.state, Store: newDSN}
			f, _ := os.Open(archive)
			if _, err := Restore(context.Background(), no, f, false, log); err != nil {
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
			_, err = Restore(context.Background(), no, f, false, log)
			f.Close()
			if err == nil || !strings.Contains(err.Error(), "--replace") {
				t.Fatalf("restore over state: %v", err)
			}
			f, _ = os.Open(archive)
			if _, err = Restore(context.Background(), no, f, true, log); err != nil {
				t.Fatalf("restore --replace: %v", err)
			}
			f.Close()
			p = n.start(t)
			p.stop(t)

			// A damaged archive is refused before anything is written.
			b, _ := os.ReadFile(archive)
			i := bytes.Index(b, []byte(`"measurements"`))
			b[i+2] ^= 0x20
			_, err = Restore(context.Background(), Options{State: t.TempDir()}, bytes.NewReader(b), false, log)
			if err == nil || !strings.Contains(err.Error(), "does not match its hash") {
				t.Fatalf("damaged archive: %v", err)
			}
		})
	}
}
