package harness

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/internal/syncbuf"
)

var (
	simOnce sync.Once
	simDir  string
	simErr  error
)

// SimDir returns a simulated secure processor created once per test binary.
func (e *Env) SimDir(t testing.TB) string {
	t.Helper()
	simOnce.Do(func() {
		simDir = filepath.Join(e.Dir, "sim")
		simErr = sim.Init(simDir)
	})
	if simErr != nil {
		t.Fatal(simErr)
	}
	return simDir
}

// Broker is an in-process `sealroot broker` on loopback.
type Broker struct {
	URL   string
	Addr  string
	State string
	Log   *syncbuf.Buffer
	// Token is the admin token (StartBroker makes one unless the args
	// name an --admin-token-file).
	Token string
	stop  context.CancelFunc
	done  chan error

	// AdminURL is where the admin API is: URL, or the --admin-listen
	// address when the args give one.
	AdminURL string
}

// StartBroker runs the broker with the flags args (as `sealroot broker`
// takes them) plus --state and --listen when absent; --listen defaults to
// a free loopback port.
func StartBroker(t testing.TB, state, listen string, args ...string) *Broker {
	t.Helper()
	var o broker.Options
	fs := pflag.NewFlagSet("broker", pflag.ContinueOnError)
	o.RegisterFlags(fs)
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	token := ""
	hasToken := false
	for _, a := range args {
		hasToken = hasToken || a == "--admin-token-file"
	}
	if !hasToken {
		token = hex.EncodeToString([]byte(fmt.Sprintf("admin-token-%d", time.Now().UnixNano())))
		tf := filepath.Join(t.TempDir(), "admin-token")
		if err := os.WriteFile(tf, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--admin-token-file", tf)
	}
	if err := fs.Parse(append([]string{"--state", state, "--listen", listen}, args...)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{State: state, Log: &syncbuf.Buffer{}, Token: token, stop: cancel, done: make(chan error, 1)}
	ready := make(chan net.Addr, 1)
	adminReady := make(chan net.Addr, 1)
	if o.AdminListen != "" {
		o.AdminReady = func(a net.Addr) { adminReady <- a }
	}
	o.Logger = broker.JSONLogger(b.Log)
	go func() { b.done <- broker.Run(ctx, o, func(a net.Addr) { ready <- a }) }()
	select {
	case a := <-ready:
		b.Addr = a.String()
		b.URL = "http://" + b.Addr
		b.AdminURL = b.URL
		if o.AdminListen != "" {
			b.AdminURL = "http://" + (<-adminReady).String()
		}
	case err := <-b.done:
		cancel()
		t.Fatalf("broker did not start: %v\n%s", err, b.Log.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("broker did not start in 30s")
	}
	t.Cleanup(b.Stop)
	return b
}

// Stop shuts the broker down and waits for it.
func (b *Broker) Stop() {
	if b.stop == nil {
		return
	}
	b.stop()
	b.stop = nil
	<-b.done
}

// Register registers a workload through the admin API with its TEE, launch
// measurement and, when hostData is not nil, the HOST_DATA its launches
// carry (config.HostData of its disk config).
func (b *Broker) Register(t testing.TB, id, tee string, measurement [48]byte, hostData []byte, passphrase []byte) {
	t.Helper()
	c, err := broker.NewAdminClient(b.AdminURL, b.Token, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := string(passphrase)
	pol := broker.WorkloadPolicy{Measurements: []string{hex.EncodeToString(measurement[:])}}
	if hostData != nil {
		pol.HostData = hex.EncodeToString(hostData)
	}
	if _, err := c.Register(context.Background(), broker.AdminRegistration{WorkloadID: id, TEE: tee, Policy: pol, Passphrase: &p}); err != nil {
		t.Fatalf("registering %s: %v", id, err)
	}
}

// AssertNoSecret fails t when secret appears in any of the texts.
func AssertNoSecret(t testing.TB, secret []byte, texts map[string]string) {
	t.Helper()
	for name, s := range texts {
		if len(secret) > 0 && bytes.Contains([]byte(s), secret) {
			t.Errorf("the passphrase appears in the %s", name)
		}
	}
}

// WriteFile writes b to a new file in t's temp dir.
func WriteFile(t testing.TB, name string, b []byte, perm os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, perm); err != nil {
		t.Fatal(err)
	}
	return p
}
