package tsm

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/trusteesnp"
)

// A device opened once serves reports through tsm's SNP attester, signed by
// go-sev-guest's fake device.
func TestHeldSEVDevice(t *testing.T) {
	input := rd(7)
	raw := sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: input[:]})
	signer, err := sevtest.DefaultTestOnlyCertChain("Milan-B1", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	d, err := sevtest.TcDevice([]sevtest.TestCase{{Name: "x", Input: input, Output: raw}},
		&sevtest.DeviceOptions{Now: time.Now(), Signer: signer, Product: abi.DefaultSevProduct()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Open("/dev/sev-guest"); err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a, err := New(attest.TEESNP, Options{SNPQuoteProvider: HeldSEVDevice{Device: d}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the device stays usable
		ev, err := a.Attest(context.Background(), input)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Report) != trusteesnp.ReportSize || !bytes.Equal(ev.Report[trusteesnp.OffReportData:trusteesnp.OffReportData+64], input[:]) {
			t.Fatalf("report %x", ev.Report[:0x60])
		}
	}
	if (HeldSEVDevice{}).IsSupported() {
		t.Fatal("no device is supported")
	}
}
