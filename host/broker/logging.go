package broker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
)

// JSONLogger is the logger `sealroot broker` writes to stderr: JSON lines,
// every level (Run drops what --log-level does not want). The conventions
// of every host log are in docs/design.md ("Logging").
func JSONLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logger returns o.Logger, or a logger that discards (never slog's global
// default) when it is nil.
func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// parseLogLevel reads --log-level.
func parseLogLevel(s string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("--log-level %q: want debug, info, warn or error", s)
	}
	return level, nil
}

// levelGate passes on the records at or above min to h: it applies
// --log-level to whatever handler the caller gave.
type levelGate struct {
	h   slog.Handler
	min slog.Level
}

func (g levelGate) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= g.min && g.h.Enabled(ctx, l)
}

func (g levelGate) Handle(ctx context.Context, r slog.Record) error { return g.h.Handle(ctx, r) }

func (g levelGate) WithAttrs(as []slog.Attr) slog.Handler {
	return levelGate{h: g.h.WithAttrs(as), min: g.min}
}

func (g levelGate) WithGroup(name string) slog.Handler {
	return levelGate{h: g.h.WithGroup(name), min: g.min}
}
