package broker

import (
	"path/filepath"
	"testing"

	"github.com/sealroot/sealroot/host/broker/store"
)

// TestDefaultPendingLooksThroughGuard: Run wraps every store in
// store.Guarded; PostgreSQL behind it must still default to shared
// pending sessions (replicas without sticky routing), bbolt to memory.
func TestDefaultPendingLooksThroughGuard(t *testing.T) {
	bolt, err := store.OpenBolt(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer bolt.Close()
	if got := defaultPending(store.Guard(bolt, store.GuardOptions{})); got != PendingMemory {
		t.Errorf("guarded bbolt: %q, want %q", got, PendingMemory)
	}
	pg := &store.Postgres{} // never opened: only its type is looked at
	if got := defaultPending(pg); got != PendingShared {
		t.Errorf("postgres: %q, want %q", got, PendingShared)
	}
	if got := defaultPending(store.Guard(pg, store.GuardOptions{})); got != PendingShared {
		t.Errorf("guarded postgres: %q, want %q", got, PendingShared)
	}
}
