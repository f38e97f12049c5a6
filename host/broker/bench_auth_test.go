package broker

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/host/broker/store"
)

// BenchmarkAuth measures unauthenticated /auth on bbolt with pending
// sessions in memory (the default) and in the store (what every /auth cost
// before, and what PostgreSQL replicas still pay), and reports how many
// bytes broker.db grew per call.
func BenchmarkAuth(b *testing.B) {
	for _, mode := range []string{PendingMemory, PendingShared} {
		b.Run(mode, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "broker.db")
			st, err := store.OpenBolt(path)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			tb := newTestBrokerOn(b, st, func(c *Config) {
				c.PendingSessions, c.MaxPendingSessions, c.MaxPendingPerClient = mode, b.N+1, b.N+1
			})
			before, _ := os.Stat(path)
			body := `{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"bench\"}"}`
			b.ResetTimer()
			for range b.N {
				resp, err := http.Post(tb.URL+"/kbs/v0/auth", "application/json", strings.NewReader(body))
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("auth: %d", resp.StatusCode)
				}
			}
			b.StopTimer()
			after, _ := os.Stat(path)
			b.ReportMetric(float64(after.Size()-before.Size())/float64(b.N), "db-bytes/op")
		})
	}
}
