// Package storetest gives tests a private PostgreSQL schema on the cluster
// named by SEALROOT_TEST_POSTGRES (a DSN; tests/postgres.sh starts one).
//
// Without the variable, PostgreSQL tests skip, except when CI is "true":
// there a missing database is a failure, so that CI can not silently stop
// testing the replicated store.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealroot/sealroot/host/broker/store"
)

// EnvDSN is the variable holding the test cluster's DSN.
const EnvDSN = "SEALROOT_TEST_POSTGRES"

// PostgresDSN creates a fresh schema for this test and returns a DSN whose
// search_path selects it. The schema is dropped when the test ends. Tests
// in different packages run in parallel on one cluster without sharing
// tables.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDSN)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set (CI=true): run tests/postgres.sh and export its DSN", EnvDSN)
		}
		t.Skipf("%s not set; start a cluster with: export %s=$(bash tests/postgres.sh)", EnvDSN, EnvDSN)
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	schema := "t_" + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connecting to %s: %v", EnvDSN, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("creating schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("dropping schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("dropping schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s is not a URL", EnvDSN)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Backends opens each kind of store for one test: "bbolt", a file in the
// test's temporary directory, and "postgres", a private schema (see
// PostgresDSN: it skips without the cluster). Each store is closed when
// its test ends.
func Backends() map[string]func(t testing.TB) store.Store {
	return map[string]func(t testing.TB) store.Store{
		"bbolt": func(t testing.TB) store.Store {
			s, err := store.OpenBolt(filepath.Join(t.TempDir(), "broker.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": func(t testing.TB) store.Store {
			s, err := store.OpenPostgres(context.Background(), PostgresDSN(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}
