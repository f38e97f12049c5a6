package broker

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/sealroot/sealroot/host/broker/store/storetest"
)

// childEnv makes the test binary run a broker (with the flags in
// childArgsEnv, space separated) instead of the tests: the crash and
// replica tests start real broker processes this way.
const (
	childEnv     = "SEALROOT_BROKER_TEST_CHILD"
	childArgsEnv = "SEALROOT_BROKER_TEST_ARGS"
)

// childMain is the broker process: it parses the flags exactly as
// `sealroot broker` does, prints "LISTENING <addr>" on stdout when ready,
// and serves until SIGTERM.
func childMain() int {
	var o Options
	fs := pflag.NewFlagSet("broker", pflag.ContinueOnError)
	o.RegisterFlags(fs)
	if err := fs.Parse(strings.Fields(os.Getenv(childArgsEnv))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if o.Config != "" {
		if err := ApplyConfigFile(fs, o.Config); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	o.Logger = JSONLogger(os.Stderr)
	err := Run(ctx, o, func(a net.Addr) { fmt.Printf("LISTENING %s\n", a) })
	if err != nil {
		fmt.Fprintln(os.Stderr, "broker:", err)
		return 1
	}
	return 0
}

// brokerProc is a broker running as a child process.
type brokerProc struct {
	cmd  *exec.Cmd
	url  string
	errb *syncBuffer
}

// startBrokerProc starts the test binary as a broker with args and waits
// for it to listen.
func startBrokerProc(t *testing.T, args ...string) *brokerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childArgsEnv+"="+strings.Join(args, " "))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &brokerProc{cmd: cmd, errb: &syncBuffer{}}
	cmd.Stderr = p.errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if addr, ok := strings.CutPrefix(sc.Text(), "LISTENING "); ok {
				lines <- addr
			}
		}
		close(lines)
	}()
	select {
	case addr, ok := <-lines:
		if !ok {
			cmd.Wait()
			t.Fatalf("broker exited before listening:\n%s", p.errb.String())
		}
		p.url = "http://" + addr
	case <-time.After(30 * time.Second):
		t.Fatalf("broker did not start:\n%s", p.errb.String())
	}
	return p
}

func (p *brokerProc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.cmd.Wait()
}

// TestCrashSafety SIGKILLs a broker in the middle of a burst of
// registrations, restarts it on the same state, and checks that every
// registration it acknowledged is there (bbolt, then PostgreSQL).
func TestCrashSafety(t *testing.T) {
	for _, backend := range []string{"bbolt", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			state := t.TempDir()
			tokenFile := filepath.Join(state, "admin-token")
			os.WriteFile(tokenFile, []byte(testAdminToken+"\n"), 0o600)
			args := []string{"--listen", "127.0.0.1:0", "--state", state, "--admin-token-file", tokenFile, "--offline"}
			if backend == "postgres" {
				args = append(args, "--store", storetest.PostgresDSN(t))
			}
			p := startBrokerProc(t, args...)

			var mu sync.Mutex
			var acked []string
			stop := make(chan struct{})
			var wg sync.WaitGroup
			client := &http.Client{Timeout: 10 * time.Second}
			m := measurement(30)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						id := fmt.Sprintf("crash-%d-%d", g, i)
						body := registrationBody(id, hex.EncodeToString(m[:]), randomHex(32))
						resp, err := client.Post(p.url+"/kbs/v0/register_workload", "application/json", strings.NewReader(body))
						if err != nil {
							return // the broker died
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
			// Kill it while registrations are in flight.
			deadline := time.Now().Add(20 * time.Second)
			for {
				mu.Lock()
				n := len(acked)
				mu.Unlock()
				if n >= 40 || time.Now().After(deadline) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
			p.kill(t)
			close(stop)
			wg.Wait()
			if len(acked) < 40 {
				t.Fatalf("only %d registrations acknowledged before the kill", len(acked))
			}

			p2 := startBrokerProc(t, args...)
			defer p2.cmd.Process.Signal(syscall.SIGTERM)
			req, _ := http.NewRequest(http.MethodGet, p2.url+"/admin/v1/workloads", nil)
			req.Header.Set("Authorization", "Bearer "+testAdminToken)
			code, body := do(t, client, req)
			if code != http.StatusOK {
				t.Fatalf("list after restart: %d %s", code, body)
			}
			var list []AdminWorkload
			if err := json.Unmarshal([]byte(body), &list); err != nil {
				t.Fatal(err)
			}
			have := map[string]bool{}
			for _, w := range list {
				have[w.WorkloadID] = w.HasPassphrase
			}
			for _, id := range acked {
				if !have[id] {
					t.Errorf("acknowledged registration %s lost in the crash", id)
				}
			}
			t.Logf("%d acknowledged, %d stored after SIGKILL and restart", len(acked), len(list))

			// A graceful stop exits 0.
			p2.cmd.Process.Signal(syscall.SIGTERM)
			if err := p2.cmd.Wait(); err != nil {
				t.Fatalf("SIGTERM exit: %v\n%s", err, p2.errb.String())
			}
			if !strings.Contains(p2.errb.String(), `"msg":"stopped"`) {
				t.Fatalf("no graceful stop in the log:\n%s", p2.errb.String())
			}
		})
	}
}
