package broker

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/kbs"
)

// TestCompileAllowSimulated: only a "sim" workload on a broker that trusts
// the simulated root accepts simulated evidence; --trust-sim-root never
// loosens a hardware workload.
func TestCompileAllowSimulated(t *testing.T) {
	doc := &WorkloadPolicy{Measurements: []string{strings.Repeat("ab", 48)}}
	for _, tee := range []string{attest.TEESNP, attest.TEESim, attest.TEETDX, attest.TEECCA} {
		for _, trust := range []bool{false, true} {
			pol, err := doc.compile(tee, trust, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := trust && tee == attest.TEESim; pol.AllowSimulated != want {
				t.Errorf("tee %s, trust sim root %t: AllowSimulated %t, want %t", tee, trust, pol.AllowSimulated, want)
			}
		}
	}
}

// TestSimulatedEvidenceNeedsSimWorkload: on a broker started with
// --trust-sim-root, a workload registered as snp (as buildah registers
// every workload) refuses simulated evidence in both dialects, whether the
// guest names it or not; a "sim" workload with the same measurement is
// unlocked by it, and that session still can not read the snp workload's
// passphrase.
func TestSimulatedEvidenceNeedsSimWorkload(t *testing.T) {
	m := measurement(60)
	b := newTestBroker(t)
	b.registerBuildah(t, "hw", m)

	k := newKrunClient(t, b.URL, 0)
	nonce, _ := k.auth(t, "hw")
	if code, body := k.attest(t, nonce, m); code != http.StatusUnauthorized {
		t.Fatalf("krun: simulated evidence for an snp workload: %d %s", code, body)
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "simulated" || rec["workload"] != "hw" {
		t.Fatalf("krun audit %v, want check simulated", rec)
	}

	named := newTrusteeClient(t, b.URL, "ec")
	named.extra = `{"workload_id":"hw"}`
	nonce, _ = named.auth(t)
	if code, body := named.attest(t, nonce, m); code != http.StatusUnauthorized {
		t.Fatalf("trustee, named: simulated evidence for an snp workload: %d %s", code, body)
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "simulated" {
		t.Fatalf("trustee audit %v, want check simulated", rec)
	}

	anon := newTrusteeClient(t, b.URL, "ec")
	nonce, _ = anon.auth(t)
	if code, body := anon.attest(t, nonce, m); code != http.StatusUnauthorized {
		t.Fatalf("trustee, unnamed: simulated evidence accepted by an snp workload: %d %s", code, body)
	}
	if rec := b.audit.lastRefusal(t); rec["check"] != "no_workload" || !strings.Contains(rec["reason"].(string), "hw: simulated") {
		t.Fatalf("trustee audit %v, want no_workload naming hw: simulated", rec)
	}

	// A sim workload of the same measurement is what simulated evidence
	// unlocks; its session gets nothing of the snp workload.
	pass := b.registerSim(t, "lab", m)
	anon = newTrusteeClient(t, b.URL, "ec")
	nonce, _ = anon.auth(t)
	if code, body := anon.attest(t, nonce, m); code != http.StatusOK {
		t.Fatalf("trustee, sim workload: %d %s", code, body)
	}
	if got, code, _ := anon.resource(t, kbs.PassphrasePath("lab"), false); code != http.StatusOK || got != pass {
		t.Fatalf("sim workload's passphrase: %d", code)
	}
	if _, code, _ := anon.resource(t, kbs.PassphrasePath("hw"), false); code != http.StatusUnauthorized {
		t.Fatalf("snp workload's passphrase to a simulated guest: %d", code)
	}
}
