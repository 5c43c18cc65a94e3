package redisstore

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// TestClientLoggerLimitsWarnings: go-redis's lines reach slog, one a warning per logEvery, the
// others at debug level.
func TestClientLoggerLimitsWarnings(t *testing.T) {
	var buf bytes.Buffer
	l := &clientLogger{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for range 3 {
		l.Printf(context.Background(), "failed to dial %s", "127.0.0.1:1")
	}
	out := buf.String()
	if strings.Count(out, "level=WARN") != 1 || strings.Count(out, "level=DEBUG") != 2 ||
		!strings.Contains(out, "failed to dial 127.0.0.1:1") {
		t.Fatalf("logged:\n%s", out)
	}
}
