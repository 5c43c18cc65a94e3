package redisstore

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/store"
)

// pipe multiplexes the GETs and SETs of every Vela client onto a few shared Redis connections,
// the way twemproxy does. Starting a call only encodes it into the connection's write buffer;
// the first caller that waits writes everything queued on every connection, on its own goroutine
// (no hand-off), so a client's pipeline and the commands of all clients waiting at the same time
// leave in one write per connection. A reader goroutine per connection matches replies to calls
// in order. A key always uses the same connection, so the calls on one key run in the order they
// were started. Concurrent GETs of one key that is already being fetched share that fetch,
// unless a write to the key was queued after it.
//
// Failures are bounded: a connection that gets no reply within the timeout, or fails to write,
// is closed and every call queued on it fails at once; the next call dials again.
type pipe struct {
	conns   []*pipeConn
	opt     *redis.Options
	timeout time.Duration
	wg      sync.WaitGroup // reader goroutines
}

// pipeConn is one shared Redis connection and the calls queued on it.
type pipeConn struct {
	p *pipe

	mu      sync.Mutex        // guards everything below
	wbuf    []byte            // encoded commands not yet written
	spare   []byte            // the other write buffer, swapped with wbuf by the writer
	calls   []*pcall          // calls awaiting replies, oldest first (written or in wbuf)
	gets    map[string]*pcall // the newest in-flight GET of each key, for coalescing
	nc      net.Conn          // nil while disconnected
	gen     uint64            // incremented for every connection, so a dead reader stops
	closed  bool              // the pipe is closed: calls fail at once
	writing bool              // a caller is writing wbuf (and drains it until empty)
}

// pcall is one pipelined call. Its result fields are written once, before done is closed.
type pcall struct {
	s *Store
	callOp
	key  string // GET only: the coalescing map key
	done chan struct{}

	hash  uint64 // of the key
	epoch uint64 // a GET's: the key's write epoch when it was sent (coalesce.go)

	typ byte   // reply type: '+', '-', ':', '$' (bulk), '_' (nil)
	val []byte // bulk payload, status or error text
	err error  // transport failure
}

// callOp is what a pipelined call (pcall, loopCall) asked for, which shapes its result.
type callOp struct {
	kind   store.Kind
	cond   store.Cond
	getOld bool // SET … GET
}

// result turns Redis's reply to the call (its type and payload) or a transport failure into
// what Do would have returned.
func (o callOp) result(s *Store, typ byte, val []byte, err error) (store.Result, error) {
	var res store.Result
	if err != nil {
		return res, err
	}
	if typ == '-' {
		return res, s.mapErr(context.Background(), replyError(val))
	}
	switch o.kind {
	case store.Get:
		if typ == '$' {
			res.Found, res.Value = true, val
		}
	case store.Set:
		if o.getOld {
			if typ == '$' {
				res.Found, res.Value = true, val
			}
			res.Done = o.cond == store.CondNone || (o.cond&store.CondNX != 0 && !res.Found) || (o.cond&store.CondXX != 0 && res.Found)
		} else {
			res.Done = typ == '+'
		}
	}
	return res, nil
}

var errPipeClosed = errors.New("redis store: closed")

func newPipe(opt *redis.Options, conns int, timeout time.Duration) *pipe {
	p := &pipe{opt: opt, timeout: timeout}
	for range conns {
		p.conns = append(p.conns, &pipeConn{p: p, gets: make(map[string]*pcall)})
	}
	return p
}

// close fails the calls still queued, closes the connections and waits for the readers.
func (p *pipe) close() {
	for _, pc := range p.conns {
		pc.mu.Lock()
		pc.closed = true
		pc.failLocked(errPipeClosed)
		pc.mu.Unlock()
	}
	p.wg.Wait()
}

// start queues op (a Get, or a Set without tags) on key's connection and returns its call.
func (p *pipe) start(s *Store, key []byte, op *store.Op) store.Call {
	h := xxhash.Sum64(key)
	pc := p.conns[h%uint64(len(p.conns))]
	pc.mu.Lock()
	if op.Kind == store.Get {
		if c, ok := pc.gets[string(key)]; ok && !op.NoShare && c.epoch == s.writeEpoch(h) {
			pc.mu.Unlock()
			return sharedCall{c}
		}
	}
	c := &pcall{s: s, callOp: callOp{kind: op.Kind, cond: op.Cond, getOld: op.ReturnOld}, done: make(chan struct{}), hash: h}
	if op.Kind == store.Get {
		c.epoch = s.writeEpoch(h)
	} else {
		s.wrote(h) // and again when it completes
	}
	if pc.closed {
		pc.mu.Unlock()
		c.err = store.ErrClosed
		close(c.done)
		return c
	}
	if op.Kind == store.Get {
		pc.wbuf = appendCommand(pc.wbuf, "GET", key)
		c.key = string(key)
		pc.gets[c.key] = c
	} else {
		pc.wbuf = appendSet(pc.wbuf, key, op)
		delete(pc.gets, string(key)) // a GET started after this SET must see it
	}
	pc.calls = append(pc.calls, c)
	pc.mu.Unlock()
	return c
}

