package commands

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/resp"
)

// CLIENT PAUSE timeout [WRITE|ALL] and CLIENT UNPAUSE, as Redis 7.0 has them: for timeout
// milliseconds the node holds back every command of its clients (ALL, the default), or only
// those that may change the keyspace (WRITE: write commands, EVAL and EVALSHA, and an EXEC
// that queued one), and runs them in order when the pause ends. Commands are held where Redis
// holds them, before they are queued in a transaction. Cluster members' connections to each
// other are never held: a pause, like Redis's, is one node's, and its peers' copies and
// forwards are Vela's own traffic, as a Redis replica's stream is.

// clientPause is the node's pause. Checking whether a command must wait reads one atomic value;
// only a paused command takes the lock.
type clientPause struct {
	until atomic.Int64 // unix nanoseconds the pause ends at; 0: none (or one seen to have ended)
	all   atomic.Bool  // ALL, else WRITE
	mu    sync.Mutex
	wake  chan struct{} // closed when the pause changes (UNPAUSE, a new pause)
}

// holds reports whether the pause holds back a command that writes (or may) or not. The first
// to see that a pause has ended clears it, so that later commands read only until's zero.
func (p *clientPause) holds(writes bool) bool {
	until := p.until.Load()
	if until == 0 {
		return false
	}
	if time.Now().UnixNano() >= until {
		p.until.CompareAndSwap(until, 0) // unless a new pause began meanwhile
		return false
	}
	return writes || p.all.Load()
}

// set starts or changes the pause, to end at until (unix nanoseconds): its mode is the new one,
// its end the later of the two, as Redis's pauseClients.
func (p *clientPause) set(until int64, all bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.until.Load(); old < until || time.Now().UnixNano() >= old {
		p.until.Store(until)
	}
	p.all.Store(all)
	p.changed()
}

// Paused reports whether a CLIENT PAUSE (WRITE or ALL) is in effect. The expiry sweep does not
// run meanwhile, so that the keyspace stays as the pause found it, as in Redis.
func (n *Node) Paused() bool { return n.pause.holds(true) }

// end ends the pause (CLIENT UNPAUSE).
func (p *clientPause) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.until.Store(0)
	p.changed()
}

// changed wakes the commands waiting, which look at the pause again. Callers hold mu.
func (p *clientPause) changed() {
	if p.wake != nil {
		close(p.wake)
		p.wake = nil
	}
}

// wait returns once the pause no longer holds a command that writes (or not), or done is
// closed (the client went away): false then.
func (p *clientPause) wait(writes bool, done <-chan struct{}) bool {
	for p.holds(writes) {
		p.mu.Lock()
		if p.wake == nil {
			p.wake = make(chan struct{})
		}
		wake := p.wake
		p.mu.Unlock()
		left := time.Until(time.Unix(0, p.until.Load()))
		t := time.NewTimer(max(left, 0))
		select {
		case <-wake:
		case <-t.C:
		case <-done:
			t.Stop()
			return false
		}
		t.Stop()
	}
	return true
}

// pausesWrites reports whether a WRITE pause holds cmd back: a command that may change the
// keyspace, as Redis's write and may-replicate flags say (EVAL and EVALSHA, not their _RO
// forms), or an EXEC whose transaction queued one.
func (n *Node) pausesWrites(c *Ctx, cmd *Command) bool {
	switch {
	case cmd.Flags&FlagWrite != 0:
		return true
	case cmd.Name == "eval" || cmd.Name == "evalsha" || cmd.Name == "publish": // as Redis 7 holds them
		return true
	case cmd.Name == "exec" && c.tx != nil:
		for _, q := range c.tx.queue {
			if n.pausesWrites(c, q.cmd) {
				return true
			}
		}
	}
	return false
}

// heldByPause reports whether the pause holds cmd back for c: a client's command, not one run
// inside EXEC or a script, nor a cluster peer's.
func (n *Node) heldByPause(c *Ctx, cmd *Command) bool {
	if n.pause.until.Load() == 0 || c.Conn == nil || c.inExec || c.inScript || c.Peer {
		return false
	}
	return n.pause.holds(n.pausesWrites(c, cmd))
}

// waitPause holds the command back until the pause ends; false when the client went away
// meanwhile (the command is then not run).
func (n *Node) waitPause(c *Ctx, cmd *Command) bool {
	writes := n.pausesWrites(c, cmd)
	ok := true
	c.Blocking(func() { ok = n.pause.wait(writes, c.Context().Done()) })
	return ok
}

// errClientGone answers a command whose client left while it waited (never delivered).
var errClientGone = Error("ERR the client disconnected while the command waited")

func (n *Node) clientPause(_ *Ctx, args [][]byte) (resp.Reply, error) {
	if len(args) > 4 {
		return resp.Reply{}, subcommandSyntaxError("client", args[1])
	}
	ms, ok := redisnum.ParseInt(args[2])
	switch {
	case !ok:
		return resp.Reply{}, Error("ERR timeout is not an integer or out of range")
	case ms < 0:
		return resp.Reply{}, Error("ERR timeout is negative")
	}
	all := true
	if len(args) == 4 {
		switch {
		case equalFold(args[3], "write"):
			all = false
		case equalFold(args[3], "all"):
		default:
			return resp.Reply{}, Error("ERR CLIENT PAUSE mode must be WRITE or ALL")
		}
	}
	now := time.Now()
	var until int64 // unix nanoseconds
	switch {
	case ms > math.MaxInt64-now.UnixMilli():
		// Redis 7.0 adds the timeout to its clock in milliseconds, which wraps to an end in
		// the past: OK, and no pause (but the mode is the new one).
		until = -1
	case ms >= (math.MaxInt64-now.UnixNano())/int64(time.Millisecond):
		until = math.MaxInt64 // past what nanoseconds hold: the end of time
	default:
		until = now.UnixNano() + ms*int64(time.Millisecond)
	}
	n.pause.set(until, all)
	return resp.OK, nil
}

func (n *Node) clientUnpause(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	n.pause.end()
	return resp.OK, nil
}
