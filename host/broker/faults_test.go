package broker

// The fault-injection suite: an operator's bad day against real broker
// processes, on bbolt and on the PostgreSQL that tests/postgres.sh starts.
// Each fault must end in a clear refusal at start or an honest 503, never a
// hang, a panic that escapes a request, or a silent reset; and nothing the
// broker acknowledged may be lost where the design says it survives.

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/broker/store/storetest"

	bolt "go.etcd.io/bbolt"
)

// plantRawRecord writes value under key in a bucket of a bbolt file, as
// damage or a foreign writer would.
func plantRawRecord(path, bucket, key string, value []byte) error {
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte(bucket)).Put([]byte(key), value) })
}

// faultEnv is one broker state (directory and store) that brokers are
// started on, one after the other.
type faultEnv struct {
	state string
	args  []string
}

func newFaultEnv(t *testing.T, dsn string, extra ...string) *faultEnv {
	t.Helper()
	state := t.TempDir()
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(testAdminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"--listen", "127.0.0.1:0", "--state", state, "--admin-token-file", tokenFile, "--offline",
		"--shutdown-timeout", "3s", "--store-timeout", "1s"}
	if dsn != "" {
		args = append(args, "--store", dsn)
	}
	return &faultEnv{state: state, args: append(args, extra...)}
}

func (e *faultEnv) with(args ...string) []string {
	return append(append([]string{}, e.args...), args...)
}

func (e *faultEnv) start(t *testing.T, args ...string) *brokerProc {
	t.Helper()
	return startBrokerProc(t, e.with(args...)...)
}

// noCrash fails when a broker's output shows a Go crash.
func noCrash(t *testing.T, out string) {
	t.Helper()
	if strings.Contains(out, "goroutine ") && strings.Contains(out, "[running]") {
		t.Fatalf("the broker crashed with a Go panic:\n%s", out)
	}
}

// refuse starts a broker that must refuse to start: exit status 1 within
// 20 s, no crash, and its error naming each of want.
func (e *faultEnv) refuse(t *testing.T, want ...string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childArgsEnv+"="+strings.Join(e.args, " "))
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the broker neither served nor refused within 20 s:\n%s", out.String())
	}
	noCrash(t, out.String())
	if strings.Contains(out.String(), "LISTENING") {
		t.Fatalf("the broker served instead of refusing:\n%s", out.String())
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1:\n%s", err, out.String())
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Fatalf("the refusal does not say %q:\n%s", w, out.String())
		}
	}
	t.Logf("refused: %s", out.String())
	return out.String()
}

// stop sends SIGTERM and requires an exit within the grace period (3 s)
// plus a little.
func (p *brokerProc) stop(t *testing.T) {
	t.Helper()
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		noCrash(t, p.errb.String())
		if err != nil {
			t.Fatalf("SIGTERM: %v\n%s", err, p.errb.String())
		}
	case <-time.After(6 * time.Second):
		p.cmd.Process.Kill()
		<-done
		t.Fatalf("the broker did not exit within 6 s of SIGTERM (grace 3 s):\n%s", p.errb.String())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("exit took %v", d)
	}
}

var faultClient = &http.Client{Timeout: 15 * time.Second}

// register registers workload id through buildah's endpoint.
func register(t *testing.T, base, id string) (int, http.Header) {
	t.Helper()
	m := measurement(77)
	resp, err := faultClient.Post(base+"/kbs/v0/register_workload", "application/json",
		strings.NewReader(registrationBody(id, hex.EncodeToString(m[:]), randomHex(32))))
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// get does an admin GET and times it.
func get(t *testing.T, base, path string) (int, http.Header, string, time.Duration) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+path, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	start := time.Now()
	resp, err := faultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v (a dropped connection is not an answer)", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), time.Since(start)
}

func listIDs(t *testing.T, base string) map[string]AdminWorkload {
	t.Helper()
	code, _, body, _ := get(t, base, "/admin/v1/workloads")
	if code != http.StatusOK {
		t.Fatalf("list: %d %s", code, body)
	}
	var list []AdminWorkload
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]AdminWorkload{}
	for _, w := range list {
		out[w.WorkloadID] = w
	}
	return out
}

