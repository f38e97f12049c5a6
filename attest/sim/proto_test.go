package sim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/snp"
)

// startServer serves s on one end of a pipe and returns the other end.
func startServer(t *testing.T, s *Server) net.Conn {
	t.Helper()
	guest, host := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, host) }()
	t.Cleanup(func() {
		cancel()
		guest.Close()
		host.Close()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
	return guest
}

func TestRoundTrip(t *testing.T) {
	a, _ := testAuthority(t)
	srv := &Server{Authority: a}
	copy(srv.Measurement[:], bytes.Repeat([]byte{0x42}, 48))
	copy(srv.HostData[:], "launch host data")
	guest := startServer(t, srv)
	at := NewAttester(guest)
	if at.TEE() != attest.TEESim {
		t.Fatalf("TEE() = %q", at.TEE())
	}
	v := NewVerifier(a, snp.Options{Offline: true})
	var reportIDs []string
	for i := range 3 {
		var rd [64]byte
		rd[0], rd[63] = byte(i), 0xee
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		ev, err := at.Attest(ctx, rd)
		cancel()
		if err != nil {
			t.Fatalf("Attest %d: %v", i, err)
		}
		if ev.TEE != attest.TEESNP || len(ev.Report) != snp.ReportSize || len(ev.Certs) == 0 {
			t.Fatalf("evidence: tee %q, report %d bytes, certs %d bytes", ev.TEE, len(ev.Report), len(ev.Certs))
		}
		c, err := v.Verify(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.ReportData, rd[:]) || !bytes.Equal(c.Measurement, srv.Measurement[:]) || !bytes.Equal(c.HostData, srv.HostData[:]) {
			t.Fatalf("claims do not carry the request and launch values: %+v", c)
		}
		reportIDs = append(reportIDs, c.Extra["report_id"])
	}
	if reportIDs[0] != reportIDs[1] || reportIDs[1] != reportIDs[2] || reportIDs[0] == strings.Repeat("0", 64) {
		t.Errorf("report ids %v: want one random id per server", reportIDs)
	}
}

// rawClient talks frames to a server directly.
type rawClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (r *rawClient) send(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawClient) recv() frame {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, skipped, err := readFrame(r.br)
	if err != nil || skipped != 0 {
		r.t.Fatalf("read: %v (skipped %d)", err, skipped)
	}
	return f
}

func TestServerAnswersBadInput(t *testing.T) {
	a, _ := testAuthority(t)
	guest := startServer(t, &Server{Authority: a})
	rc := &rawClient{t: t, c: guest, br: newFrameReader(guest)}
	good := encodeFrame(frame{typ: typeReportRequest, id: 9, payload: encodeRequest([64]byte{1}, 0)})

	badVersion := bytes.Clone(good)
	badVersion[4] = 2
	badCRC := bytes.Clone(good)
	badCRC[20] ^= 0xff
	huge := bytes.Clone(good[:headerSize])
	binary.BigEndian.PutUint32(huge[12:], MaxPayload+1)

	tests := []struct {
		name   string
		send   []byte
		wantID uint32
		want   string
	}{
		{"garbage", []byte("hello, is anybody there?"), 0, "skipped 24 bytes that are not a frame"},
		{"wrong version", badVersion, 0, "protocol version 2"},
		{"bad crc", badCRC, 0, "CRC mismatch"},
		{"oversized", huge, 0, "more than"},
		{"unknown type", encodeFrame(frame{typ: 77, id: 5, payload: []byte("x")}), 5, "not a report request"},
		{"short request", encodeFrame(frame{typ: typeReportRequest, id: 6, payload: make([]byte, 10)}), 6, "want 68"},
		{"vmpl 9", encodeFrame(frame{typ: typeReportRequest, id: 7, payload: encodeRequest([64]byte{}, 9)}), 7, "vmpl 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc.t = t
			rc.send(tt.send)
			f := rc.recv()
			if f.typ != typeError || f.id != tt.wantID || !strings.Contains(string(f.payload), tt.want) {
				t.Fatalf("got type %d id %d %q; want an error %d containing %q", f.typ, f.id, f.payload, tt.wantID, tt.want)
			}
			// The server resynchronises: the next good request is served.
			// Leftovers of a bad frame may first produce one more error.
			rc.send(good)
			for {
				f = rc.recv()
				if f.id == 9 {
					break
				}
			}
			if f.typ != typeReportResponse {
				t.Fatalf("after %s: type %d %q", tt.name, f.typ, f.payload)
			}
		})
	}
}

