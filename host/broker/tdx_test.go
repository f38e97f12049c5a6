package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/wire/kbs"
)

// fakeTDXQuote is the "quote" fakeTDXVerifier reads: report_data, MRTD and
// RTMR0-3, back to back. Real quotes need Intel's collateral; what is under
// test here is what the broker does with verified TDX claims.
func fakeTDXQuote(reportData []byte, mrtd [48]byte, rtmrs [4][48]byte) []byte {
	q := append(append([]byte{}, reportData...), mrtd[:]...)
	for _, r := range rtmrs {
		q = append(q, r[:]...)
	}
	return q
}

// fakeTDXVerifier returns the claims host/verify/tdx would return for a quote
// made by fakeTDXQuote: MRTD as the measurement, RTMRs in Extra.
type fakeTDXVerifier struct{}

func (fakeTDXVerifier) Verify(_ context.Context, ev *attest.Evidence) (*attest.Claims, error) {
	q := ev.Report
	if len(q) != 64+5*48 {
		return nil, errors.New("fake tdx quote: wrong length")
	}
	extra := map[string]string{}
	for i := range 4 {
		extra[fmt.Sprintf("rtmr%d", i)] = hex.EncodeToString(q[112+48*i : 160+48*i])
	}
	return &attest.Claims{TEE: attest.TEETDX, ReportData: q[:64], Measurement: q[64:112], Extra: extra}, nil
}

func rtmrSet() [4][48]byte {
	var r [4][48]byte
	for i := range r {
		r[i] = measurement(byte(0x70 + i))
	}
	return r
}

func hexOf(b [48]byte) string { return hex.EncodeToString(b[:]) }

// tdxPolicy is the admin policy accepting mrtd with RTMR1 and RTMR2 of r.
func tdxPolicy(mrtd [48]byte, r [4][48]byte) WorkloadPolicy {
	return WorkloadPolicy{Measurements: []string{hexOf(mrtd)}, RTMRs: map[int]string{1: hexOf(r[1]), 2: hexOf(r[2])}}
}

// tdxAttest runs a Trustee-dialect TDX guest naming workload id, with the
// given MRTD and RTMRs, and returns the attest status and the passphrase
// resource status.
func tdxAttest(t *testing.T, b *testBroker, id string, mrtd [48]byte, rtmrs [4][48]byte) (int, int) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, err := kbs.NewJWK(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, b.URL+"/kbs/v0/auth",
		strings.NewReader(`{"version":"0.4.0","tee":"tdx","extra-params":{"workload_id":"`+id+`"}}`))
	code, body := do(t, hc, req)
	if code != http.StatusOK {
		t.Fatalf("tdx auth: %d %s", code, body)
	}
	var ch kbs.Challenge
	json.Unmarshal([]byte(body), &ch)
	quote := fakeTDXQuote(kbs.TrusteeReportData(ch.Nonce, jwk, "", 64), mrtd, rtmrs)
	pk, _ := json.Marshal(jwk)
	att := `{"init-data":null,"runtime-data":{"nonce":"` + ch.Nonce + `","tee-pubkey":` + string(pk) +
		`},"tee-evidence":{"primary_evidence":{"cc_eventlog":null,"quote":"` + base64.StdEncoding.EncodeToString(quote) +
		`"},"additional_evidence":""}}`
	req, _ = http.NewRequest(http.MethodPost, b.URL+"/kbs/v0/attest", strings.NewReader(att))
	attestCode, _ := do(t, hc, req)
	req, _ = http.NewRequest(http.MethodGet, b.URL+"/kbs/v0/resource/"+kbs.PassphrasePath(id), nil)
	resCode, _ := do(t, hc, req)
	return attestCode, resCode
}