// honest503 requires a 503 with Retry-After, answered within limit.
func honest503(t *testing.T, what string, code int, h http.Header, took, limit time.Duration) {
	t.Helper()
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("%s: %d (Retry-After %q), want 503 with Retry-After", what, code, h.Get("Retry-After"))
	}
	if took > limit {
		t.Fatalf("%s answered after %v, want within %v", what, took, limit)
	}
}

// populate starts a broker, registers n workloads and stops it.
func (e *faultEnv) populate(t *testing.T, n int) []string {
	t.Helper()
	p := e.start(t)
	var ids []string
	for i := range n {
		id := fmt.Sprintf("fault-%03d", i)
		if code, _ := register(t, p.url, id); code != http.StatusOK {
			t.Fatalf("register %s: %d", id, code)
		}
		ids = append(ids, id)
	}
	p.stop(t)
	return ids
}

// TestFaultKeysAndDatabase: keys and database that do not belong together
// are refused at start, on bbolt and PostgreSQL, and --start-over is the
// explicit way out.
func TestFaultKeysAndDatabase(t *testing.T) {
	for _, backend := range []string{"bbolt", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dsn := ""
			if backend == "postgres" {
				dsn = storetest.PostgresDSN(t)
			}
			e := newFaultEnv(t, dsn)
			ids := e.populate(t, 3)
			kekPath := filepath.Join(e.state, "kek")
			good, err := os.ReadFile(kekPath)
			if err != nil {
				t.Fatal(err)
			}

			t.Run("missing kek", func(t *testing.T) {
				os.Remove(kekPath)
				defer os.WriteFile(kekPath, good, 0o600)
				out := e.refuse(t, "key-encryption key "+kekPath+" is missing", "sealed secrets", "sealroot broker restore", "--start-over")
				if exists(kekPath) {
					t.Fatalf("a new key was generated:\n%s", out)
				}
			})
			t.Run("replaced kek", func(t *testing.T) {
				os.Remove(kekPath)
				os.WriteFile(kekPath, []byte(strings.Repeat("5a", 32)+"\n"), 0o600)
				defer func() { os.Remove(kekPath); os.WriteFile(kekPath, good, 0o600) }()
				e.refuse(t, "is not the key of", "check value does not open")
			})
			t.Run("replaced token key", func(t *testing.T) {
				tok := filepath.Join(e.state, "token-key.pem")
				saved, _ := os.ReadFile(tok)
				os.Remove(tok)
				defer func() { os.Remove(tok); os.WriteFile(tok, saved, 0o600) }()
				e.refuse(t, "token signing key "+tok+" is missing")
			})
			if backend == "bbolt" {
				db := filepath.Join(e.state, "broker.db")
				saved, err := os.ReadFile(db)
				if err != nil {
					t.Fatal(err)
				}
				t.Run("missing database", func(t *testing.T) {
					os.Rename(db, db+".away")
					defer os.Rename(db+".away", db)
					e.refuse(t, "the database "+db+" is missing", "shows it was in use", "kek")
					if exists(db) {
						t.Fatal("a new database was created")
					}
				})
				t.Run("empty database", func(t *testing.T) {
					os.WriteFile(db, nil, 0o600)
					defer os.WriteFile(db, saved, 0o600)
					e.refuse(t, "is empty (0 bytes)")
				})
			} else {
				t.Run("empty database", func(t *testing.T) {
					// Another (empty) database under the same state.
					other := *e
					other.args = append(append([]string{}, e.args...), "--store", storetest.PostgresDSN(t))
					other.refuse(t, "is empty", "belongs to state")
				})
			}

			// Everything back in place: it serves, nothing lost.
			p := e.start(t)
			have := listIDs(t, p.url)
			for _, id := range ids {
				if w, ok := have[id]; !ok || !w.HasPassphrase || w.Damaged != "" {
					t.Fatalf("workload %s after the faults: %+v", id, w)
				}
			}
			p.stop(t)

			// Starting over is explicit, and keeps the old files aside.
			os.Remove(kekPath)
			e.refuse(t, "is missing")
			p = e.start(t, "--start-over")
			if n := len(listIDs(t, p.url)); n != 0 {
				t.Fatalf("%d workloads after --start-over", n)
			}
			p.stop(t)
			if backend == "bbolt" {
				aside, _ := filepath.Glob(filepath.Join(e.state, "old-*", "broker.db"))
				if len(aside) != 1 {
					t.Fatalf("the old database was not kept aside: %v", aside)
				}
			}
			p = e.start(t) // and the new state starts without the flag
			p.stop(t)
		})
	}
}

