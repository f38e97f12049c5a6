package tests

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/host/image"
	"github.com/sealroot/sealroot/host/launch"
	"github.com/sealroot/sealroot/host/measure"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/tests/harness"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

// guestBroker is the broker's address inside QEMU's user network.
const guestBroker = "10.0.2.100:8000"

type attestedCase struct {
	luks1       bool
	dialect     string
	kbsKey      string // Trustee guest key type
	timeout     string // the config's attest_timeout
	passphrase  []byte // registered; nil = the disk's
	measurement *[48]byte
	policy      uint64 // simulated report policy (0 = default, no debug)
	hostData    []byte // registered host_data; nil = the image's config.HostData
	launchData  []byte // HOST_DATA the launcher binds; nil = the image's
}

// hostDataOf is the HOST_DATA a launch of img carries: the SHA-256 of its
// footer config.
func hostDataOf(img *image.Result) []byte {
	h := diskconfig.HostData(img.ConfigJSON)
	return h[:]
}

// register registers img's workload for the simulated TEE with its
// measurement and host_data.
func register(t testing.TB, br *harness.Broker, id string, img *image.Result, m [48]byte, pass []byte) {
	br.Register(t, id, "sim", m, hostDataOf(img), pass)
}

type attestedRun struct {
	boot       *harness.Boot
	broker     *harness.Broker
	passphrase []byte
}

