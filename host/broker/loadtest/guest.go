package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/wire/kbs"
)

// guests is the simulated guests' shared material: key pairs made before
// any timed window, the simulated secure processor that signs their
// reports, and the workload they boot.
type guests struct {
	keys   []*rsa.PrivateKey
	pubs   []kbs.KrunPubKey
	auth   *sim.Authority
	id     string
	m      [48]byte
	pass   string
	every  int64 // decrypt and check one key reply in every
	n      atomic.Int64
	checks atomic.Int64
	dry    atomic.Int64 // timed windows whose presigned halves ran out
}

// presign tops up the simulated secure processor's presigned signature
// halves (sim.Authority.Presign) for a window of up to n reports, with a
// margin for a CPU that speeds up; on is -presign.
func (g *guests) presign(on bool, n float64) error {
	if !on {
		return nil
	}
	return g.auth.Presign(int(n*1.3) + 64)
}

// noteDry counts a window after which no presigned half was left: some
// of its reports were signed in full, inside the window.
func (g *guests) noteDry(on bool) {
	if on && g.auth.Presigned() == 0 {
		g.dry.Add(1)
	}
}

// client is one guest: its own cookie jar and connections.
type client struct {
	hc   *http.Client
	base string
}

func newClient(base string) *client {
	jar, _ := cookiejar.New(nil)
	return &client{base: base, hc: &http.Client{Jar: jar, Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
}

// krunReplyLen is the /key reply for an RSA-2048 guest key: a JSON string
// of 512 hex characters.
const krunReplyLen = 2 + 2*256

// handshake runs auth → attest → key as a krun guest. The broker's work is
// the same for every handshake; the guest decrypts and checks the released
// key for one reply in g.every (and for any reply not shaped like a
// ciphertext to its key), so the generator stays cheaper than the broker.
func (g *guests) handshake(c *client, k int) (time.Duration, error) {
	start := time.Now()
	key := g.keys[k%len(g.keys)]
	pub := g.pubs[k%len(g.keys)]
	req, err := kbs.NewKrunRequest("snp", g.id)
	if err != nil {
		return 0, err
	}
	body, _ := json.Marshal(req)
	raw, err := call(c, http.MethodPost, "/kbs/v0/auth", body)
	if err != nil {
		return 0, err
	}
	var ch kbs.Challenge
	if err := json.Unmarshal(raw, &ch); err != nil {
		return 0, err
	}
	rd := kbs.KrunBinding(ch.Nonce, pub)
	report, _, err := g.auth.Sign(sim.ReportParams{ReportData: rd, Measurement: g.m})
	if err != nil {
		return 0, err
	}
	ev, err := kbs.EncodeKrunSNPEvidence("milan", report, nil)
	if err != nil {
		return 0, err
	}
	body, _ = json.Marshal(kbs.KrunAttestation{TEEPubKey: pub, TEEEvidence: ev})
	if _, err := call(c, http.MethodPost, "/kbs/v0/attest", body); err != nil {
		return 0, err
	}
	raw, err = call(c, http.MethodGet, "/kbs/v0/key/"+g.id, nil)
	if err != nil {
		return 0, err
	}
	if g.n.Add(1)%g.every == 0 || len(raw) != krunReplyLen || raw[0] != '"' {
		g.checks.Add(1)
		got, err := kbs.KrunDecryptSecret(key, raw)
		if err != nil {
			return 0, err
		}
		if string(got) != g.pass {
			return 0, errors.New("wrong passphrase released")
		}
	}
	return time.Since(start), nil
}

func call(c *client, method, path string, body []byte) ([]byte, error) {
	req, err := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
		if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
			err = shedError{err}
		}
		return nil, err
	}
	return b, nil
}

// shedError is a 503 with Retry-After: the broker's documented answer when
// it sheds load (its store calls or pending sessions are at their caps). A
// guest retries it; the load test counts it apart from failures.
type shedError struct{ error }

func (e shedError) Unwrap() error { return e.error }

func isShed(err error) bool {
	var s shedError
	return errors.As(err, &s)
}

// rawVerifyMain is `loadtest rawverify SIMDIR N`: N verifications of
// krun-shaped evidence (a simulated SNP report without a certificate
// table, as krun guests send it) by the verifier the broker builds for
// --trust-sim-root --offline, on one goroutine, in a process of its own
// (started on the broker's CPU). It prints "N WALL_NS CPU_NS".
func rawVerifyMain(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: loadtest rawverify SIMDIR N")
		return 2
	}
	var n int
	if _, err := fmt.Sscan(args[1], &n); err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "loadtest rawverify: N must be a positive integer")
		return 2
	}
	a, err := sim.Load(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest rawverify:", err)
		return 1
	}
	vs, err := verify.Broker(verify.Options{SimRoot: a, Offline: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest rawverify:", err)
		return 1
	}
	v := vs[attest.TEESNP]
	evs := make([]*attest.Evidence, 64)
	for i := range evs {
		var p sim.ReportParams
		rand.Read(p.ReportData[:])
		rand.Read(p.Measurement[:])
		r, _, err := a.Sign(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest rawverify:", err)
			return 1
		}
		evs[i] = &attest.Evidence{TEE: attest.TEESNP, Report: r}
	}
	if _, err := v.Verify(context.Background(), evs[0]); err != nil { // warm up
		fmt.Fprintln(os.Stderr, "loadtest rawverify:", err)
		return 1
	}
	cpu0, start := selfCPU(), time.Now()
	for i := range n {
		if _, err := v.Verify(context.Background(), evs[i%len(evs)]); err != nil {
			fmt.Fprintln(os.Stderr, "loadtest rawverify:", err)
			return 1
		}
	}
	fmt.Println(n, time.Since(start).Nanoseconds(), (selfCPU() - cpu0).Nanoseconds())
	return 0
}