// pageOffsets finds the pages of a bbolt file whose header flags are flag
// and whose bytes contain marker.
func pageOffsets(t *testing.T, path string, flag uint16, marker string) []int64 {
	t.Helper()
	info, err := store.InspectBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ps := int64(info.PageSize)
	var out []int64
	for off := int64(2 * ps); off+ps <= int64(len(b)) && off/ps < int64(info.Pages); off += ps {
		pg := b[off : off+ps]
		id := uint64(pg[0]) | uint64(pg[1])<<8 | uint64(pg[2])<<16 | uint64(pg[3])<<24
		flags := uint16(pg[8]) | uint16(pg[9])<<8
		if id == uint64(off/ps) && flags == flag && bytes.Contains(pg, []byte(marker)) {
			out = append(out, off)
		}
	}
	return out
}

// damageLeaves gives every leaf page holding workloads an invalid page
// type (freed copies too: which of them are live is bbolt's business).
func damageLeaves(t *testing.T, db string) {
	t.Helper()
	leaves := pageOffsets(t, db, 0x02, "fault-0")
	if len(leaves) == 0 {
		t.Fatal("no leaf page of the workloads found")
	}
	for _, off := range leaves {
		writeAt(t, db, off+8, []byte{0x20, 0x00})
	}
}

func writeAt(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
}

// TestFaultDamagedBolt: damaged bbolt files are refused at start with the
// file and `bbolt check` named; damage that appears while the broker runs
// becomes 500/503 answers and not-ready, never a hang or a crash, and
// SIGTERM still ends the process.
func TestFaultDamagedBolt(t *testing.T) {
	e := newFaultEnv(t, "")
	e.populate(t, 60)
	db := filepath.Join(e.state, "broker.db")
	saved, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	info, err := store.InspectBolt(db)
	if err != nil {
		t.Fatal(err)
	}
	savedSeq, err := os.ReadFile(db + ".seq")
	if err != nil {
		t.Fatal(err)
	}
	// Putting the file back is a restore: the sequence file goes with it.
	restore := func() { os.WriteFile(db, saved, 0o600); os.WriteFile(db+".seq", savedSeq, 0o600) }

	t.Run("truncated", func(t *testing.T) {
		defer restore()
		if err := os.Truncate(db, int64(info.Pages)*int64(info.PageSize)/2); err != nil {
			t.Fatal(err)
		}
		e.refuse(t, db+" is truncated", "bbolt check "+db)
	})
	t.Run("zeroed freelist", func(t *testing.T) {
		defer restore()
		writeAt(t, db, int64(info.Freelist)*int64(info.PageSize), make([]byte, info.PageSize))
		e.refuse(t, db, "is damaged", "bbolt check")
	})
	t.Run("damaged leaf", func(t *testing.T) {
		defer restore()
		damageLeaves(t, db)
		e.refuse(t, db, "consistency check", "bbolt check")
	})
	t.Run("damaged newest meta", func(t *testing.T) {
		defer restore()
		// The newest meta page is page txid%2; damage its checksum.
		cur, err := store.InspectBolt(db)
		if err != nil {
			t.Fatal(err)
		}
		off := int64(cur.TxID%2)*int64(cur.PageSize) + 16 + 56
		writeAt(t, db, off, []byte{0xde, 0xad, 0xbe, 0xef})
		e.refuse(t, "database rolled back", "writes up to transaction", "meta page")
	})
	t.Run("damaged while serving", func(t *testing.T) {
		defer restore()
		p := e.start(t)
		if code, _ := register(t, p.url, "served-1"); code != http.StatusOK {
			t.Fatalf("register: %d", code)
		}
		damageLeaves(t, db)
		code, _, body, took := get(t, p.url, "/admin/v1/workloads")
		if code != http.StatusInternalServerError && code != http.StatusServiceUnavailable {
			t.Fatalf("list on a damaged page: %d %s", code, body)
		}
		if took > 3*time.Second {
			t.Fatalf("list took %v", took)
		}
		code, _, _, _ = get(t, p.url, "/readyz")
		if code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz after damage: %d", code)
		}
		// Writes fail at once instead of waiting for bbolt's lock.
		start := time.Now()
		if code, _ := register(t, p.url, "served-2"); code < 500 || time.Since(start) > 3*time.Second {
			t.Fatalf("register on a damaged store: %d after %v", code, time.Since(start))
		}
		p.stop(t)
		if !strings.Contains(p.errb.String(), "bbolt panicked") {
			t.Fatalf("the damage is not logged:\n%s", p.errb.String())
		}
	})
	// After all that the original file serves again, as it was.
	p := e.start(t)
	if n := len(listIDs(t, p.url)); n != 60 {
		t.Fatalf("%d workloads, want 60", n)
	}
	p.stop(t)
}

