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
// their error at once instead of each waiting for a dial.
package peer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
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
}

// Errors a Call can end with, wrapped with the peer's address.
var (
	// ErrTimeout: the peer did not answer before the deadline.
	ErrTimeout = errors.New("peer did not answer in time")
	// ErrUnreachable: the peer could not be connected to.
	ErrUnreachable = errors.New("peer unreachable")
	// ErrClosed: the pool has been closed.
	ErrClosed = errors.New("peer pool closed")
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
	return &Pool{cfg: cfg, log: log, peers: map[string]*peerConns{}, loopable: loopable}
}

// peerConns are the connections to one peer.
type peerConns struct {
	addr      string
	slots     []slot
	downUntil atomic.Int64 // unix ns before which dialing is not retried

	mu   sync.Mutex // guards idle
	idle []*conn    // exclusive connections for blocking commands
}

// slot is one pipelined connection's place; its lock is held while dialing it, so requests for
// other slots never wait for that dial.
type slot struct {
	mu sync.Mutex // guards cn
	cn *conn
}

// Call is one request in flight. It implements resp.Later and resp.Flusher, so a connection can
// write the reply when it arrives while later commands of the same batch go on.
type Call struct {
	addr     string
	deadline time.Time
	conn     *conn
	done     chan struct{}
	turn     chan struct{} // signalled when this call is to take over reading
	reply    resp.Reply
	err      error

	state  atomic.Uint32 // callPending, callNotify (notify is set) or callFinished
	notify func()
}

// States of a Call.
const (
	callPending  = iota // in flight, nobody to notify
	callNotify          // in flight; notify is to be called when it finishes
	callFinished        // reply and err are set
)

func (c *Call) finish(r resp.Reply, err error) {
	c.reply, c.err = r, err
	close(c.done)
	if c.state.Swap(callFinished) == callNotify {
		c.notify()
	}
}

// Notify implements resp.Notifier: fn is called, on the goroutine that reads the reply, once
// the call has finished; it reports false when it has finished already. Nobody waits in Result
// for a call whose caller asked to be notified, so Notify makes sure a goroutine reads the
// connection's replies.
func (c *Call) Notify(fn func()) bool {
	c.notify = fn
	if !c.state.CompareAndSwap(callPending, callNotify) {
		return false
	}
	if cn := c.conn; cn != nil {
		cn.ensureReader()
		// A reader already blocked on a read whose deadline is later than this call's (a
		// longer call ahead of it) would let this call overrun: guard it with a timer.
		if rd := cn.readerDeadline(); !rd.IsZero() && c.deadline.Before(rd) {
			time.AfterFunc(time.Until(c.deadline), func() {
				if c.state.Load() != callFinished {
					cn.fail(fmt.Errorf("%s: %w", c.addr, ErrTimeout))
				}
			})
		}
	}
	return true
}

// Flush makes sure the request is on its way. Result flushes too; a connection holding several
// futures flushes them all before waiting for the first, so requests to different peers overlap.
func (c *Call) Flush() {
	if c.conn != nil {
		c.conn.kick()
	}
}

// Result waits for the reply until the call's deadline. An error reply from the peer is a
// reply, not an error; err is a transport failure or timeout.
//
// There is no reader goroutine: a waiting caller that finds nobody reading the connection reads
// replies itself, handing each to its caller, until its own arrives, then passes the reading on
// to the oldest caller still waiting. Under light load a forward then costs no goroutine switch.
func (c *Call) Result() (resp.Reply, error) {
	c.Flush()
	select {
	case <-c.done:
		return c.reply, c.err
	default:
	}
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
		if c.conn != nil {
			c.conn.unwait(c)
		}
	}()
	for {
		if c.conn.lead(c) {
			<-c.done
			return c.reply, c.err
		}
		// The reader gives up, failing the connection and so this call, at its own deadline;
		// a timer is needed only when this call's deadline comes first, or when the reader has
		// just let go (the role is then on its way to a waiting caller, this one or another).
		var timeout <-chan time.Time
		if rd := c.conn.readerDeadline(); rd.IsZero() || c.deadline.Before(rd) {
			if t == nil {
				t = time.NewTimer(max(time.Until(c.deadline), 0))
			}
			timeout = t.C
		}
		select {
		case <-c.done:
			return c.reply, c.err
		case <-c.turn:
			// The reader passed the connection on to this call: read next time round.
		case <-timeout:
			// The replies queued behind this one are stuck too: drop the connection.
			c.conn.fail(fmt.Errorf("%s: %w", c.addr, ErrTimeout))
			<-c.done
			return c.reply, c.err
		}
	}
}

