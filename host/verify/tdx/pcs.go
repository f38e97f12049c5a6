package tdx

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/google/go-tdx-guest/verify/trust"
)

// The network side of collateral: Intel PCS over HTTPS, bounded by the
// verification's context. go-tdx-guest's default getter retries each URL
// for two minutes with http.Get and no deadline, so a PCS that does not
// answer held every online verification for minutes, whatever
// --verify-timeout said; this one gives up with the context.

// pcsClient bounds one request when the context has no earlier deadline.
var pcsClient = &http.Client{Timeout: 30 * time.Second}

// maxPCSBody bounds a PCS answer (TCB info, QE identity and CRLs are a few
// kilobytes).
const maxPCSBody = 4 << 20

// pcsGetter fetches one URL with ctx (trust.HTTPSGetter has no context of
// its own; one getter is made per verification).
type pcsGetter struct {
	ctx    context.Context
	client *http.Client
}

func (g *pcsGetter) Get(url string) (map[string][]string, []byte, error) {
	req, err := http.NewRequestWithContext(g.ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("GET %s: HTTP %d %s", url, resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPCSBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: reading body: %w", url, err)
	}
	if len(body) > maxPCSBody {
		return nil, nil, fmt.Errorf("GET %s: answer larger than %d bytes", url, maxPCSBody)
	}
	return resp.Header, body, nil
}

// networkGetter is the default Intel PCS getter of one verification:
// retries with backoff, all within ctx's deadline (two minutes when it
// has none).
func networkGetter(ctx context.Context) trust.HTTPSGetter {
	budget := 2 * time.Minute
	if dl, ok := ctx.Deadline(); ok {
		budget = time.Until(dl)
	}
	return &trust.RetryHTTPSGetter{Timeout: budget, MaxRetryDelay: 10 * time.Second, Getter: &pcsGetter{ctx: ctx, client: pcsClient}}
}