// TestFaultBadRecord: a record that does not decode, and a policy altered
// in the database, are listed as damaged; the others list and serve.
func TestFaultBadRecord(t *testing.T) {
	e := newFaultEnv(t, "")
	e.populate(t, 3)
	db := filepath.Join(e.state, "broker.db")
	st, err := store.OpenBolt(db)
	if err != nil {
		t.Fatal(err)
	}
	// A loosened policy, written with database access only.
	err = st.UpdateWorkload(t.Context(), "fault-001", func(w *store.Workload) error {
		w.Policy = json.RawMessage(`{"measurements":["` + strings.Repeat("00", 48) + `"]}`)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// A record that is not JSON.
	if err := plantRawRecord(db, "workloads", "fault-002", []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	p := e.start(t)
	defer p.stop(t)
	have := listIDs(t, p.url)
	if w := have["fault-000"]; w.Damaged != "" || !w.HasPassphrase {
		t.Fatalf("intact workload: %+v", w)
	}
	if w := have["fault-001"]; !strings.Contains(w.Damaged, "authentication") {
		t.Fatalf("altered policy listed as %+v", w)
	}
	if w := have["fault-002"]; w.Damaged == "" {
		t.Fatalf("undecodable record listed as %+v", w)
	}
	if code, _, body, _ := get(t, p.url, "/admin/v1/workloads/fault-001"); code != http.StatusInternalServerError || !strings.Contains(body, "fails authentication") {
		t.Fatalf("show of the altered workload: %d %s", code, body)
	}
}

// TestFaultDiskFull: bbolt on a full file system (a small tmpfs): writes
// answer 503 with Retry-After, /readyz says not ready, reads go on, and
// once space is back the broker recovers without a restart and nothing
// acknowledged is lost.
func TestFaultDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mounting a tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	e := newFaultEnv(t, "")
	e.args = e.with("--state", filepath.Join(dir, "state")) // the last --state wins
	e.state = filepath.Join(dir, "state")
	p := e.start(t)
	var acked []string
	for i := range 5 {
		id := fmt.Sprintf("disk-%d", i)
		if code, _ := register(t, p.url, id); code == http.StatusOK {
			acked = append(acked, id)
		}
	}
	// Fill the file system.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	code, _, _, _ := get(t, p.url, "/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz on a full disk: %d", code)
	}
	var failed bool
	for i := range 300 {
		id := fmt.Sprintf("full-%03d", i)
		start := time.Now()
		code, h := register(t, p.url, id)
		switch code {
		case http.StatusOK:
			acked = append(acked, id)
			continue
		case http.StatusServiceUnavailable:
			honest503(t, "register on a full disk", code, h, time.Since(start), 3*time.Second)
			failed = true
		default:
			t.Fatalf("register on a full disk: %d", code)
		}
		break
	}
	if !failed {
		t.Fatal("300 registrations fit on a full disk")
	}
	if code, _, _, _ := get(t, p.url, "/admin/v1/workloads/disk-0"); code != http.StatusOK {
		t.Fatalf("read on a full disk: %d", code)
	}
	os.Remove(filler)
	if code, _ := register(t, p.url, "after-full"); code != http.StatusOK {
		t.Fatalf("register after space came back: %d", code)
	}
	acked = append(acked, "after-full")
	if code, _, _, _ := get(t, p.url, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after space came back: %d", code)
	}
	p.stop(t)
	p = e.start(t)
	have := listIDs(t, p.url)
	for _, id := range acked {
		if _, ok := have[id]; !ok {
			t.Errorf("acknowledged %s lost", id)
		}
	}
	p.stop(t)
}

// pgProxy stands between the broker and PostgreSQL: it can stall the
// traffic (a paused or hung server) and stop (a server that is down).
type pgProxy struct {
	target string
	addr   string
	mu     sync.Mutex
	cond   *sync.Cond
	paused bool
	ln     net.Listener
	conns  []net.Conn
}

func newPGProxy(t *testing.T, target string) *pgProxy {
	p := &pgProxy{target: target}
	p.cond = sync.NewCond(&p.mu)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	p.serve(ln)
	t.Cleanup(func() { p.resume(); p.stop() })
	return p
}

func (p *pgProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go p.pump(s, c)
			go p.pump(c, s)
		}
	}()
}

