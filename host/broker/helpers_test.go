package broker

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/host/verify/snp"
	"github.com/sealroot/sealroot/internal/syncbuf"
	"github.com/sealroot/sealroot/wire/kbs"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// simAuthority is the simulated secure processor every test in the package
// shares, created once in TestMain.
var simAuthority *sim.Authority

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childMain())
	}
	dir, err := os.MkdirTemp("", "sealroot-broker-sim-")
	if err != nil {
		panic(err)
	}
	if err := sim.Init(dir); err != nil {
		panic(err)
	}
	if simAuthority, err = sim.Load(dir); err != nil {
		panic(err)
	}
	simDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// simDir is the simulated secure processor's directory (for subprocess
// brokers started with --trust-sim-root).
var simDir string

// syncBuffer is a goroutine-safe log sink that reads back audit records.
type syncBuffer struct{ syncbuf.Buffer }

// records returns the audit records written so far.
func (s *syncBuffer) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["audit"] == true {
			out = append(out, m)
		}
	}
	return out
}

// lastRefusal returns the last refusal record.
func (s *syncBuffer) lastRefusal(t *testing.T) map[string]any {
	t.Helper()
	recs := s.records(t)
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i]["event"] == eventRefusal {
			return recs[i]
		}
	}
	t.Fatalf("no refusal in the audit log:\n%s", s.String())
	return nil
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const testAdminToken = "admin-token-0123456789abcdef"

// testBroker is a broker on a loopback httptest server.
type testBroker struct {
	*Server
	URL   string
	audit *syncBuffer
	logs  *syncBuffer
	clock *clock
	st    store.Store
}

type brokerOpt func(*Config)

// newTestBroker starts a broker with a bbolt store, the simulated root
// trusted, and the admin token testAdminToken.
func newTestBroker(t testing.TB, opts ...brokerOpt) *testBroker {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return newTestBrokerOn(t, st, opts...)
}

var (
	testKEKOnce sync.Once
	testKEK     *kek.KEK
	testTokKey  *ecdsa.PrivateKey
)

func newTestBrokerOn(t testing.TB, st store.Store, opts ...brokerOpt) *testBroker {
	t.Helper()
	testKEKOnce.Do(func() {
		key := make([]byte, 32)
		rand.Read(key)
		testKEK, _ = kek.New(key)
		testTokKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	})
	audit, logs := &syncBuffer{}, &syncBuffer{}
	clk := &clock{t: time.Now()}
	cfg := Config{
		Store: st, KEK: testKEK, TokenKey: testTokKey,
		Verifiers:      map[string]attest.Verifier{attest.TEESNP: sim.NewVerifier(simAuthority, snp.Options{Offline: true})},
		TrustSimulated: true,
		AdminToken:     testAdminToken,
		Logger:         slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Audit:          slog.New(slog.NewJSONHandler(audit, nil)),
		Now:            clk.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &testBroker{Server: srv, URL: hs.URL, audit: audit, logs: logs, clock: clk, st: st}
}

// measurement returns a distinct test measurement.
func measurement(seed byte) [48]byte {
	var m [48]byte
	for i := range m {
		m[i] = seed ^ byte(i*7)
	}
	return m
}

// registerBuildah registers id as buildah does and returns the passphrase.
func (b *testBroker) registerBuildah(t testing.TB, id string, m [48]byte) string {
	t.Helper()
	pass := randomHex(32)
	code, body := post(t, b.URL+"/kbs/v0/register_workload", "", registrationBody(id, hex.EncodeToString(m[:]), pass))
	if code != http.StatusOK {
		t.Fatalf("registering %s: %d %s", id, code, body)
	}
	return pass
}

// registerSim registers id through the admin API as a "sim" workload (the
// only kind simulated evidence can unlock) with measurement m and the
// given host data (hex, "" for none), and returns the passphrase.
func (b *testBroker) registerSim(t testing.TB, id string, m [48]byte, hostData ...string) string {
	t.Helper()
	pass := randomHex(32)
	reg := AdminRegistration{WorkloadID: id, TEE: attest.TEESim, Passphrase: &pass,
		Policy: WorkloadPolicy{Measurements: []string{hex.EncodeToString(m[:])}}}
	if len(hostData) > 0 {
		reg.Policy.HostData = hostData[0]
	}
	if code, body := b.adminDo(t, http.MethodPost, "/admin/v1/workloads", mustJSON(reg)); code != http.StatusCreated {
		t.Fatalf("registering sim workload %s: %d %s", id, code, body)
	}
	return pass
}

func registrationBody(id, m, pass string) string {
	return `{"workload_id":"` + id + `","launch_measurement":"` + m + `","passphrase":"` + pass +
		`","tee_config":"{\"flags\":{\"bits\":15},\"minfw\":{\"major\":0,\"minor\":0}}"}`
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// post sends body (JSON) with an optional bearer token.
func post(t testing.TB, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, http.DefaultClient, req)
}

func do(t testing.TB, c *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// rsaKeys are pre-generated guest keys (generation is slow).
var (
	rsaKeysOnce sync.Once
	rsaKeys     []*rsa.PrivateKey
)

func guestRSAKey(i int) *rsa.PrivateKey {
	rsaKeysOnce.Do(func() {
		for range 4 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaKeys = append(rsaKeys, k)
		}
	})
	return rsaKeys[i%len(rsaKeys)]
}

// krunClient is a krun-dialect guest written from docs/interop.md §3 alone: it
// builds its bodies by hand rather than with wire/kbs, so the test checks
// the wire, not the package against itself.
type krunClient struct {
	base string
	hc   *http.Client
	priv *rsa.PrivateKey
	// evidence tweaks the simulated report before signing.
	params func(*sim.ReportParams)
	// reportData, when set, replaces the binding.
	reportData *[64]byte
	// kmod, when set, replaces the k-mod text sent (the binding is still
	// computed from the client's key unless reportData is set).
	kmod string
}

func newKrunClient(t testing.TB, base string, keyIndex int) *krunClient {
	jar, _ := cookiejar.New(nil)
	return &krunClient{base: base, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second}, priv: guestRSAKey(keyIndex)}
}

