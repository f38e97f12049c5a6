package sim

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/simport"
)

// NewAttester is simport.NewAttester: the guest side of the report port,
// for host-side tests and tools that play the guest. The guest init
// imports simport itself, which keeps this package's verifier out of it.
func NewAttester(rw io.ReadWriter) attest.Attester { return simport.NewAttester(rw) }

// Server is the host side of the report port: it answers a guest's report
// requests with reports signed by Authority over the launch's measurement,
// host data and policy. The zero values of Measurement, HostData and
// Policy are allowed (Policy 0 means DefaultPolicy). Every report of one
// Server carries the same random REPORT_ID, as a real guest's do.
type Server struct {
	Authority   *Authority
	Measurement [48]byte
	HostData    [32]byte
	Policy      uint64

	idOnce   sync.Once
	reportID [32]byte
}

// deadliner is a stream whose blocking calls can be interrupted.
type deadliner interface {
	SetDeadline(time.Time) error
}

// Serve answers requests on rw until it reaches end of stream (nil), the
// stream fails, or ctx is done (ctx.Err()). A request that cannot be
// served, malformed or not, gets an error response; nothing a guest sends
// makes Serve fail, except a stream that ends inside a frame.
//
// When rw has SetDeadline (net.Conn, a pollable *os.File), a done ctx
// interrupts a blocked read; otherwise Serve returns at once and leaves
// its reader blocked until the caller closes rw.
func (s *Server) Serve(ctx context.Context, rw io.ReadWriter) error {
	if s.Authority == nil {
		return errors.New("sim: server has no authority")
	}
	s.idOnce.Do(func() { rand.Read(s.reportID[:]) })
	if d, ok := rw.(deadliner); ok {
		stop := context.AfterFunc(ctx, func() { d.SetDeadline(time.Unix(1, 0)) })
		defer stop()
	}
	done := make(chan error, 1)
	go func() { done <- s.loop(rw) }()
	select {
	case err := <-done:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Server) loop(rw io.ReadWriter) error {
	fr := simport.NewReader(rw)
	// After a malformed frame, the rest of its bytes are skipped as
	// garbage: that is the same incident, answered once.
	afterMalformed := false
	for {
		f, _, err := fr.ReadFrame()
		var me *simport.MalformedError
		switch {
		case errors.As(err, &me):
			if !afterMalformed || !me.Garbage {
				if werr := simport.WriteFrame(rw, simport.ErrorFrame(0, err.Error())); werr != nil {
					return werr
				}
			}
			afterMalformed = true
			continue
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("sim: reading request: %w", err)
		}
		afterMalformed = false
		if err := simport.WriteFrame(rw, s.answer(f)); err != nil {
			return err
		}
	}
}

// answer serves one well-formed frame.
func (s *Server) answer(f simport.Frame) simport.Frame {
	if f.Type != simport.TypeReportRequest {
		return simport.ErrorFrame(f.ID, fmt.Sprintf("frame type %d is not a report request", f.Type))
	}
	rd, vmpl, err := simport.DecodeRequest(f.Payload)
	if err != nil {
		return simport.ErrorFrame(f.ID, err.Error())
	}
	report, table, err := s.Authority.Sign(ReportParams{
		ReportData:  rd,
		Measurement: s.Measurement,
		HostData:    s.HostData,
		Policy:      s.Policy,
		VMPL:        vmpl,
		ReportID:    s.reportID,
	})
	if err != nil {
		return simport.ErrorFrame(f.ID, err.Error())
	}
	return simport.Frame{Type: simport.TypeReportResponse, ID: f.ID, Payload: simport.EncodeResponse(report, table)}
}
