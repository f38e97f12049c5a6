// Command loadtest measures the key broker over loopback: full krun-dialect
// handshakes (auth → attest → key, with the simulated secure processor's
// SNP reports verified exactly as hardware reports are) per second, their
// latency, and the broker's CPU time per handshake, on bbolt and, when a
// DSN is given, on PostgreSQL; next to the raw rate of the SNP verifier
// alone, measured in the same run on the same core.
//
// The broker runs as a process of its own (this program's "serve" mode,
// which runs broker.Run with `sealroot broker`'s flags, or the sealroot
// binary given by -broker-bin). With -pin, the default on two or more
// CPUs, it is bound to CPU 0 with GOMAXPROCS 1, the raw verify rate is
// measured by a child on CPU 0 too, and the simulated guests run on the
// other CPUs: a boot storm's guests are other machines. The guests sign a
// fresh report per handshake but decrypt and check the released key for
// one handshake in -check-every (and for any reply not shaped like a
// ciphertext to their key); the broker's work per handshake is the same.
//
// A closed loop (N clients, each starting its next handshake when the last
// ends) measures capacity; an open loop then offers handshakes at a fixed
// arrival rate for a fixed time, at 25, 50 and 75 % of the best
// closed-loop rate (scaled by the raw verify rate then over the raw verify
// rate at capacity), whatever the broker does, and measures each
// handshake's latency from its scheduled arrival (so a stalled broker
// shows as latency, not as fewer requests).
//
//	go run ./host/broker/loadtest                        # bbolt; PostgreSQL too with $SEALROOT_TEST_POSTGRES
//	go run ./host/broker/loadtest -levels 1,16,64 -duration 10s -open 25,50,75,90 -open-duration 5s
//	go run ./host/broker/loadtest -stores bbolt -open "" -levels 64 -broker-profile /tmp/broker
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/wire/kbs"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "serve":
			os.Exit(serveMain(os.Args[2:]))
		case "rawverify":
			os.Exit(rawVerifyMain(os.Args[2:]))
		}
	}
	var o opts
	flag.StringVar(&o.levels, "levels", "1,16,64", "closed-loop client concurrencies, comma separated")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measuring time per closed-loop level")
	flag.StringVar(&o.dsn, "postgres", os.Getenv("SEALROOT_TEST_POSTGRES"), "PostgreSQL DSN (default $SEALROOT_TEST_POSTGRES); a private schema is made and dropped; empty skips PostgreSQL")
	flag.StringVar(&o.stores, "stores", "bbolt,postgres", "stores to measure (postgres needs -postgres)")
	flag.IntVar(&o.verifyN, "verify", 500, "verifications per raw verify measurement (one before each closed-loop level and one after each of its slices)")
	flag.IntVar(&o.slices, "slices", 5, "slices per closed-loop level, with the raw verify rate measured between them")
	flag.StringVar(&o.open, "open", "25,50,75", "open-loop arrival rates in percent of the measured closed-loop capacity; empty skips the open loop")
	flag.DurationVar(&o.openD, "open-duration", 3*time.Second, "arrival time per open-loop rate")
	flag.BoolVar(&o.pin, "pin", true, "bind the broker and the raw-verify child to CPU 0 (GOMAXPROCS 1) and the guests to the other CPUs (needs 2 CPUs)")
	flag.StringVar(&o.brokerFlags, "broker-flags", "", "more `sealroot broker` flags for the measured broker, separated by spaces (e.g. \"--pending-sessions memory\")")
	flag.StringVar(&o.bin, "broker-bin", "", "run this sealroot binary's `broker` command instead of the built-in serve mode")
	flag.Int64Var(&o.every, "check-every", 50, "decrypt and check the released key of one handshake in N")
	flag.BoolVar(&o.presign, "presign", true, "compute the report-independent half of the guests' report signatures (k·G and k⁻¹) before each timed window, as a secure processor, not a CPU the broker shares, signs real reports")
	flag.StringVar(&o.brokerProf, "broker-profile", "", "write the broker's CPU and allocation profiles to PREFIX.STORE.cpu and PREFIX.STORE.allocs (serve mode only)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the load generator to this file")
	flag.Parse()
	if o.slices < 1 || o.duration/time.Duration(max(o.slices, 1)) < 100*time.Millisecond {
		fmt.Fprintln(os.Stderr, "loadtest: -slices must be at least 1, and -duration at least 100ms per slice")
		os.Exit(2)
	}
	if o.every < 1 {
		fmt.Fprintln(os.Stderr, "loadtest: -check-every must be at least 1")
		os.Exit(2)
	}
	if o.bin != "" && o.brokerProf != "" {
		fmt.Fprintln(os.Stderr, "loadtest: -broker-profile needs the built-in serve mode, not -broker-bin")
		os.Exit(2)
	}
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
	if err := run(log, o); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

