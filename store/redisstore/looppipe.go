package redisstore

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/upstream"
)

// loopPipe is pipe's counterpart for one event loop: a Redis connection that the loop itself
// drives (package upstream), the way twemproxy drives its server connection. It is touched only
// on the loop's goroutine. Concurrent GETs of one key share one call, as on pipe.
type loopPipe struct {
	s    *Store
	loop store.EventLoop // set at creation, read by any goroutine
	up   *upstream.Conn
	gets map[string]*loopCall // the newest in-flight GET of each key
}

// loopCall is a call on a loopPipe.
type loopCall struct {
	p *loopPipe
	callOp
	key    string // GET only: the coalescing map key
	done   bool
	notify []func()

	typ byte
	val []byte
	err error
}

// loopPipeFor returns the store's pipe for loop, creating it on first use. Only loop's
// goroutine creates its own pipe, so two creations cannot race for one loop.
func (s *Store) loopPipeFor(loop store.EventLoop) *loopPipe {
	if list := s.loopPipes.Load(); list != nil {
		for _, p := range *list {
			if p.loop == loop {
				return p
			}
		}
	}
	p := &loopPipe{s: s, loop: loop, gets: make(map[string]*loopCall)}
	p.up = upstream.New(upstream.Config{
		Loop:    loop,
		Dial:    s.pipe.dial,
		Timeout: s.timeout,
		Wrap: func(err error) error {
			switch {
			case err == errPipeClosed:
				return err
			case errors.Is(err, upstream.ErrNoReply):
				return fmt.Errorf("redis store: no reply from Redis within %v", s.timeout)
			}
			return fmt.Errorf("redis store: %w", err)
		},
		Tasks: &s.loopWG,
	})
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	var list []*loopPipe
	if old := s.loopPipes.Load(); old != nil {
		list = append(list, *old...)
	}
	list = append(list, p)
	s.loopPipes.Store(&list)
	return p
}

// OnLoops implements store.LoopPipeliner: a single Redis reached without TLS.
func (s *Store) OnLoops() bool { return s.pipe != nil && s.pipe.opt.TLSConfig == nil }

// StartOn implements store.LoopPipeliner.
func (s *Store) StartOn(loop store.EventLoop, key []byte, op store.Op) store.Call {
	if !s.OnLoops() {
		return nil
	}
	if op.Kind != store.Get && (op.Kind != store.Set || len(op.Tags) > 0) {
		return nil
	}
	return s.loopPipeFor(loop).start(key, &op)
}

// start queues op on the connection and returns its call.
func (p *loopPipe) start(key []byte, op *store.Op) *loopCall {
	if op.Kind == store.Get {
		if c := p.gets[string(key)]; c != nil {
			return c
		}
	}
	c := &loopCall{p: p, callOp: callOp{kind: op.Kind, cond: op.Cond, getOld: op.ReturnOld}}
	if p.s.closed.Load() {
		c.done, c.err = true, store.ErrClosed
		return c
	}
	buf := p.up.Buffer()
	if op.Kind == store.Get {
		*buf = appendCommand(*buf, "GET", key)
		c.key = string(key)
		p.gets[c.key] = c
	} else {
		*buf = appendSet(*buf, key, op)
		delete(p.gets, string(key)) // a GET started after this SET must see it
	}
	p.up.Push(c, store.ErrClosed)
	return c
}

// Complete implements upstream.Pending.
func (c *loopCall) Complete(reply []byte, err error) {
	if c.kind == store.Get && c.p.gets[c.key] == c {
		delete(c.p.gets, c.key)
	}
	if err == nil {
		var typ byte
		var val []byte
		if typ, val, _, err = parseReply(reply); err == nil {
			if typ == '$' || typ == '-' { // the reply aliases the read buffer; OK and integers are not kept
				val = append([]byte(nil), val...)
			} else {
				val = nil
			}
			c.typ, c.val = typ, val
		}
	}
	c.err = err
	c.done = true
	for i, fn := range c.notify {
		c.notify[i] = nil
		fn()
	}
	c.notify = nil
}

// Flush implements store.NotifyingCall: it writes what every caller has queued.
func (c *loopCall) Flush() { c.p.up.Flush() }

// closeLoopPipes shuts every loop pipe down and waits for their goroutines.
func (s *Store) closeLoopPipes() {
	if list := s.loopPipes.Load(); list != nil {
		for _, p := range *list {
			p.up.Shutdown(errPipeClosed, s.timeout)
		}
	}
	s.loopWG.Wait()
}

// Notify implements store.NotifyingCall.
func (c *loopCall) Notify(fn func()) bool {
	if c.done {
		return false
	}
	c.notify = append(c.notify, fn)
	return true
}

// Wait implements store.Call. It is called on the loop's goroutine once Notify has fired; should
// it be called earlier, it drives the connection itself, blocking the loop, up to the timeout.
func (c *loopCall) Wait() (store.Result, error) {
	if !c.done {
		c.p.up.Drive(func() bool { return c.done })
	}
	return c.result(c.p.s, c.typ, c.val, c.err)
}

// parseReply parses one RESP2 reply at the start of b. It returns n == 0 when b holds only part
// of it. val aliases b; a nil bulk or array is typ '_'; an array (which GET and SET never
// return) is skipped whole and reported as '*'.
func parseReply(b []byte) (typ byte, val []byte, n int, err error) {
	line, n := cutLine(b)
	if n == 0 {
		if len(b) > 64<<10 {
			return 0, nil, 0, errors.New("reply line from Redis too long")
		}
		return 0, nil, 0, nil
	}
	if len(line) == 0 {
		return 0, nil, 0, errors.New("empty reply line from Redis")
	}
	switch typ = line[0]; typ {
	case '+', '-', ':':
		return typ, line[1:], n, nil
	case '$', '*':
		size, perr := strconv.Atoi(string(line[1:]))
		if perr != nil || size > maxReplyBulk {
			return 0, nil, 0, fmt.Errorf("bad length from Redis: %q", line)
		}
		if size < 0 {
			return '_', nil, n, nil
		}
		if typ == '$' {
			if len(b) < n+size+2 {
				return 0, nil, 0, nil
			}
			if b[n+size] != '\r' || b[n+size+1] != '\n' {
				return 0, nil, 0, errors.New("malformed bulk reply from Redis")
			}
			return '$', b[n : n+size], n + size + 2, nil
		}
		for range size {
			_, _, m, err := parseReply(b[n:])
			if err != nil || m == 0 {
				return 0, nil, 0, err
			}
			n += m
		}
		return '*', nil, n, nil
	}
	return 0, nil, 0, fmt.Errorf("unexpected reply from Redis: %q", line)
}

// cutLine returns the CRLF-terminated line at the start of b, without the CRLF, and the bytes it
// took with it; n == 0 when b holds no whole line.
func cutLine(b []byte) (line []byte, n int) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' {
		return nil, 0
	}
	return b[:i-1], i + 1
}
