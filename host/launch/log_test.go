package launch

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/internal/syncbuf"
)

// TestServeSimLogsFailures: a simulated TEE connection that fails is a
// warning record on the launcher's Logger, naming the error.
func TestServeSimLogsFailures(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "sim.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out syncbuf.Buffer
	log := slog.New(slog.NewJSONHandler(&out, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	// A server without an authority refuses every connection.
	go func() { defer close(done); serveSim(ctx, ln, &sim.Server{}, log) }()
	c, err := net.Dial("unix", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := `"level":"WARN","msg":"serving the simulated TEE","err":"sim: server has no authority"`
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), want); {
		if time.Now().After(deadline) {
			t.Fatalf("no warning record %s in:\n%s", want, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	ln.Close()
	<-done
}