// encryptedImage builds the hello image encrypted for the simulated TEE.
func encryptedImage(t testing.TB, e *harness.Env, id string, c attestedCase) (*image.Result, []byte) {
	t.Helper()
	pass, err := cryptsetup.GeneratePassphrase()
	if err != nil {
		t.Fatal(err)
	}
	format := cryptsetup.FormatLUKS2
	if c.luks1 {
		format = cryptsetup.FormatLUKS1
	}
	fo := cryptsetup.FormatOptions{GeneratedPassphrase: true, GuestRAMMiB: 512, GuestCPUs: 1}
	img, err := image.Build(image.Options{
		RootfsDir: e.HelloRootfs(t), OutDir: t.TempDir(), Passphrase: pass,
		Encrypt: func(dst *os.File, src io.Reader, size int64, p []byte) (int64, error) {
			return format(dst, src, size, p, fo)
		},
		Config: diskconfig.Config{TEE: "sim", WorkloadID: id, CPUs: 1, RAMMiB: 512,
			AttestationURL: "http://" + guestBroker, KBSProtocol: c.dialect, KBSKey: c.kbsKey, AttestTimeout: c.timeout},
		Workload: image.Workload{Cmd: []string{"/hello", "5"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return img, pass
}

func simLaunch(t testing.TB, e *harness.Env, img *image.Result, brokerAddr string, policy uint64) launch.Options {
	t.Helper()
	auth, err := sim.Load(e.SimDir(t))
	if err != nil {
		t.Fatal(err)
	}
	o := launch.Options{Disk: img.Disk, CPUs: 1, MemoryMiB: 512, Machine: e.Machine}
	m := launchMeasurement(t, e, o)
	var hd [32]byte
	copy(hd[:], hostDataOf(img))
	o.Sim = &sim.Server{Authority: auth, Measurement: m, Policy: policy, HostData: hd}
	o.Forward = &launch.Forward{GuestAddr: guestBroker, BrokerAddr: brokerAddr, RelayCommand: []string{e.Sealroot(t), "relay"}}
	return o
}

func launchMeasurement(t testing.TB, e *harness.Env, o launch.Options) [48]byte {
	t.Helper()
	m, err := measure.Sim(measure.SimInputs{Kernel: e.Kernel, Initrd: e.Initrd, Cmdline: launch.MachineCmdline(o.Machine, o.Append),
		CPUs: o.CPUs, MemoryMiB: o.MemoryMiB, Machine: o.Machine})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// runAttested builds, registers and boots one case against a fresh broker.
func runAttested(t *testing.T, c attestedCase) *attestedRun {
	return runAttestedOn(t, harness.Setup(t), c)
}

// runAttestedOn is runAttested in the environment e.
func runAttestedOn(t *testing.T, e *harness.Env, c attestedCase) *attestedRun {
	id := "e2e-" + strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	img, pass := encryptedImage(t, e, id, c)
	b := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t))
	o := simLaunch(t, e, img, b.Addr, c.policy)
	m := launchMeasurement(t, e, o)
	if c.measurement != nil {
		m = *c.measurement
	}
	reg := pass
	if c.passphrase != nil {
		reg = c.passphrase
	}
	hd := hostDataOf(img)
	if c.hostData != nil {
		hd = c.hostData
	}
	if c.launchData != nil {
		o.Sim.(*sim.Server).HostData = [32]byte(c.launchData)
	}
	b.Register(t, id, "sim", m, hd, reg)
	boot := e.Boot(t, o)
	b.Stop()
	harness.AssertNoSecret(t, pass, map[string]string{"console": boot.Console, "broker log": b.Log.String()})
	harness.AssertNoSecret(t, reg, map[string]string{"console": boot.Console, "broker log": b.Log.String()})
	return &attestedRun{boot: boot, broker: b, passphrase: pass}
}

// attestedBenchBoot is one successful attested boot in dialect, for the
// benchmark.
func attestedBenchBoot(b *testing.B, e *harness.Env, dialect string) *harness.Boot {
	id := "bench-" + dialect
	img, pass := encryptedImage(b, e, id, attestedCase{dialect: dialect})
	br := harness.StartBroker(b, b.TempDir(), "", "--trust-sim-root", e.SimDir(b))
	o := simLaunch(b, e, img, br.Addr, 0)
	register(b, br, id, img, launchMeasurement(b, e, o), pass)
	boot := e.Boot(b, o)
	br.Stop()
	if boot.Status != 5 {
		b.Fatalf("attested boot: status %d (%s)", boot.Status, boot.Reason)
	}
	return boot
}

// TestAttestedBoot is the product working: sim-attested boots of encrypted
// images through both broker dialects.
func TestAttestedBoot(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    attestedCase
	}{
		{"krun LUKS2", attestedCase{dialect: "krun"}},
		{"krun LUKS1 like buildah", attestedCase{dialect: "krun", luks1: true}},
		{"trustee LUKS2 EC key", attestedCase{dialect: "trustee"}},
		{"trustee LUKS1 RSA key", attestedCase{dialect: "trustee", kbsKey: "rsa", luks1: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runAttested(t, tc.c)
			if r.boot.Status != 5 {
				t.Fatalf("status %d (%s), want the workload's 5", r.boot.Status, r.boot.Reason)
			}
			if !strings.Contains(r.boot.Console, "hello from the workload") {
				t.Fatal("workload output missing")
			}
			for _, p := range []string{"network", "attest", "unlock"} {
				if _, ok := r.boot.Phase(p); !ok {
					t.Errorf("no %s phase event", p)
				}
			}
			if ev, _ := r.boot.Phase("unlock"); !strings.HasPrefix(ev.Detail["device"], "/dev/") {
				t.Errorf("unlock detail %v", ev.Detail)
			}
			// The broker connection opened while the payload phase ran
			// carried the exchange's first request (guest/init/earlynet.go).
			if ev, _ := r.boot.Phase("network"); ev.Detail["broker_conn"] != "open" {
				t.Errorf("network detail %v, want broker_conn open", ev.Detail)
			}
			if ev, _ := r.boot.Phase("attest"); ev.Detail["broker_conn"] != "pre-dialed" {
				t.Errorf("attest detail %v, want broker_conn pre-dialed", ev.Detail)
			}
		})
	}
}

// TestAttestedRefusals: the broker refuses, the guest names the step and
// reason, powers off, and the host sees the documented status. Neither
// the console nor the broker log ever holds the passphrase.
func TestAttestedRefusals(t *testing.T) {
	wrong := [48]byte{1, 2, 3}
	debugPolicy := uint64(1<<17 | 1<<16 | 1<<19)
	for _, tc := range []struct {
		name   string
		c      attestedCase
		status int
		phase  string
		msg    string
		audit  string
	}{
		{"wrong measurement", attestedCase{measurement: &wrong, timeout: "20s"}, event.StatusBrokerRefused, "attest", "attest", "measurement"},
		{"debug report", attestedCase{policy: debugPolicy, timeout: "20s"}, event.StatusBrokerRefused, "attest", "attest", "debug"},
		{"migration agent allowed", attestedCase{policy: 1<<16 | 1<<17 | 1<<18, timeout: "20s"}, event.StatusBrokerRefused, "attest", "attest", "migration_agent"},
		{"registered host_data of another config", attestedCase{hostData: bytes.Repeat([]byte{9}, 32), timeout: "20s"}, event.StatusBrokerRefused, "attest", "attest", "host_data"},
		{"HOST_DATA of another config at launch", attestedCase{launchData: bytes.Repeat([]byte{9}, 32), timeout: "20s"}, event.StatusAttestFailed, "attest", "launched for another config", ""},
		{"wrong passphrase registered", attestedCase{passphrase: []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")}, event.StatusUnlockFailed, "unlock", "passphrase", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runAttested(t, tc.c)
			if r.boot.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", r.boot.Status, r.boot.Reason, tc.status)
			}
			ev, ok := r.boot.Error()
			if !ok || ev.Phase != tc.phase || !strings.Contains(ev.Message, tc.msg) {
				t.Fatalf("error event %+v, want phase %s with %q", ev, tc.phase, tc.msg)
			}
			if tc.audit != "" && !strings.Contains(r.broker.Log.String(), tc.audit) {
				t.Errorf("broker log does not name the failed check %q", tc.audit)
			}
		})
	}
}

// TestBrokerAvailability: a broker that is down makes the agent retry until
// its deadline; one that comes up inside the window lets the boot succeed.
func TestBrokerAvailability(t *testing.T) {
	e := harness.Setup(t)
	freePort := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	t.Run("down past the deadline", func(t *testing.T) {
		img, _ := encryptedImage(t, e, "e2e-down", attestedCase{timeout: "6s"})
		o := simLaunch(t, e, img, freePort(), 0)
		b := e.Boot(t, o)
		if b.Status != event.StatusBrokerRefused {
			t.Fatalf("status %d, want %d", b.Status, event.StatusBrokerRefused)
		}
		if ev, _ := b.Error(); ev.Phase != "attest" || !strings.Contains(ev.Message, "auth") || !strings.Contains(ev.Message, "gave up") {
			t.Fatalf("error event %+v", ev)
		}
		if n := strings.Count(b.Console, "; retry "); n < 2 {
			t.Fatalf("the agent retried %d times before its deadline, want several", n)
		}
	})
	t.Run("started during the retry window", func(t *testing.T) {
		img, pass := encryptedImage(t, e, "e2e-late", attestedCase{timeout: "90s"})
		addr := freePort()
		o := simLaunch(t, e, img, addr, 0)
		state := t.TempDir()
		started := make(chan *harness.Broker, 1)
		o.OnEvent = func(ev event.Event) {
			if ev.Kind == event.KindPhase && ev.Phase == "network" {
				go func() {
					time.Sleep(2 * time.Second)
					br := harness.StartBroker(t, state, addr, "--trust-sim-root", e.SimDir(t))
					register(t, br, "e2e-late", img, launchMeasurement(t, e, o), pass)
					started <- br
				}()
			}
		}
		b := e.Boot(t, o)
		br := <-started
		br.Stop()
		if b.Status != 5 {
			t.Fatalf("status %d (%s), want 5", b.Status, b.Reason)
		}
		harness.AssertNoSecret(t, pass, map[string]string{"console": b.Console, "broker log": br.Log.String()})
	})
}

// TestBrokerSessionLost restarts the broker (with a store that does not
// keep sessions) between the guest's auth and attest: the agent sees its
// session gone, runs the handshake again, and the boot succeeds.
func TestBrokerSessionLost(t *testing.T) {
	e := harness.Setup(t)
	img, pass := encryptedImage(t, e, "e2e-restart", attestedCase{timeout: "90s"})
	first := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t))
	proxy := harness.StartProxy(t, first.Addr)
	o := simLaunch(t, e, img, proxy.Addr, 0)
	m := launchMeasurement(t, e, o)
	register(t, first, "e2e-restart", img, m, pass)
	var second *harness.Broker
	var once sync.Once
	proxy.Before = func(r *http.Request) {
		if r.URL.Path != "/kbs/v0/attest" {
			return
		}
		once.Do(func() {
			first.Stop()
			second = harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t))
			register(t, second, "e2e-restart", img, m, pass)
			proxy.SetTarget(second.Addr)
		})
	}
	b := e.Boot(t, o)
	if b.Status != 5 {
		t.Fatalf("status %d (%s), want 5", b.Status, b.Reason)
	}
	if n := proxy.Count("/kbs/v0/auth", 200); n != 2 {
		t.Fatalf("%d successful auth requests, want 2 (the handshake again after the restart)", n)
	}
	if n := proxy.Count("/kbs/v0/attest", 401); n != 1 {
		t.Fatalf("%d attest requests refused, want 1 (the lost session)", n)
	}
	harness.AssertNoSecret(t, pass, map[string]string{"console": b.Console, "broker log": first.Log.String() + second.Log.String()})
}

