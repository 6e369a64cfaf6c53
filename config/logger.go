package config

import (
	"io"
	"log/slog"
)

// NewLogger returns the JSON logger both programs write to stderr, at the
// LOG_LEVEL setting (info when it is not a level slog knows).
func NewLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l, ReplaceAttr: durationsAsText}))
}

// durationsAsText writes durations as Go prints them ("10s", "1.5ms"):
// slog's JSON handler would write nanoseconds, which nobody reads at a
// glance.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}
