// Package runtimeev serves runtime evidence to a workload that opted in
// through its disk config (runtime_evidence), after the seal phase took the
// TEE's own interfaces away (docs/threat-model.md, "Runtime evidence").
//
// The workload connects to a Unix socket (SocketPath), writes up to
// MaxUserData bytes of its own data and shuts down its write side; the init
// answers one JSON line, Response, and closes. The report's report_data is
// kbs.RuntimeReportData(data): domain-separated from every boot handshake,
// so no broker takes it for a boot, whatever data the workload chose.
package runtimeev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/sealroot/sealroot/attest"
	"github.com/sealroot/sealroot/wire/kbs"
)

// SocketPath is where the init listens.
const SocketPath = "/run/sealroot/evidence.sock"

// MaxUserData bounds a request.
const MaxUserData = 1024

// Response is the init's answer. Report and Certs are base64 in JSON.
type Response struct {
	TEE        string `json:"tee,omitempty"`
	Report     []byte `json:"report,omitempty"`
	Certs      []byte `json:"certs,omitempty"`
	ReportData []byte `json:"report_data,omitempty"`
	Error      string `json:"error,omitempty"`
}

// Serve answers requests on l with evidence from att, one at a time, until
// l is closed. logf receives one line per request (never the data).
func Serve(l net.Listener, att attest.Attester, logf func(string, ...any)) error {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		serveOne(c, att, logf)
	}
}

func serveOne(c net.Conn, att attest.Attester, logf func(string, ...any)) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	data, err := io.ReadAll(io.LimitReader(c, MaxUserData+1))
	var r Response
	switch {
	case err != nil:
		r.Error = fmt.Sprintf("reading the request: %v", err)
	case len(data) > MaxUserData:
		r.Error = fmt.Sprintf("request of more than %d bytes", MaxUserData)
	default:
		rd := kbs.RuntimeReportData(data)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		ev, err := att.Attest(ctx, rd)
		cancel()
		if err != nil {
			r.Error = fmt.Sprintf("runtime evidence: %v", err)
		} else {
			r = Response{TEE: ev.TEE, Report: ev.Report, Certs: ev.Certs, ReportData: rd[:]}
		}
	}
	if r.Error != "" {
		logf("runtime evidence refused: %s", r.Error)
	} else {
		logf("runtime evidence: %s report over %d bytes of workload data", r.TEE, len(data))
	}
	if err := json.NewEncoder(c).Encode(r); err != nil {
		logf("runtime evidence: replying: %v", err)
	}
}

// Request asks the init at path for a runtime report over data.
func Request(ctx context.Context, path string, data []byte) (*Response, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write(data); err != nil {
		return nil, err
	}
	if err := c.(*net.UnixConn).CloseWrite(); err != nil {
		return nil, fmt.Errorf("runtime evidence: ending the request: %w", err)
	}
	var r Response
	if err := json.NewDecoder(io.LimitReader(c, 1<<20)).Decode(&r); err != nil {
		return nil, fmt.Errorf("reading the runtime evidence response: %w", err)
	}
	if r.Error != "" {
		return nil, errors.New(r.Error)
	}
	return &r, nil
}
