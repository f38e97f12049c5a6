package sim

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha512"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-sev-guest/abi"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/host/verify/snp"
	ts "github.com/sealroot/sealroot/wire/snpreport"
)

// TestPresign: reports signed with presigned halves verify like any other,
// each half signs one report only, the pool tops up and drains as
// documented, and a presigned signature still binds every signed byte.
func TestPresign(t *testing.T) {
	_, dir := testAuthority(t)
	a, err := Load(dir) // a pool of its own
	if err != nil {
		t.Fatal(err)
	}
	v := NewVerifier(a, snp.Options{Offline: true})
	if err := a.Presign(8); err != nil {
		t.Fatal(err)
	}
	if got := a.Presigned(); got != 8 {
		t.Fatalf("after Presign(8): %d pooled", got)
	}
	if err := a.Presign(5); err != nil { // already enough
		t.Fatal(err)
	}
	if got := a.Presigned(); got != 8 {
		t.Fatalf("after Presign(5) on 8: %d pooled, want 8", got)
	}

	seen := map[string]bool{}
	for i := range 10 { // 8 presigned, then 2 signed in full
		var p ReportParams
		copy(p.ReportData[:], fmt.Sprintf("report %d", i))
		p.Measurement[0] = byte(i)
		report, _, err := a.Sign(p)
		if err != nil {
			t.Fatal(err)
		}
		if want := max(0, 7-i); a.Presigned() != want {
			t.Fatalf("report %d: %d pooled, want %d", i, a.Presigned(), want)
		}
		c, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: report})
		if err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
		if c.ReportData[0] != 'r' || c.Measurement[0] != byte(i) {
			t.Fatalf("report %d: claims do not carry its fields", i)
		}
		r := string(report[ts.OffSignatureR : ts.OffSignatureR+ts.SigComponentSize])
		if seen[r] {
			t.Fatalf("report %d: r repeats an earlier signature's: a nonce was used twice", i)
		}
		seen[r] = true
		if i == 0 {
			// Any signed byte changed: the signature no longer holds.
			report[ts.OffMeasurement] ^= 1
			_, err := v.Verify(context.Background(), &attest.Evidence{TEE: attest.TEESNP, Report: report})
			if err == nil || !strings.Contains(err.Error(), "signature") {
				t.Fatalf("tampered presigned report: %v", err)
			}
		}
	}
}

// TestPresignConcurrent: Presign while other goroutines Sign (run with
// -race): every signature is valid for its own report and no two share r.
func TestPresignConcurrent(t *testing.T) {
	_, dir := testAuthority(t)
	a, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub := a.vcekKey.Public().(*ecdsa.PublicKey)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var rs []string
	errs := make(chan error, 5)
	wg.Add(1)
	go func() {
		defer wg.Done()
		errs <- a.Presign(40)
	}()
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 15 {
				var p ReportParams
				copy(p.ReportData[:], fmt.Sprintf("goroutine %d report %d", g, i))
				report, _, err := a.Sign(p)
				if err != nil {
					errs <- err
					return
				}
				digest := sha512.Sum384(report[:ts.SignedSize])
				sig, err := abi.ReportToSignatureDER(report)
				if err != nil {
					errs <- err
					return
				}
				if !ecdsa.VerifyASN1(pub, digest[:], sig) {
					errs <- fmt.Errorf("goroutine %d report %d: signature does not verify", g, i)
					return
				}
				mu.Lock()
				rs = append(rs, string(report[ts.OffSignatureR:ts.OffSignatureR+ts.SigComponentSize]))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(rs)
	if len(slices.Compact(rs)) != 60 {
		t.Fatal("two signatures share r: a nonce was used twice")
	}
	if a.Presigned() < 0 || a.Presigned() > 40 {
		t.Fatalf("%d pooled after the run", a.Presigned())
	}
}