func (p *pgProxy) pump(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		p.mu.Lock()
		for p.paused {
			p.cond.Wait()
		}
		p.mu.Unlock()
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (p *pgProxy) pause() { p.mu.Lock(); p.paused = true; p.mu.Unlock() }
func (p *pgProxy) resume() {
	p.mu.Lock()
	p.paused = false
	p.cond.Broadcast()
	p.mu.Unlock()
}

// stop closes the listener and every connection: the server is down.
func (p *pgProxy) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// restart listens again on the same address.
func (p *pgProxy) restart(t *testing.T) {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy listen again: %v", err)
	}
	p.serve(ln)
}

// waitReady polls /readyz until 200.
func waitReady(t *testing.T, base string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if code, _, _, _ := get(t, base, "/readyz"); code == http.StatusOK {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("not ready within %v", within)
}

// TestFaultPostgresStalledAndStopped: a stalled PostgreSQL answers 503
// with Retry-After within seconds and /readyz says not ready; so does a
// stopped one; the broker recovers when it returns, and nothing
// acknowledged is lost.
func TestFaultPostgresStalledAndStopped(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newPGProxy(t, u.Host)
	u.Host = proxy.addr
	e := newFaultEnv(t, u.String())
	p := e.start(t)
	defer p.stop(t)
	var acked []string
	for i := range 3 {
		id := fmt.Sprintf("pg-%d", i)
		if code, _ := register(t, p.url, id); code != http.StatusOK {
			t.Fatalf("register: %d", code)
		}
		acked = append(acked, id)
	}

	// Store calls are bounded at 1 s (--store-timeout); an answer within
	// 4 s leaves room for a loaded machine.
	const limit = 4 * time.Second
	t.Run("stalled", func(t *testing.T) {
		proxy.pause()
		start := time.Now()
		code, h := register(t, p.url, "pg-stalled")
		honest503(t, "register while stalled", code, h, time.Since(start), limit)
		code, h, _, took := get(t, p.url, "/admin/v1/workloads")
		honest503(t, "list while stalled", code, h, took, limit)
		code, _, _, took = get(t, p.url, "/readyz")
		if code != http.StatusServiceUnavailable || took > limit {
			t.Fatalf("/readyz while stalled: %d after %v", code, took)
		}
		proxy.resume()
		waitReady(t, p.url, 15*time.Second)
		if code, _ := register(t, p.url, "pg-after-stall"); code != http.StatusOK {
			t.Fatalf("register after the stall: %d", code)
		}
		acked = append(acked, "pg-after-stall")
	})
	t.Run("stopped", func(t *testing.T) {
		proxy.stop()
		start := time.Now()
		code, h := register(t, p.url, "pg-stopped")
		honest503(t, "register while stopped", code, h, time.Since(start), limit)
		code, h, _, took := get(t, p.url, "/admin/v1/workloads/pg-0")
		honest503(t, "show while stopped", code, h, took, limit)
		if code, _, _, _ := get(t, p.url, "/readyz"); code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz while stopped: %d", code)
		}
		proxy.restart(t)
		waitReady(t, p.url, 15*time.Second)
		if code, _ := register(t, p.url, "pg-after-stop"); code != http.StatusOK {
			t.Fatalf("register after the restart: %d", code)
		}
		acked = append(acked, "pg-after-stop")
	})
	have := listIDs(t, p.url)
	for _, id := range acked {
		if _, ok := have[id]; !ok {
			t.Errorf("acknowledged %s lost", id)
		}
	}
}

