package peer

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/vela-cache/vela/resp"
)

// conn is one pipelined connection.
type conn struct {
	addr string
	nc   net.Conn
	br   *bufio.Reader // used only by the caller holding the reading role

	mu    sync.Mutex // guards the fields below
	wbuf  []byte     // requests encoded but not yet written
	spare []byte     // the other write buffer, swapped with wbuf by the writer
	queue []*Call    // requests written or queued, awaiting replies, oldest first
	// unordered: a call in queue[head:] has a deadline more than orderSlack earlier than one
	// before it (calls of different timeouts share the connection), so the oldest call's
	// deadline is not about the soonest; cleared when the queue empties. latest is the latest
	// deadline of the calls queued since it was last empty.
	unordered bool
	latest    time.Time
	head      int           // queue[head:] are pending
	writing   bool          // a goroutine is writing wbuf out
	timeout   time.Duration // write deadline of the latest request
	err       error         // set once the connection has failed
	reading   bool          // a caller is reading replies (see Call.Result)
	readDL    time.Time     // that reader's deadline
	waiters   []*Call       // calls waiting in Result for the reading role, oldest first

	lastUsed int64 // unix ns when the pool last handed the connection out (usable)

	writeDL   time.Time // write deadline last set; the writing goroutine's only
	setReadDL time.Time // read deadline last set; the reader's only

	wake   chan struct{} // tells the writer there is something to write
	closed chan struct{} // closed by fail: the writer ends

	tasks *sync.WaitGroup // the pool's: counts this connection's writer and reader goroutines

	failed func(error) // told why the connection failed (a timeout marks the peer silent)
}

func (cn *conn) broken() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err != nil
}

// orderSlack is how much earlier than an older call's deadline a call's may be while the
// oldest pending call's deadline still serves as the reader's: calls sent at about the same
// time by different goroutines are queued a few microseconds out of order. Deadlines are moved
// only when off by deadlineSlack anyway.
const orderSlack = 5 * time.Millisecond

// idleCheckAfter is how long a connection may sit idle before the pool, about to send on it,
// first checks that the peer has not closed it meanwhile, as a peer that restarted has. The
// check is one non-blocking system call; a peer cannot restart in less time.
const idleCheckAfter = 10 * time.Millisecond

// usable reports whether a request sent at now may go on the connection: it has not failed,
// and, when it sat idle for idleCheckAfter, the peer has not closed it (then it is failed here,
// and the request goes on a new connection instead of failing with EOF).
func (cn *conn) usable(now time.Time) bool {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return false
	}
	last := cn.lastUsed
	cn.lastUsed = now.UnixNano()
	idle := cn.head == len(cn.queue) && len(cn.wbuf) == 0 && !cn.writing && !cn.reading
	if !idle || now.UnixNano()-last < int64(idleCheckAfter) {
		cn.mu.Unlock()
		return true
	}
	// cn.mu stays held: nothing can be sent, so no reply can arrive, while the socket is looked at.
	err := peerClosed(cn.nc)
	cn.mu.Unlock()
	if err != nil {
		cn.fail(fmt.Errorf("%s: %w", cn.addr, err))
		return false
	}
	return true
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
	switch {
	case cn.head == len(cn.queue):
		cn.latest = call.deadline
	case call.deadline.Before(cn.latest.Add(-orderSlack)):
		cn.unordered = true
	case call.deadline.After(cn.latest):
		cn.latest = call.deadline
	}
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
			r, err := resp.ReadReply(cn.br)
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
				cn.fail(fmt.Errorf("%s: %w", cn.addr, resp.ErrBadReply))
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
		// notified has no timer of its own. Usually the deadlines are in queue order (within
		// orderSlack), and the oldest call's is the soonest: looking through the whole queue for
		// every reply made reading a long queue quadratic (a fifth of a replicated member's CPU
		// under SETs).
		dl := cn.queue[cn.head].deadline
		if cn.unordered {
			for _, c := range cn.queue[cn.head+1:] {
				if c.deadline.Before(dl) {
					dl = c.deadline
				}
			}
		}
		cn.readDL = dl
		cn.mu.Unlock()
		cn.moveReadDeadline(dl)
		r, err := resp.ReadReply(cn.br)
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
			cn.fail(fmt.Errorf("%s: %w", cn.addr, resp.ErrBadReply))
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
		cn.queue, cn.head, cn.unordered = cn.queue[:0], 0, false
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
	if cn.failed != nil {
		cn.failed(err)
	}
}
