package main

// Unit tests of the config, payload and attest phases through the init's
// seams (seams.go): disks are temp files written by the real footer and
// LUKS writers, the TEE is the real simulated secure processor, the broker
// the real one over loopback HTTP. No QEMU.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/cryptsetup"
	"github.com/sealroot/sealroot/guest/internal/hostchan"
	"github.com/sealroot/sealroot/host/broker"
	"github.com/sealroot/sealroot/host/broker/kek"
	"github.com/sealroot/sealroot/host/broker/store"
	"github.com/sealroot/sealroot/host/verify"
	"github.com/sealroot/sealroot/host/verify/sim"
	"github.com/sealroot/sealroot/wire/diskconfig"
	"github.com/sealroot/sealroot/wire/event"
)

// testBoot is a boot whose root disk is root, on machine m, reporting into
// console.
func testBoot(root string, m machine, console *bytes.Buffer) *boot {
	// A unit test never touches the host's network: a test that wants the
	// bring-up or the broker connection supplies its own.
	if m.netUp == nil {
		m.netUp = func(context.Context) error { return errors.New("test: no network bring-up") }
	}
	if m.netDial == nil {
		m.netDial = func(context.Context, string) (net.Conn, error) { return nil, errors.New("test: no broker dial") }
	}
	b := &boot{report: hostchan.New(console, time.Now()), opts: parseCmdline(""), machine: m}
	b.opts.root = root
	return b
}

// writeDisk writes payload to a temp file and, when cfg is not nil, the
// KRUN footer after it with the real footer writer; it returns the path.
func writeDisk(t *testing.T, payload, cfg []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(payload, 0); err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		if _, err := diskconfig.AppendFooter(f, int64(len(payload)), cfg); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// configJSON is a valid disk config for tee with the given extra keys.
func configJSON(t *testing.T, tee string, extra map[string]any) []byte {
	t.Helper()
	m := map[string]any{"tee": tee, "tee_data": "", "workload_id": "wl-seams", "cpus": 1, "ram_mib": 512, "attestation_url": ""}
	if attest.NeedsBroker(tee) {
		m["attestation_url"] = "http://10.0.2.100:8080"
	}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func statusOf(err error) int {
	var f *failure
	if errors.As(err, &f) {
		return f.status
	}
	return -1
}

func TestReadConfigPhase(t *testing.T) {
	plain := bytes.Repeat([]byte{0xa5}, 8192)
	simCfg := configJSON(t, attest.TEESim, nil)
	noneCfg := configJSON(t, attest.TEENone, nil)
	snpCfg := configJSON(t, attest.TEESNP, nil)
	noKey := []byte(`{"tee":"none","tee_data":"","workload_id":"w","cpus":1,"attestation_url":""}`)
	padded := append(bytes.Clone(noneCfg), make([]byte, 64<<10)...)
	const inSNP = attest.DevSEVGuest

	for _, tc := range []struct {
		name       string
		root, data []byte // nil data: no data disk
		rootCfg    []byte // the root's footer config, nil for none
		dataFooter bool   // data holds a footer config instead of raw bytes
		probe      string
		wantRaw    []byte
		wantErr    string
		wantStatus int
	}{
		{name: "root footer", root: plain, rootCfg: simCfg, wantRaw: simCfg},
		{name: "root footer wins over the data disk", root: plain, rootCfg: simCfg, data: noneCfg, dataFooter: true, wantRaw: simCfg},
		{name: "data disk footer", root: plain, data: noneCfg, dataFooter: true, wantRaw: noneCfg},
		{name: "data disk raw JSON", root: plain, data: padded, wantRaw: noneCfg},
		{name: "data disk holds neither", root: plain, data: plain, wantErr: "holds neither a KRUN footer nor config JSON"},
		{name: "no footer and no data disk", root: plain, wantErr: "no KRUN footer"},
		{name: "missing key", root: plain, rootCfg: noKey, wantErr: `: config key "ram_mib" is missing`},
		{name: "unattested in a TEE", root: plain, rootCfg: noneCfg, probe: inSNP, wantErr: "refusing to boot an unattested root", wantStatus: event.StatusAttestFailed},
		{name: "simulated in a TEE", root: plain, rootCfg: simCfg, probe: inSNP, wantErr: `the disk config's tee is "sim"`, wantStatus: event.StatusAttestFailed},
		{name: "snp in a TEE", root: plain, rootCfg: snpCfg, probe: inSNP, wantRaw: snpCfg},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := writeDisk(t, tc.root, tc.rootCfg)
			data := filepath.Join(t.TempDir(), "absent")
			if tc.data != nil {
				if tc.dataFooter {
					data = writeDisk(t, plain, tc.data)
				} else {
					data = writeDisk(t, tc.data, nil)
				}
			}
			var console bytes.Buffer
			b := testBoot(root, machine{dataDisk: data, probeTEE: func() string { return tc.probe }}, &console)
			err := b.readConfig(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if tc.wantStatus != 0 && statusOf(err) != tc.wantStatus {
					t.Fatalf("status %d, want %d", statusOf(err), tc.wantStatus)
				}
				if b.cfg != nil {
					t.Fatal("a refused config was kept")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.rawConfig, tc.wantRaw) {
				t.Fatalf("raw config %q, want %q", b.rawConfig, tc.wantRaw)
			}
			var want struct {
				TEE string `json:"tee"`
			}
			json.Unmarshal(tc.wantRaw, &want)
			if b.cfg.TEE != want.TEE || b.detail["tee"] != want.TEE || b.detail["workload_id"] != b.cfg.WorkloadID {
				t.Fatalf("config %v, detail %v", b.cfg, b.detail)
			}
		})
	}
}

// luksDisk formats a small LUKS2 volume with the real writer (a fast
// PBKDF2 keyslot: the payload phase only reads the header) and returns its
// path and header.
func luksDisk(t *testing.T) (string, *cryptsetup.Header) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "luks.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	plain := make([]byte, 64<<10)
	o := cryptsetup.FormatOptions{GeneratedPassphrase: true, KDF: cryptsetup.KDFOptions{Type: "pbkdf2", Iterations: 1000}}
	if _, err := cryptsetup.FormatLUKS2(f, bytes.NewReader(plain), int64(len(plain)), []byte("seams-pass"), o); err != nil {
		t.Fatal(err)
	}
	v, err := cryptsetup.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	return path, v.Header()
}

