// Package upstream is a pipelined RESP connection to another server (Redis, a cluster peer) that
// an event loop drives itself, the way twemproxy talks to Redis: the commands the loop runs queue
// their requests in the connection's write buffer, the loop writes the buffer once every ready
// client has queued its own (Flush), and it reads the replies when epoll reports the socket
// readable and completes their requests in order, all on its own goroutine. A batch of requests
// costs one write and one read and no goroutine switch.
//
// A Conn belongs to one loop: every method but Shutdown runs on the loop's goroutine (from a
// command the loop runs, a watch function or a posted task). Failures are bounded: a connection
// that gets no reply for Timeout while requests wait, or fails, is closed and every request on it
// completes with the error; the next request dials again, on a goroutine whose result the loop
// picks up.
package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/vela-cache/vela/resp"
)

// Loop is the event loop that drives a Conn (resp.Loop).
type Loop interface {
	// Watch makes the loop call fn with the epoll events whenever fd becomes readable or
	// writable (edge-triggered).
	Watch(fd int, fn func(events uint32)) error
	// Unwatch stops watching fd.
	Unwatch(fd int)
	// Post runs fn on the loop's goroutine soon; false when the loop has stopped.
	Post(fn func()) bool
}

// Pending is a request waiting for its reply.
type Pending interface {
	// Complete is called once, on the loop's goroutine, with the bytes of the request's whole
	// reply (valid only during the call) or the error that ended the connection.
	Complete(reply []byte, err error)
}

// Config configures a Conn.
type Config struct {
	// Loop drives the connection.
	Loop Loop
	// Dial connects and runs any handshake; it is called on a goroutine of its own and must be
	// bounded. The connection must expose its descriptor (syscall.Conn): no TLS.
	Dial func() (net.Conn, error)
	// Timeout bounds the wait for the next reply while requests are in flight.
	Timeout time.Duration
	// Wrap turns a transport error into the one requests complete with (default: as is).
	Wrap func(error) error
	// Tasks counts the goroutines the Conn starts (dials, its deadline ticker); Shutdown's
	// caller waits for it.
	Tasks *sync.WaitGroup
}

// The epoll event bits a watch function receives (Linux's values, spelled out so that the
// package also builds where there is no epoll, and no event loop).
const (
	evIn    = 0x1
	evOut   = 0x4
	evErr   = 0x8
	evHup   = 0x10
	evRdHup = 0x2000
)

// ErrNoReply is the error requests complete with when the server has not answered for
// Config.Timeout.
var ErrNoReply = errors.New("no reply in time")

// Limits on a reply, which is buffered whole before it completes its request.
const (
	maxBulk     = 1 << 30
	maxElements = 1 << 24
	maxDepth    = 16
	maxLine     = 64 << 10
)

// Conn is one upstream connection; see the package comment.
type Conn struct {
	cfg Config

	fd      int // the connection's socket, in no poller but the loop's (resp.DupFD); -1 while disconnected
	dialing bool
	// dialFor and dialBytes are the requests, and their bytes in wbuf, queued when the dial
	// under way began: a failed dial fails those; later ones get a dial of their own.
	dialFor, dialBytes int
	blocked            bool      // the socket took less than it was given: wait for EPOLLOUT
	wbuf               []byte    // requests not yet written
	rbuf               []byte    // replies read; rbuf[rpos:] not yet completed
	rpos               int       //
	pending            []Pending // awaiting replies, oldest first (written or in wbuf)
	since              time.Time // when the requests in flight last made progress
	closed             bool

	readFn  func(uint32)  // c.readable, built once
	checkFn func()        // c.check, built once: posted by the ticker
	stop    chan struct{} // closed by Shutdown: ends the ticker
}

