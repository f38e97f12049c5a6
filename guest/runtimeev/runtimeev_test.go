package runtimeev

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/kbs"
)

type recorder struct{ got [64]byte }

func (r *recorder) TEE() string { return attest.TEESim }
func (r *recorder) Attest(ctx context.Context, rd [64]byte) (*attest.Evidence, error) {
	r.got = rd
	return &attest.Evidence{TEE: attest.TEESNP, Report: append([]byte("report:"), rd[:]...)}, nil
}

func TestServe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ev.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rec := &recorder{}
	go Serve(l, rec, func(string, ...any) {})

	// The workload asks over a boot binding; it gets the runtime domain.
	boot := bytes.Repeat([]byte{0x42}, 64)
	r, err := Request(context.Background(), path, boot)
	if err != nil {
		t.Fatal(err)
	}
	want := kbs.RuntimeReportData(boot)
	if rec.got != want || !bytes.Equal(r.ReportData, want[:]) || !bytes.HasSuffix(r.Report, want[:]) || r.TEE != attest.TEESNP {
		t.Fatalf("report_data %x, want %x", rec.got, want)
	}
	if bytes.Equal(rec.got[:], boot) || !kbs.IsRuntimeReportData(rec.got[:]) {
		t.Fatal("the report carries the workload's data unseparated")
	}
	if _, err := Request(context.Background(), path, make([]byte, MaxUserData+1)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("an oversized request: %v", err)
	}
}
