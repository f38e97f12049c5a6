// Command loadtest measures the key broker over loopback: full krun-dialect
// handshakes (auth → attest → key, with the simulated secure processor's
// SNP reports verified exactly as hardware reports are) per second, and
// their p50 and p99 latency, at several client concurrencies, on bbolt and,
// when a DSN is given, on PostgreSQL. It also reports the raw rate of the
// SNP verifier alone, and checks that no handshake failed and that the
// goroutine count came back down.
//
// A closed loop (N clients, each starting its next handshake when the last
// ends) measures capacity but not the latency a given arrival rate sees:
// its clients slow down with the broker. So after the closed loop, an open
// loop offers handshakes at a fixed arrival rate for a fixed time, at 25,
// 50 and 75 % of the best closed-loop rate, whatever the broker does, and
// measures each handshake's latency from its scheduled arrival (so a
// stalled broker shows as latency, not as fewer requests).
//
//	go run ./host/broker/loadtest                        # bbolt only
//	go run ./host/broker/loadtest -postgres "$SEALROOT_TEST_POSTGRES"
//	go run ./host/broker/loadtest -levels 1,16,64 -duration 10s -open 25,50,75,90 -open-duration 5s
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
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/host/verify/snp"
	"github.com/sealroot/sealroot/wire/kbs"
)

func main() {
	levels := flag.String("levels", "1,16,64", "client concurrencies, comma separated")
	duration := flag.Duration("duration", 5*time.Second, "measuring time per concurrency level")
	pg := flag.String("postgres", os.Getenv("SEALROOT_TEST_POSTGRES"), "PostgreSQL DSN (default $SEALROOT_TEST_POSTGRES); empty skips PostgreSQL")
	verifyN := flag.Int("verify", 2000, "reports for the raw verify rate")
	open := flag.String("open", "25,50,75", "open-loop arrival rates in percent of the measured closed-loop capacity; empty skips the open loop")
	openD := flag.Duration("open-duration", 3*time.Second, "arrival time per open-loop rate")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest: -cpuprofile:", err)
			os.Exit(2)
		}
		defer pprof.StopCPUProfile()
	}
	// The report goes to stdout; log records (failed handshakes) to stderr.
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, *levels, *duration, *pg, *verifyN, *open, *openD); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, levelsFlag string, duration time.Duration, dsn string, verifyN int, openFlag string, openD time.Duration) error {
	var levels []int
	for _, s := range strings.Split(levelsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-levels %q: want positive integers", levelsFlag)
		}
		levels = append(levels, n)
	}
	var fracs []float64
	if strings.TrimSpace(openFlag) != "" {
		for _, s := range strings.Split(openFlag, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 || n > 200 {
				return fmt.Errorf("-open %q: want percentages from 1 to 200", openFlag)
			}
			fracs = append(fracs, float64(n)/100)
		}
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
	rawRate, err := rawVerify(auth, verifier, verifyN)
	if err != nil {
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
		res, open, err := loadOne(log, st, auth, verifier, levels, duration, fracs, openD)
		st.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", be, err)
		}
		best := 0.0
		for _, r := range res {
			fmt.Printf("%-9s %7d %12.1f %10s %10s %8d\n", be, r.clients, r.rate, r.p50.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.errors)
			failed = failed || r.errors > 0
			best = max(best, r.rate)
		}
		fmt.Printf("%-9s closed-loop capacity %.1f handshakes/s = %.2f of the raw verify rate on %d goroutines (%.0f/s)\n",
			be, best, best/rawRate, runtime.GOMAXPROCS(0), rawRate)
		if len(open) > 0 {
			fmt.Printf("%-9s open loop, %s of arrivals per rate, latency from each scheduled arrival:\n", be, openD)
			fmt.Printf("%-9s %9s %10s %10s %10s %10s %10s %8s\n", "store", "offered", "target/s", "achieved/s", "p50", "p99", "p99.9", "errors")
			for _, o := range open {
				fmt.Printf("%-9s %8.0f%% %10.1f %10.1f %10s %10s %10s %8d\n", be, o.frac*100, o.target, o.achieved,
					o.p50.Round(10*time.Microsecond), o.p99.Round(10*time.Microsecond), o.p999.Round(10*time.Microsecond), o.errors)
				failed = failed || o.errors > 0
			}
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

// rawVerify measures the SNP verifier alone on pre-signed reports, on one
// goroutine and on GOMAXPROCS, and returns the latter rate.
func rawVerify(a *sim.Authority, v attest.Verifier, n int) (float64, error) {
	evs := make([]*attest.Evidence, 64)
	for i := range evs {
		var p sim.ReportParams
		rand.Read(p.ReportData[:])
		r, table, err := a.Sign(p)
		if err != nil {
			return 0, err
		}
		evs[i] = &attest.Evidence{TEE: attest.TEESNP, Report: r, Certs: table}
	}
	var rate float64
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
			return 0, fmt.Errorf("verify: %v", e)
		}
		el := time.Since(start)
		rate = float64(n) / el.Seconds()
		fmt.Printf("raw SNP verify (simulated root, full verifier, warm key cache): %d goroutine(s): %.0f verifies/s (%s each)\n",
			par, rate, (el / time.Duration(n) * time.Duration(par)).Round(time.Microsecond))
	}
	return rate, nil
}

