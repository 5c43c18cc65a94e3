package nearcache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/vela-cache/vela/redisnum"
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

	scratch []byte // a key too long for the read buffer (the tracker's goroutine only)
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
		if br.Buffered() == 0 { // the next read may wait on the socket
			_ = nc.SetReadDeadline(time.Now().Add(wait))
		}
		err := t.readFrame(br)
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
	}
}

// readFrame reads one frame and applies it: an invalidation push, or anything else (the reply to
// a PING), which is read and ignored. Every write to Redis brings one invalidation back, so its
// path allocates nothing: the key is hashed where it lies in the read buffer.
func (t *Tracker) readFrame(br *bufio.Reader) error {
	first, err := br.Peek(1)
	if err != nil {
		return err
	}
	if first[0] != '>' {
		_, err := resp.ReadReply(br)
		return err
	}
	n, err := readLen(br, '>')
	if err != nil {
		return err
	}
	if n < 2 {
		return t.skip(br, n)
	}
	name, err := t.readBulk(br)
	if err != nil {
		return err
	}
	if !bytes.Equal(name, []byte("invalidate")) {
		return t.skip(br, n-1)
	}
	if b, err := br.Peek(1); err != nil {
		return err
	} else if b[0] == '_' { // a null: FLUSHALL or FLUSHDB
		if _, err := resp.ReadReply(br); err != nil {
			return err
		}
		t.c.Flush()
		return t.skip(br, n-2)
	}
	keys, err := readLen(br, '*')
	if err != nil {
		return err
	}
	if keys < 0 { // *-1, as RESP2 would say null
		t.c.Flush()
	}
	for range keys {
		key, err := t.readBulk(br)
		if err != nil {
			return err
		}
		t.c.Invalidate(key)
	}
	return t.skip(br, n-2)
}

// readLen reads an aggregate or bulk header of type typ and returns its length (-1: null).
func readLen(br *bufio.Reader, typ byte) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 4 || line[0] != typ || line[len(line)-2] != '\r' {
		return 0, resp.ErrBadReply
	}
	n, ok := redisnum.ParseInt(line[1 : len(line)-2])
	if !ok || n < -1 || n > maxKeyLen {
		return 0, resp.ErrBadReply
	}
	return int(n), nil
}

// maxKeyLen bounds a key an invalidation may name (Redis's own bound on a string).
const maxKeyLen = 512 << 20

// readBulk reads a bulk string. The result aliases the read buffer (or the tracker's scratch
// buffer, for a string longer than the read buffer) and is valid until the next read.
func (t *Tracker) readBulk(br *bufio.Reader) ([]byte, error) {
	n, err := readLen(br, '$')
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, resp.ErrBadReply
	}
	var b []byte
	if n+2 <= br.Size() {
		if b, err = br.Peek(n + 2); err != nil {
			return nil, err
		}
		_, _ = br.Discard(n + 2)
	} else {
		t.scratch = slices.Grow(t.scratch[:0], n+2)[:n+2]
		if _, err := io.ReadFull(br, t.scratch); err != nil {
			return nil, err
		}
		b = t.scratch
	}
	if b[n] != '\r' || b[n+1] != '\n' {
		return nil, resp.ErrBadReply
	}
	return b[:n], nil
}

// skip reads and drops n elements.
func (t *Tracker) skip(br *bufio.Reader, n int) error {
	for range n {
		if _, err := resp.ReadReply(br); err != nil {
			return err
		}
	}
	return nil
}

// text is the payload of a string reply, whichever field holds it.
func text(r resp.Reply) string {
	if r.Bytes != nil {
		return string(r.Bytes)
	}
	return r.Str
}
