package redisstore

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// clientLogger passes go-redis's own log lines (failed dials while Redis is down, and the like)
// to slog instead of stderr: one a warning every logEvery at most, the rest at debug level, so
// that an outage is reported without flooding the log.
type clientLogger struct {
	log  *slog.Logger
	last atomic.Int64 // unix ns of the last line logged as a warning
}

// logEvery is the least time between two go-redis lines logged as warnings.
const logEvery = 10 * time.Second

// Printf implements go-redis's internal.Logging.
func (l *clientLogger) Printf(_ context.Context, format string, v ...any) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last >= int64(logEvery) && l.last.CompareAndSwap(last, now) {
		l.log.Warn("redis store: go-redis", "msg", fmt.Sprintf(format, v...))
		return
	}
	l.log.Debug("redis store: go-redis", "msg", fmt.Sprintf(format, v...))
}
