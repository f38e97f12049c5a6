package snp

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sealroot/sealroot/attest"
)

// DefaultKDSBaseURL is AMD's Key Distribution Service.
const DefaultKDSBaseURL = "https://kdsintf.amd.com"

// KDSGetter fetches from AMD's KDS over HTTPS. It implements go-sev-guest's
// trust.HTTPSGetter and trust.ContextHTTPSGetter.
//
// It retries what is worth retrying and nothing else: transport errors and
// 5xx answers, with exponential backoff and jitter, and 429 (AMD rate-limits
// KDS) after the Retry-After the server asked for. Any other status fails at
// once. Every call is bounded: by the context's deadline, else by Timeout.
// The zero value is ready to use.
type KDSGetter struct {
	// Client is the HTTP client; nil uses one with a 30 s per-request timeout.
	Client *http.Client
	// BaseURL replaces DefaultKDSBaseURL at the start of requested URLs (a
	// mirror, a caching proxy, a test server). Empty keeps AMD's.
	BaseURL string
	// MaxAttempts bounds the number of requests per call (default 6).
	MaxAttempts int
	// InitialBackoff is the first wait between attempts (default 500 ms); it
	// doubles up to MaxBackoff (default 10 s).
	InitialBackoff, MaxBackoff time.Duration
	// Timeout bounds a call whose context has no deadline (default 2 min).
	Timeout time.Duration
	// MaxBodySize bounds a response body (default 1 MiB).
	MaxBodySize int64
}

var defaultKDSClient = &http.Client{Timeout: 30 * time.Second}

// StatusError is a KDS answer with an HTTP status that is not 200.
type StatusError struct {
	URL    string
	Status int
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// Get fetches url with a background context.
func (g *KDSGetter) Get(url string) ([]byte, error) {
	return g.GetContext(context.Background(), url)
}

// GetContext fetches url, retrying as described on KDSGetter.
func (g *KDSGetter) GetContext(ctx context.Context, url string) ([]byte, error) {
	if g.BaseURL != "" {
		if rest, ok := strings.CutPrefix(url, DefaultKDSBaseURL); ok {
			url = strings.TrimSuffix(g.BaseURL, "/") + rest
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, orDefault(g.Timeout, 2*time.Minute))
		defer cancel()
	}
	attempts := g.MaxAttempts
	if attempts <= 0 {
		attempts = 6
	}
	backoff := orDefault(g.InitialBackoff, 500*time.Millisecond)
	maxBackoff := orDefault(g.MaxBackoff, 10*time.Second)
	var lastErr error
	for attempt := 1; ; attempt++ {
		body, wait, err := g.once(ctx, url)
		if err == nil {
			return body, nil
		}
		lastErr = err
		if wait < 0 || attempt >= attempts {
			break
		}
		if wait == 0 { // no server hint: exponential backoff with jitter
			wait = backoff/2 + rand.N(backoff/2+1) //nolint:gosec // retry jitter, not a secret
			backoff = min(2*backoff, maxBackoff)
		}
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			return nil, fmt.Errorf("%w (giving up: the next attempt in %v would pass the deadline)", lastErr, wait.Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (%w)", lastErr, ctx.Err())
		case <-t.C:
		}
	}
	if attempts > 1 {
		return nil, fmt.Errorf("%w (after %d attempts)", lastErr, attempts)
	}
	return nil, lastErr
}

// once makes one request. wait says what to do on error: <0 do not retry,
// 0 retry after the usual backoff, >0 retry after exactly that long.
func (g *KDSGetter) once(ctx context.Context, url string) (body []byte, wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, -1, err
	}
	client := g.Client
	if client == nil {
		client = defaultKDSClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, -1, err
		}
		return nil, 0, err // transport error: retry
	}
	defer resp.Body.Close()
	limit := g.MaxBodySize
	if limit <= 0 {
		limit = 1 << 20
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return nil, 0, fmt.Errorf("GET %s: reading body: %w", url, err)
		}
		if int64(len(body)) > limit {
			return nil, -1, fmt.Errorf("GET %s: body larger than %d bytes", url, limit)
		}
		return body, 0, nil
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, retryAfter(resp.Header.Get("Retry-After"), time.Now()), &StatusError{url, resp.StatusCode}
	case resp.StatusCode >= 500:
		return nil, 0, &StatusError{url, resp.StatusCode}
	default:
		return nil, -1, &StatusError{url, resp.StatusCode}
	}
}

// retryAfter interprets a Retry-After header (seconds or an HTTP date). A
// missing or unreadable value gives 0 (use the usual backoff); a past date
// gives a minimal wait.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseUint(v, 10, 32); err == nil {
		return max(time.Duration(s)*time.Second, time.Millisecond)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), time.Millisecond)
	}
	return 0
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// vcekURL is the KDS URL of the VCEK for a chip at a TCB. Turin addresses
// chips by the first 8 bytes of CHIP_ID and adds the FMC SPL.
func vcekURL(productLine string, chipID []byte, tcb attest.TCB) string {
	if productLine == "Turin" {
		return fmt.Sprintf("%s/vcek/v1/Turin/%s?fmcSPL=%d&blSPL=%d&teeSPL=%d&snpSPL=%d&ucodeSPL=%d",
			DefaultKDSBaseURL, hex.EncodeToString(chipID[:8]), tcb.FMC, tcb.Bootloader, tcb.TEE, tcb.SNP, tcb.Microcode)
	}
	return fmt.Sprintf("%s/vcek/v1/%s/%s?blSPL=%d&teeSPL=%d&snpSPL=%d&ucodeSPL=%d",
		DefaultKDSBaseURL, productLine, hex.EncodeToString(chipID), tcb.Bootloader, tcb.TEE, tcb.SNP, tcb.Microcode)
}

// isNotFound reports whether err is a KDS 404 (no such chip or TCB).
func isNotFound(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Status == http.StatusNotFound
}
