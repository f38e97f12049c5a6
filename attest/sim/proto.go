package sim

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
)

// PortName is the virtio-serial port the simulated secure processor
// listens on (QEMU: -device virtserialport,name=org.sealroot.sim-tee).
const PortName = "org.sealroot.sim-tee"

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

	typeReportRequest  = 1
	typeReportResponse = 2
	typeError          = 3

	requestPayloadSize = 64 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// frame is one decoded frame.
type frame struct {
	typ     byte
	id      uint32
	payload []byte
}

// errMalformed marks bytes that are not a valid frame; the stream can be
// resynchronised past them.
var errMalformed = errors.New("malformed frame")

// malformedError says why bytes starting with the magic are not a frame.
type malformedError struct {
	reason string
}

func (e *malformedError) Error() string { return "malformed frame: " + e.reason }
func (e *malformedError) Unwrap() error { return errMalformed }

// encodeFrame serializes a frame. It panics on an oversized payload, which
// only a programming error can produce.
func encodeFrame(f frame) []byte {
	if len(f.payload) > MaxPayload {
		panic(fmt.Sprintf("sim: frame payload of %d bytes", len(f.payload)))
	}
	b := make([]byte, headerSize+len(f.payload)+trailerSize)
	copy(b, frameMagic)
	b[4] = frameVersion
	b[5] = f.typ
	binary.BigEndian.PutUint32(b[8:], f.id)
	binary.BigEndian.PutUint32(b[12:], uint32(len(f.payload)))
	copy(b[headerSize:], f.payload)
	n := headerSize + len(f.payload)
	binary.BigEndian.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

// readFrame reads the next frame from r. It first skips any bytes before a
// magic, returning how many; when it has skipped bytes and has no more at
// hand it returns them as a *malformedError instead of waiting, so that a
// peer learns at once that it sent garbage. A malformed frame returns a
// *malformedError after consuming one byte, so that the next call
// resynchronises. Other errors are the stream's (io.EOF between frames,
// io.ErrUnexpectedEOF inside one).
func readFrame(r *bufio.Reader) (f frame, skipped int, err error) {
	for {
		if n := r.Buffered(); skipped > 0 && n < len(frameMagic) {
			if b, _ := r.Peek(n); !strings.HasPrefix(frameMagic, string(b)) {
				r.Discard(1) // cannot be the start of a magic
				skipped++
				continue
			}
			return f, skipped, &malformedError{reason: fmt.Sprintf("skipped %d bytes that are not a frame", skipped)}
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
	bad := func(reason string) (frame, int, error) {
		r.Discard(1)
		return frame{}, skipped, &malformedError{reason: reason}
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
	f = frame{typ: hdr[5], id: id, payload: append([]byte(nil), whole[headerSize:headerSize+int(n)]...)}
	r.Discard(total)
	return f, skipped, nil
}

// newFrameReader returns a reader whose buffer holds the largest frame.
func newFrameReader(r io.Reader) *bufio.Reader {
	return bufio.NewReaderSize(r, headerSize+MaxPayload+trailerSize)
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// encodeRequest builds a report request payload.
func encodeRequest(reportData [64]byte, vmpl uint32) []byte {
	p := make([]byte, requestPayloadSize)
	copy(p, reportData[:])
	binary.BigEndian.PutUint32(p[64:], vmpl)
	return p
}

// decodeRequest parses a report request payload.
func decodeRequest(p []byte) (reportData [64]byte, vmpl uint32, err error) {
	if len(p) != requestPayloadSize {
		return reportData, 0, fmt.Errorf("report request payload is %d bytes, want %d", len(p), requestPayloadSize)
	}
	copy(reportData[:], p[:64])
	return reportData, binary.BigEndian.Uint32(p[64:]), nil
}

// encodeResponse builds a report response payload.
func encodeResponse(report, certTable []byte) []byte {
	p := make([]byte, 4, 4+len(report)+len(certTable))
	binary.BigEndian.PutUint32(p, uint32(len(report)))
	p = append(p, report...)
	return append(p, certTable...)
}

// decodeResponse parses a report response payload.
func decodeResponse(p []byte) (report, certTable []byte, err error) {
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

// errorFrame builds an error response, truncating the message to fit.
func errorFrame(id uint32, msg string) frame {
	if len(msg) > MaxErrorLen {
		msg = msg[:MaxErrorLen]
	}
	return frame{typ: typeError, id: id, payload: []byte(msg)}
}
