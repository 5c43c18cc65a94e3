package redisstore

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/redisnum"
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

	// A GET with store.Op.WithExpiry is followed by a PTTL of its key, whose reply completes
	// the call (the GET's reply comes first, through getPart).
	withExpiry bool
	sentAt     int64 // unix ms before the request was queued: the base PTTL counts from
	expireAt   int64 // from PTTL: 0 none, -1 unknown

	hash  uint64 // of the key
	epoch uint64 // a GET's: the key's write epoch when it was sent (coalesce.go)
}

// getPart receives the GET reply of a call that waits for a PTTL after it.
type getPart struct{ c *loopCall }

// Complete implements upstream.Pending.
func (g getPart) Complete(reply []byte, err error) { g.c.setReply(reply, err) }

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
	c, joined := s.loopPipeFor(loop).start(key, &op)
	if joined {
		return sharedNotifyingCall{c}
	}
	return c
}

// start queues op on the connection and returns its call, or the call of the GET of key
// already in flight that a GET joins (joined).
func (p *loopPipe) start(key []byte, op *store.Op) (c *loopCall, joined bool) {
	h := xxhash.Sum64(key)
	if op.Kind == store.Get {
		if c := p.gets[string(key)]; c != nil && !op.NoShare && (c.withExpiry || !op.WithExpiry) && c.epoch == p.s.writeEpoch(h) {
			return c, true
		}
	}
	c = &loopCall{p: p, callOp: callOp{kind: op.Kind, cond: op.Cond, getOld: op.ReturnOld}, hash: h}
	c.withExpiry = op.Kind == store.Get && op.WithExpiry
	if op.Kind == store.Get {
		c.epoch = p.s.writeEpoch(h)
	} else {
		p.s.wrote(h) // and again when it completes
	}
	if p.s.closed.Load() {
		c.done, c.err = true, store.ErrClosed
		return c, false
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
	if c.withExpiry {
		c.sentAt = time.Now().UnixMilli()
		*buf = appendCommand(*buf, "PTTL", key)
		p.up.Push(getPart{c}, store.ErrClosed)
	}
	p.up.Push(c, store.ErrClosed)
	return c, false
}

// setReply keeps the reply to the call's command (for a GET with expiry, the first of two).
func (c *loopCall) setReply(reply []byte, err error) {
	if err == nil {
		typ, val := decodeReply(reply)
		if typ == '$' || typ == '-' { // the reply aliases the read buffer; OK and integers are not kept
			val = append([]byte(nil), val...)
		} else {
			val = nil
		}
		c.typ, c.val = typ, val
	}
	c.err = err
}

// Complete implements upstream.Pending: the call's reply, or for a GET with expiry the PTTL's.
func (c *loopCall) Complete(reply []byte, err error) {
	if c.kind == store.Get && c.p.gets[c.key] == c {
		delete(c.p.gets, c.key)
	}
	if c.kind != store.Get {
		c.p.s.wrote(c.hash)
	}
	if !c.withExpiry {
		c.setReply(reply, err)
	} else {
		c.expireAt = -1
		if err == nil {
			if typ, val := decodeReply(reply); typ == ':' {
				if ms, ok := redisnum.ParseInt(val); ok {
					c.expireAt = expireFromPTTL(c.sentAt, ms)
				}
			}
		} else if c.err == nil {
			c.err = err
		}
	}
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
	res, err := c.result(c.p.s, c.typ, c.val, c.err)
	if c.withExpiry && res.Found {
		res.ExpireAt = c.expireAt
	}
	return res, err
}

// decodeReply returns the type and payload of one whole reply, as upstream.ReplyLen framed it:
// val aliases reply; a nil bulk or array is typ '_'; an array (which GET and SET never return)
// is typ '*' without payload.
func decodeReply(reply []byte) (typ byte, val []byte) {
	line, rest, _ := bytes.Cut(reply, []byte("\r\n"))
	switch typ = line[0]; typ {
	case '$', '*':
		if len(line) > 1 && line[1] == '-' {
			return '_', nil
		}
		if typ == '*' {
			return '*', nil
		}
		return '$', rest[:len(rest)-2]
	case '_':
		return '_', nil
	}
	return typ, line[1:]
}
