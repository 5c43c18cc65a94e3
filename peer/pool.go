// Package peer is the client side of node-to-node traffic: a pool of a few RESP connections per
// peer (one by default, as twemproxy keeps), each carrying many requests at once. Requests are
// queued on a connection and a writer goroutine writes everything queued so far in one write: a
// client's pipelined batch, and the requests of every client that arrived meanwhile, share one
// syscall. Replies are matched to requests in order by the waiting callers themselves: the
// first to wait reads, hands each reply to its caller, and passes the reading on once its own
// has come, so a lightly loaded connection costs no extra goroutine switch. No request waits for
// another's round trip, and there is no connection per request.
//
// Every request has a deadline. A request that misses it fails with a clear error and its
// connection is closed (the replies queued behind it would be just as late); the next request
// dials afresh. A peer that refuses connections is marked down for a moment so that clients get
// their error at once instead of each waiting for a dial. A peer that lets a request time out is
// marked not answering until it answers a probe (stall.go): meanwhile its requests fail at once,
// so a stopped or cut-off peer costs a client one timeout, not one per request.
package peer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vela-cache/vela/resp"
)

// Config configures a Pool. The zero value is usable.
type Config struct {
	// Conns is the number of pipelined connections per peer (default 1: the more requests share
	// a connection, the more share each write). Requests are spread over them by the caller's
	// pick value, so one client's requests stay in order.
	Conns int
	// DialTimeout bounds connecting plus the handshake (default 1s).
	DialTimeout time.Duration
	// Handshake commands run on every new connection before any request (AUTH, peer
	// authentication, HELLO 3); an error reply to any of them fails the connection.
	Handshake [][][]byte
	// Dial opens connections (default: a net.Dialer); tests inject network faults with it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Log receives connection failures at debug level.
	Log *slog.Logger
	// Silence is shared by a node's pools to the same peers (forwards, copies), so that a peer
	// one of them finds not answering fails fast in all of them; nil: the pool's own.
	Silence *Silence
}

// Errors a Call can end with, wrapped with the peer's address.
var (
	// ErrTimeout: the peer did not answer before the deadline.
	ErrTimeout = errors.New("peer did not answer in time")
	// ErrUnreachable: the peer could not be connected to.
	ErrUnreachable = errors.New("peer unreachable")
	// ErrClosed: the pool has been closed.
	ErrClosed = errors.New("peer pool closed")
	// ErrNotSent: the peer had closed an exclusive connection before the request was written
	// (it restarted, say), so it certainly did not run the request.
	ErrNotSent = errors.New("the peer closed the connection before the request was sent")
)

// downFor is how long a peer that refused a connection is failed fast.
const downFor = 200 * time.Millisecond

// Pool holds connections to peers, by address. It is safe for concurrent use.
type Pool struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex // guards peers and closed
	peers  map[string]*peerConns
	closed bool
	byAddr atomic.Pointer[map[string]*peerConns] // copy of peers for lock-free lookups

	writers sync.WaitGroup // every connection's writer goroutine and reader goroutines

	// The event loops' own connections (loop.go): copied on write under mu, read without it.
	loopable bool // Config.Dial was not set: connections expose their descriptors
	loops    atomic.Pointer[[]*loopConns]
	nloop    atomic.Int64 // connections the loops hold, for INFO

	silentPeers atomic.Int64 // probes running (stall.go)
	failedFast  atomic.Int64 // requests failed at once because their peer was not answering
}