// TestFaultSIGTERMBurst: SIGTERM in the middle of a burst of registrations
// ends the process within its grace period with status 0, and every
// acknowledged registration is there after a restart (bbolt, PostgreSQL).
func TestFaultSIGTERMBurst(t *testing.T) {
	for _, backend := range []string{"bbolt", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dsn := ""
			if backend == "postgres" {
				dsn = storetest.PostgresDSN(t)
			}
			e := newFaultEnv(t, dsn)
			p := e.start(t)
			var mu sync.Mutex
			var acked []string
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					m := measurement(78)
					for i := 0; ; i++ {
						id := fmt.Sprintf("burst-%d-%d", g, i)
						resp, err := faultClient.Post(p.url+"/kbs/v0/register_workload", "application/json",
							strings.NewReader(registrationBody(id, hex.EncodeToString(m[:]), randomHex(32))))
						if err != nil {
							return
						}
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							mu.Lock()
							acked = append(acked, id)
							mu.Unlock()
						}
					}
				}()
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				mu.Lock()
				n := len(acked)
				mu.Unlock()
				if n >= 30 || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			p.stop(t)
			wg.Wait()
			p = e.start(t)
			have := listIDs(t, p.url)
			for _, id := range acked {
				if _, ok := have[id]; !ok {
					t.Errorf("acknowledged %s lost", id)
				}
			}
			t.Logf("%d acknowledged before SIGTERM, all present", len(acked))
			p.stop(t)
		})
	}
}

// TestFaultKEKOutsideState: the KEK can live outside the state directory
// (a credential file); the state check holds for it too.
func TestFaultKEKOutsideState(t *testing.T) {
	kekFile := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(kekFile, []byte(strings.Repeat("3c", 32)+"\n"), 0o400); err != nil {
		t.Fatal(err)
	}
	e := newFaultEnv(t, "", "--kek-file", kekFile)
	e.populate(t, 2)
	if exists(filepath.Join(e.state, "kek")) {
		t.Fatal("a key was written into the state directory")
	}
	other := filepath.Join(t.TempDir(), "kek")
	os.WriteFile(other, []byte(strings.Repeat("4d", 32)+"\n"), 0o400)
	wrong := *e
	wrong.args = e.with("--kek-file", other)
	wrong.refuse(t, "is not the key of")
	// The database lost, the key still there: the marker says so.
	os.Remove(filepath.Join(e.state, "broker.db"))
	e.refuse(t, "is missing", markerName)
}

// TestFaultLegacyState: a state written by a broker from before the state
// record (a database with workloads, a KEK, no record, no marker, policies
// without MACs) is adopted when the KEK opens its passphrases, and refused
// when it does not.
func TestFaultLegacyState(t *testing.T) {
	for _, keyMatches := range []bool{true, false} {
		t.Run(fmt.Sprint("key matches ", keyMatches), func(t *testing.T) {
			e := newFaultEnv(t, "")
			k, _, err := kek.LoadOrCreate(filepath.Join(e.state, "kek"))
			if err != nil {
				t.Fatal(err)
			}
			st, err := store.OpenBolt(filepath.Join(e.state, "broker.db"))
			if err != nil {
				t.Fatal(err)
			}
			sealed, _ := k.Seal([]byte("old-passphrase"), passphraseAAD("legacy-1"))
			pol := json.RawMessage(`{"measurements":["` + strings.Repeat("ab", 48) + `"]}`)
			now := time.Now().UTC()
			if err := st.CreateWorkload(t.Context(), &store.Workload{ID: "legacy-1", TEE: "snp", Policy: pol,
				SealedPassphrase: sealed, Origin: "register", CreatedAt: now, UpdatedAt: now}); err != nil {
				t.Fatal(err)
			}
			st.Close()
			if !keyMatches {
				os.Remove(filepath.Join(e.state, "kek"))
				os.WriteFile(filepath.Join(e.state, "kek"), []byte(strings.Repeat("6e", 32)), 0o600)
				e.refuse(t, "opens none of the 1 sealed passphrases")
				return
			}
			p := e.start(t)
			w := listIDs(t, p.url)["legacy-1"]
			if w.Damaged != "" || !w.HasPassphrase {
				t.Fatalf("legacy workload after adoption: %+v", w)
			}
			p.stop(t)
			for _, want := range []string{"recorded the state checks of an existing store", "authenticated the policies"} {
				if !strings.Contains(p.errb.String(), want) {
					t.Fatalf("the log does not say %q:\n%s", want, p.errb.String())
				}
			}
			if !exists(filepath.Join(e.state, markerName)) {
				t.Fatal("no marker after adoption")
			}
		})
	}
}
