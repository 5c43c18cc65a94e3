package peer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/upstream"
)

// loopConns are the connections one event loop drives to the peers (package upstream), by
// address. Only that loop's goroutine touches conns and the reply reader.
type loopConns struct {
	loop  upstream.Loop
	conns map[string]*loopConn
	rd    bytes.Reader  // over the bytes of one reply
	br    *bufio.Reader // over rd, to parse it with resp.ReadReply
}

// loopConn is one loop's connection to a peer, with the error its requests end with once it is
// closed (built once: a request must not pay for formatting it).
type loopConn struct {
	*upstream.Conn
	closedErr error
	pc        *peerConns // the pool's entry for the peer: whether it is answering (stall.go)
}

// OnLoops reports whether SendOn may be used: the pool dials its connections itself, so they
// expose their descriptors (a Config.Dial, which tests use to inject faults, may not).
func (p *Pool) OnLoops() bool { return p.loopable }

// SendOn is Send for a caller running on loop's goroutine (a command the event loop runs): the
// request goes out on a connection to addr that loop drives itself, with the other requests of
// its poll round, and the loop reads the reply and resumes the caller's connection without a
// goroutine in between. The call must be used on loop's goroutine only. timeout bounds the wait
// for the connection's next reply; it is fixed by the first call to addr on this loop.
func (p *Pool) SendOn(loop upstream.Loop, addr string, args [][]byte, timeout time.Duration) *LoopCall {
	lc := p.loopConnsFor(loop)
	up := lc.conns[addr]
	if up == nil {
		pc, err := p.peer(addr)
		if err != nil {
			return &LoopCall{done: true, err: err}
		}
		p.mu.Lock()
		closed := p.closed
		if !closed {
			up = &loopConn{closedErr: fmt.Errorf("%s: %w", addr, ErrClosed), pc: pc}
			up.Conn = upstream.New(upstream.Config{
				Loop:    loop,
				Dial:    func() (net.Conn, error) { return p.connectLoop(pc) },
				Timeout: timeout,
				Wrap: func(err error) error {
					err = wrapLoopErr(addr, err)
					p.silentFor(pc, err)
					return err
				},
				Tasks: &p.writers,
			})
		}
		p.mu.Unlock()
		if closed {
			return &LoopCall{done: true, err: ErrClosed}
		}
		lc.conns[addr] = up
		p.nloop.Add(1)
	}
	if silent, err := up.pc.notAnswering(); silent {
		p.failedFast.Add(1)
		return &LoopCall{done: true, err: err}
	}
	c := &LoopCall{lc: lc, up: up.Conn}
	buf := up.Buffer()
	*buf = resp.AppendCommand(*buf, args...)
	up.Push(c, up.closedErr)
	return c
}

// LoopConns returns how many peer connections the event loops hold (they are opened on first
// use, one per loop and peer).
func (p *Pool) LoopConns() int { return int(p.nloop.Load()) }

// connectLoop dials pc for a loop's connection (on a goroutine of its own). Like the pool's own
// dials, it fails at once while the peer is down or not answering.
func (p *Pool) connectLoop(pc *peerConns) (net.Conn, error) {
	if silent, err := pc.notAnswering(); silent {
		return nil, err
	}
	if time.Now().UnixNano() < pc.downUntil.Load() {
		return nil, fmt.Errorf("%s: %w", pc.addr, ErrUnreachable)
	}
	nc, br, err := p.connect(pc.addr, time.Now().Add(p.cfg.DialTimeout))
	if err == nil && br.Buffered() > 0 { // the bytes would be lost: the peer is out of step
		_ = nc.Close()
		return nil, fmt.Errorf("%s: %w (unexpected data after the handshake)", pc.addr, ErrUnreachable)
	}
	if err != nil {
		p.silentFor(pc, err)
		if !errors.Is(err, errSilentDial) {
			pc.downUntil.Store(time.Now().Add(downFor).UnixNano())
		}
	}
	return nc, err
}

