package nearcache

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/vela-cache/vela/resp"
)

// TrackerConfig says how a Tracker reaches Redis.
type TrackerConfig struct {
	// Dial opens a connection to Redis, authenticated and with the database selected.
	Dial func() (net.Conn, error)
	// Timeout bounds the set-up of a connection, and how long Redis may leave a PING
	// unanswered before the channel counts as lost.
	Timeout time.Duration
	// Ping is how long the channel may stay silent before the tracker checks it with a PING
	// (default 1s). A channel that died without a word is noticed within Ping + Timeout.
	Ping time.Duration
	// Log receives connection losses and recoveries (nil: none).
	Log *slog.Logger
}

// Tracker keeps a Cache coherent with one Redis through client tracking in broadcasting mode:
// a connection of its own, in RESP3, with CLIENT TRACKING ON BCAST, on which Redis pushes the
// name of every key that changes (whoever changed it, expiry and eviction included) and a null
// on FLUSHALL. The cache is live only while that connection is: when it drops, the cache is
// suspended (and emptied) until a new connection is tracking again.
type Tracker struct {
	c      *Cache
	cfg    TrackerConfig
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	nc net.Conn // the current connection, closed by Close to end a blocked read
}

// Track starts a tracker for c. It owns one goroutine until Close.
func Track(c *Cache, cfg TrackerConfig) *Tracker {
	if cfg.Ping <= 0 {
		cfg.Ping = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Tracker{c: c, cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go t.run(ctx)
	return t
}

// Close stops the tracker, suspends the cache and waits for the goroutine to end.
func (t *Tracker) Close() {
	t.cancel()
	t.mu.Lock()
	if t.nc != nil {
		_ = t.nc.Close()
	}
	t.mu.Unlock()
	<-t.done
	t.c.Suspend()
}

// run connects, tracks until the connection fails, and starts again after a pause that grows
// from 50 ms to 2 s while connections keep failing.
func (t *Tracker) run(ctx context.Context) {
	defer close(t.done)
	pause := 50 * time.Millisecond
	wasUp := false
	for ctx.Err() == nil {
		err := t.session(ctx)
		if ctx.Err() != nil {
			return
		}
		t.c.Suspend()
		if err != nil && (wasUp || pause == 50*time.Millisecond) {
			t.cfg.Log.Warn("near cache: invalidation channel to Redis lost; the near cache is off until it is back", "err", err)
		}
		wasUp = errors.Is(err, errAfterUp)
		if wasUp {
			pause = 50 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// errAfterUp marks a failure of a channel that had been tracking.
var errAfterUp = errors.New("tracking connection failed")

// session runs one connection: set up tracking, resume the cache, then apply what Redis pushes.
// It returns when the connection fails or ctx ends.
func (t *Tracker) session(ctx context.Context) error {
	nc, err := t.cfg.Dial()
	if err != nil {
		return err
	}
	t.mu.Lock()
	if ctx.Err() != nil {
		t.mu.Unlock()
		_ = nc.Close()
		return nil
	}
	t.nc = nc
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.nc = nil
		t.mu.Unlock()
		_ = nc.Close()
	}()

	br := bufio.NewReader(nc)
	_ = nc.SetDeadline(time.Now().Add(t.cfg.Timeout))
	var setup []byte
	for _, cmd := range [][]string{
		{"HELLO", "3"},
		{"CLIENT", "SETNAME", "vela-near-cache-inv"},
		{"CLIENT", "TRACKING", "ON", "BCAST"},
	} {
		args := make([][]byte, len(cmd))
		for i, a := range cmd {
			args[i] = []byte(a)
		}
		setup = resp.AppendCommand(setup, args...)
	}
	if _, err := nc.Write(setup); err != nil {
		return err
	}
	for _, step := range []string{"HELLO 3", "CLIENT SETNAME", "CLIENT TRACKING ON BCAST"} {
		r, err := resp.ReadReply(br)
		if err != nil {
			return err
		}
		if r.IsError() {
			return fmt.Errorf("%s: %s", step, text(r))
		}
	}
	t.c.Resume()
	t.cfg.Log.Info("near cache: tracking Redis; the near cache is on")

	pinged := false
	for {
		wait := t.cfg.Ping
		if pinged {
			wait = t.cfg.Timeout
		}
		_ = nc.SetReadDeadline(time.Now().Add(wait))
		r, err := resp.ReadReply(br)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				// Nothing for a while: check that Redis is still there. A timeout inside a
				// reply would leave the reader mid-reply; the next read then fails to parse
				// and the connection starts over, which is safe.
				_ = nc.SetWriteDeadline(time.Now().Add(t.cfg.Timeout))
				if _, err := nc.Write(resp.AppendCommand(nil, []byte("PING"))); err != nil {
					return fmt.Errorf("%w: %w", errAfterUp, err)
				}
				pinged = true
				continue
			}
			return fmt.Errorf("%w: %w", errAfterUp, err)
		}
		pinged = false
		t.apply(r)
	}
}

// apply handles one frame: an invalidation push, or the reply to a PING.
func (t *Tracker) apply(r resp.Reply) {
	if r.Kind != resp.KindPush || len(r.Elems) < 2 || !strings.EqualFold(text(r.Elems[0]), "invalidate") {
		return
	}
	keys := r.Elems[1]
	if keys.Kind == resp.KindNil || keys.Kind == resp.KindNilArray { // FLUSHALL or FLUSHDB
		t.c.Flush()
		return
	}
	for _, k := range keys.Elems {
		if k.Bytes != nil {
			t.c.Invalidate(k.Bytes)
		} else {
			t.c.Invalidate([]byte(k.Str))
		}
	}
}

// text is the payload of a string reply, whichever field holds it.
func text(r resp.Reply) string {
	if r.Bytes != nil {
		return string(r.Bytes)
	}
	return r.Str
}