func TestAttesterSkipsStaleResponses(t *testing.T) {
	a, _ := testAuthority(t)
	guest, host := net.Pipe()
	defer guest.Close()
	defer host.Close()
	go func() {
		br := newFrameReader(host)
		f, _, err := readFrame(br)
		if err != nil {
			return
		}
		rd, _, _ := decodeRequest(f.payload)
		report, table, _ := a.Sign(ReportParams{ReportData: rd})
		stale, _, _ := a.Sign(ReportParams{})
		host.Write([]byte("noise"))
		host.Write(encodeFrame(frame{typ: typeReportResponse, id: f.id + 100, payload: encodeResponse(stale, table)}))
		host.Write(encodeFrame(errorFrame(0, "an unrelated complaint")))
		host.Write(encodeFrame(frame{typ: typeReportResponse, id: f.id, payload: encodeResponse(report, table)}))
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
	a, _ := testAuthority(t)
	tests := []struct {
		name  string
		reply func(id uint32, rd [64]byte) []byte
		want  string
	}{
		{"refusal", func(id uint32, _ [64]byte) []byte { return encodeFrame(errorFrame(id, "no\x1b[31m thanks")) }, "refused the report request: no?[31m thanks"},
		{"wrong report data", func(id uint32, _ [64]byte) []byte {
			r, tb, _ := a.Sign(ReportParams{})
			return encodeFrame(frame{typ: typeReportResponse, id: id, payload: encodeResponse(r, tb)})
		}, "requested report_data"},
		{"short report", func(id uint32, _ [64]byte) []byte {
			return encodeFrame(frame{typ: typeReportResponse, id: id, payload: encodeResponse(make([]byte, 100), nil)})
		}, "report is 100 bytes"},
		{"lying length", func(id uint32, _ [64]byte) []byte {
			return encodeFrame(frame{typ: typeReportResponse, id: id, payload: []byte{0xff, 0xff, 0xff, 0xff, 1}})
		}, "claims a"},
		{"request type back", func(id uint32, rd [64]byte) []byte {
			return encodeFrame(frame{typ: typeReportRequest, id: id, payload: encodeRequest(rd, 0)})
		}, "unexpected frame type"},
		{"hang up", func(uint32, [64]byte) []byte { return nil }, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			guest, host := net.Pipe()
			defer guest.Close()
			go func() {
				defer host.Close()
				f, _, err := readFrame(newFrameReader(host))
				if err != nil {
					return
				}
				rd, _, _ := decodeRequest(f.payload)
				if b := tt.reply(f.id, rd); b != nil {
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

func TestServeEndsCleanly(t *testing.T) {
	a, _ := testAuthority(t)
	// End of stream between frames: nil.
	guest, host := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- (&Server{Authority: a}).Serve(context.Background(), host) }()
	guest.Close()
	if err := <-done; err != nil {
		t.Fatalf("Serve at EOF = %v", err)
	}
	// Context cancelled while blocked reading: ctx.Err().
	guest, host = net.Pipe()
	defer guest.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- (&Server{Authority: a}).Serve(ctx, host) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve after cancel = %v", err)
	}
	// Stream cut inside a frame: an error naming it.
	r := bytes.NewReader(encodeFrame(frame{typ: typeReportRequest, id: 1, payload: encodeRequest([64]byte{}, 0)})[:30])
	err := (&Server{Authority: a}).Serve(context.Background(), struct {
		io.Reader
		io.Writer
	}{r, io.Discard})
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Serve on a truncated frame = %v", err)
	}
	if err := (&Server{}).Serve(context.Background(), host); err == nil {
		t.Fatal("Serve without an authority succeeded")
	}
}

func TestFindPort(t *testing.T) {
	sys := t.TempDir()
	ports := filepath.Join(sys, "class", "virtio-ports")
	for name, port := range map[string]string{"vport1p1": "org.sealroot.host", "vport1p2": PortName, "vport2p1": "other"} {
		os.MkdirAll(filepath.Join(ports, name), 0o755)
		os.WriteFile(filepath.Join(ports, name, "name"), []byte(port+"\n"), 0o644)
	}
	got, err := FindPort(sys)
	if err != nil || got != "/dev/vport1p2" {
		t.Fatalf("FindPort = %q, %v", got, err)
	}
	os.Remove(filepath.Join(ports, "vport1p2", "name"))
	if _, err := FindPort(sys); err == nil || !strings.Contains(err.Error(), PortName) {
		t.Fatalf("FindPort without the port = %v", err)
	}
	if _, err := FindPort(t.TempDir()); err == nil {
		t.Fatal("FindPort without virtio-ports succeeded")
	}
}

// FuzzReadFrame feeds arbitrary bytes to the frame decoder. It must never
// panic or loop, and every frame it returns must re-encode to bytes that
// were in the input.
func FuzzReadFrame(f *testing.F) {
	good := encodeFrame(frame{typ: typeReportRequest, id: 3, payload: encodeRequest([64]byte{7}, 1)})
	f.Add(good)
	f.Add(append([]byte("junk"), good...))
	f.Add(good[:20])
	f.Add(encodeFrame(errorFrame(0, "x")))
	f.Add([]byte(frameMagic + "\x01\x02\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff"))
	f.Add(append(bytes.Repeat([]byte(frameMagic), 5), good...))
	f.Fuzz(func(t *testing.T, data []byte) {
		br := newFrameReader(bytes.NewReader(data))
		for range len(data) + 1 {
			fr, _, err := readFrame(br)
			var me *malformedError
			if errors.As(err, &me) {
				continue
			}
			if err != nil {
				return
			}
			if len(fr.payload) > MaxPayload || !bytes.Contains(data, encodeFrame(fr)) {
				t.Fatalf("decoded a frame that was not in the input: %+v", fr)
			}
		}
		t.Fatal("readFrame made no progress")
	})
}

// FuzzServe feeds arbitrary bytes to the server: it must answer with
// well-formed frames only and end without panicking.
func FuzzServe(f *testing.F) {
	a, _ := testAuthority(f)
	req := encodeFrame(frame{typ: typeReportRequest, id: 1, payload: encodeRequest([64]byte{1}, 0)})
	f.Add(req)
	f.Add(append([]byte("garbage"), req...))
	f.Add(encodeFrame(frame{typ: 9, id: 2}))
	f.Add(req[:40])
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		err := (&Server{Authority: a}).Serve(context.Background(), struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(data), &out})
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("Serve: %v", err)
		}
		br := newFrameReader(&out)
		for {
			fr, skipped, err := readFrame(br)
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil || skipped != 0 {
				t.Fatalf("server wrote a malformed frame: %v (skipped %d)", err, skipped)
			}
			if fr.typ != typeReportResponse && fr.typ != typeError {
				t.Fatalf("server wrote frame type %d", fr.typ)
			}
		}
	})
}

// FuzzAttester answers the guest with arbitrary bytes: Attest must fail
// cleanly or return evidence of the right shape, never panic.
func FuzzAttester(f *testing.F) {
	a, _ := testAuthority(f)
	report, table, err := a.Sign(ReportParams{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(encodeFrame(frame{typ: typeReportResponse, id: 1, payload: encodeResponse(report, table)}))
	f.Add(encodeFrame(errorFrame(1, "no")))
	f.Add(encodeFrame(frame{typ: typeReportResponse, id: 1, payload: []byte{0, 0, 4, 0xa0}}))
	f.Add([]byte("SRTE"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(data), io.Discard}
		ev, err := NewAttester(rw).Attest(context.Background(), [64]byte{})
		if err == nil && (len(ev.Report) != snp.ReportSize || ev.TEE != attest.TEESNP) {
			t.Fatalf("bad evidence: %+v", ev)
		}
	})
}
