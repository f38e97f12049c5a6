package sim

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/attest/snp"
)

// attester is the guest side of the report port.
type attester struct {
	mu     sync.Mutex
	rw     io.ReadWriter
	br     *bufio.Reader
	nextID uint32
}

// NewAttester returns the simulated TEE's Attester, speaking the report
// port protocol over rw (the guest's virtio-serial port PortName; see
// FindPort). Its evidence is SNP evidence: TEE "snp", a raw report and the
// certificate table.
//
// Calls are serialized. A call's context bounds it when rw has
// SetDeadline (a pollable *os.File or a net.Conn); a call given up on
// leaves its response to be discarded by the next call, by request id.
func NewAttester(rw io.ReadWriter) attest.Attester {
	return &attester{rw: rw, br: newFrameReader(rw), nextID: 1}
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
	if err := writeFrame(a.rw, frame{typ: typeReportRequest, id: id, payload: encodeRequest(reportData, 0)}); err != nil {
		return nil, a.fail(ctx, err, "")
	}
	var hint string // the last unattributed complaint, for the error message
	for {
		f, _, err := readFrame(a.br)
		var me *malformedError
		if errors.As(err, &me) {
			continue
		}
		if err != nil {
			return nil, a.fail(ctx, err, hint)
		}
		switch {
		case f.typ == typeError && f.id == 0:
			hint = printable(f.payload)
		case f.id != id:
			// A response to an earlier request that was given up on.
		case f.typ == typeError:
			return nil, fmt.Errorf("sim: the secure processor refused the report request: %s", printable(f.payload))
		case f.typ == typeReportResponse:
			report, table, err := decodeResponse(f.payload)
			if err != nil {
				return nil, fmt.Errorf("sim: %w", err)
			}
			if len(report) != snp.ReportSize {
				return nil, fmt.Errorf("sim: report is %d bytes, want %d", len(report), snp.ReportSize)
			}
			if !bytes.Equal(report[0x50:0x90], reportData[:]) {
				return nil, errors.New("sim: the report does not carry the requested report_data")
			}
			return &attest.Evidence{TEE: attest.TEESNP, Report: bytes.Clone(report), Certs: bytes.Clone(table)}, nil
		default:
			return nil, fmt.Errorf("sim: unexpected frame type %d in response", f.typ)
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

// FindPort returns the device node of the virtio-serial port named
// PortName, looking in sysRoot (normally "/sys") at
// class/virtio-ports/vport*/name. Port numbers depend on the device order,
// so the name is what identifies it.
func FindPort(sysRoot string) (string, error) {
	dir := filepath.Join(sysRoot, "class", "virtio-ports")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", fmt.Errorf("sim: looking for port %s: %w", PortName, err)
	}
	for _, e := range entries {
		name, err := os.ReadFile(filepath.Join(dir, e.Name(), "name"))
		if err == nil && strings.TrimSpace(string(name)) == PortName {
			return filepath.Join("/dev", e.Name()), nil
		}
	}
	return "", fmt.Errorf("sim: no virtio-serial port named %s under %s (is the VM launched with --tee sim?)", PortName, dir)
}