type opts struct {
	levels, dsn, stores, open, bin, brokerProf string
	brokerFlags                                string
	duration, openD                            time.Duration
	verifyN, slices                            int
	every                                      int64
	pin, presign                               bool
}

// adminToken is the admin token of the measured broker.
const adminToken = "loadtest-admin-token-0123"

func run(log *slog.Logger, o opts) error {
	var levels []int
	for _, s := range strings.Split(o.levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-levels %q: want positive integers", o.levels)
		}
		levels = append(levels, n)
	}
	var fracs []float64
	if strings.TrimSpace(o.open) != "" {
		for _, s := range strings.Split(o.open, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			if err != nil || n < 1 || n > 200 {
				return fmt.Errorf("-open %q: want percentages from 1 to 200", o.open)
			}
			fracs = append(fracs, float64(n)/100)
		}
	}
	var stores []string
	for _, s := range strings.Split(o.stores, ",") {
		switch s = strings.TrimSpace(s); s {
		case "bbolt":
			stores = append(stores, s)
		case "postgres":
			if o.dsn != "" {
				stores = append(stores, s)
			} else {
				fmt.Println("(PostgreSQL skipped: give -postgres DSN or set SEALROOT_TEST_POSTGRES)")
			}
		default:
			return fmt.Errorf("-stores %q: want bbolt and/or postgres", o.stores)
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
	tokenFile := filepath.Join(tmp, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(adminToken+"\n"), 0o600); err != nil {
		return err
	}

	var pin pinning
	if o.pin {
		if pin, err = pinGenerator(); err != nil {
			fmt.Printf("(not pinned: %v)\n", err)
			pin = pinning{}
		}
	}
	where := "broker and guests share every CPU (no -pin, or one CPU)"
	if pin.on {
		where = fmt.Sprintf("broker and raw verify on CPU %d (GOMAXPROCS 1), guests on CPUs %s (GOMAXPROCS %d)",
			brokerCPU, cpusOf(os.Getpid()), runtime.GOMAXPROCS(0))
	}
	brokerKind := "loadtest serve (broker.Run, the code of `sealroot broker`)"
	if o.bin != "" {
		brokerKind = o.bin + " broker"
	}
	fmt.Printf("sealroot broker load test: %d CPUs; %s\n", runtime.NumCPU(), where)
	fmt.Printf("broker process: %s; krun dialect (RSA-2048 guest keys), simulated SNP reports; guests check 1 key in %d\n", brokerKind, o.every)
	if o.presign {
		fmt.Println("guests: each report's signature half that does not depend on the report (k·G, k⁻¹) is computed before each timed window (-presign), so guest-cpu is the rest")
	}
	fmt.Printf("closed loop %s per level, open loop %s per rate; load average at start: %s\n", o.duration, o.openD, loadAvg())

	// Guest keys are made before anything is timed.
	g := &guests{auth: auth, every: o.every}
	for range 8 {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return err
		}
		g.keys = append(g.keys, k)
		g.pubs = append(g.pubs, kbs.NewKrunPubKey(&k.PublicKey))
	}

	failed := false
	for _, st := range stores {
		sum, err := loadStore(log, o, pin, st, tmp, simDir, tokenFile, g, levels, fracs)
		if err != nil {
			return fmt.Errorf("%s: %w", st, err)
		}
		failed = failed || sum.errors > 0
		if sum.shed > 0 {
			fmt.Printf("%-9s %d handshakes were answered 503 with Retry-After (shed: the broker's store calls or pending sessions at their caps; a guest retries); not counted as failures\n", st, sum.shed)
		}
		c := sum.capacity
		fmt.Printf("%-9s raw verify on the broker's CPU, 1 goroutine, measured around each of the capacity level's %d slices: %.0f to %.0f verifies/s, mean %.0f/s (%s CPU each)\n",
			st, len(c.slices), c.rawLo, c.rawHi, c.raw.rate, c.raw.cpu.Round(time.Microsecond))
		fmt.Printf("%-9s capacity %.1f handshakes/s = %.2f of the raw verify rate: the median of its slices' ratios, %.2f to %.2f\n",
			st, c.l.rate, c.ratio.med, c.ratio.lo, c.ratio.hi)
		if c.l.brokerCPU > 0 {
			fmt.Printf("%-9s broker CPU per handshake at capacity %s; verification's share of it %.2f (median of the slices, %.2f to %.2f): %.0f handshakes/s per busy core = %.2f of the raw verify rate\n",
				st, c.l.brokerCPU.Round(time.Microsecond), c.share.med, c.share.lo, c.share.hi,
				float64(time.Second)/float64(c.l.brokerCPU), c.share.med)
		}
		fmt.Println()
	}
	if failed {
		return errors.New("handshakes failed (see above)")
	}
	return nil
}

