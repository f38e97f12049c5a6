package initramfs

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/internal/syncbuf"
)

// logCapture keeps every record a Logger writes, as JSON lines.
type logCapture struct {
	buf syncbuf.Buffer
}

func (c *logCapture) Write(p []byte) (int, error) { return c.buf.Write(p) }

func (c *logCapture) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(c, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the records with message msg, each as its JSON object.
func (c *logCapture) records(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(c.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}