type result struct {
	clients                           int
	rate                              float64
	p50, p99                          time.Duration
	errors                            int
	goroutinesBefore, goroutinesAfter int
}

// openResult is one open-loop rate.
type openResult struct {
	frac, target, achieved float64
	p50, p99, p999         time.Duration
	errors                 int
}

// loadOne runs every closed-loop level against one store, then the open
// loop at each fraction of the best closed-loop rate.
func loadOne(log *slog.Logger, st store.Store, a *sim.Authority, v attest.Verifier, levels []int, d time.Duration, fracs []float64, openD time.Duration) ([]result, []openResult, error) {
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
		return nil, nil, err
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
		return nil, nil, err
	}
	if _, err := ac.Register(context.Background(), broker.AdminRegistration{WorkloadID: id, TEE: attest.TEESim,
		Policy: broker.WorkloadPolicy{Measurements: []string{hex.EncodeToString(m[:])}}, Passphrase: &pass}); err != nil {
		return nil, nil, fmt.Errorf("registration: %w", err)
	}

	maxClients := slices.Max(levels)
	keys := make([]*rsa.PrivateKey, min(maxClients, 8))
	for i := range keys {
		if keys[i], err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, nil, err
		}
	}
	// Warm up once, then count goroutines.
	if _, err := handshake(newClient(hs.URL), keys[0], a, id, m, pass); err != nil {
		return nil, nil, fmt.Errorf("warm-up handshake: %w", err)
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
			log.Warn("handshakes failed", "clients", n, "count", errs.Load(), "err", e)
		}
		slices.Sort(lat)
		r := result{clients: n, rate: float64(len(lat)) / el.Seconds(), errors: int(errs.Load()), goroutinesBefore: before}
		if len(lat) > 0 {
			r.p50, r.p99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
		}
		out = append(out, r)
	}

	var opens []openResult
	best := 0.0
	for _, r := range out {
		best = max(best, r.rate)
	}
	for _, f := range fracs {
		o, err := openLoop(log, hs.URL, keys, a, id, m, pass, f*best, openD)
		if err != nil {
			return nil, nil, err
		}
		o.frac = f
		opens = append(opens, o)
	}
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	out[len(out)-1].goroutinesAfter = runtime.NumGoroutine()
	return out, opens, nil
}

// maxInFlight bounds the open loop's concurrent handshakes; arrivals past
// it are counted as errors (the broker is far past saturation).
const maxInFlight = 4096

// openLoop offers handshakes at rate per second for d: arrival i is
// scheduled at start + i/rate, whatever the broker does, and its latency
// runs from that scheduled time to the released key. Guests come from a
// pool of clients (each its own cookie jar and connections), grown when
// every pooled one is busy.
func openLoop(log *slog.Logger, base string, keys []*rsa.PrivateKey, a *sim.Authority, id string, m [48]byte, pass string, rate float64, d time.Duration) (openResult, error) {
	res := openResult{target: rate}
	if rate <= 0 {
		return res, errors.New("open loop: no closed-loop capacity to take a fraction of")
	}
	n := int(rate * d.Seconds())
	if n < 1 {
		n = 1
	}
	interval := time.Duration(float64(time.Second) / rate)
	free := make(chan *client, 1024)
	var all []*client
	var allMu sync.Mutex
	get := func() *client {
		select {
		case c := <-free:
			return c
		default:
			c := newClient(base)
			allMu.Lock()
			all = append(all, c)
			allMu.Unlock()
			return c
		}
	}
	lat := make([]time.Duration, 0, n)
	var mu sync.Mutex
	var errs atomic.Int64
	var firstErr atomic.Value
	var inFlight atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if w := time.Until(at); w > 0 {
			time.Sleep(w)
		}
		if inFlight.Load() >= maxInFlight {
			errs.Add(1)
			firstErr.CompareAndSwap(nil, errors.New("more than 4096 handshakes in flight"))
			continue
		}
		inFlight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inFlight.Add(-1)
			c := get()
			_, err := handshake(c, keys[i%len(keys)], a, id, m, pass)
			el := time.Since(at)
			select {
			case free <- c:
			default:
			}
			if err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err)
				return
			}
			mu.Lock()
			lat = append(lat, el)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	for _, c := range all {
		c.hc.CloseIdleConnections()
	}
	if e := firstErr.Load(); e != nil {
		log.Warn("handshakes failed", "rate", fmt.Sprintf("%.1f/s", rate), "count", errs.Load(), "err", e)
	}
	slices.Sort(lat)
	res.errors = int(errs.Load())
	res.achieved = float64(len(lat)) / el.Seconds()
	if len(lat) > 0 {
		q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
		res.p50, res.p99, res.p999 = q(0.50), q(0.99), q(0.999)
	}
	return res, nil
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