// flush writes what is queued on every connection (see pipeConn.flush).
func (p *pipe) flush() {
	for _, pc := range p.conns {
		pc.flush()
	}
}

// Wait returns the call's result in store terms.
func (c *pcall) Wait() (store.Result, error) {
	select {
	case <-c.done:
	default:
		c.s.pipe.flush()
		<-c.done
	}
	return c.result(c.s, c.typ, c.val, c.err)
}

// replyError is an error reply read by the pipe, shaped like go-redis's so mapErr treats both
// alike.
type replyError string

func (e replyError) Error() string { return string(e) }

// RedisError marks replyError as a Redis error reply (go-redis's redis.Error interface).
func (replyError) RedisError() {}

// flush writes the queued commands, dialling first when disconnected, and goes on until the
// buffer is empty; if another caller is already writing, that caller will send ours too.
func (pc *pipeConn) flush() {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.writing || len(pc.wbuf) == 0 {
		return
	}
	pc.writing = true
	defer func() { pc.writing = false }()
	for len(pc.wbuf) > 0 && !pc.closed {
		if pc.nc == nil {
			pc.mu.Unlock()
			nc, err := pc.p.dial()
			pc.mu.Lock()
			if err != nil {
				pc.failLocked(fmt.Errorf("redis store: %w", err))
				return
			}
			if pc.closed {
				_ = nc.Close()
				return
			}
			pc.nc = nc
			pc.gen++
			pc.p.wg.Add(1)
			go pc.reader(nc, pc.gen)
		}
		// Let the other runnable clients queue their commands first: more of them then leave
		// in this one write (twemproxy gets the same effect from its event loop).
		pc.mu.Unlock()
		runtime.Gosched()
		pc.mu.Lock()
		if pc.nc == nil {
			continue
		}
		buf, nc, gen := pc.wbuf, pc.nc, pc.gen
		pc.wbuf = pc.spare[:0]
		pc.mu.Unlock()

		_ = nc.SetWriteDeadline(time.Now().Add(pc.p.timeout))
		_, err := nc.Write(buf)

		pc.mu.Lock()
		pc.spare = buf[:0]
		if pc.gen != gen || pc.nc == nil {
			continue // the connection failed meanwhile; its calls have been failed
		}
		if err != nil {
			pc.failLocked(fmt.Errorf("redis store: %w", err))
			return
		}
		if len(pc.calls) > 0 {
			// The replies must start coming within the timeout. The reader clears the deadline
			// (under mu) whenever nothing is awaited, so it only fires on a real stall.
			_ = nc.SetReadDeadline(time.Now().Add(pc.p.timeout))
		}
	}
}

// reader matches replies on connection gen to the queued calls, in order.
func (pc *pipeConn) reader(nc net.Conn, gen uint64) {
	defer pc.p.wg.Done()
	br := bufio.NewReaderSize(nc, 32<<10)
	for {
		typ, val, err := readReply(br)
		pc.mu.Lock()
		if pc.gen != gen || pc.nc == nil {
			pc.mu.Unlock()
			return
		}
		if err != nil {
			if ne := net.Error(nil); errors.As(err, &ne) && ne.Timeout() {
				err = fmt.Errorf("no reply from Redis within %v", pc.p.timeout)
			}
			pc.failLocked(fmt.Errorf("redis store: %w", err))
			pc.mu.Unlock()
			return
		}
		if len(pc.calls) == 0 { // a reply nobody asked for: the stream is out of step
			pc.failLocked(errors.New("redis store: unexpected reply from Redis"))
			pc.mu.Unlock()
			return
		}
		c := pc.calls[0]
		pc.calls[0] = nil
		pc.calls = pc.calls[1:]
		if len(pc.calls) == 0 {
			pc.calls = pc.calls[:0:0]
		}
		if c.kind == store.Get && pc.gets[c.key] == c {
			delete(pc.gets, c.key)
		}
		if br.Buffered() == 0 {
			if len(pc.calls) > 0 {
				_ = nc.SetReadDeadline(time.Now().Add(pc.p.timeout))
			} else {
				_ = nc.SetReadDeadline(time.Time{})
			}
		}
		pc.mu.Unlock()
		c.typ, c.val = typ, val
		if c.kind != store.Get {
			c.s.wrote(c.hash)
		}
		close(c.done)
	}
}

// failLocked closes the connection and fails every queued call with err. pc.mu must be held.
func (pc *pipeConn) failLocked(err error) {
	if pc.nc != nil {
		_ = pc.nc.Close()
		pc.nc = nil
	}
	for _, c := range pc.calls {
		c.err = err
		close(c.done)
	}
	pc.calls = nil
	pc.wbuf = pc.wbuf[:0]
	clear(pc.gets)
}

// dial connects and authenticates a new shared connection (RESP2, the URL's database).
func (p *pipe) dial() (net.Conn, error) { return dialRedis(p.opt, p.timeout) }

