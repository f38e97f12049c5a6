package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key}
}

// issue writes a leaf certificate and key as PEM files and returns them.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certFile, keyFile string, pair tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, cn+".crt"), filepath.Join(dir, cn+".key")
	kder, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	pair, err = tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pair
}

func (ca *testCA) pemFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600)
	return p
}

// startRun runs Run in the background and returns its address and a stop
// function that returns Run's error.
func startRun(t *testing.T, o Options) (string, *syncBuffer, func() error) {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	o.Logger = JSONLogger(logs)
	go func() { done <- Run(ctx, o, func(a net.Addr) { addr <- a.String() }) }()
	select {
	case a := <-addr:
		return a, logs, func() error { cancel(); return <-done }
	case err := <-done:
		cancel()
		t.Fatalf("Run: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not start")
	}
	return "", nil, nil
}

// TestRunTLSAndMTLSAdmin serves HTTPS; a client certificate from the admin
// CA is an admin without a token, one from another CA is not.
func TestRunTLSAndMTLSAdmin(t *testing.T) {
	ca, other := newTestCA(t, "sealroot test CA"), newTestCA(t, "someone else")
	srvCert, srvKey, _ := ca.issue(t, "broker", true)
	_, _, adminPair := ca.issue(t, "ops-admin", false)
	_, _, strangerPair := other.issue(t, "stranger", false)
	state := t.TempDir()
	o := Options{Listen: "127.0.0.1:0", State: state, TLSCert: srvCert, TLSKey: srvKey, AdminClientCA: ca.pemFile(t),
		Registration: RegistrationClosed, SessionTTL: time.Minute, VerifyTimeout: time.Second, ShutdownTimeout: time.Second,
		Offline: true, LogLevel: "info", TrustSimRoot: simDir}
	addr, logs, stop := startRun(t, o)

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	clientWith := func(certs ...tls.Certificate) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: certs}}}
	}
	url := "https://" + addr
	m := measurement(50)
	body := registrationBody("tls-wl", hex.EncodeToString(m[:]), randomHex(32))
	// A certificate from another CA is not even offered (the server names
	// its CA in the handshake), so the stranger is an anonymous caller.
	for name, tc := range map[string]struct {
		c    *http.Client
		want int
	}{"admin cert": {clientWith(adminPair), 200}, "stranger cert": {clientWith(strangerPair), 401}, "no cert": {clientWith(), 401}} {
		req, _ := http.NewRequest(http.MethodPost, url+"/kbs/v0/register_workload", strings.NewReader(body))
		resp, err := tc.c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, tc.want)
		}
	}
	// The simulated root was trusted, loudly.
	if !strings.Contains(logs.String(), "TRUSTING THE SIMULATED SECURE PROCESSOR") {
		t.Errorf("no warning about the simulated root:\n%s", logs.String())
	}
	if err := stop(); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Fatal("no graceful stop")
	}
	// The state directory holds the generated keys, private to the owner.
	for _, f := range []string{"kek", "token-key.pem", "broker.db"} {
		fi, err := os.Stat(filepath.Join(state, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", f, fi.Mode(), err)
		}
	}
	// The audit record names the mTLS admin.
	if !strings.Contains(logs.String(), `"admin":"mtls:ops-admin"`) {
		t.Errorf("no mTLS admin in the audit log:\n%s", logs.String())
	}
}

func TestRunKEKFromEnvAndErrors(t *testing.T) {
	state := t.TempDir()
	t.Setenv(EnvKEK, strings.Repeat("ab", 32))
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(strings.Repeat("t", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, logs, stop := startRun(t, Options{Listen: "127.0.0.1:0", State: state, ShutdownTimeout: time.Second, LogLevel: "warn",
		Registration: RegistrationOpen, AdminTokenFile: tokenFile})
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	// Audit records are kept whatever --log-level drops: a refused admin
	// call is audited at warn too.
	resp, err = http.Get("http://" + addr + "/admin/v1/workloads")
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("admin without a token: %v %v", resp, err)
	}
	resp.Body.Close()
	m := measurement(21)
	reg := AdminRegistration{WorkloadID: "audited", TEE: "snp", Policy: WorkloadPolicy{Measurements: []string{hex.EncodeToString(m[:])}}}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/admin/v1/workloads", strings.NewReader(mustJSON(reg)))
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("t", 32))
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("admin with the token: %v %v", resp, err)
	}
	resp.Body.Close()
	stop()
	for _, want := range []string{`"admin_auth"`, `"action":"create"`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("--log-level warn dropped the audit record %s:\n%s", want, logs.String())
		}
	}
	if _, err := os.Stat(filepath.Join(state, "kek")); !os.IsNotExist(err) {
		t.Error("a key file was written although the key came from the environment")
	}

	t.Setenv(EnvKEK, "")
	for name, o := range map[string]Options{
		"no state":       {Listen: "127.0.0.1:0", LogLevel: "info"},
		"tls half":       {Listen: "127.0.0.1:0", State: t.TempDir(), TLSCert: "x", LogLevel: "info"},
		"mtls no tls":    {Listen: "127.0.0.1:0", State: t.TempDir(), AdminClientCA: "x", LogLevel: "info"},
		"bad level":      {Listen: "127.0.0.1:0", State: t.TempDir(), LogLevel: "loud"},
		"short token":    {Listen: "127.0.0.1:0", State: t.TempDir(), LogLevel: "info", AdminTokenFile: writeTemp(t, "short")},
		"bad sim root":   {Listen: "127.0.0.1:0", State: t.TempDir(), LogLevel: "info", TrustSimRoot: t.TempDir()},
		"bad store":      {Listen: "127.0.0.1:0", State: t.TempDir(), LogLevel: "info", Store: "mysql://x"},
		"bad proxy cidr": {Listen: "127.0.0.1:0", State: t.TempDir(), LogLevel: "info", TrustedProxies: []string{"10.0.0.1"}},
	} {
		o.Logger = JSONLogger(&syncBuffer{})
		if err := Run(context.Background(), o, nil); err == nil {
			t.Errorf("%s: Run accepted it", name)
		}
	}
}

func writeTemp(t *testing.T, content string) string {
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, []byte(content), 0o600)
	return p
}