func TestPayloadPhase(t *testing.T) {
	luks, _ := luksDisk(t)
	plain := writeDisk(t, bytes.Repeat([]byte{0x5a}, 64<<10), nil)
	no, yes := false, true
	other := &diskconfig.VolumeID{}
	for _, tc := range []struct {
		name       string
		root       string
		tee        string
		encrypted  *bool
		rootVolume *diskconfig.VolumeID
		wantEnc    bool
		wantErr    string
		wantStatus int
	}{
		{name: "plain, tee none", root: plain, tee: attest.TEENone},
		{name: "plain, said plain", root: plain, tee: attest.TEENone, encrypted: &no},
		{name: "plain, tee sim", root: plain, tee: attest.TEESim, wantErr: "not encrypted: refusing", wantStatus: event.StatusUnlockFailed},
		{name: "plain, said encrypted", root: plain, tee: attest.TEENone, encrypted: &yes, wantErr: "config says encrypted=true but"},
		{name: "plain, volume bound", root: plain, tee: attest.TEENone, rootVolume: other, wantErr: "is not LUKS but the disk config binds", wantStatus: event.StatusVolumeMismatch},
		{name: "LUKS, tee sim", root: luks, tee: attest.TEESim, wantEnc: true},
		{name: "LUKS, tee snp", root: luks, tee: attest.TEESNP, encrypted: &yes, wantEnc: true},
		{name: "LUKS, tee none", root: luks, tee: attest.TEENone, wantErr: `is LUKS-encrypted but tee is "none"`},
		{name: "LUKS, tee sev", root: luks, tee: attest.TEESEV, wantErr: `is LUKS-encrypted but tee is "sev"`},
		{name: "LUKS, said plain", root: luks, tee: attest.TEESim, encrypted: &no, wantErr: "config says encrypted=false but"},
		{name: "LUKS, another volume bound", root: luks, tee: attest.TEESim, rootVolume: other, wantStatus: event.StatusVolumeMismatch, wantErr: luks},
		{name: "absent root", root: filepath.Join(t.TempDir(), "vda"), tee: attest.TEENone, wantErr: "vda"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var console bytes.Buffer
			b := testBoot(tc.root, machine{}, &console)
			b.cfg = &diskconfig.Config{TEE: tc.tee, Encrypted: tc.encrypted, RootVolume: tc.rootVolume}
			err := b.payload(context.Background())
			defer b.closeHost()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if tc.wantStatus != 0 && statusOf(err) != tc.wantStatus {
					t.Fatalf("status %d, want %d", statusOf(err), tc.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.encrypted != tc.wantEnc || (b.volume != nil) != tc.wantEnc || b.detail["encrypted"] != map[bool]string{true: "true", false: "false"}[tc.wantEnc] {
				t.Fatalf("encrypted %v, volume %v, detail %v; want encrypted %v", b.encrypted, b.volume, b.detail, tc.wantEnc)
			}
			if !tc.wantEnc && b.rootFS != tc.root {
				t.Fatalf("root filesystem %q, want the disk itself", b.rootFS)
			}
			if tc.wantEnc && b.detail["luks"] != "2" {
				t.Fatalf("detail %v, want luks 2", b.detail)
			}
		})
	}
}

// simRoot is one simulated secure processor for the attest tests (making
// one generates RSA keys, which takes seconds).
var simRoot = sync.OnceValues(func() (*sim.Authority, error) {
	dir, err := os.MkdirTemp("", "init-seams-sim")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := sim.Init(dir); err != nil {
		return nil, err
	}
	return sim.Load(dir)
})

const (
	seamsAdminToken = "init-seams-admin-token-0123456789"
	seamsPassphrase = "init-seams-passphrase"
)

// seamsBroker serves a real broker trusting the simulated root (its
// verifiers from host/verify) with workload "wl-seams" registered for
// measurement m; it returns the broker's URL.
func seamsBroker(t *testing.T, a *sim.Authority, m [48]byte) string {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "broker.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key := make([]byte, kek.Size)
	rand.Read(key)
	k, err := kek.New(key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := verify.Broker(verify.Options{SimRoot: a, Offline: true})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := broker.New(broker.Config{Store: st, KEK: k, Verifiers: vs, TrustSimulated: true,
		AdminToken: seamsAdminToken, TokenKey: tok, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	pass := seamsPassphrase
	body, _ := json.Marshal(broker.AdminRegistration{WorkloadID: "wl-seams", TEE: attest.TEESim, Passphrase: &pass,
		Policy: broker.WorkloadPolicy{Measurements: []string{hex.EncodeToString(m[:])}}})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/admin/v1/workloads", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+seamsAdminToken)
	srv.ServeHTTP(rec, req)
	if rec.Code/100 != 2 {
		t.Fatalf("register: HTTP %d: %s", rec.Code, rec.Body)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs.URL
}

// simFactory is an attester factory serving the simulated TEE launched
// with measurement m and HOST_DATA hostData over a pipe.
func simFactory(t *testing.T, a *sim.Authority, m [48]byte, hostData [32]byte) func(*boot, context.Context) (attest.Attester, error) {
	return func(b *boot, ctx context.Context) (attest.Attester, error) {
		guest, host := net.Pipe()
		sctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			(&sim.Server{Authority: a, Measurement: m, HostData: hostData}).Serve(sctx, host)
		}()
		t.Cleanup(func() { cancel(); guest.Close(); host.Close(); <-done })
		return sim.NewAttester(guest), nil
	}
}

func TestAttestPhase(t *testing.T) {
	a, err := simRoot()
	if err != nil {
		t.Fatal(err)
	}
	m := [48]byte{0x5e, 0xa1}
	url := seamsBroker(t, a, m)
	unreachable := "http://" + func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}()

	for _, tc := range []struct {
		name       string
		dialect    string
		url        string
		workload   string
		encrypted  bool
		factory    string // "sim", "sim-unbound", "sim-other", "fails"
		cmdline    string
		wantLog    string
		wantErr    string
		wantStatus int
	}{
		{name: "plain root attests nothing", factory: "fails"},
		{name: "krun, config bound", encrypted: true, dialect: "krun", factory: "sim"},
		{name: "trustee, config bound", encrypted: true, dialect: "trustee", factory: "sim"},
		{name: "config unattested", encrypted: true, factory: "sim-unbound", wantLog: "config unattested: the launcher set no HOST_DATA"},
		{name: "config unattested, binding required", encrypted: true, factory: "sim-unbound", cmdline: "sealroot.require_binding=1", wantErr: "require_binding", wantStatus: event.StatusAttestFailed},
		{name: "config bound, binding required", encrypted: true, dialect: "krun", factory: "sim", cmdline: "sealroot.require_binding=1"},
		{name: "launched for another config", encrypted: true, factory: "sim-other", wantErr: "another config", wantStatus: event.StatusAttestFailed},
		{name: "no attester", encrypted: true, factory: "fails", wantErr: "no simulated TEE here", wantStatus: event.StatusAttestFailed},
		{name: "workload not registered", encrypted: true, workload: "wl-unknown", factory: "sim", wantErr: "", wantStatus: event.StatusBrokerRefused},
		{name: "broker unreachable", encrypted: true, url: unreachable, factory: "sim", wantStatus: event.StatusBrokerRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := configJSON(t, attest.TEESim, map[string]any{"kbs_protocol": tc.dialect, "attest_timeout": "3s"})
			cfg, err := diskconfig.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			cfg.AttestationURL = url
			if tc.url != "" {
				cfg.AttestationURL = tc.url
			}
			if tc.workload != "" {
				cfg.WorkloadID = tc.workload
			}
			var factory func(*boot, context.Context) (attest.Attester, error)
			switch tc.factory {
			case "sim":
				factory = simFactory(t, a, m, sha256.Sum256(raw))
			case "sim-unbound":
				factory = simFactory(t, a, m, [32]byte{})
			case "sim-other":
				factory = simFactory(t, a, m, sha256.Sum256([]byte("another config")))
			case "fails":
				factory = func(*boot, context.Context) (attest.Attester, error) {
					if !tc.encrypted {
						t.Error("the attest phase made an attester for a plain root")
					}
					return nil, errors.New("no simulated TEE here")
				}
			}
			var console bytes.Buffer
			b := testBoot("/dev/vda", machine{newAttester: factory}, &console)
			b.cfg, b.rawConfig, b.encrypted = cfg, raw, tc.encrypted
			b.opts = parseCmdline(tc.cmdline)
			defer b.closeHost()
			err = b.attest(context.Background())
			if tc.wantStatus != 0 {
				if err == nil || statusOf(err) != tc.wantStatus || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v (status %d), want status %d containing %q", err, statusOf(err), tc.wantStatus, tc.wantErr)
				}
				if b.passphrase != nil {
					t.Fatal("a failed attest phase kept a passphrase")
				}
				return
			}
			if err != nil {
				t.Fatalf("attest: %v\n%s", err, console.String())
			}
			if !tc.encrypted {
				if b.passphrase != nil || b.attester != nil {
					t.Fatal("a plain root went through attestation")
				}
				return
			}
			if string(b.passphrase) != seamsPassphrase || b.attester == nil || b.detail["tee"] != attest.TEESim || b.detail["dialect"] != cfg.Dialect() {
				t.Fatalf("passphrase fetched: %v, attester %v, detail %v", string(b.passphrase) == seamsPassphrase, b.attester, b.detail)
			}
			if tc.wantLog != "" && !strings.Contains(console.String(), tc.wantLog) {
				t.Fatalf("console lacks %q:\n%s", tc.wantLog, console.String())
			}
			if strings.Contains(console.String(), seamsPassphrase) {
				t.Fatal("the console shows the passphrase")
			}
		})
	}
}

// The kernel command line reaches the options through the cmdline seam;
// values the init cannot use keep the defaults.
func TestCmdlineOptions(t *testing.T) {
	def := options{diskTimeout: 10 * time.Second, root: "/dev/vda", grace: 2 * time.Second}
	for _, tc := range []struct {
		cmdline string
		want    options
	}{
		{"", def},
		{"console=ttyS0 quiet", def},
		{"sealroot.root=/dev/vdc sealroot.disk_timeout=90s sealroot.grace=0s", options{diskTimeout: 90 * time.Second, root: "/dev/vdc", grace: 0}},
		{"sealroot.root=vdc sealroot.disk_timeout=-1s sealroot.grace=soon", def},
		{"sealroot.disk_timeout=0s sealroot.grace=-2s sealroot.root=", def},
		{"sealroot.root=/dev/vdb sealroot.root=/dev/vdd", options{diskTimeout: 10 * time.Second, root: "/dev/vdd", grace: 2 * time.Second}},
		{"sealroot.require_binding=1", options{diskTimeout: 10 * time.Second, root: "/dev/vda", grace: 2 * time.Second, requireBinding: true}},
		{"sealroot.require_binding=yes", def},
	} {
		b := testBoot("", machine{cmdline: func() string { return tc.cmdline }}, &bytes.Buffer{})
		if got := parseCmdline(b.cmdline()); got != tc.want {
			t.Errorf("cmdline %q: options %+v, want %+v", tc.cmdline, got, tc.want)
		}
	}
}
