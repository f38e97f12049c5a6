package broker

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/wire/kbs"
)

// Workload identity. The launch measurement covers the kernel, initrd,
// command line, vCPUs and memory, not the disk footer's config that names
// the workload and the broker; two workloads launched alike share a
// measurement. sealroot binds the config through HOST_DATA (the launcher
// sets it to the SHA-256 of the config JSON, the guest init checks it), and
// a workload registered with that host_data is one no other guest can
// attest as, whatever name it gives.

// configHostData is HOST_DATA for a workload's footer config.
func configHostData(id string) ([32]byte, string) {
	h := sha256.Sum256([]byte(`{"tee":"sim","tee_data":"","workload_id":"` + id + `","cpus":1,"ram_mib":512,"attestation_url":"http://127.0.0.1:8000"}`))
	return h, hex.EncodeToString(h[:])
}

// TestHostDataSeparatesWorkloads: alice and bob share a measurement and
// have different host_data. alice's guest (HOST_DATA of alice's config)
// gets alice's key and never bob's, in both dialects: not through its own
// session, not by naming bob at /auth, not by naming no workload.
func TestHostDataSeparatesWorkloads(t *testing.T) {
	m := measurement(70)
	aliceHD, aliceHex := configHostData("alice")
	_, bobHex := configHostData("bob")
	asAlice := func(p *sim.ReportParams) { p.HostData = aliceHD }

	b := newTestBroker(t)
	// alice through AdminClient, as Go tests outside this package do.
	ac, err := NewAdminClient(b.URL, testAdminToken, nil)
	if err != nil {
		t.Fatal(err)
	}
	alicePass := randomHex(32)
	w, err := ac.Register(t.Context(), AdminRegistration{WorkloadID: "alice", TEE: attest.TEESim, Passphrase: &alicePass,
		Policy: WorkloadPolicy{Measurements: []string{hex.EncodeToString(m[:])}, HostData: aliceHex}})
	if err != nil || w.TEE != attest.TEESim || w.Policy.HostData != aliceHex || !w.HasPassphrase {
		t.Fatalf("AdminClient.Register: %+v, %v", w, err)
	}
	b.registerSim(t, "bob", m, bobHex)

	t.Run("krun", func(t *testing.T) {
		c := newKrunClient(t, b.URL, 0)
		c.params = asAlice
		nonce, _ := c.auth(t, "alice")
		if code, body := c.attest(t, nonce, m); code != http.StatusOK {
			t.Fatalf("alice attests as alice: %d %s", code, body)
		}
		if got, code := c.key(t, "alice"); code != http.StatusOK || got != alicePass {
			t.Fatalf("alice's key: %d", code)
		}
		if _, code := c.key(t, "bob"); code != http.StatusUnauthorized {
			t.Fatalf("bob's key through alice's session: %d", code)
		}
		// A host that rewrites the footer (or answers /auth) to name bob.
		c = newKrunClient(t, b.URL, 0)
		c.params = asAlice
		nonce, _ = c.auth(t, "bob")
		if code, _ := c.attest(t, nonce, m); code != http.StatusUnauthorized {
			t.Fatalf("alice's guest attests as bob: %d", code)
		}
		if rec := b.audit.lastRefusal(t); rec["check"] != "host_data" || rec["workload"] != "bob" {
			t.Fatalf("audit %v, want check host_data", rec)
		}
		if _, code := c.key(t, "bob"); code != http.StatusUnauthorized {
			t.Fatalf("bob's key: %d", code)
		}
	})

	t.Run("trustee named", func(t *testing.T) {
		c := newTrusteeClient(t, b.URL, "ec")
		c.params = asAlice
		c.extra = `{"workload_id":"bob"}`
		nonce, _ := c.auth(t)
		if code, _ := c.attest(t, nonce, m); code != http.StatusUnauthorized {
			t.Fatalf("alice's guest attests as bob: %d", code)
		}
		if rec := b.audit.lastRefusal(t); rec["check"] != "host_data" || rec["workload"] != "bob" {
			t.Fatalf("audit %v, want check host_data", rec)
		}
		if _, code, _ := c.resource(t, kbs.PassphrasePath("bob"), false); code != http.StatusUnauthorized {
			t.Fatalf("bob's passphrase: %d", code)
		}
	})

	t.Run("trustee unnamed", func(t *testing.T) {
		c := newTrusteeClient(t, b.URL, "ec")
		c.params = asAlice
		nonce, _ := c.auth(t)
		if code, body := c.attest(t, nonce, m); code != http.StatusOK {
			t.Fatalf("attest: %d %s", code, body)
		}
		if got, code, _ := c.resource(t, kbs.PassphrasePath("alice"), false); code != http.StatusOK || got != alicePass {
			t.Fatalf("alice's passphrase: %d", code)
		}
		if _, code, _ := c.resource(t, kbs.PassphrasePath("bob"), true); code != http.StatusUnauthorized {
			t.Fatalf("bob's passphrase: %d", code)
		}
		if rec := b.audit.lastRefusal(t); !strings.Contains(rec["reason"].(string), "host_data mismatch") {
			t.Fatalf("audit %v, want a host_data mismatch", rec)
		}
	})
}

// TestSameMeasurementWithoutHostData is the limit the documentation states:
// two workloads registered without host_data (as buildah registers) and
// launched alike can not be told apart by evidence, so a guest of one that
// names the other at /auth is that other as far as the broker can tell.
// Only the per-session check remains: a session reads only the workload it
// attested as.
func TestSameMeasurementWithoutHostData(t *testing.T) {
	m := measurement(71)
	b := newTestBroker(t)
	b.registerSim(t, "carol", m)
	davePass := b.registerSim(t, "dave", m)
	c := newKrunClient(t, b.URL, 0)
	nonce, _ := c.auth(t, "dave")
	if code, body := c.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("attest: %d %s", code, body)
	}
	if got, code := c.key(t, "dave"); code != http.StatusOK || got != davePass {
		t.Fatalf("without host_data, carol's twin named dave gets dave's key: %d", code)
	}
}
