package tsm

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	"github.com/google/go-sev-guest/abi"
	spb "github.com/google/go-sev-guest/proto/sevsnp"
	sevtest "github.com/google/go-sev-guest/testing"
	tdxtest "github.com/google/go-tdx-guest/testing"
	tdxtestclient "github.com/google/go-tdx-guest/testing/client"
	"golang.org/x/sys/unix"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// fakeTSM is a configfs-tsm whose report provider is named provider.
func fakeTSM(provider string) *faketsm.Client {
	sub := faketsm.Report611(0)
	read := sub.ReadAttr
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		if attr == "provider" {
			return []byte(provider + "\n"), nil
		}
		return read(e, attr)
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
}

func rd(b byte) (r [64]byte) {
	for i := range r {
		r[i] = b + byte(i)
	}
	return r
}

// fakeOutBlob is what faketsm returns as a report: it echoes the inputs.
func fakeOutBlob(r [64]byte) string {
	return "privlevel: 0\ninblob: " + hex.EncodeToString(r[:])
}

func TestSNPWithTestProvider(t *testing.T) {
	input := rd(1)
	raw := sevtest.CreateRawReport(&sevtest.TestReportOptions{ReportData: input[:]})
	signer, err := sevtest.DefaultTestOnlyCertChain("Milan-B1", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sevtest.TcQuoteProvider([]sevtest.TestCase{{Name: "x", Input: input, Output: raw}},
		&sevtest.DeviceOptions{Now: time.Now(), Signer: signer, Product: abi.DefaultSevProduct()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(attest.TEESNP, Options{SNPQuoteProvider: qp})
	if err != nil {
		t.Fatal(err)
	}
	if a.TEE() != attest.TEESNP {
		t.Fatalf("TEE() = %q", a.TEE())
	}
	ev, err := a.Attest(context.Background(), input)
	if err != nil {
		t.Fatalf("Attest: %v", err)
	}
	if ev.TEE != attest.TEESNP || len(ev.Report) != snpreport.ReportSize {
		t.Fatalf("evidence %q with %d-byte report", ev.TEE, len(ev.Report))
	}
	if !bytes.Equal(ev.Report[0x50:0x90], input[:]) {
		t.Fatal("report_data not in the report")
	}
	// The provider signs the report; the certificate table follows it.
	table := new(abi.CertTable)
	if err := table.Unmarshal(ev.Certs); err != nil || len(table.Entries) == 0 {
		t.Fatalf("certificate table: %d entries, %v", len(table.Entries), err)
	}
	if _, err := a.Attest(context.Background(), rd(9)); err == nil {
		t.Fatal("Attest for unknown report data succeeded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Attest(ctx, input); !errors.Is(err, context.Canceled) {
		t.Fatalf("Attest with cancelled context: %v", err)
	}

	// The testing provider has no levels: VMPL 1 is refused up front.
	if _, err := New(attest.TEESNP, Options{SNPQuoteProvider: qp, VMPL: 1}); err == nil || !strings.Contains(err.Error(), "vmpl 1") {
		t.Fatalf("New with vmpl 1: %v", err)
	}
	if _, err := New(attest.TEESNP, Options{SNPQuoteProvider: qp, VMPL: 4}); err == nil {
		t.Fatal("New with vmpl 4 succeeded")
	}
}

// leveledProvider is an SNP provider with levels that records the level it
// was asked for and returns a blank report.
type leveledProvider struct {
	level uint
	short bool
}

func (*leveledProvider) IsSupported() bool        { return true }
func (*leveledProvider) Product() *spb.SevProduct { return abi.DefaultSevProduct() }
func (l *leveledProvider) GetRawQuote(r [64]byte) ([]byte, error) {
	return l.GetRawQuoteAtLevel(r, 0)
}
func (l *leveledProvider) GetRawQuoteAtLevel(r [64]byte, level uint) ([]byte, error) {
	l.level = level
	if l.short {
		return make([]byte, 100), nil
	}
	return make([]byte, snpreport.ReportSize), nil
}

func TestSNPVMPL(t *testing.T) {
	qp := &leveledProvider{}
	a, err := New(attest.TEESNP, Options{SNPQuoteProvider: qp, VMPL: 2})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := a.Attest(context.Background(), rd(0))
	if err != nil {
		t.Fatal(err)
	}
	if qp.level != 2 || ev.Certs != nil {
		t.Fatalf("level %d, certs %d bytes", qp.level, len(ev.Certs))
	}
	qp.short = true
	if _, err := a.Attest(context.Background(), rd(0)); err == nil || !strings.Contains(err.Error(), "want at least") {
		t.Fatalf("short report: %v", err)
	}
}

func TestSNPMissingDevice(t *testing.T) {
	if deviceExists(SEVGuestPath) || deviceExists(TSMReportDir) {
		t.Skip("this machine has an SEV-SNP or configfs-tsm guest interface")
	}
	_, err := New(attest.TEESNP, Options{})
	if err == nil {
		t.Fatal("New(snp) succeeded without an SNP interface")
	}
	for _, want := range []string{SEVGuestPath, TSMReportDir, "sev_guest"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

func TestTDXMissingDevice(t *testing.T) {
	if deviceExists(TDXGuestPath) || deviceExists(TSMReportDir) {
		t.Skip("this machine has a TDX or configfs-tsm guest interface")
	}
	_, err := New(attest.TEETDX, Options{})
	if err == nil || !strings.Contains(err.Error(), TDXGuestPath) || !strings.Contains(err.Error(), TSMReportDir) {
		t.Fatalf("New(tdx) = %v, want an error naming %s and %s", err, TDXGuestPath, TSMReportDir)
	}
	_, err = New(attest.TEECCA, Options{})
	if err == nil || !strings.Contains(err.Error(), TSMReportDir) {
		t.Fatalf("New(cca) = %v, want an error naming %s", err, TSMReportDir)
	}
}

func TestConfigfsProviders(t *testing.T) {
	tests := []struct {
		tee      string
		provider string
		wantErr  string
	}{
		{attest.TEETDX, "tdx_guest", ""},
		{attest.TEECCA, "arm_cca_guest", ""},
		{attest.TEECCA, "arm_cca", ""},
		// Another TEE's provider is never used.
		{attest.TEETDX, "sev_guest", `provider is "sev_guest", not tdx_guest`},
		{attest.TEETDX, "arm_cca_guest", "not tdx_guest"},
		{attest.TEECCA, "tdx_guest", `provider is "tdx_guest", not arm_cca_guest`},
		{attest.TEECCA, "fake", "not arm_cca_guest"},
	}
	for _, tt := range tests {
		t.Run(tt.tee+"/"+tt.provider, func(t *testing.T) {
			a, err := New(tt.tee, Options{TSM: fakeTSM(tt.provider)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if a.TEE() != tt.tee {
				t.Fatalf("TEE() = %q", a.TEE())
			}
			input := rd(7)
			ev, err := a.Attest(context.Background(), input)
			if err != nil {
				t.Fatal(err)
			}
			if ev.TEE != tt.tee || string(ev.Report) != fakeOutBlob(input) {
				t.Fatalf("evidence %q: %q", ev.TEE, ev.Report)
			}
		})
	}
}

func TestProviderChangedAfterNew(t *testing.T) {
	c := fakeTSM("tdx_guest")
	a, err := New(attest.TEETDX, Options{TSM: c})
	if err != nil {
		t.Fatal(err)
	}
	sub := c.Subsystems["report"].(*faketsm.ReportSubsystem)
	read := sub.ReadAttr
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		if attr == "provider" {
			return []byte("sev_guest\n"), nil
		}
		return read(e, attr)
	}
	if _, err := a.Attest(context.Background(), rd(0)); err == nil || !strings.Contains(err.Error(), `provider "sev_guest"`) {
		t.Fatalf("Attest after provider change: %v", err)
	}
}

func TestTDXWithMockProvider(t *testing.T) {
	tcs := tdxtest.TestCases()
	qp := tdxtestclient.GetMockTdxQuoteProvider(tcs, t)
	a, err := New(attest.TEETDX, Options{TDXQuoteProvider: qp})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := a.Attest(context.Background(), tcs[0].Input)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Report, tcs[0].Quote) {
		t.Fatal("quote is not the provider's")
	}
}

func TestNewOtherTEEs(t *testing.T) {
	for _, tee := range []string{"sim", "none", "sev", "", "SNP"} {
		if a, err := New(tee, Options{}); err == nil {
			t.Errorf("New(%q) = %v", tee, a)
		}
	}
}

func TestMountConfigfs(t *testing.T) {
	var mounted []string
	mount := func(src, target, fstype string, flags uintptr, data string) error {
		mounted = append(mounted, fstype+" on "+target)
		return nil
	}
	statfsType := func(typ int64, err error) func(string, *unix.Statfs_t) error {
		return func(_ string, st *unix.Statfs_t) error {
			st.Type = typ
			return err
		}
	}
	if err := mountConfigfsAt("/x", statfsType(configfsMagic, nil), mount); err != nil || len(mounted) != 0 {
		t.Fatalf("already mounted: %v, mounts %v", err, mounted)
	}
	if err := mountConfigfsAt("/x", statfsType(0x62656572 /* sysfs */, nil), mount); err != nil || len(mounted) != 1 || mounted[0] != "configfs on /x" {
		t.Fatalf("not mounted: %v, mounts %v", err, mounted)
	}
	if err := mountConfigfsAt("/x", statfsType(0, unix.ENOENT), mount); err == nil || !strings.Contains(err.Error(), "/x does not exist") {
		t.Fatalf("missing dir: %v", err)
	}
	fail := func(string, string, string, uintptr, string) error { return unix.EPERM }
	if err := mountConfigfsAt("/x", statfsType(0, nil), fail); !errors.Is(err, unix.EPERM) {
		t.Fatalf("mount failure: %v", err)
	}
}
