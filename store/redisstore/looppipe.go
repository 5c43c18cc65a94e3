package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vela-cache/vela/store"
)

// loopPipe is pipe's counterpart for one event loop: a shared Redis connection that the loop
// goroutine alone uses, the way twemproxy uses its server connection. Commands the loop runs
// queue their GETs and SETs in its write buffer; the loop writes the buffer once every ready
// client has queued its own (Flush), reads the replies when epoll reports the socket readable,
// and hands each to its caller's connection, all on its own goroutine: a batch of requests
// costs one write and one read on the Redis side and no goroutine switch.
//
// Everything below is touched only on the loop's goroutine, except the fields marked otherwise.
// Failures are bounded as in pipe: a connection that stops answering for the store's timeout,
// or fails, is closed and its calls fail at once; the next call dials again (on a goroutine,
// whose result the loop picks up).
type loopPipe struct {
	s    *Store
	loop store.EventLoop // set at creation, read by any goroutine

	nc      net.Conn // nil while disconnected
	fd      int
	dialing bool
	blocked bool        // the socket took less than it was given: wait for EPOLLOUT
	wbuf    []byte      // requests not yet written
	rbuf    []byte      // replies read, rbuf[rpos:] not yet parsed
	rpos    int         //
	calls   []*loopCall // awaiting replies, oldest first (written or in wbuf)
	gets    map[string]*loopCall
	since   time.Time // when the calls in flight last made progress
	closed  bool

	checkFn func() // p.check, built once: posted by the ticker
	readFn  func(uint32)
	stop    chan struct{} // closed by shutdown: ends the ticker (any goroutine)
}

// loopCall is a call on a loopPipe. Concurrent GETs of one key share one call.
type loopCall struct {
	p      *loopPipe
	kind   store.Kind
	cond   store.Cond
	getOld bool
	key    string // GET only: the coalescing map key
	done   bool
	notify []func()

	typ byte
	val []byte
	err error
}

// loopPipeFor returns the store's pipe for loop, creating it on first use. Only loop's
// goroutine creates its own pipe, so a racing creation cannot happen for one loop.
func (s *Store) loopPipeFor(loop store.EventLoop) *loopPipe {
	if list := s.loopPipes.Load(); list != nil {
		for _, p := range *list {
			if p.loop == loop {
				return p
			}
		}
	}
	p := &loopPipe{s: s, loop: loop, fd: -1, gets: make(map[string]*loopCall), stop: make(chan struct{})}
	p.readFn = p.readable
	p.checkFn = p.check
	s.loopMu.Lock()
	defer s.loopMu.Unlock()
	var list []*loopPipe
	if old := s.loopPipes.Load(); old != nil {
		list = append(list, *old...)
	}
	list = append(list, p)
	s.loopPipes.Store(&list)
	s.loopWG.Add(1)
	go p.tick()
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
	c := &loopCall{p: p, kind: op.Kind, cond: op.Cond, getOld: op.ReturnOld}
	if p.closed || p.s.closed.Load() {
		c.done, c.err = true, store.ErrClosed
		return c
	}
	if op.Kind == store.Get {
		p.wbuf = appendCommand(p.wbuf, "GET", key)
		c.key = string(key)
		p.gets[c.key] = c
	} else {
		p.wbuf = appendSet(p.wbuf, key, op)
		delete(p.gets, string(key)) // a GET started after this SET must see it
	}
	if len(p.calls) == 0 {
		p.since = time.Now()
	}
	p.calls = append(p.calls, c)
	if p.nc == nil && !p.dialing {
		p.dial()
	}
	return c
}

// dial connects on a goroutine and posts the result to the loop.
func (p *loopPipe) dial() {
	p.dialing = true
	p.s.loopWG.Add(1)
	go func() {
		defer p.s.loopWG.Done()
		nc, err := p.s.pipe.dial()
		if !p.loop.Post(func() { p.connected(nc, err) }) && nc != nil {
			_ = nc.Close() // the loop has stopped: nobody will use it
		}
	}()
}

