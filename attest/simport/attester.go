package simport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/snpreport"
)

// attester is the guest side of the report port.
type attester struct {
	mu     sync.Mutex
	rw     io.ReadWriter
	fr     *Reader
	nextID uint32
}

// deadliner is a stream whose blocking calls can be interrupted.
type deadliner interface {
	SetDeadline(time.Time) error
}

// NewAttester returns the simulated TEE's Attester, speaking the report
// port protocol over rw (the guest's virtio-serial port PortName, which
// the init opens with guest/internal/vport). Its evidence is SNP evidence: TEE
// "snp", a raw report and the certificate table.
//
// Calls are serialized. A call's context bounds it when rw has
// SetDeadline (a pollable *os.File or a net.Conn); a call given up on
// leaves its response to be discarded by the next call, by request id.
func NewAttester(rw io.ReadWriter) attest.Attester {
	return &attester{rw: rw, fr: NewReader(rw), nextID: 1}
}

func (a *attester) TEE() string { return attest.TEESim }

func (a *attester) Attest(ctx context.Context, reportData [64]byte) (*attest.Evidence, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if d, ok := a.rw.(deadliner); ok {
		dl, _ := ctx.Deadline() // zero: no deadline
		if err := d.SetDeadline(dl); err != nil {
			return nil, fmt.Errorf("sim: report port: %w", err)
		}
		stop := context.AfterFunc(ctx, func() { d.SetDeadline(time.Unix(1, 0)) })
		defer func() {
			stop()
			d.SetDeadline(time.Time{})
		}()
	}
	id := a.nextID
	a.nextID++
	if a.nextID == 0 { // 0 is the id of unattributed errors
		a.nextID = 1
	}
	if err := WriteFrame(a.rw, Frame{Type: TypeReportRequest, ID: id, Payload: EncodeRequest(reportData, 0)}); err != nil {
		return nil, a.fail(ctx, err, "")
	}
	var hint string // the last unattributed complaint, for the error message
	for {
		f, _, err := a.fr.ReadFrame()
		if errors.Is(err, ErrMalformed) {
			continue
		}
		if err != nil {
			return nil, a.fail(ctx, err, hint)
		}
		switch {
		case f.Type == TypeError && f.ID == 0:
			hint = printable(f.Payload)
		case f.ID != id:
			// A response to an earlier request that was given up on.
		case f.Type == TypeError:
			return nil, fmt.Errorf("sim: the secure processor refused the report request: %s", printable(f.Payload))
		case f.Type == TypeReportResponse:
			report, table, err := DecodeResponse(f.Payload)
			if err != nil {
				return nil, fmt.Errorf("sim: %w", err)
			}
			if len(report) != snpreport.ReportSize {
				return nil, fmt.Errorf("sim: report is %d bytes, want %d", len(report), snpreport.ReportSize)
			}
			if !bytes.Equal(report[snpreport.OffReportData:snpreport.OffReportData+snpreport.ReportDataSize], reportData[:]) {
				return nil, errors.New("sim: the report does not carry the requested report_data")
			}
			return &attest.Evidence{TEE: attest.TEESNP, Report: bytes.Clone(report), Certs: bytes.Clone(table)}, nil
		default:
			return nil, fmt.Errorf("sim: unexpected frame type %d in response", f.Type)
		}
	}
}

// fail words a stream error, preferring the context's reason.
func (a *attester) fail(ctx context.Context, err error, hint string) error {
	if ctx.Err() != nil {
		err = ctx.Err()
	} else if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		err = context.DeadlineExceeded // the stream's timer fired first
	}
	if hint != "" {
		return fmt.Errorf("sim: report port: %w (the secure processor said: %s)", err, hint)
	}
	return fmt.Errorf("sim: report port: %w", err)
}

// printable makes a peer's message safe to print: valid UTF-8, no control
// characters.
func printable(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(string(b), "?"))
}
