package resp

import (
	"os"
	"time"
)

// Out-of-band messages (RESP3 pushes, such as client tracking's invalidations) come from other
// connections' goroutines, while a connection's output belongs to whoever serves it. So a push
// is queued on the connection (Push) and its server appends the queue to the output after the
// reply it is writing, never inside one: at the reply's end (takePushes), when it is idle on an
// event loop (a task the loop runs), or when its goroutine waits for input (its read is cut
// short by a deadline in the past, as Kill's is).

// maxPushBytes bounds the pushes queued for a connection that does not read them. Beyond it
// the connection is closed, as Redis closes a client past its output buffer limit, rather than
// let one client make the server hold what it will not take.
const maxPushBytes = 64 << 20

// Push queues msg, whole RESP, to be written to the client after the reply being written, from
// any goroutine. It reports false, queuing nothing, when the connection has fallen too far
// behind; the connection is then being closed.
func (c *Conn) Push(msg []byte) bool { return c.PushFrom(nil, msg) }

// PushFrom is Push from code running on the event loop lp (a command the loop runs: Ctx's
// Loop), or nil. A connection served by that same loop then has its pushes written at the end
// of the loop's poll round, with the replies, instead of being woken for them.
func (c *Conn) PushFrom(lp *Loop, msg []byte) bool {
	c.pushMu.Lock()
	if c.pushDropped || len(c.pushBuf)+len(msg) > maxPushBytes {
		dropped := c.pushDropped
		c.pushDropped, c.pushBuf = true, nil
		c.pushMu.Unlock()
		if !dropped {
			c.server.log.Warn("closing a client that does not read its pushed messages", "client", c.ID, "queued_bytes", maxPushBytes)
			c.Kill()
			_ = c.nc.SetWriteDeadline(time.Now()) // its server may be stuck writing to it
		}
		return false
	}
	first := len(c.pushBuf) == 0
	c.pushBuf = append(c.pushBuf, msg...)
	c.pushMu.Unlock()
	if !first {
		return true // whoever the first push woke has not taken the queue yet
	}
	c.pushing.Store(true)
	if c.loop != nil {
		if lp.serves(c) {
			c.loop.pushedHere(c)
		} else {
			c.loop.wakeForPush(c)
		}
	}
	if c.idleRead.Load() { // its goroutine waits for input: end the wait
		_ = c.nc.SetReadDeadline(time.Now())
	}
	return true
}

// takePushes appends the queued pushes to the output. Only the connection's server calls it,
// between replies.
func (c *Conn) takePushes() {
	if !c.pushing.Load() {
		return
	}
	c.pushMu.Lock()
	if len(c.out) == 0 { // the usual case for a subscriber: take the queue's buffer, give it out's
		c.out, c.pushBuf = c.pushBuf, c.out[:0]
	} else {
		c.out = append(c.out, c.pushBuf...)
		c.pushBuf = c.pushBuf[:0]
	}
	if cap(c.pushBuf) > 4*maxPendingOutput {
		c.pushBuf = nil // do not keep a buffer grown by one burst
	}
	c.pushing.Store(false)
	c.pushMu.Unlock()
}

// waitingInput marks the connection's goroutine as about to wait for input, so that a push
// ends the wait, and reports whether pushes are queued already (then it writes them first).
// The idle timeout's deadline must be set before: a push's deadline must not be overwritten.
func (c *Conn) waitingInput() bool {
	c.idleRead.Store(true)
	return c.pushing.Load()
}

// inputWaitOver reports whether a read that failed with err was cut short by a push rather
// than failing, and clears the waiting mark. A push's deadline can land late, after the wait it
// was meant for, so any timeout is taken for one unless the idle timeout has really passed (or
// the server is shutting down). The caller restores its deadline when true.
func (c *Conn) inputWaitOver(err error) bool {
	c.idleRead.Store(false)
	if err == nil || !os.IsTimeout(err) || c.server.closing.Load() || c.killed.Load() {
		return false
	}
	idle := c.server.cfg.IdleTimeout
	return idle <= 0 || c.peer || time.Since(time.UnixMilli(c.lastActive.Load())) < idle
}
