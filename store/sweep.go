package store

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// SweepLoop runs a Sweeper periodically in its own goroutine until Shutdown.
type SweepLoop struct {
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

// StartSweep sweeps s every interval; onSwept (may be nil) receives each sweep's count and how
// long it took. A round is skipped while hold (may be nil) reports true: a node whose clients
// are paused (CLIENT PAUSE) keeps its keyspace as it is, as Redis stops its active expiry then.
func StartSweep(s Sweeper, interval time.Duration, hold func() bool, onSwept func(n int, took time.Duration), log *slog.Logger) *SweepLoop {
	ctx, cancel := context.WithCancel(context.Background())
	l := &SweepLoop{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(l.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if hold != nil && hold() {
				continue
			}
			start := time.Now()
			n, err := s.Sweep(ctx)
			if err != nil && ctx.Err() == nil {
				log.Warn("ttl sweep failed", "err", err)
			}
			if onSwept != nil {
				onSwept(n, time.Since(start))
			}
			if n > 0 {
				log.Debug("ttl sweep", "removed", n)
			}
		}
	}()
	return l
}

// Shutdown stops the loop, interrupting a sweep in progress, and waits for it to end or for ctx.
// It is idempotent.
func (l *SweepLoop) Shutdown(ctx context.Context) error {
	l.once.Do(l.cancel)
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
