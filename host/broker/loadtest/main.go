// Command loadtest measures the key broker over loopback: full krun-dialect
// handshakes (auth → attest → key, with the simulated secure processor's
// SNP reports verified exactly as hardware reports are) per second, and
// their p50 and p99 latency, at several client concurrencies, on bbolt and,
// when a DSN is given, on PostgreSQL. It also reports the raw rate of the
// SNP verifier alone, and checks that no handshake failed and that the
// goroutine count came back down.
//
//	go run ./host/broker/loadtest                        # bbolt only
//	go run ./host/broker/loadtest -postgres "$SEALROOT_TEST_POSTGRES"
//	go run ./host/broker/loadtest -levels 1,16,64 -duration 10s
//
// Clients run in the same process and on the same cores as the broker:
// each handshake also pays for the guest side (signing the report,
// decrypting the key), so the figures are a lower bound for a broker with
// cores of its own.
package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealroot/sealroot/agent/kbs"
	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/sim"
	"github.com/sealroot/sealroot/attest/snp"
	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
)

func main() {
	levels := flag.String("levels", "1,16,64", "client concurrencies, comma separated")
	duration := flag.Duration("duration", 5*time.Second, "measuring time per concurrency level")
	pg := flag.String("postgres", os.Getenv("SEALROOT_TEST_POSTGRES"), "PostgreSQL DSN (default $SEALROOT_TEST_POSTGRES); empty skips PostgreSQL")
	verifyN := flag.Int("verify", 2000, "reports for the raw verify rate")
	flag.Parse()
	if err := run(*levels, *duration, *pg, *verifyN); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(levelsFlag string, duration time.Duration, dsn string, verifyN int) error {
	var levels []int
	for _, s := range strings.Split(levelsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-levels %q: want positive integers", levelsFlag)
		}
		levels = append(levels, n)
	}
	tmp, err := os.MkdirTemp("", "sealroot-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	simDir := filepath.Join(tmp, "sim")
	if err := sim.Init(simDir); err != nil {
		return err
	}
	auth, err := sim.Load(simDir)
	if err != nil {
		return err
	}
	verifier := sim.NewVerifier(auth, snp.Options{Offline: true})

	fmt.Printf("sealroot broker load test: %d CPUs, GOMAXPROCS %d, %s per level\n\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), duration)
	if err := rawVerify(auth, verifier, verifyN); err != nil {
		return err
	}

	backends := []string{"bbolt"}
	if dsn != "" {
		backends = append(backends, "postgres")
	} else {
		fmt.Println("(PostgreSQL skipped: give -postgres DSN or set SEALROOT_TEST_POSTGRES)")
	}
	fmt.Printf("\n%-9s %7s %12s %10s %10s %8s\n", "store", "clients", "handshakes/s", "p50", "p99", "errors")
	failed := false
	for _, be := range backends {
		var st store.Store
		if be == "bbolt" {
			st, err = store.OpenBolt(filepath.Join(tmp, "broker.db"))
		} else {
			st, err = store.OpenPostgres(context.Background(), dsn)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", be, err)
		}
		res, err := loadOne(st, auth, verifier, levels, duration)
		st.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", be, err)
		}
		for _, r := range res {
			fmt.Printf("%-9s %7d %12.1f %10s %10s %8d\n", be, r.clients, r.rate, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.errors)
			failed = failed || r.errors > 0
		}
		if res[len(res)-1].goroutinesAfter > res[0].goroutinesBefore+4 {
			fmt.Printf("%-9s goroutines grew from %d to %d\n", be, res[0].goroutinesBefore, res[len(res)-1].goroutinesAfter)
			failed = true
		} else {
			fmt.Printf("%-9s goroutines before %d, after %d\n", be, res[0].goroutinesBefore, res[len(res)-1].goroutinesAfter)
		}
	}
	if failed {
		return errors.New("handshakes failed or goroutines leaked (see above)")
	}
	return nil
}

// rawVerify measures the SNP verifier alone on pre-signed reports.
func rawVerify(a *sim.Authority, v attest.Verifier, n int) error {
	evs := make([]*attest.Evidence, 64)
	for i := range evs {
		var p sim.ReportParams
		rand.Read(p.ReportData[:])
		r, table, err := a.Sign(p)
		if err != nil {
			return err
		}
		evs[i] = &attest.Evidence{TEE: attest.TEESNP, Report: r, Certs: table}
	}
	for _, par := range []int{1, runtime.GOMAXPROCS(0)} {
		var next atomic.Int64
		var wg sync.WaitGroup
		var errc atomic.Value
		start := time.Now()
		for range par {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					if _, err := v.Verify(context.Background(), evs[i%int64(len(evs))]); err != nil {
						errc.Store(err)
					}
				}
			}()
		}
		wg.Wait()
		if e := errc.Load(); e != nil {
			return fmt.Errorf("verify: %v", e)
		}
		el := time.Since(start)
		fmt.Printf("raw SNP verify (simulated root, chain + signature): %d goroutine(s): %.0f verifies/s (%s each)\n",
			par, float64(n)/el.Seconds(), (el / time.Duration(n) * time.Duration(par)).Round(time.Microsecond))
	}
	return nil
}

