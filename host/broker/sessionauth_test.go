package broker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/broker/store/storetest"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/host/verify/snp"
	"github.com/sealroot/sealroot/wire/kbs"
)

// TestForgedSessionRefused: whoever can write the database but does not
// hold the KEK cannot get a secret released by writing an attested
// session: neither a new one (with claims that satisfy the policy and a
// key of their own) nor a genuine one whose key or workload is swapped.
// The same handshakes pass when the broker wrote the session.
func TestForgedSessionRefused(t *testing.T) {
	for name, open := range storetest.Backends() {
		for _, mode := range []string{PendingMemory, PendingShared} {
			t.Run(name+"/"+mode, func(t *testing.T) {
				st := open(t)
				b := newTestBrokerOn(t, st, func(c *Config) { c.PendingSessions = mode })
				m := measurement(61)
				pass := b.registerSim(t, "victim", m)
				// Another workload that accepts the same measurement, as
				// measurement-only workloads may.
				b.registerSim(t, "other", m)
				ctx := context.Background()
				now := b.clock.Now().UTC()

				// Claims a genuine report for the victim's measurement
				// would give (policies are not secret), and a key the
				// writer holds.
				report, _, err := simAuthority.Sign(sim.ReportParams{Measurement: m})
				if err != nil {
					t.Fatal(err)
				}
				claims, err := sim.NewVerifier(simAuthority, snp.Options{Offline: true}).Verify(ctx, &attest.Evidence{TEE: attest.TEESNP, Report: report})
				if err != nil {
					t.Fatal(err)
				}
				cj, _ := json.Marshal(claims)
				thief := newKrunClient(t, b.URL, 3)
				pk, _ := json.Marshal(kbs.NewKrunPubKey(&thief.priv.PublicKey))
				forged := randomHex(16)
				if err := st.CreateSession(ctx, &store.Session{ID: forged, Dialect: kbs.DialectKrun, TEE: attest.TEESNP, Nonce: forged,
					State: store.SessionAttested, WorkloadID: "victim", CreatedAt: now, ExpiresAt: now.Add(time.Hour), AttestedAt: now,
					PubKey: pk, Claims: cj}); err != nil {
					t.Fatal(err)
				}
				u, _ := url.Parse(b.URL)
				thief.hc.Jar.SetCookies(u, []*http.Cookie{{Name: kbs.KrunCookie, Value: forged}})
				if got, code := thief.key(t, "victim"); code == http.StatusOK || got == pass {
					t.Fatalf("forged attested session: /key answered %d", code)
				}

				// A genuine handshake still gets its key.
				c := newKrunClient(t, b.URL, 0)
				nonce, _ := c.auth(t, "victim")
				if code, body := c.attest(t, nonce, m); code != http.StatusOK {
					t.Fatalf("attest: %d %s", code, body)
				}
				if mode == PendingShared {
					// The broker's own attested session carries its MAC; an
					// exact copy of it under another ID does not verify there.
					real, err := st.GetSession(ctx, nonce, now)
					if err != nil || len(real.MAC) == 0 {
						t.Fatalf("the broker's attested session: %v", err)
					}
					copied := randomHex(16)
					c2 := *real
					c2.ID, c2.Nonce = copied, copied
					if err := st.CreateSession(ctx, &c2); err != nil {
						t.Fatal(err)
					}
					same := newKrunClient(t, b.URL, 0) // the guest's own key
					same.hc.Jar.SetCookies(u, []*http.Cookie{{Name: kbs.KrunCookie, Value: copied}})
					if _, code := same.key(t, "victim"); code == http.StatusOK {
						t.Fatal("a genuine session copied under another ID was accepted")
					}
				}
				if got, code := c.key(t, "victim"); code != http.StatusOK || got != pass {
					t.Fatalf("genuine session: /key answered %d", code)
				}

				if mode != PendingShared {
					return
				}
				// A genuine attested session whose key, or workload, is
				// swapped in the database before /key.
				for _, swap := range []struct {
					name  string
					edit  func(s *store.Session)
					id    string
					thief bool // fetch as the thief (else as the guest)
				}{
					{"key", func(s *store.Session) { s.PubKey = pk }, "victim", true},
					{"workload", func(s *store.Session) { s.WorkloadID = "other" }, "other", false},
				} {
					g := newKrunClient(t, b.URL, 1)
					nonce, _ := g.auth(t, "victim")
					if code, body := g.attest(t, nonce, m); code != http.StatusOK {
						t.Fatalf("%s: attest: %d %s", swap.name, code, body)
					}
					sess, err := st.GetSession(ctx, nonce, now)
					if err != nil {
						t.Fatal(err)
					}
					swap.edit(sess)
					if _, err := st.DeleteExpiredSessions(ctx, now.Add(48*time.Hour)); err != nil {
						t.Fatal(err)
					}
					if err := st.CreateSession(ctx, sess); err != nil {
						t.Fatal(err)
					}
					fetch := g
					if swap.thief {
						fetch = thief
						thief.hc.Jar.SetCookies(u, []*http.Cookie{{Name: kbs.KrunCookie, Value: nonce}})
					}
					if _, code := fetch.key(t, swap.id); code == http.StatusOK {
						t.Fatalf("session with its %s swapped: /key answered 200", swap.name)
					}
				}
			})
		}
	}
}

// renamingStore answers for session from with the record of session to,
// as a bbolt file whose record was copied under another key would.
type renamingStore struct {
	store.Store
	from, to string
}

func (r renamingStore) GetSession(ctx context.Context, id string, now time.Time) (*store.Session, error) {
	if id == r.from {
		id = r.to
	}
	return r.Store.GetSession(ctx, id, now)
}

// TestSessionMACBindsLookedUpID: a genuine attested record found under
// another ID than its own is refused.
func TestSessionMACBindsLookedUpID(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir() + "/broker.db")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	newTestBrokerOn(t, st) // makes testKEK
	ctx := context.Background()
	now := time.Now().UTC()
	as := authenticatePolicies(renamingStore{Store: st, from: "copy", to: "real"}, testKEK)
	if err := as.CreateSession(ctx, &store.Session{ID: "real", Dialect: kbs.DialectKrun, TEE: attest.TEESNP, Nonce: "real",
		State: store.SessionAttested, WorkloadID: "w", CreatedAt: now, ExpiresAt: now.Add(time.Hour), PubKey: []byte("pk"), Claims: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := as.GetSession(ctx, "real", now); err != nil {
		t.Fatalf("the genuine session: %v", err)
	}
	if _, err := as.GetSession(ctx, "copy", now); !errors.Is(err, store.ErrDamaged) {
		t.Fatalf("the genuine record under another ID: %v, want ErrDamaged", err)
	}
}
