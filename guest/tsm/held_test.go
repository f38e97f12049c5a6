package tsm

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// A device opened once keeps serving reports through tsm's SNP attester
// after its node is gone, and never reopens the path.
func TestHeldSEVDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sev-guest")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h, err := OpenSEVDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeSEVGuest{certs: []byte("certificate table")}
	h.dev.ioctl = f.ioctl
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	a, err := New(attest.TEESNP, Options{SNPQuoteProvider: h})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		input := rd(byte(7 + i))
		ev, err := a.Attest(context.Background(), input)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Report) != snpreport.ReportSize || !bytes.Equal(ev.Report[snpreport.OffReportData:snpreport.OffReportData+64], input[:]) {
			t.Fatalf("report %x", ev.Report[:0x60])
		}
		if !bytes.Equal(ev.Certs, f.certs) {
			t.Fatalf("certs %q", ev.Certs)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if h.IsSupported() {
		t.Fatal("a closed device is still supported")
	}
	if _, err := h.GetRawQuote(rd(1)); err == nil {
		t.Fatal("a closed device served a report")
	}
	if _, err := OpenSEVDevice(path); err == nil {
		t.Fatal("opened a missing device")
	}
}
