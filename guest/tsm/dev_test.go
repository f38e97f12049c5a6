package tsm

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-configfs-tsm/configfs/faketsm"
	sevabi "github.com/google/go-sev-guest/client/linuxabi"
	tdxabi "github.com/google/go-tdx-guest/client/linuxabi"
	"golang.org/x/sys/unix"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// TestSNPViaConfigfs: with a sev_guest provider the report is the outblob,
// the certificate table the auxblob, and the VMPL goes to privlevel.
func TestSNPViaConfigfs(t *testing.T) {
	c := fakeTSM("sev_guest")
	sub := c.Subsystems["report"].(*faketsm.ReportSubsystem)
	read := sub.ReadAttr
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "outblob":
			b, err := read(e, attr) // echoes privlevel and inblob
			if err != nil {
				return nil, err
			}
			return append(b, make([]byte, snpreport.ReportSize-len(b))...), nil
		case "auxblob":
			return []byte("certificate table"), nil
		}
		return read(e, attr)
	}
	a, err := New(attest.TEESNP, Options{TSM: c, VMPL: 2})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := a.Attest(context.Background(), rd(3))
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Replace(fakeOutBlob(rd(3)), "privlevel: 0", "privlevel: 2", 1)
	if len(ev.Report) != snpreport.ReportSize || !bytes.HasPrefix(ev.Report, []byte(want)) {
		t.Fatalf("report %q..., want %q", ev.Report[:len(want)], want)
	}
	if string(ev.Certs) != "certificate table" {
		t.Fatalf("certs %q", ev.Certs)
	}
	// Another TEE's provider is never used for SNP.
	if _, err := New(attest.TEESNP, Options{TSM: fakeTSM("tdx_guest")}); err == nil {
		t.Fatal("an SNP attester over a tdx_guest provider")
	}
}

// fakeSEVGuest emulates /dev/sev-guest's SNP_GET_EXT_REPORT: a buffer
// smaller than the host's certificate table fails with EIO, the VMM's
// "invalid length" error and the length needed; then the report (holding
// report_data and the VMPL) and the table come back.
type fakeSEVGuest struct {
	certs    []byte
	calls    int
	fwErr    uint64 // a firmware error to fail with, if set
	growEach bool   // ask for more room on every call
}

func (f *fakeSEVGuest) ioctl(cmd uintptr, msg *sevabi.SnpUserGuestRequest) error {
	f.calls++
	if cmd != sevabi.IocSnpGetExtendedReport {
		return unix.ENOTTY
	}
	req := msg.ReqData.(*sevabi.SnpExtendedReportReq)
	resp := msg.RespData.(*sevabi.SnpReportRespABI)
	if f.fwErr != 0 {
		msg.FwErr = f.fwErr
		return unix.EIO
	}
	need := uint32(len(f.certs))
	if f.growEach {
		need = req.CertsLength + 4096
	}
	if req.CertsLength < need {
		req.CertsLength = need
		msg.FwErr = snpVMMErrInvalidLen << 32
		return unix.EIO
	}
	copy(req.Certs, f.certs)
	req.CertsLength = uint32(len(f.certs))
	resp.Status, resp.ReportSize = 0, uint32(snpreport.ReportSize)
	copy(resp.Data[snpreport.OffReportData:], req.Data.ReportData[:])
	resp.Data[0x30] = byte(req.Data.Vmpl) // the report's VMPL field
	return nil
}

