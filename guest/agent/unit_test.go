package agent

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/guest/internal/httpc"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/wire/kbs"
	"github.com/sealroot/sealroot/wire/snpreport"
)

func TestClassify(t *testing.T) {
	problem := func(variant string) []byte {
		b, _ := json.Marshal(kbs.NewProblem(variant, "detail of "+variant))
		return b
	}
	tests := []struct {
		name    string
		step    string
		status  int
		header  httpc.Header
		body    []byte
		kind    errKind
		after   time.Duration
		message string
	}{
		{"503 retries", StepAuth, 503, nil, []byte("down for maintenance"), kindRetry, 0, `HTTP 503 Service Unavailable: broker says "down for maintenance"`},
		{"429 with Retry-After", StepAttest, 429, httpc.Header{"retry-after": {"2"}}, problem(kbs.ProblemRateLimited), kindRetry, 2 * time.Second, "RateLimited"},
		{"408 retries", StepKey, 408, nil, nil, kindRetry, 0, "empty reply"},
		{"400 is final", StepAuth, 400, nil, problem(kbs.ProblemInvalidRequest), kindFinal, 0, "broker error InvalidRequest: detail of InvalidRequest"},
		{"404 is final", StepKey, 404, nil, problem(kbs.ProblemResourceNotFound), kindFinal, 0, "ResourceNotFound"},
		{"401 at auth is final", StepAuth, 401, nil, nil, kindFinal, 0, "401"},
		{"trustee lost session", StepAttest, 401, nil, problem(kbs.ProblemInvalidCookie), kindSessionLost, 0, "InvalidCookie"},
		{"trustee expired session at key", StepKey, 401, nil, problem(kbs.ProblemExpiredCookie), kindSessionLost, 0, "ExpiredCookie"},
		{"trustee not attested", StepKey, 401, nil, problem(kbs.ProblemUnauthenticated), kindSessionLost, 0, ""},
		{"trustee nonce reused", StepAttest, 401, nil, problem(kbs.ProblemNonceReused), kindSessionLost, 0, ""},
		{"trustee refused evidence", StepAttest, 401, nil, problem(kbs.ProblemAttestationFailed), kindFinal, 0, "AttestationFailed"},
		{"trustee policy deny", StepKey, 401, nil, problem(kbs.ProblemPolicyDeny), kindFinal, 0, "PolicyDeny"},
		{"krun empty 401", StepKey, 401, nil, nil, kindSessionLost, 0, "empty reply"},
		{"krun unknown session", StepAttest, 401, nil, []byte("unknown session"), kindSessionLost, 0, ""},
		{"krun missing cookie", StepKey, 401, nil, []byte("Missing cookie"), kindSessionLost, 0, ""},
		{"krun not attested", StepKey, 401, nil, []byte("session has not attested"), kindSessionLost, 0, ""},
		{"krun nonce used", StepAttest, 401, nil, []byte("nonce already used; start again at /auth"), kindSessionLost, 0, ""},
		{"krun policy", StepAttest, 401, nil, []byte("evidence does not satisfy the workload's policy"), kindFinal, 0, "policy"},
		{"krun workload mismatch", StepKey, 401, nil, []byte("session did not attest as this workload"), kindFinal, 0, ""},
		{"redirect", StepAuth, 302, httpc.Header{"location": {"http://elsewhere/\x1b[31m"}}, nil, kindFinal, 0, `redirects to "http://elsewhere/?[31m"`},
		{"control characters are replaced", StepAuth, 400, nil, []byte("bad\x1b[2J\x00thing"), kindFinal, 0, `"bad?[2J?thing"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = httpc.Header{}
			}
			e := classify(tt.step, tt.status, h, tt.body)
			if e.kind != tt.kind || e.retryAfter != tt.after || e.Step != tt.step || e.HTTPStatus != tt.status {
				t.Fatalf("classify = %+v (kind %d, after %s), want kind %d, after %s", e, e.kind, e.retryAfter, tt.kind, tt.after)
			}
			if !strings.Contains(e.Error(), tt.message) {
				t.Fatalf("message %q lacks %q", e.Error(), tt.message)
			}
			if !strings.HasPrefix(e.Error(), "broker "+tt.step+" step: HTTP ") {
				t.Fatalf("message %q does not start with the step and status", e.Error())
			}
		})
	}
}

func FuzzClassify(f *testing.F) {
	// The step is one of the agent's own constants, never broker input;
	// the status, headers and body are the broker's.
	steps := []string{StepAuth, StepEvidence, StepAttest, StepKey, StepDecrypt}
	f.Add(401, uint8(2), []byte(`{"type":"https://github.com/confidential-containers/kbs/errors/InvalidCookie","detail":"x"}`), "3")
	f.Add(503, uint8(0), []byte("unknown session"), "120")
	f.Add(302, uint8(3), []byte{0xff, 0, '\n'}, "-1")
	f.Fuzz(func(t *testing.T, status int, stepIndex uint8, body []byte, retry string) {
		if status < 100 || status > 999 {
			return
		}
		step := steps[int(stepIndex)%len(steps)]
		e := classify(step, status, httpc.Header{"retry-after": {retry}, "location": {string(body)}}, body)
		msg := e.Error()
		for i := 0; i < len(msg); i++ {
			if c := msg[i]; c < 0x20 && c != '\n' {
				t.Fatalf("control byte %#x in %q", c, msg)
			}
		}
		if e.retryAfter < 0 || e.retryAfter > time.Minute {
			t.Fatalf("retryAfter %s out of range", e.retryAfter)
		}
		if e.kind == kindSessionLost && (status != 401 || (step != StepAttest && step != StepKey)) {
			t.Fatalf("session lost for %d at %s", status, step)
		}
	})
}

func TestRetryAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"": 0, "0": 0, "3": 3 * time.Second, " 7 ": 7 * time.Second, "-1": 0, "x": 0, "999999": time.Minute,
		"9999999": 0, "Wed, 21 Oct 2015 07:28:00 GMT": 0,
	} {
		if got := retryAfter(in); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	e := &Error{Step: StepKey, HTTPStatus: 404, Err: errors.New("broker error ResourceNotFound: resource not found")}
	if got, want := e.Error(), "broker key step: HTTP 404 Not Found: broker error ResourceNotFound: resource not found"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	e = &Error{Step: StepEvidence, Err: errors.New("attester: no /dev/sev-guest")}
	if got, want := e.Error(), "broker evidence step: attester: no /dev/sev-guest"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	cause := errors.New("cause")
	if !errors.Is(&Error{Step: StepAuth, Err: cause}, cause) {
		t.Fatal("Error does not unwrap to its cause")
	}
}

func TestBackoff(t *testing.T) {
	o := Options{BackoffInitial: 100 * time.Millisecond, BackoffMax: time.Second}
	caps := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, c := range caps {
		c *= time.Millisecond
		var biggest time.Duration
		for range 300 {
			d := o.backoff(i + 1)
			if d < 0 || d > c {
				t.Fatalf("backoff(%d) = %s, outside [0, %s]", i+1, d, c)
			}
			biggest = max(biggest, d)
		}
		// Full jitter spreads over the whole range: 300 draws all in
		// the lower half has probability 2^-300.
		if biggest <= c/2 {
			t.Fatalf("backoff(%d) never exceeded half its cap %s in 300 draws", i+1, c)
		}
	}
	if d := o.backoff(1 << 20); d > time.Second {
		t.Fatalf("huge attempt number: %s", d)
	}
}

func TestWireTEE(t *testing.T) {
	for in, want := range map[string]string{"sim": "snp", "snp": "snp", "tdx": "tdx", "cca": "cca", "sev": "", "none": "", "": "", "SNP": ""} {
		got, err := WireTEE(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("WireTEE(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// signedReport is a real simulated SNP report (version 3, Milan CPUID).
func signedReport(t *testing.T) (report, certs []byte) {
	t.Helper()
	r, c, err := authority.Sign(sim.ReportParams{ReportData: [64]byte{7}, Measurement: measurement})
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

func TestSNPGen(t *testing.T) {
	report, _ := signedReport(t)
	genoa := append([]byte(nil), report...)
	genoa[0x189] = 0x11
	tests := []struct {
		teeData string
		report  []byte
		want    string
	}{
		{`{"gen":"genoa"}`, report, "genoa"},
		{`{"gen":" Milan "}`, genoa, "milan"},
		{`{"gen":"<script>"}`, report, "milan"}, // not letters: ignored, taken from the report
		{"", report, "milan"},
		{"", genoa, "genoa"},
		{"not json", genoa, "genoa"},
		{`{"gen":42}`, genoa, "genoa"},
		{"", nil, "milan"},
		{"", make([]byte, snpreport.ReportSize), "milan"}, // version 0: no CPUID
	}
	for _, tt := range tests {
		if got := snpGen(tt.teeData, tt.report); got != tt.want {
			t.Errorf("snpGen(%q) = %q, want %q", tt.teeData, got, tt.want)
		}
	}
}

func FuzzTeeDataGen(f *testing.F) {
	f.Add(`{"gen":"milan"}`)
	f.Add(`{"gen":"\u0000"}`)
	f.Add(`[1,2]`)
	f.Fuzz(func(t *testing.T, s string) {
		g := teeDataGen(s)
		if len(g) > 16 {
			t.Fatalf("gen %q too long", g)
		}
		for _, r := range g {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
				t.Fatalf("gen %q has %q", g, r)
			}
		}
	})
}

func TestKrunEvidence(t *testing.T) {
	report, certs := signedReport(t)
	s, err := krunEvidence(&attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: certs}, `{"gen":"milan"}`)
	if err != nil {
		t.Fatal(err)
	}
	gotReport, gotCerts, err := kbs.DecodeKrunSNPEvidence(s)
	if err != nil || string(gotReport) != string(report) || string(gotCerts) != string(certs) {
		t.Fatalf("krun evidence does not decode to the report and table: %v", err)
	}
	var doc map[string]string
	if err := json.Unmarshal([]byte(s), &doc); err != nil || doc["gen"] != "milan" {
		t.Fatalf("krun evidence %.80s…: gen %q, %v", s, doc["gen"], err)
	}
	// libkrun's form without certificates.
	s, _ = krunEvidence(&attest.Evidence{TEE: attest.TEESNP, Report: report}, "")
	if json.Unmarshal([]byte(s), &doc); doc["cert_chain"] != "[]" {
		t.Fatalf("cert_chain = %q, want []", doc["cert_chain"])
	}
	if _, err := krunEvidence(&attest.Evidence{TEE: attest.TEETDX, Report: []byte{1}}, ""); err == nil || !strings.Contains(err.Error(), "trustee") {
		t.Fatalf("TDX in the krun dialect: %v", err)
	}
}

func TestTrusteeEvidence(t *testing.T) {
	report, certs := signedReport(t)
	t.Run("snp", func(t *testing.T) {
		b, err := trusteeEvidence(&attest.Evidence{TEE: attest.TEESNP, Report: report, Certs: certs})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := snpreport.Decode(b)
		if err != nil || string(ev.Report) != string(report) {
			t.Fatalf("snpreport.Decode of our evidence: %v", err)
		}
	})
	t.Run("tdx", func(t *testing.T) {
		quote, log := []byte("quote bytes"), []byte("event log")
		b, err := trusteeEvidence(&attest.Evidence{TEE: attest.TEETDX, Report: quote, EventLog: log})
		if err != nil {
			t.Fatal(err)
		}
		q, l, err := kbs.DecodeTDXEvidence(b)
		if err != nil || string(q) != string(quote) || string(l) != string(log) {
			t.Fatalf("DecodeTDXEvidence(%s) = %q, %q, %v", b, q, l, err)
		}
		b, _ = trusteeEvidence(&attest.Evidence{TEE: attest.TEETDX, Report: quote})
		if want := `{"cc_eventlog":null,"quote":"` + base64.StdEncoding.EncodeToString(quote) + `"}`; string(b) != want {
			t.Fatalf("tdx evidence without a log = %s, want %s", b, want)
		}
	})
	t.Run("cca", func(t *testing.T) {
		b, err := trusteeEvidence(&attest.Evidence{TEE: attest.TEECCA, Report: []byte{0xd2, 0, 255}})
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != `{"token":[210,0,255]}` {
			t.Fatalf("cca evidence = %s", b)
		}
		var v struct{ Token []int }
		if err := json.Unmarshal(b, &v); err != nil || len(v.Token) != 3 {
			t.Fatalf("cca evidence is not JSON with a byte array: %v", err)
		}
	})
	if _, err := trusteeEvidence(&attest.Evidence{TEE: "sev", Report: []byte{1}}); err == nil {
		t.Fatal("sev evidence encoded")
	}
}

func TestCheckEvidence(t *testing.T) {
	report, _ := signedReport(t)
	for _, tt := range []struct {
		ev      *attest.Evidence
		wire    string
		wantErr string
	}{
		{&attest.Evidence{TEE: "snp", Report: report}, "snp", ""},
		{nil, "snp", "no evidence"},
		{&attest.Evidence{TEE: "tdx", Report: report}, "snp", `produced "tdx"`},
		{&attest.Evidence{TEE: "snp"}, "snp", "empty"},
		{&attest.Evidence{TEE: "snp", Report: report[:100]}, "snp", "100 bytes"},
		{&attest.Evidence{TEE: "tdx", Report: []byte{1}}, "tdx", ""},
	} {
		err := checkEvidence(tt.ev, tt.wire)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("checkEvidence(%v, %s) = %v, want %q", tt.ev != nil, tt.wire, err, tt.wantErr)
		}
	}
}

// The worked vector of docs/interop.md §4, step 3.
var (
	vectorNonce = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	vectorJWK   = kbs.JWK{Kty: "EC", Crv: "P-256", Alg: "ECDH-ES+A256KW",
		X: "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE", Y: "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI"}
	vectorCanon = `{"additional-evidence":"","nonce":"` + vectorNonce + `","tee-pubkey":{"alg":"ECDH-ES+A256KW","crv":"P-256","kty":"EC","x":"` +
		vectorJWK.X + `","y":"` + vectorJWK.Y + `"}}`
)

func TestTrusteeBinding(t *testing.T) {
	got, err := kbs.TrusteeBinding("sha384", vectorNonce, vectorJWK, "")
	const want384 = "d934ba73c76ad6ce42e80746cefb42b74c7e0af0f0d30ace51557c3da2a8fe7608b3c6856f09e1f101fd459a86b1c846"
	if err != nil || hex.EncodeToString(got[:48]) != want384 || got[48] != 0 {
		t.Fatalf("sha384 binding = %x, %v", got, err)
	}
	s256 := sha256.Sum256([]byte(vectorCanon))
	got, err = kbs.TrusteeBinding("sha256", vectorNonce, vectorJWK, "")
	if err != nil || string(got[:32]) != string(s256[:]) || got[32] != 0 {
		t.Fatalf("sha256 binding = %x, %v; want %x", got, err, s256)
	}
	s512 := sha512.Sum512([]byte(vectorCanon))
	if got, err = kbs.TrusteeBinding("sha512", vectorNonce, vectorJWK, ""); err != nil || got != s512 {
		t.Fatalf("sha512 binding = %x, %v", got, err)
	}
	// Our own canonical document for SHA-384 agrees with kbs's.
	h := sha512.Sum384([]byte(vectorCanon))
	if hex.EncodeToString(h[:]) != want384 {
		t.Fatal("hand-written canonical document does not give the vector")
	}
	if _, err := kbs.TrusteeBinding("sm3", vectorNonce, vectorJWK, ""); err == nil {
		t.Fatal("sm3 accepted")
	}
}

func TestSelectedHash(t *testing.T) {
	tests := []struct {
		extra, want, wantErr string
	}{
		{`""`, "sha384", ""},
		{``, "sha384", ""},
		{`{}`, "sha384", ""},
		{`{"selected-hash-algorithm":"SHA256"}`, "sha256", ""},
		{`{"selected-hash-algorithm":"sha512"}`, "sha512", ""},
		{`{"selected-hash-algorithm":"sm3"}`, "", "not offered"},
		{`{"selected-hash-algorithm":7}`, "", "not a valid object"},
		{`{"selected-hash-algorithm":"x\u001b"}`, "", `"x?"`},
	}
	for _, tt := range tests {
		got, err := selectedHash(json.RawMessage(tt.extra))
		if got != tt.want || (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("selectedHash(%s) = %q, %v; want %q, %q", tt.extra, got, err, tt.want, tt.wantErr)
		}
	}
}

func FuzzSelectedHash(f *testing.F) {
	f.Add([]byte(`{"selected-hash-algorithm":"sha256"}`))
	f.Add([]byte(`""`))
	f.Add([]byte(`{"selected-hash-algorithm":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		alg, err := selectedHash(b)
		if err != nil {
			return
		}
		if _, err := kbs.TrusteeBinding(alg, "n", vectorJWK, ""); err != nil {
			t.Fatalf("selected %q cannot bind: %v", alg, err)
		}
	})
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		body, nonce, wantErr string
	}{
		{`{"nonce":"0123456789abcdef0123456789abcdef","extra-params":""}`, "0123456789abcdef0123456789abcdef", ""},
		{` {"nonce":"AAEC+/=="} `, "AAEC+/==", ""},
		{``, "", "not a JSON object"},
		{`"x"`, "", "not a JSON object"},
		{`{"nonce":}`, "", "not valid JSON"},
		{`{"extra-params":""}`, "", "no nonce"},
		{`{"nonce":"a\nb"}`, "", "printable"},
		{`{"nonce":"` + strings.Repeat("a", 1025) + `"}`, "", "1024"},
	}
	for _, tt := range tests {
		ch, err := parseChallenge([]byte(tt.body))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseChallenge(%.40s) = %v, want %q", tt.body, err, tt.wantErr)
			}
			continue
		}
		if err != nil || ch.Nonce != tt.nonce {
			t.Errorf("parseChallenge(%.40s) = %+v, %v", tt.body, ch, err)
		}
	}
}

func FuzzParseChallenge(f *testing.F) {
	f.Add([]byte(`{"nonce":"abc","extra-params":""}`))
	f.Add([]byte(`{"nonce":"abc","extra-params":{"selected-hash-algorithm":"sha512"}}`))
	f.Add([]byte(`{"nonce":"\u00ff"}`))
	f.Add([]byte(`{"nonce":"0123456789abcdef0123456789abcdef","extra-params":""}`))
	f.Add([]byte(`{"nonce":"0123456789abcdef0123456789abcdefQUJD","extra-params":""}`))
	f.Add([]byte(`{"nonce":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","extra-params":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := parseChallenge(b)
		if err != nil {
			return
		}
		if ch.Nonce == "" || len(ch.Nonce) > 1024 || !printable(ch.Nonce) {
			t.Fatalf("accepted nonce %q", ch.Nonce)
		}
		// The dialects' own checks accept exactly their nonce forms.
		if checkKrunNonce(ch.Nonce) == nil && (len(ch.Nonce) != 32 || strings.Trim(ch.Nonce, "0123456789abcdef") != "") {
			t.Fatalf("krun accepted nonce %q", ch.Nonce)
		}
		if checkTrusteeNonce(ch.Nonce) == nil {
			b, err := base64.StdEncoding.DecodeString(ch.Nonce)
			if err != nil || len(b) != 32 || len(ch.Nonce) != 44 {
				t.Fatalf("trustee accepted nonce %q", ch.Nonce)
			}
		}
	})
}

// fakeAttester claims a TEE and never attests.
type fakeAttester struct{ tee string }

func (f fakeAttester) TEE() string { return f.tee }
func (f fakeAttester) Attest(context.Context, [64]byte) (*attest.Evidence, error) {
	return nil, errors.New("fake attester")
}

func TestOptionsRejected(t *testing.T) {
	good := func() Options {
		return Options{Config: testConfig("wl-1", "http://127.0.0.1:1", "", "1s"), Attester: fakeAttester{"sim"}}
	}
	tests := []struct {
		name    string
		mod     func(*Options)
		step    string
		wantErr string
	}{
		{"no config", func(o *Options) { o.Config = nil }, StepAuth, "no disk config"},
		{"no workload", func(o *Options) { o.Config.WorkloadID = "" }, StepAuth, "workload_id"},
		{"bad url", func(o *Options) { o.Config.AttestationURL = "ftp://x" }, StepAuth, "scheme"},
		{"tee none", func(o *Options) { o.Config.TEE = "none" }, StepEvidence, "cannot be attested"},
		{"no attester", func(o *Options) { o.Attester = nil }, StepEvidence, "no attester"},
		{"attester for another tee", func(o *Options) { o.Attester = fakeAttester{"tdx"} }, StepEvidence, `attester serves tee "tdx"`},
		{"bad resource", func(o *Options) { o.Config.KBSProtocol = "trustee"; o.Config.WorkloadID = "a:b" }, StepKey, "resource path"},
		{"bad key type", func(o *Options) { o.Config.KBSProtocol = "trustee"; o.TrusteeKey = "dsa" }, StepEvidence, "guest key type"},
		{"bad protocol", func(o *Options) { o.Config.KBSProtocol = "v9" }, StepAuth, "kbs_protocol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := good()
			tt.mod(&o)
			_, err := FetchPassphrase(context.Background(), o)
			var ae *Error
			if !errors.As(err, &ae) || ae.Step != tt.step || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want step %s containing %q", err, tt.step, tt.wantErr)
			}
		})
	}
}

func TestAttesterFailureIsFinal(t *testing.T) {
	b := newTestBroker(t, nil)
	register(t, b.url(), "wl-1", measurement)
	o := testOptions(testConfig("wl-1", b.url(), "", "5s"), fakeAttester{"sim"}, &logBuffer{})
	_, err := FetchPassphrase(context.Background(), o)
	var ae *Error
	if !errors.As(err, &ae) || ae.Step != StepEvidence || ae.Retryable() || !strings.Contains(err.Error(), "fake attester") {
		t.Fatalf("error = %v, want a final evidence failure", err)
	}
}

func TestCanceledByCaller(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	o := testOptions(testConfig("wl-1", "http://"+reserveAddr(t), "", "20s"), simAttester(t, measurement), &logBuffer{})
	o.Sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return sleep(ctx, d)
	}
	_, err := FetchPassphrase(ctx, o)
	var ae *Error
	if !errors.As(err, &ae) || ae.Step != StepAuth || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("error = %v, want a canceled auth failure", err)
	}
}

func TestWipeRSA(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	d := k.D.Bits()
	wipeRSA(k)
	for _, w := range d {
		if w != 0 {
			t.Fatal("D's words were not cleared")
		}
	}
	if k.D.Sign() != 0 || k.Primes[0].Sign() != 0 || k.Precomputed.Dp.Sign() != 0 {
		t.Fatal("private values not zero after wipe")
	}
	wipeRSA(nil)
}

func TestRequestPathEscaping(t *testing.T) {
	var got []string
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.RequestURI)
		w.Write([]byte(`"00"`))
	}))
	defer ts.Close()
	for _, tt := range []struct{ base, path, want string }{
		{ts.URL, "/kbs/v0/key/" + url.PathEscape("a b/c?d"), "/kbs/v0/key/a%20b%2Fc%3Fd"},
		{ts.URL + "/pre%20fix", "/kbs/v0/key/wl-1", "/pre%20fix/kbs/v0/key/wl-1"},
		{ts.URL + "/x/", "/kbs/v0/resource/default/wl-1/passphrase", "/x/kbs/v0/resource/default/wl-1/passphrase"},
	} {
		target, err := ParseTarget(tt.base)
		if err != nil {
			t.Fatal(err)
		}
		tr, err := NewTransport(target, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(tr, target.Base, 5*time.Second, true)
		got = nil
		_, e := c.do(context.Background(), StepKey, "GET", tt.path, nil, nil)
		c.close()
		if e != nil {
			t.Fatal(e)
		}
		if len(got) != 1 || got[0] != tt.want {
			t.Fatalf("request to %s%s reached %q, want %q", tt.base, tt.path, got, tt.want)
		}
	}
}