// rawResult is the raw verify rate on the broker's CPU.
type rawResult struct {
	rate float64
	cpu  time.Duration // CPU per verification
}

// meanRaw is the mean of the raw measurements just before and just after a
// slice of a level.
func meanRaw(a, b rawResult) rawResult {
	return rawResult{rate: (a.rate + b.rate) / 2, cpu: (a.cpu + b.cpu) / 2}
}

// spread is the median, least and greatest of some ratios.
type spread struct{ med, lo, hi float64 }

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return spread{med: med, lo: v[0], hi: v[len(v)-1]}
}

// slice is one part of a closed-loop level and the raw verify rate around
// it (the mean of the measurements just before and just after it).
type slice struct {
	l   level
	raw rawResult
}

// closedLevel is a closed-loop level measured in slices, with the raw
// verify rate measured between them: on a machine whose CPU speed drifts
// (a shared VM: the raw rate has moved by a third within ten seconds
// here), a ratio is only sound between a rate and a raw rate measured
// moments apart, so every slice gives one, and the level reports their
// median.
type closedLevel struct {
	l            level // the slices merged
	slices       []slice
	raw          rawResult // mean of the slices' raw rates
	rawLo, rawHi float64
	ratio        spread // handshake rate / raw verify rate
	share        spread // raw verify CPU / broker CPU per handshake
}

func newClosedLevel(parts []slice) closedLevel {
	c := closedLevel{slices: parts}
	var ls []level
	var ratios, shares []float64
	c.rawLo = parts[0].raw.rate
	for _, p := range parts {
		ls = append(ls, p.l)
		c.raw.rate += p.raw.rate / float64(len(parts))
		c.raw.cpu += p.raw.cpu / time.Duration(len(parts))
		c.rawLo, c.rawHi = min(c.rawLo, p.raw.rate), max(c.rawHi, p.raw.rate)
		ratios = append(ratios, p.l.rate/p.raw.rate)
		if p.l.brokerCPU > 0 {
			shares = append(shares, float64(p.raw.cpu)/float64(p.l.brokerCPU))
		}
	}
	c.l = mergeLevels(ls)
	c.ratio, c.share = spreadOf(ratios), spreadOf(shares)
	return c
}

