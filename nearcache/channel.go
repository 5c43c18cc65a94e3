package nearcache

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/resp"
)

// channel is the tracking connection to one Redis master, reconnected whenever it fails, by one
// goroutine.
type channel struct {
	t      *Tracker
	addr   string
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	nc net.Conn // the current connection, closed by stop to end a blocked read

	// up and removed are guarded by the tracker's mu.
	up      bool
	removed bool

	scratch []byte // a key too long for the read buffer (the channel's goroutine only)
}

// stop ends the channel's goroutine and waits for it.
func (ch *channel) stop() {
	ch.cancel()
	ch.mu.Lock()
	if ch.nc != nil {
		_ = ch.nc.Close()
	}
	ch.mu.Unlock()
	<-ch.done
}

// run connects, tracks until the connection fails, and starts again after a pause that grows
// from 50 ms to 2 s while connections keep failing.
func (ch *channel) run(ctx context.Context) {
	defer close(ch.done)
	pause := 50 * time.Millisecond
	wasUp := false
	for ctx.Err() == nil {
		err := ch.session(ctx)
		if ctx.Err() != nil {
			return
		}
		ch.t.setUp(ch, false)
		if err != nil && (wasUp || pause == 50*time.Millisecond) {
			ch.t.cfg.Log.Warn("near cache: invalidation channel to Redis lost; the near cache is off until it is back",
				"redis", ch.addr, "err", err)
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

// session runs one connection: set up tracking, report the channel up, then apply what Redis
// pushes. It returns when the connection fails or ctx ends.
func (ch *channel) session(ctx context.Context) error {
	nc, err := ch.t.cfg.Dial(ch.addr)
	if err != nil {
		return err
	}
	ch.mu.Lock()
	if ctx.Err() != nil {
		ch.mu.Unlock()
		_ = nc.Close()
		return nil
	}
	ch.nc = nc
	ch.mu.Unlock()
	defer func() {
		ch.mu.Lock()
		ch.nc = nil
		ch.mu.Unlock()
		_ = nc.Close()
	}()

	cr := &countingReader{r: nc}
	br := bufio.NewReader(cr)
	_ = nc.SetDeadline(time.Now().Add(ch.t.cfg.Timeout))
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
			return fmt.Errorf("%s: %s", step, r.Text())
		}
	}
	ch.t.setUp(ch, true)

	pinged := false
	var deadlineSet time.Time
	for frames := 0; ; frames++ {
		wait := ch.t.cfg.Ping
		if pinged {
			wait = ch.t.cfg.Timeout
		}
		// The deadline is set before a read that may wait on the socket, and moved on while
		// frames keep coming (a busy channel may never empty the buffer), checking the clock
		// every 16 frames.
		if br.Buffered() == 0 || (frames%16 == 0 && time.Since(deadlineSet) > wait/4) {
			deadlineSet = time.Now()
			_ = nc.SetReadDeadline(deadlineSet.Add(wait))
		}
		before := cr.n - int64(br.Buffered()) // bytes parsed so far
		err := ch.readFrame(br)
		if err != nil {
			var ne net.Error
			// Nothing for a while: check that Redis is still there. A timeout that cut a
			// frame in two ends the connection instead: its rest would not parse, and the
			// keys it named would go unseen.
			if errors.As(err, &ne) && ne.Timeout() && !pinged && cr.n-int64(br.Buffered()) == before {
				_ = nc.SetWriteDeadline(time.Now().Add(ch.t.cfg.Timeout))
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
func (ch *channel) readFrame(br *bufio.Reader) error {
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
		return ch.skip(br, n)
	}
	name, err := ch.readBulk(br)
	if err != nil {
		return err
	}
	if !bytes.Equal(name, []byte("invalidate")) {
		return ch.skip(br, n-1)
	}
	if b, err := br.Peek(1); err != nil {
		return err
	} else if b[0] == '_' { // a null: FLUSHALL or FLUSHDB
		if _, err := resp.ReadReply(br); err != nil {
			return err
		}
		ch.t.c.Flush()
		return ch.skip(br, n-2)
	}
	keys, err := readLen(br, '*')
	if err != nil {
		return err
	}
	if keys < 0 { // *-1, as RESP2 would say null
		ch.t.c.Flush()
	}
	for range keys {
		key, err := ch.readBulk(br)
		if err != nil {
			return err
		}
		ch.t.c.Invalidate(key)
	}
	return ch.skip(br, n-2)
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
func (ch *channel) readBulk(br *bufio.Reader) ([]byte, error) {
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
		ch.scratch = slices.Grow(ch.scratch[:0], n+2)[:n+2]
		if _, err := io.ReadFull(br, ch.scratch); err != nil {
			return nil, err
		}
		b = ch.scratch
	}
	if b[n] != '\r' || b[n+1] != '\n' {
		return nil, resp.ErrBadReply
	}
	return b[:n], nil
}

// skip reads and drops n elements.
func (ch *channel) skip(br *bufio.Reader, n int) error {
	for range n {
		if _, err := resp.ReadReply(br); err != nil {
			return err
		}
	}
	return nil
}

// countingReader counts the bytes read through it, so the channel can tell a timeout between
// frames from one inside a frame.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
