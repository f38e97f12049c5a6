package event

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
)

func TestHandshakeBothSides(t *testing.T) {
	g, h := net.Pipe()
	defer g.Close()
	defer h.Close()
	hostErr := make(chan error, 1)
	br := bufio.NewReader(h)
	go func() {
		err := ServeHandshake(br, h)
		if err == nil {
			// The first event after the handshake must still be readable.
			var line string
			line, err = br.ReadString('\n')
			if err == nil {
				_, err = Parse([]byte(line))
			}
		}
		hostErr <- err
	}()
	if err := ClientHandshake(g); err != nil {
		t.Fatal(err)
	}
	g.Write(Event{Kind: KindPhase, Phase: "mounts"}.Marshal())
	if err := <-hostErr; err != nil {
		t.Fatal(err)
	}
}

type rw struct {
	io.Reader
	io.Writer
}

func TestClientHandshakeRejects(t *testing.T) {
	for name, reply := range map[string]string{
		"closed":        "",
		"no newline":    `{"kind":"ack","msg":"sealroot-events/1"}`,
		"wrong kind":    `{"kind":"hello","msg":"sealroot-events/1"}` + "\n",
		"wrong version": `{"kind":"ack","msg":"sealroot-events/2"}` + "\n",
		"not json":      "OK\n",
		"too long":      strings.Repeat("x", 300) + "\n",
	} {
		var sent bytes.Buffer
		err := ClientHandshake(rw{strings.NewReader(reply), &sent})
		if err == nil {
			t.Errorf("%s: accepted %q", name, reply)
			continue
		}
		if !strings.Contains(err.Error(), "handshake") {
			t.Errorf("%s: error %q does not name the handshake", name, err)
		}
		if !strings.HasPrefix(sent.String(), `{"kind":"hello"`) {
			t.Errorf("%s: sent %q, want a hello line", name, sent.String())
		}
	}
}

func TestServeHandshakeRejectsAnEventFirst(t *testing.T) {
	var out bytes.Buffer
	err := ServeHandshake(bufio.NewReader(bytes.NewReader(Event{Kind: KindPhase}.Marshal())), &out)
	if err == nil || out.Len() != 0 {
		t.Fatalf("err %v, sent %q", err, out.String())
	}
}

func TestHandshakeKindsAreNotEvents(t *testing.T) {
	for _, k := range []string{KindHello, KindAck} {
		if _, err := Parse(handshakeLine(k)); err == nil {
			t.Errorf("Parse accepted a %s line as an event", k)
		}
	}
}

// FuzzClientHandshake: whatever the host answers, the guest's side returns
// (no panic), reads at most one bounded line, and accepts only a line that
// decodes to the ack of this version.
func FuzzClientHandshake(f *testing.F) {
	f.Add(handshakeLine(KindAck))
	f.Add([]byte("{}\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, reply []byte) {
		r := bytes.NewReader(reply)
		err := ClientHandshake(rw{r, io.Discard})
		consumed := reply[:len(reply)-r.Len()]
		if len(consumed) > maxHandshakeLine+1 {
			t.Fatalf("read %d bytes, more than one handshake line", len(consumed))
		}
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(consumed, &m) != nil || m["kind"] != KindAck || m["msg"] != HandshakeVersion {
			t.Fatalf("accepted %q", consumed)
		}
	})
}