func rawVerify(pin pinning, simDir string, n int) (rawResult, error) {
	self, err := os.Executable()
	if err != nil {
		return rawResult{}, err
	}
	cmd := exec.Command(self, "rawverify", simDir, strconv.Itoa(n))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := pin.startPinned(cmd); err != nil {
		return rawResult{}, err
	}
	if err := cmd.Wait(); err != nil {
		return rawResult{}, fmt.Errorf("raw verify: %w: %s", err, strings.TrimSpace(out.String()))
	}
	var cnt, wall, cpu int64
	if _, err := fmt.Sscan(out.String(), &cnt, &wall, &cpu); err != nil || wall <= 0 || cnt <= 0 {
		return rawResult{}, fmt.Errorf("raw verify: unexpected output %q", out.String())
	}
	return rawResult{rate: float64(cnt) / time.Duration(wall).Seconds(), cpu: time.Duration(cpu / cnt)}, nil
}

// storeSummary is what a store's run adds up to.
type storeSummary struct {
	capacity closedLevel // the closed-loop level with the best rate
	errors   int
	shed     int // 503s with Retry-After: the broker shedding load
}

// level is one closed-loop level or open-loop rate.
type level struct {
	rate           float64
	lat            []time.Duration // sorted
	errors, shed   int
	brokerCPU, gen time.Duration // per handshake
	db             time.Duration // the local PostgreSQL server's CPU per handshake
	busy           float64       // broker CPU / wall time
	load           string
	// The totals the figures above come from, for mergeLevels.
	started    int // handshakes started: got a key, failed or shed
	el         time.Duration
	bc, gc, dc time.Duration // broker, generator, database CPU
}

// mergeLevels adds up the slices of one closed-loop level.
func mergeLevels(parts []level) level {
	var m level
	for _, p := range parts {
		m.lat = append(m.lat, p.lat...)
		m.errors += p.errors
		m.shed += p.shed
		m.started += p.started
		m.el += p.el
		m.bc += p.bc
		m.gc += p.gc
		m.dc += p.dc
		m.load = p.load
	}
	slices.Sort(m.lat)
	return m.fill()
}

// fill computes the rates from the totals.
func (l level) fill() level {
	if l.el > 0 {
		l.rate = float64(len(l.lat)) / l.el.Seconds()
		l.busy = l.bc.Seconds() / l.el.Seconds()
	}
	if n := time.Duration(l.started); n > 0 {
		l.brokerCPU, l.gen, l.db = l.bc/n, l.gc/n, l.dc/n
	}
	return l
}

func (l level) q(p float64) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	return l.lat[min(len(l.lat)-1, int(float64(len(l.lat))*p))].Round(10 * time.Microsecond)
}

// outcome is what a loop's handshakes came to: the latencies of those
// that got their key, the failures, and the 503s of a broker shedding
// load.
type outcome struct {
	lat          []time.Duration
	errors, shed int
}

// measure runs fn and accounts the broker's, the generator's and the
// local database server's (db, nil for none) CPU to the handshakes it
// started.
func measure(b *brokerProc, db *pgServer, fn func() outcome) level {
	var dc0 time.Duration
	if db != nil {
		dc0 = db.cpu()
	}
	bc0, gc0, start := b.cpu(), selfCPU(), time.Now()
	o := fn()
	l := level{el: time.Since(start), bc: b.cpu() - bc0, gc: selfCPU() - gc0, lat: o.lat, errors: o.errors, shed: o.shed,
		started: len(o.lat) + o.errors + o.shed, load: loadAvg()}
	if db != nil {
		l.dc = db.cpu() - dc0
	}
	slices.Sort(l.lat)
	return l.fill()
}

// cpuCol prints a CPU time per handshake for a table, "-" for none.
func cpuCol(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Microsecond).String()
}

