package tdx

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-tdx-guest/verify/trust"

	"github.com/sealroot/sealroot/host/verify/certcache"
)

// defaultCollateralMaxAge is how long cached PCS responses are used online
// before they are fetched again. Intel refreshes TCB info and QE identity
// about monthly and announces the date in nextUpdate.
const defaultCollateralMaxAge = 24 * time.Hour

// collateralGetter serves go-tdx-guest's PCS requests from the cache, from
// next (the network), or both. One is made per verification.
type collateralGetter struct {
	cache  *certcache.Cache  // may be nil
	next   trust.HTTPSGetter // nil offline
	now    time.Time         // for entry age
	maxAge time.Duration     // zero: default

	mu     sync.Mutex
	misses []string
}

// cachedResponse is what is stored per URL: PCS answers carry their issuer
// chains in headers, so headers are kept with the body.
type cachedResponse struct {
	URL     string              `json:"url"`
	Fetched time.Time           `json:"fetched"`
	Header  map[string][]string `json:"header"`
	Body    []byte              `json:"body"`
}

func cacheKey(url string) string { return "tdx/pcs/" + url }

// Get implements go-tdx-guest's trust.HTTPSGetter.
func (g *collateralGetter) Get(url string) (map[string][]string, []byte, error) {
	cached, ok := g.lookup(url)
	maxAge := g.maxAge
	if maxAge <= 0 {
		maxAge = defaultCollateralMaxAge
	}
	if ok && (g.next == nil || g.now.Sub(cached.Fetched) < maxAge) {
		return cached.Header, cached.Body, nil
	}
	if g.next == nil {
		g.mu.Lock()
		g.misses = append(g.misses, url)
		g.mu.Unlock()
		return nil, nil, fmt.Errorf("%s: %w", url, errNotCached)
	}
	header, body, err := g.next.Get(url)
	if err != nil {
		if ok {
			// Stale but signed: go-tdx-guest still checks its expiry.
			return cached.Header, cached.Body, nil
		}
		return nil, nil, err
	}
	if g.cache != nil {
		b, merr := json.Marshal(cachedResponse{URL: url, Fetched: g.now, Header: header, Body: body})
		if merr == nil {
			// A cache that cannot be written costs a refetch next time,
			// not this verification.
			_ = g.cache.Put(cacheKey(url), b)
		}
	}
	return header, body, nil
}

func (g *collateralGetter) lookup(url string) (cachedResponse, bool) {
	var r cachedResponse
	if g.cache == nil {
		return r, false
	}
	b, ok, err := g.cache.Get(cacheKey(url))
	if err != nil || !ok {
		return r, false
	}
	// A corrupt entry (or one for another URL after a hash collision in
	// the file name mapping) is treated as absent.
	if json.Unmarshal(b, &r) != nil || r.URL != url {
		return r, false
	}
	return r, true
}

// missed reports whether an offline lookup found nothing.
func (g *collateralGetter) missed() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.misses) > 0
}

// missing names the collateral offline lookups did not find, with their
// PCS URLs. go-tdx-guest fetches TCB info, QE identity, PCK CRL and root CRL
// in that order and stops at the first failure, so pieces after the first
// missing one may be missing too.
func (g *collateralGetter) missing() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	parts := make([]string, len(g.misses))
	for i, u := range g.misses {
		parts[i] = collateralName(u) + " (" + u + ")"
	}
	return strings.Join(parts, ", ")
}

// collateralName says which piece of collateral a PCS URL is (go-tdx-guest's
// pcs package builds them).
func collateralName(u string) string {
	switch {
	case strings.Contains(u, "/tdx/certification/") && strings.Contains(u, "/tcb?"):
		return "TCB info"
	case strings.Contains(u, "/qe/identity"):
		return "QE identity"
	case strings.Contains(u, "/pckcrl?"):
		return "PCK CRL"
	default:
		return "root CA CRL"
	}
}