// Reply implements resp.Later: a connection writes the reply when it arrives.
func (c *Call) Reply() resp.Reply { return c.Wait() }

// Wait returns the reply, or an "ERR cluster: …" error reply when the call failed.
func (c *Call) Wait() resp.Reply {
	r, err := c.Result()
	if err != nil {
		return ErrorReply(err)
	}
	return r
}

// ErrorReply turns a transport failure into the reply a client sees.
func ErrorReply(err error) resp.Reply {
	return resp.Error("ERR cluster: " + err.Error())
}

func newCall(addr string, deadline time.Time, cn *conn) *Call {
	return &Call{addr: addr, deadline: deadline, conn: cn, done: make(chan struct{}), turn: make(chan struct{}, 1)}
}

func failed(addr string, err error) *Call {
	c := &Call{addr: addr, done: make(chan struct{})}
	c.finish(resp.Reply{}, err)
	return c
}

// Send writes args to the peer at addr on the connection chosen by pick and returns at once;
// the reply is awaited with the Call, until now+timeout. args are encoded before Send returns,
// so they may alias a buffer the caller reuses.
func (p *Pool) Send(addr string, args [][]byte, pick uint64, timeout time.Duration) *Call {
	deadline := time.Now().Add(timeout)
	pc, err := p.peer(addr)
	if err != nil {
		return failed(addr, err)
	}
	cn, err := p.conn(pc, int(pick%uint64(p.cfg.Conns)), deadline)
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
	pc, err := p.peer(addr)
	if err != nil {
		return resp.Reply{}, err
	}
	pc.mu.Lock()
	var cn *conn
	for len(pc.idle) > 0 && cn == nil {
		cn = pc.idle[len(pc.idle)-1]
		pc.idle = pc.idle[:len(pc.idle)-1]
		if cn.broken() {
			cn = nil
		}
	}
	pc.mu.Unlock()
	if cn == nil {
		if cn, err = p.dial(pc, time.Now().Add(p.cfg.DialTimeout)); err != nil {
			return resp.Reply{}, err
		}
	}
	call := newCall(addr, time.Now().Add(timeout), cn)
	cn.send(call, args, timeout)
	stop := context.AfterFunc(ctx, func() { cn.fail(fmt.Errorf("%s: %w", addr, context.Canceled)) })
	r, err := call.Result()
	stop()
	if err == nil && !cn.broken() {
		pc.mu.Lock()
		if len(pc.idle) < 16 {
			pc.idle = append(pc.idle, cn)
			cn = nil
		}
		pc.mu.Unlock()
	}
	if cn != nil && err == nil {
		cn.fail(ErrClosed)
	}
	return r, err
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
		pc = &peerConns{addr: addr, slots: make([]slot, p.cfg.Conns)}
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

// conn returns a healthy pipelined connection in slot i, dialing one (until deadline at the
// latest) when needed.
func (p *Pool) conn(pc *peerConns, i int, deadline time.Time) (*conn, error) {
	s := &pc.slots[i]
	s.mu.Lock()
	defer s.mu.Unlock()
	if cn := s.cn; cn != nil && !cn.broken() {
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
		return nil, err
	}
	cn := &conn{addr: pc.addr, nc: nc, br: br, wake: make(chan struct{}, 1), closed: make(chan struct{}),
		tasks: &p.writers}
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
			if r, err = readReply(br, 0); err == nil && r.IsError() {
				err = fmt.Errorf("handshake %s: %s", p.cfg.Handshake[i][0], r.Str)
			}
		}
		_ = nc.SetDeadline(time.Time{})
		if err != nil {
			_ = nc.Close()
			p.log.Warn("peer handshake failed", "peer", addr, "err", err)
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
	pc.idle = nil
	pc.mu.Unlock()
}

// conn is one pipelined connection.
type conn struct {
	addr string
	nc   net.Conn
	br   *bufio.Reader // used only by the caller holding the reading role

	mu      sync.Mutex    // guards the fields below
	wbuf    []byte        // requests encoded but not yet written
	spare   []byte        // the other write buffer, swapped with wbuf by the writer
	queue   []*Call       // requests written or queued, awaiting replies, oldest first
	head    int           // queue[head:] are pending
	writing bool          // a goroutine is writing wbuf out
	timeout time.Duration // write deadline of the latest request
	err     error         // set once the connection has failed
	reading bool          // a caller is reading replies (see Call.Result)
	readDL  time.Time     // that reader's deadline
	waiters []*Call       // calls waiting in Result for the reading role, oldest first

	writeDL   time.Time // write deadline last set; the writing goroutine's only
	setReadDL time.Time // read deadline last set; the reader's only

	wake   chan struct{} // tells the writer there is something to write
	closed chan struct{} // closed by fail: the writer ends

	tasks *sync.WaitGroup // the pool's: counts this connection's writer and reader goroutines
}

func (cn *conn) broken() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err != nil
}