// loadStore runs every closed-loop level against a fresh broker on one
// store, then the open loop at each fraction of the best closed-loop rate.
func loadStore(log *slog.Logger, o opts, pin pinning, st, tmp, simDir, tokenFile string, g *guests, levels []int, fracs []float64) (storeSummary, error) {
	var sum storeSummary
	spec := brokerSpec{bin: o.bin, state: filepath.Join(tmp, "state-"+st), simDir: simDir, token: tokenFile,
		logFile: filepath.Join(tmp, "broker-"+st+".log"), extra: strings.Fields(o.brokerFlags)}
	if o.brokerProf != "" {
		spec.profile = o.brokerProf + "." + st
	}
	var db *pgServer
	if st == "postgres" {
		dsn, drop, err := privateSchema(o.dsn)
		if err != nil {
			return sum, err
		}
		defer drop()
		spec.store = dsn
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		db, err = findLocalServer(ctx, dsn)
		cancel()
		if err != nil {
			return sum, err
		}
		switch {
		case db == nil:
			fmt.Printf("%-9s the PostgreSQL server is not on this machine: its CPU is not counted\n", st)
		case pin.on:
			// Before the broker starts, so that its connections' backends
			// are forked onto the guests' CPUs too.
			if err := db.bind(&pin.generator); err != nil {
				return sum, err
			}
			defer db.restore()
			fmt.Printf("%-9s PostgreSQL server (postmaster pid %d) on this machine, bound to CPUs %s with the guests (a deployment's database is another machine); its CPU is counted as db-cpu\n",
				st, db.postmaster, cpusOf(db.postmaster))
		default:
			fmt.Printf("%-9s PostgreSQL server (postmaster pid %d) on this machine, on CPUs %s; its CPU is counted as db-cpu\n",
				st, db.postmaster, cpusOf(db.postmaster))
		}
	}
	b, err := startBroker(pin, spec)
	if err != nil {
		return sum, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = b.stop()
		}
	}()
	if pin.on {
		fmt.Printf("%-9s broker pid %d on CPUs %s\n", st, b.cmd.Process.Pid, cpusOf(b.cmd.Process.Pid))
	}

	var m [48]byte
	rand.Read(m[:])
	g.m = m
	g.id = "load-" + hex.EncodeToString(m[:4])
	key := make([]byte, 32)
	rand.Read(key)
	g.pass = hex.EncodeToString(key) // any 64 hex characters
	// Simulated reports unlock only workloads registered for the "sim" TEE.
	ac, err := broker.NewAdminClient(b.url, adminToken, nil)
	if err != nil {
		return sum, err
	}
	if _, err := ac.Register(context.Background(), broker.AdminRegistration{WorkloadID: g.id, TEE: attest.TEESim,
		Policy: broker.WorkloadPolicy{Measurements: []string{hex.EncodeToString(m[:])}}, Passphrase: &g.pass}); err != nil {
		return sum, fmt.Errorf("registration: %w", err)
	}
	// Warm up (and check every key of the warm-up).
	every := g.every
	g.every = 1
	wc := newClient(b.url)
	for i := range 2 * len(g.keys) {
		if _, err := g.handshake(wc, i); err != nil {
			return sum, fmt.Errorf("warm-up handshake: %w", err)
		}
	}
	wc.hc.CloseIdleConnections()
	g.every = every

	// Each closed-loop level runs in -slices slices, and the raw verify
	// rate is measured before the first and after every slice, on the
	// broker's CPU while the broker idles (closedLevel).
	raw := func() (rawResult, error) { return rawVerify(pin, simDir, o.verifyN) }
	before, err := raw()
	if err != nil {
		return sum, err
	}
	fmt.Printf("%-9s closed loop, %d slices per level with the raw verify rate measured around each (raw/s: their mean; cap/raw and share: the medians of the slices' ratios; share: verification's share of the broker's CPU):\n", st, o.slices)
	fmt.Printf("%-9s %7s %12s %10s %10s %7s %6s %11s %6s %11s %9s %7s %7s %6s  %s\n", "store", "clients", "handshakes/s", "p50", "p99", "errors", "shed",
		"broker-cpu", "busy", "guest-cpu", "db-cpu", "raw/s", "cap/raw", "share", "load")
	for _, n := range levels {
		c, err := closedSlices(log, o, pin, b, db, g, n, raw, &before)
		if err != nil {
			return sum, err
		}
		l := c.l
		fmt.Printf("%-9s %7d %12.1f %10s %10s %7d %6d %11s %6.2f %11s %9s %7.0f %7.2f %6.2f  %s\n", st, n, l.rate, l.q(0.50), l.q(0.99), l.errors, l.shed,
			l.brokerCPU.Round(time.Microsecond), l.busy, l.gen.Round(time.Microsecond), cpuCol(l.db), c.raw.rate, c.ratio.med, c.share.med, l.load)
		sum.errors += l.errors
		sum.shed += l.shed
		if l.rate > sum.capacity.l.rate {
			sum.capacity = c
		}
	}
	if len(fracs) > 0 {
		// The capacity was measured at the raw rate of its own minute;
		// each open-loop rate is scaled by the raw rate measured just
		// before it, so that "50 %" is half of what the broker can do
		// now, on a CPU whose speed drifts.
		fmt.Printf("%-9s open loop, %s of arrivals per rate, latency from each scheduled arrival; target = the fraction of the capacity, scaled by raw/s (measured just before) over the capacity level's raw rate:\n", st, o.openD)
		fmt.Printf("%-9s %7s %9s %10s %10s %10s %10s %7s %6s %11s %6s %9s %7s  %s\n", "store", "offered", "target/s", "achieved/s", "p50", "p99", "p99.9", "errors", "shed", "broker-cpu", "busy", "db-cpu", "raw/s", "load")
		for _, f := range fracs {
			now, err := raw()
			if err != nil {
				return sum, err
			}
			rate := f * sum.capacity.l.rate * now.rate / sum.capacity.raw.rate
			if rate <= 0 || math.IsNaN(rate) {
				return sum, errors.New("open loop: no closed-loop capacity to take a fraction of")
			}
			if err := g.presign(o.presign, rate*o.openD.Seconds()); err != nil {
				return sum, err
			}
			l := measure(b, db, func() outcome { return openLoop(log, b.url, g, rate, o.openD) })
			g.noteDry(o.presign)
			fmt.Printf("%-9s %6.0f%% %9.1f %10.1f %10s %10s %10s %7d %6d %11s %6.2f %9s %7.0f  %s\n", st, f*100, rate, l.rate,
				l.q(0.50), l.q(0.99), l.q(0.999), l.errors, l.shed, l.brokerCPU.Round(time.Microsecond), l.busy, cpuCol(l.db), now.rate, l.load)
			sum.errors += l.errors
			sum.shed += l.shed
		}
	}
	stopped = true
	if err := b.stop(); err != nil {
		return sum, fmt.Errorf("the broker did not stop cleanly: %w; its log: %s", err, tail(spec.logFile))
	}
	if sum.errors+sum.shed > 0 {
		fmt.Fprintf(os.Stderr, "%s: the broker's last log lines:\n%s\n", st, tail(spec.logFile))
	}
	fmt.Printf("%-9s keys decrypted and checked by the guests: %d\n", st, g.checks.Swap(0))
	if dry := g.dry.Swap(0); dry > 0 {
		fmt.Printf("%-9s the presigned signature halves ran out in %d timed windows: their last reports were signed in full, inside the window\n", st, dry)
	}
	return sum, nil
}