func (c *krunClient) auth(t testing.TB, workloadID string) (nonce string, code int) {
	t.Helper()
	body := `{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"` + workloadID + `\"}"}`
	req, _ := http.NewRequest(http.MethodPost, c.base+"/kbs/v0/auth", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode
	}
	var ch struct {
		Nonce       string `json:"nonce"`
		ExtraParams string `json:"extra-params"`
	}
	if err := json.Unmarshal(raw, &ch); err != nil {
		t.Fatalf("auth reply %q: %v", raw, err)
	}
	var cookie string
	for _, ck := range resp.Cookies() {
		if ck.Name == "session_id" {
			cookie = ck.Value
		}
	}
	if len(ch.Nonce) != 32 || strings.ToLower(ch.Nonce) != ch.Nonce || cookie != ch.Nonce || ch.ExtraParams != "" {
		t.Fatalf("auth reply %s with cookie %q breaks docs/interop.md §3, step 1", raw, cookie)
	}
	return ch.Nonce, resp.StatusCode
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// attest sends evidence signed by the simulated secure processor for
// measurement m, bound to nonce and the client's key.
func (c *krunClient) attest(t testing.TB, nonce string, m [48]byte) (int, string) {
	t.Helper()
	kmod := b64(c.priv.N.Bytes())
	kexp := b64(big.NewInt(int64(c.priv.E)).Bytes())
	rd := sha512.Sum512([]byte(nonce + kmod + kexp))
	if c.reportData != nil {
		rd = *c.reportData
	}
	if c.kmod != "" {
		kmod = c.kmod
	}
	p := sim.ReportParams{ReportData: rd, Measurement: m}
	if c.params != nil {
		c.params(&p)
	}
	report, _, err := simAuthority.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	evidence, _ := json.Marshal(map[string]string{"gen": "milan", "report": hex.EncodeToString(report), "cert_chain": "[]"})
	body, _ := json.Marshal(map[string]any{
		"tee-pubkey":   map[string]string{"alg": "RSA", "k-mod": kmod, "k-exp": kexp},
		"tee-evidence": string(evidence),
	})
	req, _ := http.NewRequest(http.MethodPost, c.base+"/kbs/v0/attest", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return do(t, c.hc, req)
}

// key fetches /key/<id> and decrypts the reply.
func (c *krunClient) key(t testing.TB, id string) (string, int) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+"/kbs/v0/key/"+id, nil)
	code, body := do(t, c.hc, req)
	if code != http.StatusOK {
		return "", code
	}
	var hexCT string
	if err := json.Unmarshal([]byte(body), &hexCT); err != nil {
		t.Fatalf("key reply %q is not a JSON string", body)
	}
	ct, err := hex.DecodeString(hexCT)
	if err != nil {
		t.Fatalf("key reply is not hex")
	}
	pt, err := rsa.DecryptPKCS1v15(nil, c.priv, ct) //nolint:staticcheck // fixed by the krun wire protocol (agent/kbs/krun.go)
	if err != nil {
		t.Fatalf("decrypting key reply: %v", err)
	}
	return string(pt), code
}