// connected installs the connection a dial made, or fails the queued calls with its error.
func (p *loopPipe) connected(nc net.Conn, err error) {
	p.dialing = false
	if err == nil && p.closed {
		_ = nc.Close()
		return
	}
	if err == nil {
		err = p.watch(nc)
	}
	if err != nil {
		p.fail(fmt.Errorf("redis store: %w", err))
		return
	}
	p.since = time.Now()
	p.flush()
}

// watch registers nc's descriptor with the loop.
func (p *loopPipe) watch(nc net.Conn) error {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		_ = nc.Close()
		return errors.New("connection has no descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		_ = nc.Close()
		return err
	}
	fd := -1
	if err := raw.Control(func(d uintptr) { fd = int(d) }); err != nil {
		_ = nc.Close()
		return err
	}
	if err := p.loop.Watch(fd, p.readFn); err != nil {
		_ = nc.Close()
		return err
	}
	p.nc, p.fd, p.blocked = nc, fd, false
	return nil
}

// Flush implements store.NotifyingCall: it writes what every caller has queued.
func (c *loopCall) Flush() { c.p.flush() }

// flush writes the queued requests, as far as the socket takes them.
func (p *loopPipe) flush() {
	if p.nc == nil || p.blocked || len(p.wbuf) == 0 {
		return
	}
	for len(p.wbuf) > 0 {
		n, err := unix.Write(p.fd, p.wbuf)
		if n > 0 {
			p.wbuf = p.wbuf[:copy(p.wbuf, p.wbuf[n:])]
			continue
		}
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			p.blocked = true // EPOLLOUT resumes
			return
		}
		p.fail(fmt.Errorf("redis store: %w", err))
		return
	}
	if cap(p.wbuf) > 1<<20 {
		p.wbuf = nil // do not keep a buffer grown by one huge batch
	}
}

// readable is the loop's watch function for the connection.
func (p *loopPipe) readable(events uint32) {
	if p.nc == nil {
		return
	}
	if events&unix.EPOLLOUT != 0 && p.blocked {
		p.blocked = false
		p.flush()
	}
	if events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
		p.read()
	}
}

// read reads every reply waiting in the socket and completes their calls.
func (p *loopPipe) read() {
	for p.nc != nil {
		if len(p.rbuf) == cap(p.rbuf) {
			p.makeRoom()
		}
		n, err := unix.Read(p.fd, p.rbuf[len(p.rbuf):cap(p.rbuf)])
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			if err == nil {
				err = errors.New("connection closed by Redis")
			}
			p.fail(fmt.Errorf("redis store: %w", err))
			return
		}
		p.rbuf = p.rbuf[:len(p.rbuf)+n]
		if !p.parse() {
			return
		}
	}
}

// makeRoom moves the unparsed replies to the front of the read buffer, or grows it.
func (p *loopPipe) makeRoom() {
	unparsed := len(p.rbuf) - p.rpos
	if p.rpos > 0 && unparsed < cap(p.rbuf)/2 {
		p.rbuf = p.rbuf[:copy(p.rbuf, p.rbuf[p.rpos:])]
		p.rpos = 0
		return
	}
	size := max(16<<10, 2*cap(p.rbuf))
	grown := make([]byte, unparsed, size)
	copy(grown, p.rbuf[p.rpos:])
	p.rbuf, p.rpos = grown, 0
}

// parse completes a call for each whole reply in the read buffer. It reports false when the
// connection failed.
func (p *loopPipe) parse() bool {
	for p.rpos < len(p.rbuf) {
		typ, val, n, err := parseReply(p.rbuf[p.rpos:])
		if err != nil {
			p.fail(fmt.Errorf("redis store: %w", err))
			return false
		}
		if n == 0 {
			break // incomplete
		}
		p.rpos += n
		if len(p.calls) == 0 {
			p.fail(errors.New("redis store: unexpected reply from Redis"))
			return false
		}
		c := p.calls[0]
		p.calls[0] = nil
		p.calls = p.calls[1:]
		if c.kind == store.Get && p.gets[c.key] == c {
			delete(p.gets, c.key)
		}
		if typ == '$' || typ == '-' { // the read buffer is reused; OK and integers are not kept
			val = append([]byte(nil), val...)
		} else {
			val = nil
		}
		c.typ, c.val = typ, val
		c.complete()
	}
	if p.rpos == len(p.rbuf) {
		p.rbuf, p.rpos = p.rbuf[:0], 0
	}
	if len(p.calls) == 0 {
		p.calls = p.calls[:0:0] // let the backing array go with its stale entries
	} else {
		p.since = time.Now() // progress
	}
	if cap(p.rbuf) > 1<<20 && len(p.rbuf) == 0 {
		p.rbuf = nil
	}
	return true
}