// NewPool returns an empty pool; connections are made on first use.
func NewPool(cfg Config) *Pool {
	if cfg.Conns <= 0 {
		cfg.Conns = 1
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = time.Second
	}
	loopable := cfg.Dial == nil
	if cfg.Dial == nil {
		cfg.Dial = (&net.Dialer{}).DialContext
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Silence == nil {
		cfg.Silence = NewSilence()
	}
	return &Pool{cfg: cfg, log: log, peers: map[string]*peerConns{}, loopable: loopable}
}

// peerConns are the connections to one peer.
type peerConns struct {
	addr      string
	slots     []slot
	downUntil atomic.Int64  // unix ns before which dialing is not retried
	silent    *silentState  // whether the peer is answering, shared through Config.Silence
	gone      chan struct{} // closed by closeAll: the peer was forgotten or the pool closed

	mu     sync.Mutex // guards idle and closed
	idle   []*conn    // exclusive connections kept for reuse (Exclusive.Release)
	closed bool       // closeAll ran: Release keeps nothing more
}

// slot is one pipelined connection's place; its lock is held while dialing it, so requests for
// other slots never wait for that dial.
type slot struct {
	mu sync.Mutex // guards cn
	cn *conn
}

// Send writes args to the peer at addr on the connection chosen by pick and returns at once;
// the reply is awaited with the Call, until now+timeout. args are encoded before Send returns,
// so they may alias a buffer the caller reuses.
func (p *Pool) Send(addr string, args [][]byte, pick uint64, timeout time.Duration) *Call {
	now := time.Now()
	deadline := now.Add(timeout)
	pc, err := p.peer(addr)
	if err != nil {
		return failed(addr, err)
	}
	if silent, err := pc.notAnswering(); silent {
		p.failedFast.Add(1)
		return failed(addr, err)
	}
	cn, err := p.conn(pc, int(pick%uint64(p.cfg.Conns)), now, deadline)
	if err != nil {
		return failed(addr, err)
	}
	if time.Now().After(deadline) { // the wait for a dial used the whole budget
		return failed(addr, fmt.Errorf("%s: %w", addr, ErrTimeout))
	}
	call := newCall(addr, deadline, cn)
	cn.send(call, args, timeout)
	return call
}

// Do sends args and waits for the reply.
func (p *Pool) Do(addr string, args [][]byte, pick uint64, timeout time.Duration) (resp.Reply, error) {
	return p.Send(addr, args, pick, timeout).Result()
}

// DoExclusive runs args on a connection no other request shares until it returns, for commands
// that may block on the peer (FETCHLOCK) and would otherwise hold up the pipelined ones. ctx
// ending abandons the request and closes that connection.
func (p *Pool) DoExclusive(ctx context.Context, addr string, args [][]byte, timeout time.Duration) (resp.Reply, error) {
	x, err := p.Exclusive(addr)
	if err != nil {
		return resp.Reply{}, err
	}
	r, err := x.Do(ctx, [][][]byte{args}, timeout)
	x.Release(err == nil)
	if err != nil {
		return resp.Reply{}, err
	}
	return r[0], nil
}

// Exclusive is a connection to one peer that no other request shares until it is released: a
// blocking command's, or a client transaction's from WATCH to EXEC. It is used by one
// goroutine at a time.
type Exclusive struct {
	pc *peerConns
	cn *conn
}

// Exclusive takes a connection to addr for the caller alone: an idle one kept by an earlier
// Release, or a new one.
func (p *Pool) Exclusive(addr string) (*Exclusive, error) {
	pc, err := p.peer(addr)
	if err != nil {
		return nil, err
	}
	if silent, err := pc.notAnswering(); silent {
		p.failedFast.Add(1)
		return nil, err
	}
	now := time.Now()
	pc.mu.Lock()
	var cn *conn
	for len(pc.idle) > 0 && cn == nil {
		cn = pc.idle[len(pc.idle)-1]
		pc.idle = pc.idle[:len(pc.idle)-1]
		if !cn.usable(now) {
			cn = nil
		}
	}
	pc.mu.Unlock()
	if cn == nil {
		if cn, err = p.dial(pc, now.Add(p.cfg.DialTimeout)); err != nil {
			return nil, err
		}
	}
	return &Exclusive{pc: pc, cn: cn}, nil
}

// Do sends cmds and waits for their replies, in order, for at most timeout. ctx ending abandons
// them and closes the connection. An error means the connection failed: the replies are lost,
// and Release must not keep it.
//
// Nothing else uses the connection, so the replies are read here directly, while a goroutine
// writes the requests: a large batch (a transaction of many commands) must not wait for its
// whole request to be written before its replies are read, or both sides could stop, each
// waiting for the other to read.
func (x *Exclusive) Do(ctx context.Context, cmds [][][]byte, timeout time.Duration) ([]resp.Reply, error) {
	cn := x.cn
	if cn.broken() {
		return nil, fmt.Errorf("%s: %w", cn.addr, ErrClosed)
	}
	if !cn.usable(time.Now()) { // held idle (between WATCH and EXEC) while the peer closed it
		return nil, fmt.Errorf("%s: %w", cn.addr, ErrNotSent)
	}
	var buf []byte
	for _, args := range cmds {
		buf = resp.AppendCommand(buf, args...)
	}
	_ = cn.nc.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { cn.fail(fmt.Errorf("%s: %w", cn.addr, context.Canceled)) })
	defer stop()
	written := make(chan error, 1)
	go func() {
		_, err := cn.nc.Write(buf)
		written <- err
	}()
	out := make([]resp.Reply, len(cmds))
	var err error
	for i := 0; i < len(cmds) && err == nil; i++ {
		out[i], err = resp.ReadReply(cn.br)
	}
	if err != nil {
		_ = cn.nc.Close() // ends the write, if it is still going
	}
	if werr := <-written; err == nil {
		err = werr
	}
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			err = ErrTimeout
		}
		err = fmt.Errorf("%s: %w", cn.addr, err)
		cn.fail(err)
		return nil, err
	}
	_ = cn.nc.SetDeadline(time.Time{})
	return out, nil
}

