// Package simport is the guest half of sealroot's simulated secure
// processor: the report port's frame protocol and the Attester that asks
// the launcher for reports over it.
//
// It is split from host/verify/sim, the host half (the Authority that signs
// reports, the Server that answers the port, the Verifier), so that the
// guest init links only what it runs: this package imports no verifier,
// policy or certificate code, and every dependency of the init ships in
// every initrd and is read by every auditor.
//
// The report port protocol: request/response frames over a byte stream
// (virtio-serial in a guest, any io.ReadWriter in tests).
//
//	offset size
//	0      4    magic "SRTE"
//	4      1    protocol version, 1
//	5      1    frame type
//	6      2    reserved, zero
//	8      4    request id, big-endian; a response echoes its request's
//	12     4    payload length n, big-endian, at most MaxPayload
//	16     n    payload
//	16+n   4    CRC-32C (Castagnoli) of bytes 0 to 16+n, big-endian
//
// Frame types and payloads:
//
//	1 report request   report_data (64 bytes) || vmpl (u32 big-endian)
//	2 report response  report length r (u32 big-endian) || report (r bytes) || certificate table
//	3 error response   UTF-8 message, at most MaxErrorLen bytes
//
// A reader that meets bytes that are not a valid frame (wrong magic,
// version or reserved bits, oversized length, bad CRC) skips forward one
// byte and looks for the next magic, so one corrupt or truncated frame
// costs that frame only. Request ids let a client drop responses to
// requests it has given up on. The server answers a well-formed frame it
// cannot serve (unknown type, wrong payload) with an error response
// carrying its id, and a malformed frame or a run of garbage with an error
// response of id 0, whose header could not be trusted.
package simport

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/sealroot/sealroot/attest"
)

// PortName is the virtio-serial port the simulated secure processor
// listens on (QEMU: -device virtserialport,name=org.sealroot.sim-tee).
const PortName = attest.SimPortName

const (
	frameMagic   = "SRTE"
	frameVersion = 1
	headerSize   = 16
	trailerSize  = 4

	// MaxPayload bounds a frame's payload: a report and a certificate
	// table of a few certificates fit many times over.
	MaxPayload = 64 << 10
	// MaxErrorLen bounds an error message.
	MaxErrorLen = 1024

	requestPayloadSize = 64 + 4
)

// Frame types.
const (
	TypeReportRequest  byte = 1
	TypeReportResponse byte = 2
	TypeError          byte = 3
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Frame is one decoded frame.
type Frame struct {
	Type    byte
	ID      uint32
	Payload []byte
}

// ErrMalformed marks bytes that are not a valid frame; the stream can be
// resynchronised past them.
var ErrMalformed = errors.New("malformed frame")

// MalformedError says why bytes are not a frame.
type MalformedError struct {
	Reason string
	// Garbage is true for a run of bytes that held no magic, false for
	// bytes that started with the magic but failed a check.
	Garbage bool
}

func (e *MalformedError) Error() string { return "malformed frame: " + e.Reason }
func (e *MalformedError) Unwrap() error { return ErrMalformed }

// EncodeFrame serializes a frame. It panics on an oversized payload, which
// only a programming error can produce.
func EncodeFrame(f Frame) []byte {
	if len(f.Payload) > MaxPayload {
		panic(fmt.Sprintf("sim: frame payload of %d bytes", len(f.Payload)))
	}
	b := make([]byte, headerSize+len(f.Payload)+trailerSize)
	copy(b, frameMagic)
	b[4] = frameVersion
	b[5] = f.Type
	binary.BigEndian.PutUint32(b[8:], f.ID)
	binary.BigEndian.PutUint32(b[12:], uint32(len(f.Payload)))
	copy(b[headerSize:], f.Payload)
	n := headerSize + len(f.Payload)
	binary.BigEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

// WriteFrame writes one frame in a single Write.
func WriteFrame(w io.Writer, f Frame) error {
	if _, err := w.Write(EncodeFrame(f)); err != nil {
		return fmt.Errorf("sim: writing frame: %w", err)
	}
	return nil
}

// Reader reads frames from a stream. Its buffer holds the largest frame,
// so a frame is checked whole before any of it is consumed.
type Reader struct {
	br *bufio.Reader
}

// NewReader returns a frame reader over r.
func NewReader(r io.Reader) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, headerSize+MaxPayload+trailerSize)}
}