type result struct {
	clients                           int
	rate                              float64
	p50, p99                          time.Duration
	errors                            int
	goroutinesBefore, goroutinesAfter int
}

// loadOne runs every level against one store.
func loadOne(st store.Store, a *sim.Authority, v attest.Verifier, levels []int, d time.Duration) ([]result, error) {
	key := make([]byte, 32)
	rand.Read(key)
	k, _ := kek.New(key)
	tk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv, err := broker.New(broker.Config{
		Store: st, KEK: k, TokenKey: tk, TrustSimulated: true, AdminToken: adminToken,
		Verifiers: map[string]attest.Verifier{attest.TEESNP: v},
		Logger:    slog.New(slog.DiscardHandler), Audit: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return nil, err
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()

	var m [48]byte
	rand.Read(m[:])
	id := "load-" + hex.EncodeToString(m[:4])
	pass := hex.EncodeToString(key) // any 64 hex characters
	// Simulated reports unlock only workloads registered for the "sim" TEE.
	ac, err := broker.NewAdminClient(hs.URL, adminToken, nil)
	if err != nil {
		return nil, err
	}
	if _, err := ac.Register(context.Background(), broker.AdminRegistration{WorkloadID: id, TEE: attest.TEESim,
		Policy: broker.WorkloadPolicy{Measurements: []string{hex.EncodeToString(m[:])}}, Passphrase: &pass}); err != nil {
		return nil, fmt.Errorf("registration: %w", err)
	}

	maxClients := slices.Max(levels)
	keys := make([]*rsa.PrivateKey, min(maxClients, 8))
	for i := range keys {
		if keys[i], err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, err
		}
	}
	// Warm up once, then count goroutines.
	if _, err := handshake(newClient(hs.URL), keys[0], a, id, m, pass); err != nil {
		return nil, fmt.Errorf("warm-up handshake: %w", err)
	}
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()

	var out []result
	for _, n := range levels {
		var mu sync.Mutex
		var lat []time.Duration
		var errs atomic.Int64
		var firstErr atomic.Value
		stop := time.Now().Add(d)
		var wg sync.WaitGroup
		start := time.Now()
		for w := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := newClient(hs.URL)
				defer c.hc.CloseIdleConnections()
				var mine []time.Duration
				for time.Now().Before(stop) {
					el, err := handshake(c, keys[w%len(keys)], a, id, m, pass)
					if err != nil {
						errs.Add(1)
						firstErr.CompareAndSwap(nil, err)
						continue
					}
					mine = append(mine, el)
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		el := time.Since(start)
		if e := firstErr.Load(); e != nil {
			fmt.Fprintf(os.Stderr, "first error at %d clients: %v\n", n, e)
		}
		slices.Sort(lat)
		r := result{clients: n, rate: float64(len(lat)) / el.Seconds(), errors: int(errs.Load()), goroutinesBefore: before}
		if len(lat) > 0 {
			r.p50, r.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
		}
		out = append(out, r)
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	out[len(out)-1].goroutinesAfter = runtime.NumGoroutine()
	return out, nil
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

// handshake runs auth → attest → key as a krun guest and checks the key.
// adminToken is the admin token of the measured broker.
const adminToken = "loadtest-admin-token-0123"

func handshake(c *client, key *rsa.PrivateKey, a *sim.Authority, id string, m [48]byte, pass string) (time.Duration, error) {
	start := time.Now()
	req, err := kbs.NewKrunRequest("snp", id)
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
	rd := kbs.KrunReportData(ch.Nonce, &key.PublicKey)
	report, _, err := a.Sign(sim.ReportParams{ReportData: rd, Measurement: m})
	if err != nil {
		return 0, err
	}
	ev, err := kbs.EncodeKrunSNPEvidence("milan", report, nil)
	if err != nil {
		return 0, err
	}
	body, _ = json.Marshal(kbs.KrunAttestation{TEEPubKey: kbs.NewKrunPubKey(&key.PublicKey), TEEEvidence: ev})
	if _, err := call(c, http.MethodPost, "/kbs/v0/attest", body); err != nil {
		return 0, err
	}
	raw, err = call(c, http.MethodGet, "/kbs/v0/key/"+id, nil)
	if err != nil {
		return 0, err
	}
	got, err := kbs.KrunDecryptSecret(key, raw)
	if err != nil {
		return 0, err
	}
	if string(got) != pass {
		return 0, errors.New("wrong passphrase released")
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
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return b, nil
}
