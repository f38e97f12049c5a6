package broker

import (
	"context"
	"log/slog"
)

// Audit events.
const (
	eventKeyRelease   = "key_release"
	eventRefusal      = "refusal"
	eventAttested     = "attested"
	eventRegistration = "registration"
	eventAdmin        = "admin"
)

// auditRecord is one audit line: who asked, for which workload, what
// happened, and for a refusal which check failed and why. Reason texts come
// from verifiers and policies and name expected and found values (hashes,
// versions), never secrets.
type auditRecord struct {
	Event       string
	Dialect     string
	Client      string
	Session     string // sessionRef, not the id
	Workload    string
	TEE         string
	Resource    string
	Check       string
	Reason      string
	Measurement string
	Admin       string // how an admin authenticated
	Action      string
}

// auditor writes audit records as structured log lines with audit=true.
type auditor struct {
	log *slog.Logger
}

func (a *auditor) write(ctx context.Context, r auditRecord) {
	attrs := []slog.Attr{slog.Bool("audit", true), slog.String("event", r.Event)}
	add := func(k, v string) {
		if v != "" {
			attrs = append(attrs, slog.String(k, v))
		}
	}
	add("action", r.Action)
	add("dialect", r.Dialect)
	add("client", r.Client)
	add("session", r.Session)
	add("workload", r.Workload)
	add("tee", r.TEE)
	add("resource", r.Resource)
	add("check", r.Check)
	add("reason", r.Reason)
	add("measurement", r.Measurement)
	add("admin", r.Admin)
	level := slog.LevelInfo
	if r.Event == eventRefusal {
		level = slog.LevelWarn
	}
	a.log.LogAttrs(ctx, level, "audit", attrs...)
}