// send queues call; the request is written by the next flush (Call.Flush or Call.Result, or
// at once when much is queued), together with whatever else has been queued on the connection
// by then: a pipelined batch of a client, or requests of many clients, go out in one write.
func (cn *conn) send(call *Call, args [][]byte, timeout time.Duration) {
	cn.mu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.mu.Unlock()
		call.finish(resp.Reply{}, err)
		return
	}
	cn.wbuf = resp.AppendCommand(cn.wbuf, args...)
	cn.queue = append(cn.queue, call)
	cn.timeout = timeout
	big := len(cn.wbuf) >= 64<<10
	cn.mu.Unlock()
	if big {
		cn.flush()
	}
}

// kick wakes the writer.
func (cn *conn) kick() {
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes what callers queue. It yields once before each write so that the other
// goroutines ready to run (clients whose requests arrived in the same poll) queue theirs first,
// and one write carries them all.
func (cn *conn) writeLoop() {
	for {
		select {
		case <-cn.closed:
			return
		case <-cn.wake:
		}
		runtime.Gosched()
		cn.flush()
	}
}

// flush writes the queued requests unless another goroutine is writing (it writes them too,
// as it loops until the buffer is empty).
func (cn *conn) flush() {
	cn.mu.Lock()
	if cn.writing || len(cn.wbuf) == 0 || cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.writing = true
	for len(cn.wbuf) > 0 && cn.err == nil {
		buf := cn.wbuf
		cn.wbuf = cn.spare[:0]
		timeout := cn.timeout
		cn.mu.Unlock()
		cn.moveWriteDeadline(timeout)
		_, err := cn.nc.Write(buf)
		cn.mu.Lock()
		// buf becomes the spare buffer, unless one large batch grew it (then a new one is
		// made when needed). Either way spare must stop being wbuf's array, which it still is.
		cn.spare = nil
		if cap(buf) <= 1<<20 {
			cn.spare = buf[:0]
		}
		if err != nil {
			cn.writing = false
			cn.mu.Unlock()
			cn.fail(fmt.Errorf("%s: %w", cn.addr, err))
			return
		}
	}
	cn.writing = false
	cn.mu.Unlock()
}

// lead reads replies for c when nobody else is reading: it reports false at once when another
// caller holds the reading role (c is then among the waiters the role is passed to). Otherwise it
// reads, finishing each call in order, until c is finished (or the connection fails), then
// passes the role on to a call still waiting.
func (cn *conn) lead(c *Call) bool {
	cn.mu.Lock()
	if cn.reading {
		if !slices.Contains(cn.waiters, c) {
			cn.waiters = append(cn.waiters, c)
		}
		cn.mu.Unlock()
		return false
	}
	cn.waiters = slices.DeleteFunc(cn.waiters, func(w *Call) bool { return w == c })
	if cn.err != nil {
		cn.mu.Unlock()
		return true // fail has finished c or will
	}
	cn.reading = true
	cn.readDL = c.deadline
	cn.mu.Unlock()
	cn.moveReadDeadline(c.deadline)
	for {
		select {
		case <-c.done:
		default:
			r, err := readReply(cn.br, 0)
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = ErrTimeout
				}
				cn.fail(fmt.Errorf("%s: %w", cn.addr, err))
				cn.release()
				return true
			}
			cn.mu.Lock()
			if cn.head == len(cn.queue) {
				cn.mu.Unlock()
				cn.fail(fmt.Errorf("%s: %w", cn.addr, errBadReply))
				cn.release()
				return true
			}
			call := cn.popLocked()
			cn.mu.Unlock()
			call.finish(r, nil)
			continue
		}
		cn.release()
		return true
	}
}

// deadlineSlack is how far a connection's deadlines may lag behind the exact ones: setting a
// deadline costs a runtime timer update, so it is moved only when it is off by more than this.
const deadlineSlack = 20 * time.Millisecond

// moveWriteDeadline sets the write deadline to about now+timeout. Only the goroutine holding
// the writing role calls it.
func (cn *conn) moveWriteDeadline(timeout time.Duration) {
	want := time.Now().Add(timeout)
	if d := want.Sub(cn.writeDL); d > deadlineSlack || d < -deadlineSlack {
		cn.writeDL = want
		_ = cn.nc.SetWriteDeadline(want)
	}
}

