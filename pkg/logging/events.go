package logging

import (
	"context"
	"log/slog"
	"strings"
)

// Events returns a handler that passes every record to inner and, for
// WARN and ERROR records, also calls emit with the level ("WARN",
// "ERROR") and the record as one line: its message and attributes as
// key=value (AMP's vended logs take a workspace's WARN and ERROR events).
func Events(inner slog.Handler, emit func(level, line string)) slog.Handler {
	return &eventsHandler{inner: inner, emit: emit}
}

type eventsHandler struct {
	inner slog.Handler
	emit  func(level, line string)
	attrs []slog.Attr
	group string // the attributes' key prefix, "g." for WithGroup("g")
}

func (h *eventsHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.inner.Enabled(ctx, l)
}

func (h *eventsHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(r.Message)
		add := func(a slog.Attr) bool {
			b.WriteString(" ")
			b.WriteString(h.group)
			b.WriteString(a.Key)
			b.WriteString("=")
			b.WriteString(a.Value.String())
			return true
		}
		for _, a := range h.attrs {
			b.WriteString(" ")
			b.WriteString(a.Key)
			b.WriteString("=")
			b.WriteString(a.Value.String())
		}
		r.Attrs(add)
		lvl := "WARN"
		if r.Level >= slog.LevelError {
			lvl = "ERROR"
		}
		h.emit(lvl, b.String())
	}
	if h.inner.Enabled(ctx, r.Level) {
		return h.inner.Handle(ctx, r)
	}
	return nil
}

func (h *eventsHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	all := append([]slog.Attr(nil), h.attrs...)
	for _, a := range attrs {
		all = append(all, slog.Attr{Key: h.group + a.Key, Value: a.Value})
	}
	return &eventsHandler{inner: h.inner.WithAttrs(attrs), emit: h.emit, attrs: all, group: h.group}
}

func (h *eventsHandler) WithGroup(name string) slog.Handler {
	return &eventsHandler{inner: h.inner.WithGroup(name), emit: h.emit, attrs: h.attrs, group: h.group + name + "."}
}