// complete marks c done and tells whoever waits for it.
func (c *loopCall) complete() {
	c.done = true
	for i, fn := range c.notify {
		c.notify[i] = nil
		fn()
	}
	c.notify = nil
}

// fail closes the connection and fails every queued call with err.
func (p *loopPipe) fail(err error) {
	if p.nc != nil {
		p.loop.Unwatch(p.fd)
		_ = p.nc.Close()
		p.nc, p.fd, p.blocked = nil, -1, false
	}
	calls := p.calls
	p.calls, p.wbuf, p.rbuf, p.rpos = nil, p.wbuf[:0], p.rbuf[:0], 0
	clear(p.gets)
	for _, c := range calls {
		c.err = err
		c.complete()
	}
}

// tick checks the deadline of the calls in flight, on the loop, until the pipe shuts down.
func (p *loopPipe) tick() {
	defer p.s.loopWG.Done()
	t := time.NewTicker(min(max(p.s.timeout/4, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			if !p.loop.Post(p.checkFn) {
				return // the loop has stopped
			}
		}
	}
}

// check fails the connection when its calls have waited longer than the timeout for a reply.
func (p *loopPipe) check() {
	if len(p.calls) > 0 && !p.dialing && time.Since(p.since) > p.s.timeout {
		p.fail(fmt.Errorf("redis store: no reply from Redis within %v", p.s.timeout))
	}
}

// shutdown fails what is queued, closes the connection and ends the ticker.
func (p *loopPipe) shutdown() {
	if p.closed {
		return
	}
	p.closed = true
	p.fail(errPipeClosed)
	close(p.stop)
}

// closeLoopPipes shuts every loop pipe down, on its loop when the loop still runs, and waits for
// their goroutines.
func (s *Store) closeLoopPipes() {
	if list := s.loopPipes.Load(); list != nil {
		for _, p := range *list {
			done := make(chan struct{})
			if !p.loop.Post(func() { p.shutdown(); close(done) }) {
				p.shutdown() // the loop has ended: nothing else touches p
				continue
			}
			select {
			case <-done:
			case <-time.After(s.timeout):
				s.log.Warn("redis store: an event loop did not release its Redis connection")
			}
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
		c.p.drive(c)
	}
	var res store.Result
	if c.err != nil {
		return res, c.err
	}
	if c.typ == '-' {
		return res, c.p.s.mapErr(context.Background(), replyError(c.val))
	}
	switch c.kind {
	case store.Get:
		if c.typ == '$' {
			res.Found, res.Value = true, c.val
		}
	case store.Set:
		if c.getOld {
			if c.typ == '$' {
				res.Found, res.Value = true, c.val
			}
			res.Done = c.cond == store.CondNone || (c.cond&store.CondNX != 0 && !res.Found) || (c.cond&store.CondXX != 0 && res.Found)
		} else {
			res.Done = c.typ == '+'
		}
	}
	return res, nil
}

// drive completes c by waiting on the socket directly (see Wait).
func (p *loopPipe) drive(c *loopCall) {
	deadline := time.Now().Add(p.s.timeout)
	for !c.done {
		left := time.Until(deadline)
		if left <= 0 || p.nc == nil {
			p.fail(fmt.Errorf("redis store: no reply from Redis within %v", p.s.timeout))
			return
		}
		p.flush()
		if p.nc == nil {
			continue
		}
		events := int16(unix.POLLIN)
		if p.blocked {
			events |= unix.POLLOUT
		}
		fds := []unix.PollFd{{Fd: int32(p.fd), Events: events}}
		if _, err := unix.Poll(fds, int(left.Milliseconds())+1); err != nil && err != unix.EINTR {
			p.fail(fmt.Errorf("redis store: %w", err))
			return
		}
		p.readable(unix.EPOLLIN | unix.EPOLLOUT)
	}
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
