package sim

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/simport"
	"github.com/sealroot/sealroot/host/verify/snp"
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
	fr *simport.Reader
}

func (r *rawClient) send(b []byte) {
	r.t.Helper()
	r.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.c.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *rawClient) recv() simport.Frame {
	r.t.Helper()
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	f, skipped, err := r.fr.ReadFrame()
	if err != nil || skipped != 0 {
		r.t.Fatalf("read: %v (skipped %d)", err, skipped)
	}
	return f
}

func TestServerAnswersBadInput(t *testing.T) {
	a, _ := testAuthority(t)
	guest := startServer(t, &Server{Authority: a})
	rc := &rawClient{t: t, c: guest, fr: simport.NewReader(guest)}
	good := simport.EncodeFrame(simport.Frame{Type: simport.TypeReportRequest, ID: 9, Payload: simport.EncodeRequest([64]byte{1}, 0)})

	badVersion := bytes.Clone(good)
	badVersion[4] = 2
	badCRC := bytes.Clone(good)
	badCRC[20] ^= 0xff
	const headerSize = 16 // of a frame, see simport
	huge := bytes.Clone(good[:headerSize])
	binary.BigEndian.PutUint32(huge[12:], simport.MaxPayload+1)

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
		{"unknown type", simport.EncodeFrame(simport.Frame{Type: 77, ID: 5, Payload: []byte("x")}), 5, "not a report request"},
		{"short request", simport.EncodeFrame(simport.Frame{Type: simport.TypeReportRequest, ID: 6, Payload: make([]byte, 10)}), 6, "want 68"},
		{"vmpl 9", simport.EncodeFrame(simport.Frame{Type: simport.TypeReportRequest, ID: 7, Payload: simport.EncodeRequest([64]byte{}, 9)}), 7, "vmpl 9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc.t = t
			rc.send(tt.send)
			f := rc.recv()
			if f.Type != simport.TypeError || f.ID != tt.wantID || !strings.Contains(string(f.Payload), tt.want) {
				t.Fatalf("got type %d id %d %q; want an error %d containing %q", f.Type, f.ID, f.Payload, tt.wantID, tt.want)
			}
			// The server resynchronises: the next good request is served.
			// Leftovers of a bad frame may first produce one more error.
			rc.send(good)
			for {
				f = rc.recv()
				if f.ID == 9 {
					break
				}
			}
			if f.Type != simport.TypeReportResponse {
				t.Fatalf("after %s: type %d %q", tt.name, f.Type, f.Payload)
			}
		})
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
	r := bytes.NewReader(simport.EncodeFrame(simport.Frame{Type: simport.TypeReportRequest, ID: 1, Payload: simport.EncodeRequest([64]byte{}, 0)})[:30])
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

// FuzzServe feeds arbitrary bytes to the server: it must answer with
// well-formed frames only and end without panicking.
func FuzzServe(f *testing.F) {
	a, _ := testAuthority(f)
	req := simport.EncodeFrame(simport.Frame{Type: simport.TypeReportRequest, ID: 1, Payload: simport.EncodeRequest([64]byte{1}, 0)})
	f.Add(req)
	f.Add(append([]byte("garbage"), req...))
	f.Add(simport.EncodeFrame(simport.Frame{Type: 9, ID: 2}))
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
		r := simport.NewReader(&out)
		for {
			fr, skipped, err := r.ReadFrame()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil || skipped != 0 {
				t.Fatalf("server wrote a malformed frame: %v (skipped %d)", err, skipped)
			}
			if fr.Type != simport.TypeReportResponse && fr.Type != simport.TypeError {
				t.Fatalf("server wrote frame type %d", fr.Type)
			}
		}
	})
}