// dialRedis connects to the Redis o names, with TLS when o asks for it, and authenticates and
// selects o's database, each step within timeout.
func dialRedis(o *redis.Options, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: min(time.Second, timeout)}
	network := o.Network
	if network == "" {
		network = "tcp"
	}
	nc, err := d.Dial(network, o.Addr)
	if err != nil {
		return nil, err
	}
	if o.TLSConfig != nil {
		tc := tls.Client(nc, o.TLSConfig)
		_ = tc.SetDeadline(time.Now().Add(timeout))
		if err := tc.Handshake(); err != nil {
			_ = nc.Close()
			return nil, err
		}
		nc = tc
	}
	var hello []byte
	n := 0
	if o.Password != "" {
		if o.Username != "" {
			hello = appendCommand(hello, "AUTH", []byte(o.Username), []byte(o.Password))
		} else {
			hello = appendCommand(hello, "AUTH", []byte(o.Password))
		}
		n++
	}
	if o.DB != 0 {
		hello = appendCommand(hello, "SELECT", []byte(strconv.Itoa(o.DB)))
		n++
	}
	if n > 0 {
		_ = nc.SetDeadline(time.Now().Add(timeout))
		if _, err := nc.Write(hello); err != nil {
			_ = nc.Close()
			return nil, err
		}
		br := bufio.NewReader(nc)
		for range n {
			typ, val, err := readReply(br)
			if err == nil && typ == '-' {
				err = replyError(val)
			}
			if err != nil {
				_ = nc.Close()
				return nil, err
			}
		}
		_ = nc.SetDeadline(time.Time{})
	}
	return nc, nil
}

// appendCommand appends a RESP command of string arguments.
func appendCommand(b []byte, name string, args ...[]byte) []byte {
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(1+len(args)), 10)
	b = append(b, "\r\n$"...)
	b = strconv.AppendInt(b, int64(len(name)), 10)
	b = append(b, "\r\n"...)
	b = append(b, name...)
	b = append(b, "\r\n"...)
	for _, a := range args {
		b = appendBulk(b, a)
	}
	return b
}

func appendBulk(b, a []byte) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(a)), 10)
	b = append(b, "\r\n"...)
	b = append(b, a...)
	return append(b, "\r\n"...)
}

// appendSet appends SET key value [NX|XX] [GET] [PXAT ms|KEEPTTL] for op.
func appendSet(b, key []byte, op *store.Op) []byte {
	n := 3
	if op.Cond&(store.CondNX|store.CondXX) != 0 {
		n++
	}
	if op.ReturnOld {
		n++
	}
	switch {
	case op.TTL == store.TTLKeep:
		n++
	case op.ExpireAt != 0:
		n += 2
	}
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, "\r\n$3\r\nSET\r\n"...)
	b = appendBulk(b, key)
	b = appendBulk(b, op.Value)
	switch {
	case op.Cond&store.CondNX != 0:
		b = append(b, "$2\r\nNX\r\n"...)
	case op.Cond&store.CondXX != 0:
		b = append(b, "$2\r\nXX\r\n"...)
	}
	if op.ReturnOld {
		b = append(b, "$3\r\nGET\r\n"...)
	}
	switch {
	case op.TTL == store.TTLKeep:
		b = append(b, "$7\r\nKEEPTTL\r\n"...)
	case op.ExpireAt != 0:
		b = append(b, "$4\r\nPXAT\r\n"...)
		b = appendBulk(b, strconv.AppendInt(nil, op.ExpireAt, 10))
	}
	return b
}

// maxReplyBulk bounds a bulk reply the pipe accepts (Redis's own proto-max-bulk-len ceiling).
const maxReplyBulk = 512 << 20

// readReply reads one RESP2 reply. Bulk payloads are copied into a fresh slice; a nil bulk or
// array is typ '_'. Arrays (which GET and SET never return) are read and discarded as '*'.
func readReply(br *bufio.Reader) (byte, []byte, error) {
	line, err := readLine(br)
	if err != nil {
		return 0, nil, err
	}
	if len(line) == 0 {
		return 0, nil, errors.New("empty reply line from Redis")
	}
	switch typ := line[0]; typ {
	case '+', '-', ':':
		return typ, append([]byte(nil), line[1:]...), nil
	case '$':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil || n > maxReplyBulk {
			return 0, nil, fmt.Errorf("bad bulk length from Redis: %q", line)
		}
		if n < 0 {
			return '_', nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			return 0, nil, err
		}
		return '$', buf[:n:n], nil
	case '*':
		n, err := strconv.Atoi(string(line[1:]))
		if err != nil {
			return 0, nil, fmt.Errorf("bad array length from Redis: %q", line)
		}
		if n < 0 {
			return '_', nil, nil
		}
		for range n {
			if _, _, err := readReply(br); err != nil {
				return 0, nil, err
			}
		}
		return '*', nil, nil
	}
	return 0, nil, fmt.Errorf("unexpected reply from Redis: %q", line)
}

// readLine reads a CRLF-terminated line, without the CRLF. The slice is valid until the next read.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("reply line from Redis too long")
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errors.New("malformed reply line from Redis")
	}
	return line[:len(line)-2], nil
}
