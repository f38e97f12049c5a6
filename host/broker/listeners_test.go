package broker

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawGet sends a GET with the request target exactly as given (no
// client-side cleaning) and the admin token, and returns the status.
func rawGet(t *testing.T, addr, target string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", target, testAdminToken)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSeparateAdminListener: with SeparateAdmin the guest-facing handler
// has no admin API and no metrics however the path is spelled, even for a
// caller with the admin token, and still serves the key endpoints,
// buildah's registration and health; AdminHandler serves the admin API,
// metrics and health and nothing of the key protocol.
func TestSeparateAdminListener(t *testing.T) {
	b := newTestBroker(t, func(c *Config) { c.SeparateAdmin = true })
	keyAddr := strings.TrimPrefix(b.URL, "http://")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: b.AdminHandler()}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	adminAddr := ln.Addr().String()

	for _, target := range []string{"/admin/v1/workloads", "//admin/v1/workloads", "/kbs/v0/../../admin/v1/workloads",
		"/%61dmin/v1/workloads", "/admin/v1/workloads/", "/metrics", "/admin/../metrics"} {
		code := rawGet(t, keyAddr, target)
		if code == http.StatusOK || code == http.StatusUnauthorized {
			t.Errorf("guest-facing %s: %d, want no admin API", target, code)
		}
		// A redirect must not lead anywhere either.
		if code >= 300 && code < 400 && rawGet(t, keyAddr, "/admin/v1/workloads") != http.StatusNotFound {
			t.Errorf("guest-facing %s redirects to a live admin API", target)
		}
	}
	for _, target := range []string{"/healthz", "/readyz"} {
		if code := rawGet(t, keyAddr, target); code != http.StatusOK {
			t.Errorf("guest-facing %s: %d", target, code)
		}
	}
	// Key protocol and buildah's registration stay on the guest side.
	m := measurement(95)
	b.registerBuildah(t, "separate", m) // on b.URL, the guest-facing listener

	for target, want := range map[string]int{"/admin/v1/workloads": 200, "/metrics": 200, "/healthz": 200, "/readyz": 200,
		"/kbs/v0/key/separate": 404, "/admin/v1/nothing": 404} {
		if code := rawGet(t, adminAddr, target); code != want {
			t.Errorf("admin listener %s: %d, want %d", target, code, want)
		}
	}
	// The key protocol is not on the admin listener.
	resp, err := http.Post("http://"+adminAddr+"/kbs/v0/auth", "application/json",
		strings.NewReader(`{"version":"0.0.0","tee":"snp","extra-params":"{\"workload_id\":\"separate\"}"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("admin listener /kbs/v0/auth: %d", resp.StatusCode)
	}
}

// TestRunAdminListen: `--admin-listen` serves the admin API on its own
// address; --listen then has none.
func TestRunAdminListen(t *testing.T) {
	state := t.TempDir()
	tokenFile := filepath.Join(state, "admin-token")
	os.WriteFile(tokenFile, []byte(testAdminToken+"\n"), 0o600)
	adminAddr := make(chan string, 1)
	o := Options{Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", State: state, AdminTokenFile: tokenFile,
		Registration: RegistrationOpen, SessionTTL: time.Minute, VerifyTimeout: time.Second, ShutdownTimeout: time.Second,
		Offline: true, LogLevel: "info", AdminReady: func(a net.Addr) { adminAddr <- a.String() }}
	addr, logs, stop := startRun(t, o)
	admin := <-adminAddr
	if code := rawGet(t, addr, "/admin/v1/workloads"); code != http.StatusNotFound {
		t.Errorf("--listen serves the admin API: %d", code)
	}
	if code := rawGet(t, admin, "/admin/v1/workloads"); code != http.StatusOK {
		t.Errorf("--admin-listen: %d", code)
	}
	if !strings.Contains(logs.String(), `"msg":"admin API listening"`) {
		t.Errorf("no admin listener log line:\n%s", logs.String())
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	// The same address twice is a mistake.
	o.Listen, o.AdminListen = "127.0.0.1:18989", "127.0.0.1:18989"
	o.Logger = JSONLogger(&syncBuffer{})
	if err := Run(t.Context(), o, nil); err == nil || !strings.Contains(err.Error(), "--admin-listen") {
		t.Fatalf("same address: %v", err)
	}
}
