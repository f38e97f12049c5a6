package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// AdminClient calls a broker's admin API (`sealroot register`,
// `sealroot workloads`, `sealroot image build --register`).
type AdminClient struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// AdminAPIError is a non-2xx answer of the admin API.
type AdminAPIError struct {
	Status  int
	Message string
}

func (e *AdminAPIError) Error() string {
	hint := ""
	switch e.Status {
	case http.StatusUnauthorized:
		hint = " (check --admin-token-file: it must hold the token the broker was started with)"
	case http.StatusForbidden:
		hint = " (start the broker with --admin-token-file to enable the admin API)"
	}
	return fmt.Sprintf("broker answered %d: %s%s", e.Status, e.Message, hint)
}

// ErrConflict marks a 409 answer: the workload already exists.
var ErrConflict = errors.New("workload already exists")

// NewAdminClient returns a client for the broker at baseURL. hc nil means
// a client with a 30 s timeout.
func NewAdminClient(baseURL, token string, hc *http.Client) (*AdminClient, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("broker URL %q: want http://HOST:PORT or https://HOST:PORT", baseURL)
	}
	if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("broker URL %q: plain http to a broker that is not on this host's loopback would send the admin "+
			"credentials in the clear; use https:// (start the broker with --tls-cert and --tls-key)", baseURL)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	// The admin API never redirects; following one could carry the token
	// to another scheme or host.
	own := *hc
	own.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &AdminClient{base: u, token: token, hc: &own}, nil
}

// loopbackHost reports whether host names this machine's loopback: a
// loopback IP address, or "localhost".
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *AdminClient) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("calling broker: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("reading broker reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var ae AdminError
		msg := strings.TrimSpace(string(raw))
		if json.Unmarshal(raw, &ae) == nil && ae.Error != "" {
			msg = ae.Error
		}
		if len(msg) > 512 {
			msg = msg[:512]
		}
		e := &AdminAPIError{Status: resp.StatusCode, Message: msg}
		if resp.StatusCode == http.StatusConflict {
			return fmt.Errorf("%w: %w", ErrConflict, e)
		}
		return e
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("decoding broker reply: %w", err)
		}
	}
	return nil
}

func (c *AdminClient) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}

func workloadPath(id string) string { return "/admin/v1/workloads/" + url.PathEscape(id) }

// Register creates (or with r.Replace, replaces) a workload.
func (c *AdminClient) Register(ctx context.Context, r AdminRegistration) (*AdminWorkload, error) {
	var out AdminWorkload
	return &out, c.doJSON(ctx, http.MethodPost, "/admin/v1/workloads", r, &out)
}

// List returns every workload.
func (c *AdminClient) List(ctx context.Context) ([]AdminWorkload, error) {
	var out []AdminWorkload
	return out, c.doJSON(ctx, http.MethodGet, "/admin/v1/workloads", nil, &out)
}

// Show returns one workload with its resource list.
func (c *AdminClient) Show(ctx context.Context, id string) (*AdminWorkload, error) {
	var out AdminWorkload
	return &out, c.doJSON(ctx, http.MethodGet, workloadPath(id), nil, &out)
}

// Delete removes a workload and its resources.
func (c *AdminClient) Delete(ctx context.Context, id string) error {
	return c.doJSON(ctx, http.MethodDelete, workloadPath(id), nil, nil)
}

// SetPolicy replaces a workload's policy.
func (c *AdminClient) SetPolicy(ctx context.Context, id string, p WorkloadPolicy) (*AdminWorkload, error) {
	var out AdminWorkload
	return &out, c.doJSON(ctx, http.MethodPut, workloadPath(id)+"/policy", p, &out)
}

// SetPassphrase replaces a workload's passphrase.
func (c *AdminClient) SetPassphrase(ctx context.Context, id, passphrase string) error {
	return c.doJSON(ctx, http.MethodPut, workloadPath(id)+"/passphrase", AdminPassphrase{Passphrase: passphrase}, nil)
}

// PutResource stores a resource ("repo/type/tag") of a workload.
func (c *AdminClient) PutResource(ctx context.Context, id, path string, value []byte) error {
	return c.do(ctx, http.MethodPut, workloadPath(id)+"/resources/"+path, bytes.NewReader(value), "application/octet-stream", nil)
}

// DeleteResource removes a resource of a workload.
func (c *AdminClient) DeleteResource(ctx context.Context, id, path string) error {
	return c.doJSON(ctx, http.MethodDelete, workloadPath(id)+"/resources/"+path, nil, nil)
}