// wrapLoopErr gives a failure of a loop's connection to addr the form Send's errors have.
func wrapLoopErr(addr string, err error) error {
	switch {
	case errors.Is(err, ErrUnreachable), errors.Is(err, ErrClosed), errors.Is(err, ErrTimeout):
		return err
	case errors.Is(err, upstream.ErrNoReply):
		return fmt.Errorf("%s: %w", addr, ErrTimeout)
	}
	return fmt.Errorf("%s: %w (%v)", addr, ErrUnreachable, err)
}

// loopConnsFor returns loop's connections, creating the set on first use (only loop's goroutine
// creates its own, so two creations cannot race for one loop).
func (p *Pool) loopConnsFor(loop upstream.Loop) *loopConns {
	if list := p.loops.Load(); list != nil {
		for _, lc := range *list {
			if lc.loop == loop {
				return lc
			}
		}
	}
	lc := &loopConns{loop: loop, conns: map[string]*loopConn{}}
	lc.br = bufio.NewReaderSize(&lc.rd, 64<<10)
	p.mu.Lock()
	defer p.mu.Unlock()
	var list []*loopConns
	if old := p.loops.Load(); old != nil {
		list = append(list, *old...)
	}
	list = append(list, lc)
	p.loops.Store(&list)
	return lc
}

// closeLoopConns closes the loops' connections to addr ("" for every peer), on each loop.
func (p *Pool) closeLoopConns(addr string, err error) {
	list := p.loops.Load()
	if list == nil {
		return
	}
	for _, lc := range *list {
		closeAll := func() {
			for a, up := range lc.conns {
				if addr == "" || a == addr {
					up.Close(err)
					delete(lc.conns, a)
					p.nloop.Add(-1)
				}
			}
		}
		done := make(chan struct{})
		if !lc.loop.Post(func() { closeAll(); close(done) }) {
			closeAll() // the loop has ended: nothing else touches lc
			continue
		}
		select {
		case <-done:
		case <-time.After(p.cfg.DialTimeout + time.Second):
			p.log.Warn("an event loop did not close its peer connections", "peer", addr)
		}
	}
}

// LoopCall is a request sent with SendOn. It implements resp.Later, resp.Flusher and
// resp.LoopNotifier; it is used on its loop's goroutine only.
type LoopCall struct {
	lc     *loopConns
	up     *upstream.Conn
	done   bool
	notify func()
	reply  resp.Reply
	err    error
}

// Complete implements upstream.Pending: it parses the reply, which must own its bytes once the
// read buffer moves on.
func (c *LoopCall) Complete(raw []byte, err error) {
	if err == nil {
		c.lc.rd.Reset(raw)
		c.lc.br.Reset(&c.lc.rd)
		c.reply, err = resp.ReadReply(c.lc.br)
	}
	c.err, c.done = err, true
	if fn := c.notify; fn != nil {
		c.notify = nil
		fn()
	}
}

// Notify implements resp.Notifier.
func (c *LoopCall) Notify(fn func()) bool {
	if c.done {
		return false
	}
	c.notify = fn
	return true
}

// NotifiesOnLoop implements resp.LoopNotifier.
func (c *LoopCall) NotifiesOnLoop() bool { return true }

// Flush implements resp.Flusher: it writes the requests the loop's commands have queued.
func (c *LoopCall) Flush() {
	if c.up != nil {
		c.up.Flush()
	}
}

// Reply implements resp.Later: the peer's reply, or an "ERR cluster: …" error reply when the
// request failed. Called before the call has notified, it drives the connection itself.
func (c *LoopCall) Reply() resp.Reply {
	r, err := c.Result()
	if err != nil {
		return ErrorReply(err)
	}
	return r
}

// Result is Call.Result for a request sent on a loop: the peer's reply (an error reply is a
// reply), or the transport failure. Called before the call has notified, it drives the
// connection itself.
func (c *LoopCall) Result() (resp.Reply, error) {
	if !c.done {
		c.up.Drive(func() bool { return c.done })
	}
	return c.reply, c.err
}