// closedSlices runs one closed-loop level of n clients in o.slices
// slices, with the raw verify rate measured after each (before is the
// last measurement, updated).
func closedSlices(log *slog.Logger, o opts, pin pinning, b *brokerProc, db *pgServer, g *guests, n int,
	raw func() (rawResult, error), before *rawResult) (closedLevel, error) {
	var parts []slice
	d := o.duration / time.Duration(o.slices)
	for range o.slices {
		// A handshake needs a verification on the broker's CPU, so a
		// slice holds at most raw rate × d of them (times the CPUs when
		// the broker is not pinned to one).
		if err := g.presign(o.presign, before.rate*float64(cpusFor(pin))*d.Seconds()); err != nil {
			return closedLevel{}, err
		}
		l := measure(b, db, func() outcome { return closedLoop(log, b.url, g, n, d) })
		g.noteDry(o.presign)
		after, err := raw()
		if err != nil {
			return closedLevel{}, err
		}
		parts = append(parts, slice{l: l, raw: meanRaw(*before, after)})
		*before = after
	}
	return newClosedLevel(parts), nil
}

// privateSchema makes a schema of its own on the cluster at base and
// returns a DSN selecting it and a function dropping it.
func privateSchema(base string) (string, func(), error) {
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "loadtest_" + hex.EncodeToString(rnd[:])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := withoutPoolParams(base)
	if err != nil {
		return "", nil, err
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		return "", nil, fmt.Errorf("creating schema: %w", err)
	}
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, admin); err == nil {
			if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
				fmt.Fprintf(os.Stderr, "loadtest: dropping schema %s: %v\n", schema, err)
			}
			c.Close(ctx)
		}
	}
	u, err := url.Parse(base)
	if err != nil {
		drop()
		return "", nil, errors.New("the PostgreSQL DSN is not a URL")
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), drop, nil
}