// TestTDXRTMRs: a TDX workload is judged on MRTD and on RTMR1 and RTMR2
// (kernel, initrd, command line); a guest with the right firmware but
// another kernel or command line gets nothing.
func TestTDXRTMRs(t *testing.T) {
	withTDX := func(c *Config) { c.Verifiers[attest.TEETDX] = fakeTDXVerifier{} }
	mrtd, good := measurement(0x60), rtmrSet()
	otherKernel, otherCmdline := good, good
	otherKernel[1][0] ^= 1
	otherCmdline[2][47] ^= 1
	otherRTMR3 := good // RTMR3 is not in the policy
	otherRTMR3[3][0] ^= 1
	for _, tc := range []struct {
		name  string
		rtmrs [4][48]byte
		mrtd  [48]byte
		code  int
		check string
	}{
		{"matching", good, mrtd, http.StatusOK, ""},
		{"unchecked rtmr3 differs", otherRTMR3, mrtd, http.StatusOK, ""},
		{"other kernel (rtmr1)", otherKernel, mrtd, http.StatusUnauthorized, "rtmr"},
		{"other command line (rtmr2)", otherCmdline, mrtd, http.StatusUnauthorized, "rtmr"},
		{"other firmware (mrtd)", good, measurement(0x61), http.StatusUnauthorized, "measurement"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newTestBroker(t, withTDX)
			pass := "tdx-passphrase"
			reg := AdminRegistration{WorkloadID: "td", TEE: attest.TEETDX, Policy: tdxPolicy(mrtd, good), Passphrase: &pass}
			if code, body := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg)); code != http.StatusCreated {
				t.Fatalf("register: %d %s", code, body)
			}
			attestCode, resCode := tdxAttest(t, b, "td", tc.mrtd, tc.rtmrs)
			if attestCode != tc.code {
				t.Fatalf("attest: %d, want %d", attestCode, tc.code)
			}
			if tc.code == http.StatusOK {
				if resCode != http.StatusOK {
					t.Fatalf("passphrase: %d", resCode)
				}
				return
			}
			if resCode != http.StatusUnauthorized {
				t.Fatalf("passphrase after refusal: %d", resCode)
			}
			// The attest refusal names the check (the resource read after it
			// is refused as not_attested).
			var found bool
			for _, r := range b.audit.records(t) {
				found = found || (r["event"] == eventRefusal && r["check"] == tc.check && r["workload"] == "td")
			}
			if !found {
				t.Fatalf("no refusal with check %q in %v", tc.check, b.audit.records(t))
			}
		})
	}

	// A tdx record stored before RTMRs were required fails closed.
	t.Run("stored without rtmrs", func(t *testing.T) {
		b := newTestBroker(t, withTDX)
		pass := "tdx-passphrase"
		reg := AdminRegistration{WorkloadID: "td", TEE: attest.TEETDX, Policy: tdxPolicy(mrtd, good), Passphrase: &pass}
		if code, body := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg)); code != http.StatusCreated {
			t.Fatalf("register: %d %s", code, body)
		}
		legacy, _ := json.Marshal(WorkloadPolicy{Measurements: []string{hexOf(mrtd)}})
		if err := b.st.UpdateWorkload(t.Context(), "td", func(w *store.Workload) error {
			w.Policy, w.PolicyMAC = legacy, policyMAC(testKEK, &store.Workload{ID: w.ID, TEE: w.TEE, Policy: legacy})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if attestCode, _ := tdxAttest(t, b, "td", mrtd, good); attestCode != http.StatusUnauthorized {
			t.Fatalf("attest against an MRTD-only record: %d", attestCode)
		}
		var rec map[string]any
		for _, r := range b.audit.records(t) {
			if r["event"] == eventRefusal && r["check"] == "rtmr" {
				rec = r
			}
		}
		if rec == nil || !strings.Contains(rec["reason"].(string), "set-policy --rtmr") {
			t.Fatalf("no rtmr refusal naming the fix: %v", b.audit.records(t))
		}
	})
}

// TestTDXRegistrationNeedsRTMRs: the admin API refuses a tdx workload
// without RTMR1 and RTMR2, and RTMRs on any other TEE.
func TestTDXRegistrationNeedsRTMRs(t *testing.T) {
	b := newTestBroker(t)
	mrtd, r := measurement(0x62), rtmrSet()
	good := tdxPolicy(mrtd, r)
	for _, tc := range []struct {
		name string
		tee  string
		pol  WorkloadPolicy
		want string // substring of the error; "" for success
	}{
		{"no rtmrs", attest.TEETDX, WorkloadPolicy{Measurements: good.Measurements}, "rtmr 1 and rtmr 2 missing"},
		{"rtmr1 only", attest.TEETDX, WorkloadPolicy{Measurements: good.Measurements, RTMRs: map[int]string{1: hexOf(r[1])}}, "rtmr 2 missing"},
		{"rtmr 4", attest.TEETDX, WorkloadPolicy{Measurements: good.Measurements, RTMRs: map[int]string{1: hexOf(r[1]), 2: hexOf(r[2]), 4: hexOf(r[0])}}, "rtmr 4"},
		{"short rtmr", attest.TEETDX, WorkloadPolicy{Measurements: good.Measurements, RTMRs: map[int]string{1: hexOf(r[1]), 2: "abcd"}}, "48 bytes"},
		{"uppercase rtmr", attest.TEETDX, WorkloadPolicy{Measurements: good.Measurements, RTMRs: map[int]string{1: strings.ToUpper(hexOf(r[1])), 2: hexOf(r[2])}}, "lowercase"},
		{"rtmrs on snp", attest.TEESNP, good, "tdx workloads only"},
		{"rtmrs 1 and 2", attest.TEETDX, good, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := AdminRegistration{WorkloadID: "td-" + strings.ReplaceAll(tc.name, " ", "-"), TEE: tc.tee, Policy: tc.pol}
			code, body := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg))
			if tc.want == "" {
				if code != http.StatusCreated || !strings.Contains(body, `"rtmrs":{"1":"`+hexOf(r[1])) {
					t.Fatalf("register: %d %s", code, body)
				}
				return
			}
			if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Fatalf("register: %d %s, want 400 with %q", code, body, tc.want)
			}
		})
	}
	// set-policy can not drop them either.
	code, body := b.adminDo(t, http.MethodPut, "/admin/v1/workloads/td-rtmrs-1-and-2/policy", mustJSON(WorkloadPolicy{Measurements: good.Measurements}))
	if code != http.StatusBadRequest || !strings.Contains(body, "rtmr") {
		t.Fatalf("set-policy without rtmrs: %d %s", code, body)
	}
}