// TestBrokerRefusesReplayAndCrossWorkload replays the guest's own requests
// after a successful attested boot: the spent nonce is refused, and the
// attested session cannot read another workload's key.
func TestBrokerRefusesReplayAndCrossWorkload(t *testing.T) {
	e := harness.Setup(t)
	img, pass := encryptedImage(t, e, "e2e-replay", attestedCase{})
	br := harness.StartBroker(t, t.TempDir(), "", "--trust-sim-root", e.SimDir(t))
	proxy := harness.StartProxy(t, br.Addr)
	o := simLaunch(t, e, img, proxy.Addr, 0)
	m := launchMeasurement(t, e, o)
	register(t, br, "e2e-replay", img, m, pass)
	// Another workload with the same measurement (same kernel, initrd,
	// vCPUs, memory), told apart by its own host_data.
	other := []byte("other-workload-passphrase-0123456789")
	br.Register(t, "e2e-other", "sim", m, bytes.Repeat([]byte{7}, 32), other)
	b := e.Boot(t, o)
	if b.Status != 5 {
		t.Fatalf("status %d (%s), want 5", b.Status, b.Reason)
	}
	var attest harness.Exchange
	for _, x := range proxy.Exchanges() {
		if x.Path == "/kbs/v0/attest" && x.Status == 200 {
			attest = x
		}
	}
	if attest.Cookie == "" {
		t.Fatal("no successful attest went through the proxy")
	}
	send := func(method, path string, body []byte) (int, string) {
		req, _ := http.NewRequest(method, br.URL+path, bytes.NewReader(body))
		req.Header.Set("Cookie", attest.Cookie)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(rb)
	}
	if st, _ := send("POST", "/kbs/v0/attest", attest.Body); st == 200 {
		t.Error("a replayed attest (spent nonce) was accepted")
	}
	if st, body := send("GET", "/kbs/v0/key/e2e-other", nil); st != 401 || strings.Contains(body, string(other)) {
		t.Errorf("another workload's key: HTTP %d, want 401", st)
	}
	br.Stop()
	log := br.Log.String()
	for _, check := range []string{`"check":"nonce_reused"`, `"check":"workload_mismatch"`} {
		if !strings.Contains(log, check) {
			t.Errorf("the audit log has no refusal with %s", check)
		}
	}
	harness.AssertNoSecret(t, other, map[string]string{"broker log": log, "console": b.Console})
}