// trusteeClient is a Trustee-dialect guest (KBS protocol 0.4.0).
type trusteeClient struct {
	base  string
	hc    *http.Client
	priv  any
	jwk   kbs.JWK
	token string
	// extra is the auth extra-params (default the agent's object).
	extra  string
	params func(*sim.ReportParams)
	// initData is the raw init-data member ("" sends null); additional
	// the additional_evidence string (trustee_exact_test.go).
	initData   string
	additional string
}

func newTrusteeClient(t testing.TB, base string, kind string) *trusteeClient {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &trusteeClient{base: base, hc: &http.Client{Jar: jar, Timeout: 30 * time.Second},
		extra: `{"supported-hash-algorithms":["sha256","sha384","sha512","sm3"]}`}
	var err error
	switch kind {
	case "ec":
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c.priv = k
		c.jwk, err = kbs.NewJWK(&k.PublicKey)
	case "ec521":
		k, _ := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
		c.priv = k
		c.jwk, err = kbs.NewJWK(&k.PublicKey)
	case "rsa":
		k := guestRSAKey(3)
		c.priv = k
		c.jwk, err = kbs.NewJWK(&k.PublicKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *trusteeClient) auth(t testing.TB) (string, int) {
	t.Helper()
	body := `{"version":"0.4.0","tee":"snp","extra-params":` + c.extra + `}`
	req, _ := http.NewRequest(http.MethodPost, c.base+"/kbs/v0/auth", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(raw), resp.StatusCode
	}
	var ch kbs.Challenge
	if err := json.Unmarshal(raw, &ch); err != nil {
		t.Fatal(err)
	}
	if n, err := base64.StdEncoding.DecodeString(ch.Nonce); err != nil || len(n) != 32 || string(ch.ExtraParams) != `""` {
		t.Fatalf("trustee challenge %s breaks docs/interop.md §4, step 1", raw)
	}
	found := false
	for _, ck := range resp.Cookies() {
		found = found || (ck.Name == "kbs-session-id" && len(ck.Value) == 32)
	}
	if !found {
		t.Fatalf("no kbs-session-id cookie")
	}
	return ch.Nonce, resp.StatusCode
}

func (c *trusteeClient) attest(t testing.TB, nonce string, m [48]byte) (int, string) {
	t.Helper()
	var rd [64]byte
	copy(rd[:], kbs.TrusteeReportData(nonce, c.jwk, c.additional, 64))
	p := sim.ReportParams{ReportData: rd, Measurement: m}
	if c.params != nil {
		c.params(&p)
	}
	report, table, err := simAuthority.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	primary, err := snpreport.Encode(report, table)
	if err != nil {
		t.Fatal(err)
	}
	jwk, _ := json.Marshal(c.jwk)
	initData := c.initData
	if initData == "" {
		initData = "null"
	}
	additional, _ := json.Marshal(c.additional)
	body := `{"init-data":` + initData + `,"runtime-data":{"nonce":"` + nonce + `","tee-pubkey":` + string(jwk) +
		`},"tee-evidence":{"primary_evidence":` + string(primary) + `,"additional_evidence":` + string(additional) + `}}`
	req, _ := http.NewRequest(http.MethodPost, c.base+"/kbs/v0/attest", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	code, reply := do(t, c.hc, req)
	if code == http.StatusOK {
		var res kbs.AttestationResult
		if err := json.Unmarshal([]byte(reply), &res); err != nil || strings.Count(res.Token, ".") != 2 {
			t.Fatalf("attest reply %q is not {\"token\":JWT}", reply)
		}
		c.token = res.Token
	}
	return code, reply
}

// resource fetches a resource with the cookie, or with the bearer token
// only (a fresh HTTP client) when bearer is set, and decrypts it.
func (c *trusteeClient) resource(t testing.TB, path string, bearer bool) (string, int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+"/kbs/v0/resource/"+path, nil)
	hc := c.hc
	if bearer {
		hc = &http.Client{Timeout: 30 * time.Second}
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	code, body := do(t, hc, req)
	if code != http.StatusOK {
		return "", code, body
	}
	j, err := kbs.ParseJWE([]byte(body))
	if err != nil {
		t.Fatalf("resource reply: %v", err)
	}
	pt, err := j.Decrypt(c.priv)
	if err != nil {
		t.Fatalf("decrypting resource: %v", err)
	}
	return string(pt), code, body
}

// adminDo sends an admin API request.
func (b *testBroker) adminDo(t testing.TB, method, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, b.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	return do(t, http.DefaultClient, req)
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
