package event

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// HandshakeVersion names the event channel's protocol in its handshake.
//
// On a vsock stream the guest cannot trust a successful connect: libkrun
// answers the guest's connect itself and only then tries the host's Unix
// socket, so a connect succeeds even when nobody listens. The guest
// therefore opens a vsock event channel with a hello line and uses it only
// after the host's ack line arrives (within a short deadline); otherwise
// its events stay on the console. The virtio-serial port needs no
// handshake: the port reports whether a host is connected.
//
//	guest -> host: {"kind":"hello","msg":"sealroot-events/1"}\n
//	host -> guest: {"kind":"ack","msg":"sealroot-events/1"}\n
//
// Then the guest sends event lines as on the virtio-serial port; the host
// sends nothing more.
const HandshakeVersion = "sealroot-events/1"

// Handshake kinds: never part of the event stream (Parse rejects them).
const (
	KindHello = "hello"
	KindAck   = "ack"
)

// maxHandshakeLine bounds a handshake line.
const maxHandshakeLine = 256

func handshakeLine(kind string) []byte {
	b, _ := json.Marshal(struct {
		Kind string `json:"kind"`
		Msg  string `json:"msg"`
	}{kind, HandshakeVersion})
	return append(b, '\n')
}

// readHandshake reads one line byte by byte (so nothing after it is
// consumed) and checks it is a handshake of kind.
func readHandshake(r io.Reader, kind string) error {
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := r.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			if len(line) >= maxHandshakeLine {
				return fmt.Errorf("event channel handshake: %s line longer than %d bytes", kind, maxHandshakeLine)
			}
			line = append(line, b[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("event channel handshake: closed before the %s line", kind)
			}
			return fmt.Errorf("event channel handshake: reading the %s line: %w", kind, err)
		}
	}
	var m struct {
		Kind string `json:"kind"`
		Msg  string `json:"msg"`
	}
	if err := json.Unmarshal(line, &m); err != nil {
		return fmt.Errorf("event channel handshake: %s line is not JSON: %w", kind, err)
	}
	if m.Kind != kind || m.Msg != HandshakeVersion {
		return fmt.Errorf("event channel handshake: got kind %q version %q, want %q %q", m.Kind, m.Msg, kind, HandshakeVersion)
	}
	return nil
}

// ClientHandshake is the guest's side: send hello, wait for the ack. The
// caller bounds it with a deadline on the connection.
func ClientHandshake(rw io.ReadWriter) error {
	if _, err := rw.Write(handshakeLine(KindHello)); err != nil {
		return fmt.Errorf("event channel handshake: sending hello: %w", err)
	}
	return readHandshake(rw, KindAck)
}

// ServeHandshake is the host's side on a vsock event channel: read the
// guest's hello from r, answer with the ack on w. The event lines follow on
// r (a bufio.Reader wrapping the connection is fine: the hello line is
// consumed exactly).
func ServeHandshake(r *bufio.Reader, w io.Writer) error {
	if err := readHandshake(r, KindHello); err != nil {
		return err
	}
	if _, err := w.Write(handshakeLine(KindAck)); err != nil {
		return fmt.Errorf("event channel handshake: sending ack: %w", err)
	}
	return nil
}