// moveReadDeadline sets the read deadline to about want. Only the reader calls it.
func (cn *conn) moveReadDeadline(want time.Time) {
	if d := want.Sub(cn.setReadDL); d > deadlineSlack || d < -deadlineSlack {
		cn.setReadDL = want
		_ = cn.nc.SetReadDeadline(want)
	}
}

// readerDeadline is when the current reader gives up; the zero time when nobody reads (the
// caller then takes the role itself next time round, or a timer guards it).
func (cn *conn) readerDeadline() time.Time {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if !cn.reading {
		return time.Time{}
	}
	return cn.readDL
}

// release gives up the reading role: a reader is started when the oldest pending call's caller
// waits for a notification, else the oldest call waiting in Result takes it. (The oldest pending
// call itself may have nobody waiting for it yet, such as a forward whose connection settles
// later: handing the role to it alone would leave the waiting callers behind it without a
// reader.)
func (cn *conn) release() {
	cn.mu.Lock()
	cn.reading = false
	var next, waiter *Call
	if cn.head < len(cn.queue) {
		next = cn.queue[cn.head]
	}
	for _, w := range cn.waiters {
		// A waiter whose reply the last reader delivered is on its way out of Result: a turn
		// sent to it would be lost, and the callers behind it would sleep until their timers.
		select {
		case <-w.done:
			continue
		default:
		}
		waiter = w
		break
	}
	cn.mu.Unlock()
	if next == nil {
		return
	}
	if next.state.Load() == callNotify {
		cn.ensureReader()
		return
	}
	if waiter != nil {
		select {
		case waiter.turn <- struct{}{}:
		default:
		}
	}
}

// unwait drops c from the calls waiting for the reading role.
func (cn *conn) unwait(c *Call) {
	cn.mu.Lock()
	cn.waiters = slices.DeleteFunc(cn.waiters, func(w *Call) bool { return w == c })
	cn.mu.Unlock()
}

// ensureReader starts a goroutine that reads replies (readAll) unless someone reads already or
// nothing is pending.
func (cn *conn) ensureReader() {
	cn.mu.Lock()
	if cn.reading || cn.err != nil || cn.head == len(cn.queue) {
		cn.mu.Unlock()
		return
	}
	cn.reading = true
	cn.readDL = time.Time{} // readAll sets it, counting every call pending by then
	cn.tasks.Add(1)         // before fail can run: Pool.Close waits for tasks only after failing us
	cn.mu.Unlock()
	go cn.readAll()
}

// readAll holds the reading role for the callers that asked to be notified: it reads replies,
// finishing calls in order (those of waiting callers too), until none is pending or the
// connection fails. Its read deadline is the soonest of the pending calls'.
func (cn *conn) readAll() {
	defer cn.tasks.Done()
	for {
		cn.mu.Lock()
		if cn.err != nil || cn.head == len(cn.queue) {
			cn.reading = false
			cn.mu.Unlock()
			return
		}
		// The soonest deadline, not the oldest call's: calls of different timeouts share the
		// connection (a 1 s forward may sit behind a 4 s fan-out), and a caller that asked to be
		// notified has no timer of its own.
		dl := cn.queue[cn.head].deadline
		for _, c := range cn.queue[cn.head+1:] {
			if c.deadline.Before(dl) {
				dl = c.deadline
			}
		}
		cn.readDL = dl
		cn.mu.Unlock()
		cn.moveReadDeadline(dl)
		r, err := readReply(cn.br, 0)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = ErrTimeout
			}
			cn.fail(fmt.Errorf("%s: %w", cn.addr, err))
			cn.mu.Lock()
			cn.reading = false
			cn.mu.Unlock()
			return
		}
		cn.mu.Lock()
		if cn.head == len(cn.queue) {
			cn.reading = false
			cn.mu.Unlock()
			cn.fail(fmt.Errorf("%s: %w", cn.addr, errBadReply))
			return
		}
		call := cn.popLocked()
		cn.mu.Unlock()
		call.finish(r, nil)
	}
}

// popLocked takes the oldest pending call off the queue; there is one. cn.mu must be held.
func (cn *conn) popLocked() *Call {
	call := cn.queue[cn.head]
	cn.queue[cn.head] = nil
	cn.head++
	if cn.head == len(cn.queue) {
		cn.queue, cn.head = cn.queue[:0], 0
	}
	return call
}

// fail marks the connection failed, closes it and fails every pending request with err.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err = err
	close(cn.closed)
	pending := cn.queue[cn.head:]
	cn.queue, cn.head = nil, 0
	cn.mu.Unlock()
	_ = cn.nc.Close()
	for _, c := range pending {
		c.finish(resp.Reply{}, err)
	}
}
