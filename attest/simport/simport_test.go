package simport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// fakeReport is an unsigned report of the right size carrying rd: the
// Attester checks shape and report_data, never signatures (the broker's
// verifier does, in host/verify/sim's round-trip test).
func fakeReport(rd [64]byte) []byte {
	r := make([]byte, abi.ReportSize)
	r[0] = 3
	copy(r[snpreport.OffReportData:], rd[:])
	return r
}

// fakeTable stands in for a certificate table: the Attester passes it on.
var fakeTable = []byte("certificate table")

func TestFrameRoundTrip(t *testing.T) {
	tests := []Frame{
		{Type: TypeReportRequest, ID: 1, Payload: EncodeRequest([64]byte{1, 2, 3}, 2)},
		{Type: TypeReportResponse, ID: 1<<32 - 1, Payload: EncodeResponse(fakeReport([64]byte{9}), fakeTable)},
		ErrorFrame(0, strings.Repeat("x", MaxErrorLen+10)),
		{Type: 77},
	}
	var stream bytes.Buffer
	for _, f := range tests {
		if err := WriteFrame(&stream, f); err != nil {
			t.Fatal(err)
		}
	}
	fr := NewReader(&stream)
	for i, want := range tests {
		got, skipped, err := fr.ReadFrame()
		if err != nil || skipped != 0 {
			t.Fatalf("frame %d: %v (skipped %d)", i, err, skipped)
		}
		if got.Type != want.Type || got.ID != want.ID || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
		}
	}
	if len(tests[2].Payload) != MaxErrorLen {
		t.Errorf("error message of %d bytes, want it cut to %d", len(tests[2].Payload), MaxErrorLen)
	}
	if _, _, err := fr.ReadFrame(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
	rd, vmpl, err := DecodeRequest(tests[0].Payload)
	if err != nil || rd != [64]byte{1, 2, 3} || vmpl != 2 {
		t.Fatalf("DecodeRequest = %v, %d, %v", rd[:4], vmpl, err)
	}
	report, table, err := DecodeResponse(tests[1].Payload)
	if err != nil || !bytes.Equal(report, fakeReport([64]byte{9})) || !bytes.Equal(table, fakeTable) {
		t.Fatalf("DecodeResponse: %d-byte report, table %q, %v", len(report), table, err)
	}
}

func TestAttesterSkipsStaleResponses(t *testing.T) {
	guest, host := net.Pipe()
	defer guest.Close()
	defer host.Close()
	go func() {
		f, _, err := NewReader(host).ReadFrame()
		if err != nil {
			return
		}
		rd, _, _ := DecodeRequest(f.Payload)
		report := fakeReport(rd)
		stale := fakeReport([64]byte{})
		host.Write([]byte("noise"))
		host.Write(EncodeFrame(Frame{Type: TypeReportResponse, ID: f.ID + 100, Payload: EncodeResponse(stale, fakeTable)}))
		host.Write(EncodeFrame(ErrorFrame(0, "an unrelated complaint")))
		host.Write(EncodeFrame(Frame{Type: TypeReportResponse, ID: f.ID, Payload: EncodeResponse(report, fakeTable)}))
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd [64]byte
	copy(rd[:], "fresh")
	ev, err := NewAttester(guest).Attest(ctx, rd)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ev.Report[0x50:0x90], rd[:]) {
		t.Fatal("took a stale report")
	}
}

func TestAttesterErrors(t *testing.T) {
	tests := []struct {
		name  string
		reply func(id uint32, rd [64]byte) []byte
		want  string
	}{
		{"refusal", func(id uint32, _ [64]byte) []byte { return EncodeFrame(ErrorFrame(id, "no\x1b[31m thanks")) }, "refused the report request: no?[31m thanks"},
		{"wrong report data", func(id uint32, _ [64]byte) []byte {
			return EncodeFrame(Frame{Type: TypeReportResponse, ID: id, Payload: EncodeResponse(fakeReport([64]byte{}), fakeTable)})
		}, "requested report_data"},
		{"short report", func(id uint32, _ [64]byte) []byte {
			return EncodeFrame(Frame{Type: TypeReportResponse, ID: id, Payload: EncodeResponse(make([]byte, 100), nil)})
		}, "report is 100 bytes"},
		{"lying length", func(id uint32, _ [64]byte) []byte {
			return EncodeFrame(Frame{Type: TypeReportResponse, ID: id, Payload: []byte{0xff, 0xff, 0xff, 0xff, 1}})
		}, "claims a"},
		{"request type back", func(id uint32, rd [64]byte) []byte {
			return EncodeFrame(Frame{Type: TypeReportRequest, ID: id, Payload: EncodeRequest(rd, 0)})
		}, "unexpected frame type"},
		{"hang up", func(uint32, [64]byte) []byte { return nil }, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			guest, host := net.Pipe()
			defer guest.Close()
			go func() {
				defer host.Close()
				f, _, err := NewReader(host).ReadFrame()
				if err != nil {
					return
				}
				rd, _, _ := DecodeRequest(f.Payload)
				if b := tt.reply(f.ID, rd); b != nil {
					host.Write(b)
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := NewAttester(guest).Attest(ctx, [64]byte{1})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Attest = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestAttesterHonoursContext(t *testing.T) {
	guest, host := net.Pipe()
	defer guest.Close()
	defer host.Close()
	// A host that reads requests and never answers.
	go io.Copy(io.Discard, host)
	at := NewAttester(guest)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := at.Attest(ctx, [64]byte{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Attest = %v, want the deadline", err)
	}
	// A cancelled context is refused before any I/O.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := at.Attest(ctx2, [64]byte{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Attest = %v, want context.Canceled", err)
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame decoder. It must never
// panic or loop, and every frame it returns must re-encode to bytes that
// were in the input.
func FuzzReadFrame(f *testing.F) {
	good := EncodeFrame(Frame{Type: TypeReportRequest, ID: 3, Payload: EncodeRequest([64]byte{7}, 1)})
	f.Add(good)
	f.Add(append([]byte("junk"), good...))
	f.Add(good[:20])
	f.Add(EncodeFrame(ErrorFrame(0, "x")))
	f.Add([]byte(frameMagic + "\x01\x02\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff"))
	f.Add(append(bytes.Repeat([]byte(frameMagic), 5), good...))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data))
		for range len(data) + 1 {
			fr, _, err := r.ReadFrame()
			var me *MalformedError
			if errors.As(err, &me) {
				continue
			}
			if err != nil {
				return
			}
			if len(fr.Payload) > MaxPayload || !bytes.Contains(data, EncodeFrame(fr)) {
				t.Fatalf("decoded a frame that was not in the input: %+v", fr)
			}
		}
		t.Fatal("readFrame made no progress")
	})
}

// FuzzAttester answers the guest with arbitrary bytes: Attest must fail
// cleanly or return evidence of the right shape, never panic.
func FuzzAttester(f *testing.F) {
	f.Add(EncodeFrame(Frame{Type: TypeReportResponse, ID: 1, Payload: EncodeResponse(fakeReport([64]byte{}), fakeTable)}))
	f.Add(EncodeFrame(ErrorFrame(1, "no")))
	f.Add(EncodeFrame(Frame{Type: TypeReportResponse, ID: 1, Payload: []byte{0, 0, 4, 0xa0}}))
	f.Add([]byte("SRTE"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(data), io.Discard}
		ev, err := NewAttester(rw).Attest(context.Background(), [64]byte{})
		if err == nil && (len(ev.Report) != abi.ReportSize || ev.TEE != attest.TEESNP) {
			t.Fatalf("bad evidence: %+v", ev)
		}
	})
}
