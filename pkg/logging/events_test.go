package logging

import (
	"bytes"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

// WARN and ERROR records reach emit as one line, attributes and groups
// included; lower ones only the inner handler.
func TestEventsTakesWarningsAndErrors(t *testing.T) {
	var inner bytes.Buffer
	var got []string
	l := slog.New(Events(slog.NewTextHandler(&inner, &slog.HandlerOptions{Level: slog.LevelDebug}), func(level, line string) {
		got = append(got, level+": "+line)
	})).With("workspace", "ws-1")
	l.Info("started")
	l.Warn("Evaluating rule failed", "err", "boom")
	l.WithGroup("rule").With("name", "r").Error("failed", "n", 2)
	require.Equal(t, []string{
		"WARN: Evaluating rule failed workspace=ws-1 err=boom",
		"ERROR: failed workspace=ws-1 rule.name=r rule.n=2",
	}, got)
	require.Contains(t, inner.String(), "msg=started")
	require.Contains(t, inner.String(), "rule.name=r")
}