func TestSNPDeviceExtendedReport(t *testing.T) {
	f := &fakeSEVGuest{certs: bytes.Repeat([]byte("cert"), 300)}
	d := &snpDevice{path: SEVGuestPath, ioctl: f.ioctl}
	a, err := New(attest.TEESNP, Options{SNPQuoteProvider: d, VMPL: 1})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := a.Attest(context.Background(), rd(9))
	if err != nil {
		t.Fatal(err)
	}
	r := rd(9)
	if !bytes.Equal(ev.Report[snpreport.OffReportData:snpreport.OffReportData+64], r[:]) || ev.Report[0x30] != 1 {
		t.Fatal("report does not carry the report_data and VMPL asked for")
	}
	if !bytes.Equal(ev.Certs, f.certs) || f.calls != 2 {
		t.Fatalf("certs %d bytes after %d calls, want %d after 2", len(ev.Certs), f.calls, len(f.certs))
	}

	// No certificates from the host: one call, no table.
	f = &fakeSEVGuest{}
	raw, err := (&snpDevice{path: SEVGuestPath, ioctl: f.ioctl}).GetRawQuote(rd(1))
	if err != nil || len(raw) != snpreport.ReportSize || f.calls != 1 {
		t.Fatalf("%d bytes, %v, %d calls", len(raw), err, f.calls)
	}
}

func TestSNPDeviceErrors(t *testing.T) {
	for name, f := range map[string]*fakeSEVGuest{
		"firmware error": {fwErr: 0x16},
		"endless growth": {growEach: true},
		"too many certs": {certs: make([]byte, snpMaxCerts+1)},
	} {
		_, err := (&snpDevice{path: SEVGuestPath, ioctl: f.ioctl}).GetRawQuote(rd(0))
		if err == nil || !strings.Contains(err.Error(), SEVGuestPath) {
			t.Errorf("%s: %v, want an error naming %s", name, err, SEVGuestPath)
		}
	}
	_, err := (&snpDevice{path: SEVGuestPath, ioctl: (&fakeSEVGuest{fwErr: 0x16}).ioctl}).GetRawQuote(rd(0))
	if !errors.Is(err, unix.EIO) || !strings.Contains(err.Error(), "firmware error 0x16") {
		t.Errorf("firmware error: %v", err)
	}
}

// fakeTDXGuest emulates /dev/tdx_guest before Linux 6.7: GET_REPORT0 makes
// a TDREPORT from report_data, GET_QUOTE turns the TDREPORT in the shared
// buffer into a quote.
type fakeTDXGuest struct {
	status uint64
	quote  []byte
}

func (f *fakeTDXGuest) ioctl(cmd uintptr, arg unsafe.Pointer) error {
	switch cmd {
	case tdxabi.IocTdxGetReport:
		r := (*tdxabi.TdxReportReq)(arg)
		copy(r.TdReport[512:], r.ReportData[:]) // where a TDREPORT carries it, roughly
		return nil
	case tdxabi.IocTdxGetQuote:
		q := (*tdxabi.TdxQuoteReqABI)(arg)
		h := (*tdxabi.TdxQuoteHdr)(q.Buffer)
		if q.Length != tdxabi.ReqBufSize || h.Version != 1 || h.InLen != tdxabi.TdReportSize {
			return unix.EINVAL
		}
		f.quote = append([]byte("quote of "), h.Data[512:512+64]...)
		h.Status = f.status
		if f.status == 0 {
			h.OutLen = uint32(copy(h.Data[:], f.quote))
		}
		return nil
	}
	return unix.ENOTTY
}

func TestTDXDevice(t *testing.T) {
	f := &fakeTDXGuest{}
	a := &tdxAttester{device: &tdxDevice{path: TDXGuestPath, ioctl: f.ioctl}}
	ev, err := a.Attest(context.Background(), rd(5))
	if err != nil {
		t.Fatal(err)
	}
	r := rd(5)
	if string(ev.Report) != "quote of "+string(r[:]) {
		t.Fatalf("quote %q", ev.Report)
	}
	for _, st := range []uint64{tdxabi.GetQuoteInFlight, tdxabi.GetQuoteServiceUnavailable, tdxabi.GetQuoteError} {
		a := &tdxAttester{device: &tdxDevice{path: TDXGuestPath, ioctl: (&fakeTDXGuest{status: st}).ioctl}}
		if _, err := a.Attest(context.Background(), rd(0)); err == nil || !strings.Contains(err.Error(), TDXGuestPath) {
			t.Errorf("status 0x%x: %v", st, err)
		}
	}
}