// withoutPoolParams drops the pgxpool settings (pool_max_conns and the
// like) from a DSN, for the single connections that make and drop the
// schema: pgx.Connect would send them to the server as run-time
// parameters, which the server refuses.
func withoutPoolParams(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", errors.New("the PostgreSQL DSN is not a URL")
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// closedLoop runs n clients for d, each starting its next handshake when
// the last ends.
func closedLoop(log *slog.Logger, base string, g *guests, n int, d time.Duration) outcome {
	var mu sync.Mutex
	var lat []time.Duration
	var errs, shed atomic.Int64
	var firstErr atomic.Value
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient(base)
			defer c.hc.CloseIdleConnections()
			var mine []time.Duration
			for time.Now().Before(stop) {
				el, err := g.handshake(c, w)
				if isShed(err) {
					shed.Add(1)
					continue
				}
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
	if e := firstErr.Load(); e != nil {
		log.Warn("handshakes failed", "clients", n, "count", errs.Load(), "err", e)
	}
	return outcome{lat, int(errs.Load()), int(shed.Load())}
}

// maxInFlight bounds the open loop's concurrent handshakes; arrivals past
// it are counted as errors (the broker is far past saturation).
const maxInFlight = 4096

// openLoop offers handshakes at rate per second for d: arrival i is
// scheduled at start + i/rate, whatever the broker does, and its latency
// runs from that scheduled time to the released key. Guests come from a
// pool of clients (each its own cookie jar and connections), grown when
// every pooled one is busy.
func openLoop(log *slog.Logger, base string, g *guests, rate float64, d time.Duration) outcome {
	n := max(1, int(rate*d.Seconds()))
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
	var errs, shed atomic.Int64
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
			_, err := g.handshake(c, i)
			el := time.Since(at)
			select {
			case free <- c:
			default:
			}
			if isShed(err) {
				shed.Add(1)
				return
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
	for _, c := range all {
		c.hc.CloseIdleConnections()
	}
	if e := firstErr.Load(); e != nil {
		log.Warn("handshakes failed", "rate", fmt.Sprintf("%.1f/s", rate), "count", errs.Load(), "err", e)
	}
	return outcome{lat, int(errs.Load()), int(shed.Load())}
}
