package store

import (
	"os"
	"testing"
	"time"
)

// TestMain shortens the lock timeout for every test of the package.
func TestMain(m *testing.M) {
	lockTimeout = 200 * time.Millisecond
	os.Exit(m.Run())
}
