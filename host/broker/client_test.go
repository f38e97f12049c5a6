package broker

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdminClientRefusesPlainHTTPOffLoopback: the admin token never goes
// over plain http to another host; loopback and https are fine.
func TestAdminClientRefusesPlainHTTPOffLoopback(t *testing.T) {
	for url, ok := range map[string]bool{
		"http://127.0.0.1:8000":       true,
		"http://[::1]:8000":           true,
		"http://localhost:8000":       true,
		"http://127.0.0.5:8000/":      true,
		"https://kbs.example:8443":    true,
		"https://10.0.0.5":            true,
		"http://kbs.example:8000":     false,
		"http://10.0.2.100:8000":      false,
		"http://localhost.evil:8000":  false,
		"http://127.0.0.1.nip.io:800": false,
		"ftp://127.0.0.1":             false,
	} {
		_, err := NewAdminClient(url, "token-0123456789abcdef", nil)
		if (err == nil) != ok {
			t.Errorf("%s: err %v, want ok=%v", url, err, ok)
		}
		if err != nil && strings.HasPrefix(url, "http://") && !strings.Contains(err.Error(), "https://") {
			t.Errorf("%s: error %q does not say to use https", url, err)
		}
	}
}

// TestAdminClientDoesNotFollowRedirects: a redirect is an error, and the
// token does not travel to where it points.
func TestAdminClientDoesNotFollowRedirects(t *testing.T) {
	var leaked bool
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaked = leaked || r.Header.Get("Authorization") != ""
	}))
	defer target.Close()
	redirector := httptest.NewServer(http.RedirectHandler(target.URL+"/admin/v1/workloads", http.StatusTemporaryRedirect))
	defer redirector.Close()
	c, err := NewAdminClient(redirector.URL, "token-0123456789abcdef", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(t.Context()); err == nil {
		t.Fatal("a redirect was taken for success")
	}
	if leaked {
		t.Fatal("the token followed the redirect")
	}
}
