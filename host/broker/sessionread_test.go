package broker

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/broker/store/storetest"
	"github.com/sealroot/sealroot/wire/kbs"
)

// storeOps reads the broker's count of each store operation from /metrics.
func storeOps(t *testing.T, b *testBroker) map[string]int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.URL+"/metrics", nil)
	code, body := do(t, http.DefaultClient, req)
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	ops := map[string]int{}
	re := regexp.MustCompile(`(?m)^sealroot_broker_store_seconds_count\{op="([a-z_]+)"\} ([0-9]+)$`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		n, _ := strconv.Atoi(m[2])
		ops[m[1]] = n
	}
	return ops
}

// TestSharedSessionReads: with shared sessions, a krun handshake reads its
// workload in the round trips that spend and read the session (one store
// call each for /attest's spend and /key's read, no GetWorkload), and the
// workload so read is held to its policy MAC exactly as GetWorkload's is:
// a policy loosened in the database is refused at /attest and at /key.
func TestSharedSessionReads(t *testing.T) {
	for name, open := range storetest.Backends() { // shared sessions: PostgreSQL's default, bbolt by choice
		t.Run(name, func(t *testing.T) {
			st := open(t)
			b := newTestBrokerOn(t, st, func(c *Config) { c.PendingSessions = PendingShared })
			m := measurement(51)
			pass := b.registerSim(t, "reads", m)

			before := storeOps(t, b)
			c := newKrunClient(t, b.URL, 0)
			nonce, _ := c.auth(t, "reads")
			if code, body := c.attest(t, nonce, m); code != http.StatusOK {
				t.Fatalf("attest: %d %s", code, body)
			}
			if got, code := c.key(t, "reads"); code != http.StatusOK || got != pass {
				t.Fatalf("key: %d", code)
			}
			after := storeOps(t, b)
			for op, want := range map[string]int{"create_session": 1, "consume_challenge_read": 1, "mark_attested": 1,
				"get_session_read": 1, "get_workload": 0, "consume_challenge": 0, "get_session": 0} {
				if got := after[op] - before[op]; got != want {
					t.Errorf("store op %s: %d calls in one handshake, want %d", op, got, want)
				}
			}

			// Trustee: the passphrase path names its workload, read with
			// the session at /resource.
			before = storeOps(t, b)
			tc := newTrusteeClient(t, b.URL, "ec")
			tnonce, _ := tc.auth(t)
			if code, body := tc.attest(t, tnonce, m); code != http.StatusOK {
				t.Fatalf("trustee attest: %d %s", code, body)
			}
			if got, code, _ := tc.resource(t, kbs.PassphrasePath("reads"), true); code != http.StatusOK || got != pass {
				t.Fatalf("trustee resource: %d", code)
			}
			after = storeOps(t, b)
			for op, want := range map[string]int{"get_session_read": 1, "get_workload": 0, "get_session": 0} {
				if got := after[op] - before[op]; got != want {
					t.Errorf("trustee: store op %s: %d calls in one handshake, want %d", op, got, want)
				}
			}

			// Loosen the policy behind the broker's back: the measurement
			// stays accepted, so only the MAC check can refuse it.
			other := measurement(52)
			loosen := func() {
				t.Helper()
				err := st.UpdateWorkload(t.Context(), "reads", func(w *store.Workload) error {
					w.Policy = json.RawMessage(`{"measurements":["` + hex.EncodeToString(m[:]) + `","` + hex.EncodeToString(other[:]) + `"]}`)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			// An attested session whose workload is altered before /key.
			c2 := newKrunClient(t, b.URL, 1)
			nonce, _ = c2.auth(t, "reads")
			if code, body := c2.attest(t, nonce, m); code != http.StatusOK {
				t.Fatalf("attest before the alteration: %d %s", code, body)
			}
			loosen()
			if _, code := c2.key(t, "reads"); code == http.StatusOK {
				t.Error("/key released the passphrase of a workload whose policy was altered in the database")
			}
			if _, code, _ := tc.resource(t, kbs.PassphrasePath("reads"), true); code == http.StatusOK {
				t.Error("/resource released the passphrase of a workload whose policy was altered in the database")
			}
			// A fresh handshake on the altered workload.
			c3 := newKrunClient(t, b.URL, 2)
			nonce, _ = c3.auth(t, "reads")
			if code, _ := c3.attest(t, nonce, m); code == http.StatusOK {
				t.Error("/attest accepted evidence against a policy altered in the database")
			}
			if !strings.Contains(b.logs.String()+b.audit.String(), "fails authentication") {
				t.Errorf("no record says the policy fails authentication:\n%s", b.audit.String())
			}
		})
	}
}

// TestStalePrefetch: a workload read with the session longer than
// maxPrefetchAge before /attest judges (a slow verification) is read
// again, so the policy judged is a current one.
func TestStalePrefetch(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.PendingSessions = PendingShared })
	m := measurement(53)
	b.registerSim(t, "stale", m)
	old := maxPrefetchAge
	maxPrefetchAge = -time.Second // every prefetched workload is too old
	t.Cleanup(func() { maxPrefetchAge = old })
	before := storeOps(t, b)
	c := newKrunClient(t, b.URL, 0)
	nonce, _ := c.auth(t, "stale")
	if code, body := c.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("attest: %d %s", code, body)
	}
	if got := storeOps(t, b)["get_workload"] - before["get_workload"]; got != 1 {
		t.Fatalf("/attest read the workload %d times after its prefetch went stale, want 1", got)
	}
}

// TestLoadWorkloadPre: loadWorkload uses a workload read with the session
// only when it is the workload asked for.
func TestLoadWorkloadPre(t *testing.T) {
	b := newTestBroker(t)
	b.registerSim(t, "asked", measurement(54))
	b.registerSim(t, "other", measurement(55))
	other, err := b.store.GetWorkload(t.Context(), "other")
	if err != nil {
		t.Fatal(err)
	}
	w, _, ref := b.loadWorkload(t.Context(), "asked", other)
	if ref != nil || w.ID != "asked" {
		t.Fatalf("asked for %q with %q's record at hand: got %+v, %+v", "asked", "other", w, ref)
	}
	asked, err := b.store.GetWorkload(t.Context(), "asked")
	if err != nil {
		t.Fatal(err)
	}
	if w, _, ref := b.loadWorkload(t.Context(), "asked", asked); ref != nil || w != asked {
		t.Fatalf("the record at hand was not used: %+v, %+v", w, ref)
	}
}