// New returns a Conn that dials on its first request.
func New(cfg Config) *Conn {
	if cfg.Wrap == nil {
		cfg.Wrap = func(err error) error { return err }
	}
	c := &Conn{cfg: cfg, fd: -1, stop: make(chan struct{})}
	c.readFn, c.checkFn = c.readable, c.check
	cfg.Tasks.Add(1)
	go c.tick()
	return c
}

// Buffer returns the write buffer: the caller appends one request to it, then calls Push.
func (c *Conn) Buffer() *[]byte { return &c.wbuf }

// Push records p as the request just appended to the buffer. When the Conn has been shut down,
// p completes at once with err (and the request is dropped).
func (c *Conn) Push(p Pending, closedErr error) {
	if c.closed {
		c.wbuf = c.wbuf[:0]
		p.Complete(nil, closedErr)
		return
	}
	if len(c.pending) == 0 {
		c.since = time.Now()
	}
	c.pending = append(c.pending, p)
	if c.fd < 0 && !c.dialing {
		c.dial()
	}
}

// dial connects on a goroutine and posts the result to the loop.
func (c *Conn) dial() {
	c.dialing = true
	c.dialFor, c.dialBytes = len(c.pending), len(c.wbuf)
	c.cfg.Tasks.Add(1)
	go func() {
		defer c.cfg.Tasks.Done()
		nc, err := c.cfg.Dial()
		if !c.cfg.Loop.Post(func() { c.connected(nc, err) }) && nc != nil {
			_ = nc.Close() // the loop has stopped: nobody will use it
		}
	}()
}

// connected installs the connection a dial made, or fails the requests queued before the dial
// began with its error. Requests queued while it was under way are not failed by it: they get a
// dial of their own (the network may have come back meanwhile), so each request waits for at
// most two dials.
func (c *Conn) connected(nc net.Conn, err error) {
	c.dialing = false
	if err == nil && c.closed {
		_ = nc.Close()
		return
	}
	if err != nil && !c.closed && c.dialFor < len(c.pending) {
		early := c.pending[:c.dialFor:c.dialFor]
		c.pending = append([]Pending(nil), c.pending[c.dialFor:]...)
		c.wbuf = c.wbuf[:copy(c.wbuf, c.wbuf[c.dialBytes:])]
		c.since = time.Now()
		c.dial()
		err = c.cfg.Wrap(err)
		for _, p := range early {
			p.Complete(nil, err)
		}
		return
	}
	if err == nil {
		err = c.watch(nc)
	}
	if err != nil {
		c.fail(err)
		return
	}
	c.since = time.Now()
	c.Flush()
}

// watch registers nc's socket with the loop, through a descriptor of its own: nc is closed, so
// that the runtime's poller does not wake for every reply the loop reads.
func (c *Conn) watch(nc net.Conn) error {
	fd, err := resp.DupFD(nc)
	_ = nc.Close()
	if err != nil {
		return err
	}
	if err := c.cfg.Loop.Watch(fd, c.readFn); err != nil {
		_ = resp.CloseFD(fd)
		return err
	}
	c.fd, c.blocked = fd, false
	return nil
}

// Flush writes the queued requests, as far as the socket takes them.
func (c *Conn) Flush() {
	if c.fd < 0 || c.blocked || len(c.wbuf) == 0 {
		return
	}
	for len(c.wbuf) > 0 {
		n, err := resp.RawWrite(c.fd, c.wbuf)
		if n > 0 {
			c.wbuf = c.wbuf[:copy(c.wbuf, c.wbuf[n:])]
			continue
		}
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			c.blocked = true // EPOLLOUT resumes
			return
		}
		c.fail(err)
		return
	}
	if cap(c.wbuf) > 1<<20 {
		c.wbuf = nil // do not keep a buffer grown by one huge batch
	}
}

// readable is the loop's watch function for the connection.
func (c *Conn) readable(events uint32) {
	if c.fd < 0 {
		return
	}
	if events&evOut != 0 && c.blocked {
		c.blocked = false
		c.Flush()
	}
	if events&(evIn|evErr|evHup|evRdHup) != 0 {
		c.read()
	}
}

