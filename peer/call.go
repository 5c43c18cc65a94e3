package peer

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/vela-cache/vela/resp"
)

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

// Failed reports, without waiting, whether the call has already failed (its peer could not be
// dialled, say).
func (c *Call) Failed() bool {
	select {
	case <-c.done:
		return c.err != nil
	default:
		return false
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

// SendAll sends args to each of addrs at once, on the connection to each that pick chooses (so
// that one client's requests keep their order), and returns the calls in the order of addrs.
func (p *Pool) SendAll(addrs []string, args [][]byte, pick uint64, timeout time.Duration) []*Call {
	calls := make([]*Call, len(addrs))
	for i, addr := range addrs {
		calls[i] = p.Send(addr, args, pick, timeout)
	}
	return calls
}

// Others returns the RESP addresses of members other than self that have one (addrs maps a
// member's name to its address).
func Others(members []string, self string, addrs map[string]string) []string {
	out := make([]string, 0, len(members))
	for _, m := range members {
		if addr := addrs[m]; m != self && addr != "" {
			out = append(out, addr)
		}
	}
	return out
}

// SumInts waits for calls and adds up their integer replies (a cluster-wide count, such as
// PUBLISH's deliveries); a call that failed or answered anything else counts nothing.
func SumInts(calls []*Call) int64 {
	var n int64
	for _, c := range calls {
		if r := c.Wait(); r.Kind == resp.KindInt {
			n += r.Int
		}
	}
	return n
}
