package verify

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-tdx-guest/testing/testdata"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/certcache"
	"github.com/sealroot/sealroot/host/verify/tdx"
)

// TestBrokerTDXOfflineNeedsCollateral: a broker started --offline with a
// cache that lacks the platform's collateral must refuse a genuine TDX
// quote (go-tdx-guest's real Sapphire Rapids quote, whose TCB level Intel's
// sample collateral does not list) instead of accepting it on its
// signature and PCK chain; asking for chain-only does not change that.
// `sealroot verify --offline` (New with TDXChainOnly) still gets the
// chain-only result, marked as such.
func TestBrokerTDXOfflineNeedsCollateral(t *testing.T) {
	cache, err := certcache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2023, time.July, 1, 1, 0, 0, 0, time.UTC)
	o := Options{Cache: cache, Offline: true, Now: func() time.Time { return at }}
	ev := &attest.Evidence{TEE: attest.TEETDX, Report: bytes.Clone(testdata.RawQuote)}

	for _, chainOnly := range []bool{false, true} {
		bo := o
		bo.TDXChainOnly = chainOnly
		vs, err := Broker(bo)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := attest.WireName(attest.TEETDX)
		c, err := vs[w].Verify(context.Background(), ev)
		if !errors.Is(err, tdx.ErrCollateralMissing) || c != nil {
			t.Fatalf("broker verifier (TDXChainOnly %v), offline with an empty cache: %v, %v; want tdx.ErrCollateralMissing", chainOnly, c, err)
		}
		if !strings.Contains(err.Error(), "TCB info") || !strings.Contains(err.Error(), "--cache-dir") {
			t.Fatalf("refusal %q does not name the missing collateral and how to cache it", err)
		}
	}

	so := o
	so.TDXChainOnly = true
	v, err := New(attest.TEETDX, so)
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), ev)
	if err != nil || !tdx.ChainOnly(c) {
		t.Fatalf("New(tdx) with TDXChainOnly, offline: %v, chain only %v", err, tdx.ChainOnly(c))
	}
	v, err = New(attest.TEETDX, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), ev); !errors.Is(err, tdx.ErrCollateralMissing) {
		t.Fatalf("New(tdx) offline without TDXChainOnly: %v", err)
	}
}