// read reads every reply waiting in the socket and completes their requests.
func (c *Conn) read() {
	for c.fd >= 0 {
		if len(c.rbuf) == cap(c.rbuf) {
			c.makeRoom()
		}
		n, err := resp.RawRead(c.fd, c.rbuf[len(c.rbuf):cap(c.rbuf)])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return
		case err == nil && n == 0:
			err = errors.New("connection closed by the server")
		}
		if err != nil {
			c.fail(err)
			return
		}
		c.rbuf = c.rbuf[:len(c.rbuf)+n]
		if !c.complete() {
			return
		}
	}
}

// makeRoom moves the replies not yet completed to the front of the read buffer, or grows it.
func (c *Conn) makeRoom() {
	unread := len(c.rbuf) - c.rpos
	if c.rpos > 0 && unread < cap(c.rbuf)/2 {
		c.rbuf = c.rbuf[:copy(c.rbuf, c.rbuf[c.rpos:])]
		c.rpos = 0
		return
	}
	grown := make([]byte, unread, max(16<<10, 2*cap(c.rbuf)))
	copy(grown, c.rbuf[c.rpos:])
	c.rbuf, c.rpos = grown, 0
}

// complete completes a request for each whole reply in the read buffer. It reports false when
// the connection failed.
func (c *Conn) complete() bool {
	for c.rpos < len(c.rbuf) {
		n, err := ReplyLen(c.rbuf[c.rpos:])
		if err != nil {
			c.fail(err)
			return false
		}
		if n == 0 {
			break // the rest has not arrived
		}
		if len(c.pending) == 0 {
			c.fail(errors.New("unexpected reply"))
			return false
		}
		p := c.pending[0]
		c.pending[0] = nil
		c.pending = c.pending[1:]
		reply := c.rbuf[c.rpos : c.rpos+n]
		c.rpos += n
		p.Complete(reply, nil)
		if c.fd < 0 { // a completion shut the connection down
			return false
		}
	}
	if c.rpos == len(c.rbuf) {
		c.rbuf, c.rpos = c.rbuf[:0], 0
		if cap(c.rbuf) > 1<<20 {
			c.rbuf = nil
		}
	}
	if len(c.pending) == 0 {
		c.pending = c.pending[:0:0] // let the backing array go with its stale entries
	} else {
		c.since = time.Now() // progress
	}
	return true
}

// fail closes the connection and completes every queued request with err.
func (c *Conn) fail(err error) {
	if c.fd >= 0 {
		c.cfg.Loop.Unwatch(c.fd)
		_ = resp.CloseFD(c.fd)
		c.fd, c.blocked = -1, false
	}
	pending := c.pending
	c.pending, c.wbuf, c.rbuf, c.rpos = nil, c.wbuf[:0], c.rbuf[:0], 0
	err = c.cfg.Wrap(err)
	for _, p := range pending {
		p.Complete(nil, err)
	}
}