// ReadFrame reads the next frame. It first skips any bytes before a magic,
// returning how many; when it has skipped bytes and has no more at hand it
// returns them as a *MalformedError (Garbage set) instead of waiting, so
// that a peer learns at once that it sent garbage. A malformed frame
// returns a *MalformedError after consuming one byte, so that the next
// call resynchronises. Other errors are the stream's (io.EOF between
// frames, io.ErrUnexpectedEOF inside one).
func (fr *Reader) ReadFrame() (f Frame, skipped int, err error) {
	r := fr.br
	for {
		if n := r.Buffered(); skipped > 0 && n < len(frameMagic) {
			if b, _ := r.Peek(n); !strings.HasPrefix(frameMagic, string(b)) {
				r.Discard(1) // cannot be the start of a magic
				skipped++
				continue
			}
			return f, skipped, &MalformedError{Reason: fmt.Sprintf("skipped %d bytes that are not a frame", skipped), Garbage: true}
		}
		b, err := r.Peek(len(frameMagic))
		if err != nil {
			if errors.Is(err, io.EOF) && (len(b) > 0 || skipped > 0) {
				return f, skipped + len(b), io.ErrUnexpectedEOF
			}
			return f, skipped, err
		}
		if string(b) == frameMagic {
			break
		}
		r.Discard(1)
		skipped++
	}
	hdr, err := r.Peek(headerSize)
	if err != nil {
		return f, skipped, unexpected(err)
	}
	id := binary.BigEndian.Uint32(hdr[8:])
	n := binary.BigEndian.Uint32(hdr[12:])
	bad := func(reason string) (Frame, int, error) {
		r.Discard(1)
		return Frame{}, skipped, &MalformedError{Reason: reason}
	}
	switch {
	case hdr[4] != frameVersion:
		return bad(fmt.Sprintf("protocol version %d, want %d", hdr[4], frameVersion))
	case hdr[6] != 0 || hdr[7] != 0:
		return bad("reserved header bytes are not zero")
	case n > MaxPayload:
		return bad(fmt.Sprintf("payload of %d bytes, more than %d", n, MaxPayload))
	}
	// Bytes of the frame, CRC included, stay in the reader until the CRC is
	// known good, so a bad frame can be rescanned for a real magic.
	total := headerSize + int(n) + trailerSize
	if total > r.Size() {
		return f, skipped, fmt.Errorf("sim: reader buffer of %d bytes cannot hold a %d-byte frame", r.Size(), total)
	}
	whole, err := r.Peek(total)
	if err != nil {
		return f, skipped, unexpected(err)
	}
	body := whole[:headerSize+int(n)]
	if binary.BigEndian.Uint32(whole[headerSize+int(n):]) != crc32.Checksum(body, castagnoli) {
		return bad("CRC mismatch")
	}
	f = Frame{Type: hdr[5], ID: id, Payload: append([]byte(nil), whole[headerSize:headerSize+int(n)]...)}
	r.Discard(total)
	return f, skipped, nil
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// EncodeRequest builds a report request payload.
func EncodeRequest(reportData [64]byte, vmpl uint32) []byte {
	p := make([]byte, requestPayloadSize)
	copy(p, reportData[:])
	binary.BigEndian.PutUint32(p[64:], vmpl)
	return p
}

// DecodeRequest parses a report request payload.
func DecodeRequest(p []byte) (reportData [64]byte, vmpl uint32, err error) {
	if len(p) != requestPayloadSize {
		return reportData, 0, fmt.Errorf("report request payload is %d bytes, want %d", len(p), requestPayloadSize)
	}
	copy(reportData[:], p[:64])
	return reportData, binary.BigEndian.Uint32(p[64:]), nil
}

// EncodeResponse builds a report response payload.
func EncodeResponse(report, certTable []byte) []byte {
	p := make([]byte, 4, 4+len(report)+len(certTable))
	binary.BigEndian.PutUint32(p, uint32(len(report)))
	p = append(p, report...)
	return append(p, certTable...)
}

// DecodeResponse parses a report response payload.
func DecodeResponse(p []byte) (report, certTable []byte, err error) {
	if len(p) < 4 {
		return nil, nil, errors.New("report response payload is shorter than its length field")
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-4) {
		return nil, nil, fmt.Errorf("report response claims a %d-byte report in a %d-byte payload", n, len(p))
	}
	report = p[4 : 4+n]
	if rest := p[4+n:]; len(rest) > 0 {
		certTable = rest
	}
	return report, certTable, nil
}

// ErrorFrame builds an error response, truncating the message to fit.
func ErrorFrame(id uint32, msg string) Frame {
	if len(msg) > MaxErrorLen {
		msg = msg[:MaxErrorLen]
	}
	return Frame{Type: TypeError, ID: id, Payload: []byte(msg)}
}
