package main

import (
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/store/storetest"
)

func TestLocalHost(t *testing.T) {
	for dsn, want := range map[string]bool{
		"postgres://u:p@127.0.0.1:5432/db":                   true,
		"postgres://u:p@[::1]:5432/db":                       true,
		"postgres://u:p@localhost/db":                        true,
		"postgres://u@/db?host=/run/postgresql":              true,
		"postgres://u:p@db.example:5432/db":                  false,
		"postgres://u:p@10.0.0.7:5432/db":                    false,
		"postgres://u:p@127.0.0.1:5432/db?host=db.example":   false,
		"postgres://u:p@db.example:5432/db?host=/run/socket": true,
	} {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		if got := localHost(u); got != want {
			t.Errorf("localHost(%s) = %v, want %v", dsn, got, want)
		}
	}
}

func TestWithoutPoolParams(t *testing.T) {
	got, err := withoutPoolParams("postgres://u:p@127.0.0.1:1/db?sslmode=disable&pool_max_conns=16&pool_min_conns=2&search_path=x")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(got)
	q := u.Query()
	if q.Has("pool_max_conns") || q.Has("pool_min_conns") || q.Get("sslmode") != "disable" || q.Get("search_path") != "x" {
		t.Fatalf("withoutPoolParams kept or lost the wrong parameters: %s", got)
	}
	if _, err := withoutPoolParams("postgres://u:p@127.0.0.1:1/%zz"); err == nil {
		t.Fatal("a DSN that is not a URL passed")
	}
}

func TestSlicedLevel(t *testing.T) {
	if m := meanRaw(rawResult{rate: 1800, cpu: 550}, rawResult{rate: 1200, cpu: 830}); m.rate != 1500 || m.cpu != 690 {
		t.Fatalf("meanRaw = %+v", m)
	}
	if sp := spreadOf([]float64{0.7, 0.5, 0.6}); sp != (spread{0.6, 0.5, 0.7}) {
		t.Fatalf("spreadOf odd = %+v", sp)
	}
	if sp := spreadOf([]float64{0.4, 0.8, 0.5, 0.6}); sp.med != 0.55 || sp.lo != 0.4 || sp.hi != 0.8 {
		t.Fatalf("spreadOf even = %+v", sp)
	}
	if sp := spreadOf(nil); sp != (spread{}) {
		t.Fatalf("spreadOf nothing = %+v", sp)
	}
	// Two slices of one level, the CPU twice as fast in the second: the
	// merged rate is over both, each ratio against its own raw rate.
	ms := time.Millisecond
	a := level{lat: make([]time.Duration, 500), started: 500, el: time.Second, bc: 500 * ms, gc: 250 * ms}.fill()
	b := level{lat: make([]time.Duration, 1000), errors: 1, shed: 2, started: 1003, el: time.Second, bc: time.Second, dc: 100 * ms}.fill()
	c := newClosedLevel([]slice{{l: a, raw: rawResult{rate: 1000, cpu: 800 * time.Microsecond}}, {l: b, raw: rawResult{rate: 2000, cpu: 400 * time.Microsecond}}})
	if c.l.rate != 750 || c.l.errors != 1 || c.l.shed != 2 || c.l.started != 1503 || c.l.busy != 0.75 {
		t.Fatalf("merged level %+v", c.l)
	}
	if want := (1500 * ms) / 1503; c.l.brokerCPU != want {
		t.Fatalf("merged broker CPU per handshake %v, want %v", c.l.brokerCPU, want)
	}
	if c.raw.rate != 1500 || c.rawLo != 1000 || c.rawHi != 2000 {
		t.Fatalf("raw %+v %v %v", c.raw, c.rawLo, c.rawHi)
	}
	// Slice ratios 500/1000 and 1000/2000: both 0.5, where the merged
	// rate over the mean raw rate says 750/1500, also 0.5, only by luck.
	if c.ratio.med != 0.5 || c.ratio.lo != 0.5 || c.ratio.hi != 0.5 {
		t.Fatalf("ratio %+v", c.ratio)
	}
	// Shares: 800µs of 1ms, and 400µs of about 997µs.
	if c.share.lo < 0.40 || c.share.lo > 0.41 || c.share.hi != 0.8 {
		t.Fatalf("share %+v", c.share)
	}
}

func TestStatFields(t *testing.T) {
	f, err := statFields(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if ppid, err := parentOf(os.Getpid()); err != nil || ppid != os.Getppid() {
		t.Fatalf("parent: %d %v, want %d (fields %q)", ppid, err, os.Getppid(), f[:3])
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := statFields(-1); err == nil {
		t.Fatal("statFields of no process passed")
	}
}

// TestLoadtestRuns builds the load test and runs it briefly on bbolt and,
// with $SEALROOT_TEST_POSTGRES, on PostgreSQL: every handshake succeeds,
// and the report has its closed-loop, open-loop and summary lines (and,
// for a PostgreSQL server on this machine, its CPU per handshake).
func TestLoadtestRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the load test")
	}
	bin := filepath.Join(t.TempDir(), "loadtest")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	stores := "bbolt"
	// Unpinned: other test packages share the PostgreSQL server, and a
	// pinned run would move it to one CPU while they run.
	args := []string{"-pin=false", "-levels", "4", "-duration", "1s", "-slices", "2", "-open", "50", "-open-duration", "1s", "-verify", "100"}
	if os.Getenv(storetest.EnvDSN) != "" {
		stores = "bbolt,postgres"
	}
	cmd := exec.Command(bin, append(args, "-stores", stores)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("loadtest: %v\n%s", err, out)
	}
	text := string(out)
	for _, st := range strings.Split(stores, ",") {
		for _, re := range []string{
			`(?m)^` + st + ` +4 +[0-9.]+ .* +[0-9]+ +[0-9.]+ +[0-9.]+ `, // the closed-loop level, with raw/s, cap/raw, share
			`(?m)^` + st + ` +50% `,
			`(?m)^` + st + ` +raw verify on the broker's CPU.*around each of the capacity level's 2 slices`,
			`(?m)^` + st + ` +capacity [0-9.]+ handshakes/s = [0-9.]+ of the raw verify rate: the median of its slices' ratios`,
			`(?m)^` + st + ` +keys decrypted and checked by the guests: [1-9]`,
		} {
			if !regexp.MustCompile(re).MatchString(text) {
				t.Errorf("%s: the report lacks %s:\n%s", st, re, text)
			}
		}
	}
	if strings.Contains(stores, "postgres") && strings.Contains(text, "PostgreSQL server (postmaster pid") && strings.Contains(text, "on this machine") {
		// The server is local: its CPU is counted in the db-cpu column.
		if !regexp.MustCompile(`(?m)^postgres +4 .* [0-9.]+(µs|ms) +[0-9]+ +[0-9.]+ +[0-9.]+ `).MatchString(text) {
			t.Errorf("the local PostgreSQL server's CPU is not in the report:\n%s", text)
		}
	}
}