// tick checks the deadline of the requests in flight, on the loop, until Shutdown.
func (c *Conn) tick() {
	defer c.cfg.Tasks.Done()
	t := time.NewTicker(min(max(c.cfg.Timeout/4, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			if !c.cfg.Loop.Post(c.checkFn) {
				return // the loop has stopped
			}
		}
	}
}

// check fails the connection when its requests have waited longer than the timeout.
func (c *Conn) check() {
	if len(c.pending) > 0 && !c.dialing && time.Since(c.since) > c.cfg.Timeout {
		c.fail(ErrNoReply)
	}
}

// Close completes what is queued with err, closes the connection and ends the ticker; later
// requests complete at once (see Push). It runs on the loop's goroutine.
func (c *Conn) Close(err error) {
	if c.closed {
		return
	}
	c.closed = true
	c.fail(err)
	close(c.stop)
}

// Shutdown is Close from any goroutine: it runs Close on the loop when the loop still runs
// (waiting up to wait for it), else here, the loop having ended so that nothing else touches c.
// The caller then waits for Config.Tasks.
func (c *Conn) Shutdown(err error, wait time.Duration) {
	done := make(chan struct{})
	if !c.cfg.Loop.Post(func() { c.Close(err); close(done) }) {
		c.Close(err)
		return
	}
	select {
	case <-done:
	case <-time.After(wait):
	}
}

// Drive completes requests by waiting on the socket directly, blocking the loop, until done
// reports true or the timeout passes (the connection then fails). It is the fallback for a
// caller that must have a reply before the loop could deliver it.
func (c *Conn) Drive(done func() bool) {
	deadline := time.Now().Add(c.cfg.Timeout)
	for !done() {
		left := time.Until(deadline)
		if left <= 0 || c.fd < 0 {
			c.fail(ErrNoReply)
			return
		}
		c.Flush()
		if c.fd < 0 {
			continue
		}
		if err := waitFD(c.fd, c.blocked, int(left.Milliseconds())+1); err != nil {
			c.fail(err)
			return
		}
		c.readable(evIn | evOut)
	}
}

// ReplyLen returns the length of the whole RESP2 or RESP3 reply at the start of b, 0 when b holds
// only part of it, or an error when b does not start with a valid reply.
func ReplyLen(b []byte) (int, error) { return replyLen(b, 0) }

func replyLen(b []byte, depth int) (int, error) {
	if depth > maxDepth {
		return 0, errors.New("reply nested too deep")
	}
	line, n, bad := cutLine(b)
	if bad {
		return 0, errors.New("reply line without CR")
	}
	if n == 0 {
		if len(b) > maxLine {
			return 0, errors.New("reply line too long")
		}
		return 0, nil
	}
	if len(line) == 0 {
		return 0, errors.New("empty reply line")
	}
	switch line[0] {
	case '+', '-', ':', ',', '(', '#', '_':
		return n, nil
	case '$', '!', '=':
		size, ok := parseLen(line[1:])
		if !ok || size > maxBulk {
			return 0, fmt.Errorf("bad length in reply: %q", line)
		}
		if size < 0 {
			return n, nil
		}
		if len(b) < n+size+2 {
			return 0, nil
		}
		if b[n+size] != '\r' || b[n+size+1] != '\n' {
			return 0, errors.New("malformed bulk reply")
		}
		return n + size + 2, nil
	case '*', '~', '>', '%', '|':
		size, ok := parseLen(line[1:])
		if !ok || size > maxElements {
			return 0, fmt.Errorf("bad length in reply: %q", line)
		}
		if line[0] == '%' || line[0] == '|' {
			size *= 2
		}
		for range size {
			m, err := replyLen(b[n:], depth+1)
			if err != nil || m == 0 {
				return 0, err
			}
			n += m
		}
		if line[0] == '|' { // attributes come before the reply they describe
			m, err := replyLen(b[n:], depth+1)
			if err != nil || m == 0 {
				return 0, err
			}
			n += m
		}
		return n, nil
	}
	return 0, fmt.Errorf("unexpected reply: %q", line)
}

// parseLen parses a length: -1 or a non-negative decimal.
func parseLen(b []byte) (int, bool) {
	if len(b) == 2 && b[0] == '-' && b[1] == '1' {
		return -1, true
	}
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	n := 0
	for _, d := range b {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int(d-'0')
	}
	return n, true
}

// cutLine returns the CRLF-terminated line at the start of b, without the CRLF, and its length
// with it; n == 0 when b holds no whole line, bad when the line ends in a bare LF.
func cutLine(b []byte) (line []byte, n int, bad bool) {
	i := bytes.IndexByte(b, '\n')
	switch {
	case i < 0:
		return nil, 0, false
	case i == 0 || b[i-1] != '\r':
		return nil, 0, true
	}
	return b[:i-1], i + 1, false
}