// Release gives the connection back: kept for the next exclusive use when clean (the peer holds
// no state of the caller's on it: no WATCH, no MULTI) and healthy, else closed. x must not be
// used afterwards.
func (x *Exclusive) Release(clean bool) {
	cn, pc := x.cn, x.pc
	x.cn = nil
	if cn == nil {
		return
	}
	if clean && !cn.broken() {
		pc.mu.Lock()
		if len(pc.idle) < 16 && !pc.closed {
			pc.idle = append(pc.idle, cn)
			cn = nil
		}
		pc.mu.Unlock()
	}
	if cn != nil {
		cn.fail(ErrClosed)
	}
}

// peer returns the connections to addr. The common case reads an immutable map without
// locking; adding a peer copies it.
func (p *Pool) peer(addr string) (*peerConns, error) {
	if m := p.byAddr.Load(); m != nil {
		if pc := (*m)[addr]; pc != nil {
			return pc, nil
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	pc := p.peers[addr]
	if pc == nil {
		pc = &peerConns{addr: addr, slots: make([]slot, p.cfg.Conns),
			silent: p.cfg.Silence.state(addr), gone: make(chan struct{})}
		p.peers[addr] = pc
		p.publish()
	}
	return pc, nil
}

// publish copies peers into byAddr. Callers hold mu.
func (p *Pool) publish() {
	m := make(map[string]*peerConns, len(p.peers))
	for a, pc := range p.peers {
		m[a] = pc
	}
	p.byAddr.Store(&m)
}

// conn returns a usable pipelined connection in slot i for a request sent at now, dialing one
// (until deadline at the latest) when needed.
func (p *Pool) conn(pc *peerConns, i int, now, deadline time.Time) (*conn, error) {
	s := &pc.slots[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if cn := s.cn; cn != nil && cn.usable(now) {
		return cn, nil
	}
	if time.Now().UnixNano() < pc.downUntil.Load() {
		return nil, fmt.Errorf("%s: %w", pc.addr, ErrUnreachable)
	}
	cn, err := p.dial(pc, deadline)
	if err != nil {
		pc.downUntil.Store(time.Now().Add(downFor).UnixNano())
		return nil, err
	}
	s.cn = cn
	return cn, nil
}

// dial connects to the peer, runs the handshake and starts the reader, within DialTimeout and
// before deadline.
func (p *Pool) dial(pc *peerConns, deadline time.Time) (*conn, error) {
	nc, br, err := p.connect(pc.addr, deadline)
	if err != nil {
		p.silentFor(pc, err)
		return nil, err
	}
	cn := &conn{addr: pc.addr, nc: nc, br: br, wake: make(chan struct{}, 1), closed: make(chan struct{}),
		lastUsed: time.Now().UnixNano(),
		tasks:    &p.writers,
		failed:   func(err error) { p.silentFor(pc, err) }}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		_ = nc.Close()
		return nil, ErrClosed
	}
	p.writers.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.writers.Done()
		cn.writeLoop()
	}()
	return cn, nil
}

// connect connects to the peer at addr and runs the handshake, within DialTimeout and before
// deadline. The reader holds what the peer may have sent after the handshake (nothing, unless it
// misbehaves).
func (p *Pool) connect(addr string, deadline time.Time) (net.Conn, *bufio.Reader, error) {
	if d := time.Now().Add(p.cfg.DialTimeout); d.Before(deadline) {
		deadline = d
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	nc, err := p.cfg.Dial(ctx, "tcp", addr)
	cancel()
	if err != nil {
		p.log.Debug("peer dial failed", "peer", addr, "err", err)
		if isTimeout(err) {
			return nil, nil, fmt.Errorf("%s: %w (%w)", addr, ErrUnreachable, errSilentDial)
		}
		return nil, nil, fmt.Errorf("%s: %w", addr, ErrUnreachable)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	if len(p.cfg.Handshake) > 0 {
		var out []byte
		for _, cmd := range p.cfg.Handshake {
			out = resp.AppendCommand(out, cmd...)
		}
		_ = nc.SetDeadline(deadline)
		_, err = nc.Write(out)
		for i := 0; err == nil && i < len(p.cfg.Handshake); i++ {
			var r resp.Reply
			if r, err = resp.ReadReply(br); err == nil && r.IsError() {
				err = fmt.Errorf("handshake %s: %s", p.cfg.Handshake[i][0], r.Str)
			}
		}
		_ = nc.SetDeadline(time.Time{})
		if err != nil {
			_ = nc.Close()
			p.log.Warn("peer handshake failed", "peer", addr, "err", err)
			if isTimeout(err) {
				return nil, nil, fmt.Errorf("%s: %w (%v: %w)", addr, ErrUnreachable, err, errSilentDial)
			}
			return nil, nil, fmt.Errorf("%s: %w (%v)", addr, ErrUnreachable, err)
		}
	}
	return nc, br, nil
}

// Close closes every connection, failing the requests in flight, and waits for the writers.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	peers := p.peers
	p.peers = map[string]*peerConns{}
	p.byAddr.Store(nil)
	p.mu.Unlock()
	for _, pc := range peers {
		pc.closeAll(ErrClosed)
	}
	p.closeLoopConns("", ErrClosed)
	p.writers.Wait()
}

// Forget closes the connections to addr (a member that left).
func (p *Pool) Forget(addr string) {
	p.mu.Lock()
	pc := p.peers[addr]
	delete(p.peers, addr)
	p.publish()
	p.mu.Unlock()
	if pc != nil {
		pc.closeAll(fmt.Errorf("%s: %w", addr, ErrClosed))
	}
	p.closeLoopConns(addr, fmt.Errorf("%s: %w", addr, ErrClosed))
}

// closeAll fails every connection to the peer.
func (pc *peerConns) closeAll(err error) {
	for i := range pc.slots {
		s := &pc.slots[i]
		s.mu.Lock()
		if s.cn != nil {
			s.cn.fail(err)
		}
		s.mu.Unlock()
	}
	pc.mu.Lock()
	for _, cn := range pc.idle {
		cn.fail(err)
	}
	if !pc.closed {
		close(pc.gone)
	}
	pc.idle, pc.closed = nil, true
	pc.mu.Unlock()
}
