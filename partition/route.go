package partition

import (
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/resp"
)

// errCrossSlot is Redis Cluster's reply to a multi-key command whose keys have several owners,
// for the commands Vela does not know how to split.
const errCrossSlot = "CROSSSLOT Keys in request don't hash to the same slot"

// errClusterDown is the reply to a client's command on keys while this node has not joined its
// cluster yet (view.down).
var errClusterDown = string(commands.ErrClusterDown)

var _ commands.Router = (*Cluster)(nil)

// Route implements commands.Router.
func (cl *Cluster) Route(c *commands.Ctx, cmd *commands.Command, args [][]byte) (resp.Reply, bool) {
	if c.Peer {
		if cl.view.Load().joining {
			cl.awaitJoin(c)
		}
		// During a handoff window a peer's command may have to go on to the keys' new holder,
		// and the keys it changes here are noted first; a peer writing a key this node does
		// not hold has seen a ring change this node has not, which opens a window (window.go).
		if v := cl.view.Load(); v.fence != nil || cl.peerAhead(v, cmd, args) {
			if r, ok := cl.peerInWindow(c, cl.ensureFence(), cmd, args); ok {
				return r, true
			}
		}
		// A peer sent this here to run here. Writes are copied on to the other holders (not
		// blocking ones: FETCHLOCK writes nothing itself and must not hold the key's stripe
		// while it waits).
		if cl.cfg.Replicas > 1 && cmd.Flags&commands.FlagWrite != 0 && cmd.FirstKey > 0 &&
			cmd.Flags&(commands.FlagClusterWide|commands.FlagBlocking) == 0 {
			return cl.writeLocal(c, cl.view.Load(), cmd, args), true
		}
		return resp.Reply{}, false
	}
	if cl.nearR != nil && cmd.Flags&commands.FlagWrite != 0 {
		cl.nearInvalidateWrites(cmd, args)
		r, handled := cl.route(c, cmd, args)
		if handled {
			r = cl.nearAfterWrite(cmd, args, r)
		}
		return r, handled
	}
	return cl.route(c, cmd, args)
}

// route is Route for a client's command.
func (cl *Cluster) route(c *commands.Ctx, cmd *commands.Command, args [][]byte) (resp.Reply, bool) {
	if cmd.Flags&commands.FlagClusterWide != 0 {
		if cl.view.Load().down {
			return resp.Error(errClusterDown), true
		}
		return cl.clusterWide(c, cmd, args), true
	}
	first, last, step := cmd.KeyPositions(len(args))
	if first == 0 {
		return resp.Reply{}, false
	}
	v := cl.view.Load()
	if v.down {
		return resp.Error(errClusterDown), true
	}
	if first+step > last {
		key := args[first]
		if cl.cfg.Replicas == 1 {
			owner := v.ring.Owner(key)
			if owner == cl.self || owner == "" {
				if v.fence != nil { // a handoff window (window.go)
					if to := cl.localInWindow(c, v, cmd, key); to != nil {
						return cl.redirect(c, to, "FINAL", args), true // handed.go
					}
				}
				return resp.Reply{}, false // the hot path: nothing allocated
			}
			cl.held.Forget(c, cmd, key)
			if cl.nearR != nil && cmd.Name == "get" {
				return cl.nearGet(c, v, cmd, owner, nil, args), true
			}
			if v.fence != nil && cmd.Flags&commands.FlagBlocking == 0 {
				cl.pushCopies(c, v, owner, cmd, args) // a key still here goes ahead (window.go)
			}
			return cl.forward(c, v, owner, args, cmd.Flags), true
		}
		return cl.routeReplicated(c, v, cmd, args, key)
	}
	return cl.multi(c, v, cmd, args, first, last, step)
}

// Inline implements commands.InlineRouter. With one copy of each key (replicas = 1) a peer's
// request and a single-key command on a key this node owns run here, and a single-key command
// on another member's key is forwarded with a reply that notifies (peer.Call). Multi-key
// commands, more copies, the window after a join or during a leave (when a missing key may be
// pulled from its previous owner, for a client's command or a peer's), and a peer's request
// during this node's handoff window (it may be passed on, split and gathered: window.go) are
// left to a goroutine.
func (cl *Cluster) Inline(c *commands.Ctx, cmd *commands.Command, args [][]byte) bool {
	if cmd.Flags&(commands.FlagClusterWide|commands.FlagBlocking) != 0 {
		return false
	}
	if cl.cfg.Replicas != 1 {
		return cl.inlineWithReplicas(c, cmd, args)
	}
	if c.Peer {
		v := cl.view.Load()
		return v.from == nil && v.prev == nil && !v.joining
	}
	first, last, step := cmd.KeyPositions(len(args))
	if first == 0 {
		return true // Route leaves keyless commands to the node
	}
	return first+step > last && cl.view.Load().prev == nil
}

// inlineWithReplicas is Inline with replicas = N ≥ 2, outside handoff windows. A peer's request
// runs here: a read of a key held here, or a write this node owns, whose copies go out on the
// loop's own connections (writeLocal) when the store answers at once. A client's single-key
// command runs here too when it is such a write (run here, or forwarded to the key's owner as
// with one copy) or a read: of a key this node owns, or forwarded on the loop's connections,
// falling back on the loop to the key's other holders when the owner does not answer
// (fallbackOnLoop). Multi-key commands, and every command with a near cache, are left to a
// goroutine.
func (cl *Cluster) inlineWithReplicas(c *commands.Ctx, cmd *commands.Command, args [][]byte) bool {
	v := cl.view.Load()
	if v.from != nil || v.prev != nil || v.joining || v.fence != nil || c.InExec() {
		return false
	}
	write := cmd.Flags&commands.FlagWrite != 0
	if c.Peer {
		return !write || cl.loopWrites
	}
	first, last, step := cmd.KeyPositions(len(args))
	if first == 0 || first+step <= last || cl.nearR != nil {
		return first == 0 // Route leaves keyless commands to the node
	}
	if write {
		return cl.loopWrites
	}
	return cl.pool.OnLoops() || v.ring.Owner(args[first]) == cl.self
}

// awaitJoin holds a peer's command that arrived while this node is still joining (a member
// that has seen it join forwards to it at once) until the view holds the whole cluster, for a
// forward timeout at most: run on this node's ring of one, it would find none of the keys the
// members hold.
func (cl *Cluster) awaitJoin(c *commands.Ctx) {
	t := time.NewTimer(cl.cfg.ForwardTimeout)
	defer t.Stop()
	select {
	case <-cl.joined:
	case <-t.C:
	case <-c.Context().Done():
	}
}

// pick keeps one client's requests to a peer on one connection, so they stay in order.
func pick(c *commands.Ctx) uint64 {
	if c.Conn == nil {
		return 0
	}
	return uint64(c.Conn.ID)
}

// forward sends args to owner. The reply is a future when a connection will write it.
func (cl *Cluster) forward(c *commands.Ctx, v *view, owner string, args [][]byte, flags commands.Flags) resp.Reply {
	addr, ok := v.addrs[owner]
	if !ok || addr == "" {
		return resp.Error("ERR cluster: no address for member " + owner)
	}
	if cl.stats.On() {
		cl.stats.Forwards.Inc()
	}
	if flags&commands.FlagBlocking != 0 {
		// Watched, like a FETCHLOCK waiting here: a client that disconnects ends the wait (and
		// its connection to the owner) at once, not when its TIMEOUT runs out.
		var r resp.Reply
		var err error
		c.Blocking(func() { r, err = cl.pool.DoExclusive(c.Context(), addr, args, cl.blockingTimeout(args)) })
		if err != nil {
			return peer.ErrorReply(err)
		}
		if len(args) > 1 {
			cl.held.Track(c, args[1], r) // FETCHLOCK: the lease must end if the client goes
		}
		return r
	}
	return cl.sendTo(c, addr, args)
}

// sendTo sends args to the member at addr, on the connection the client's other requests there
// take, so that they stay in order. The reply is a future when a connection will write it.
func (cl *Cluster) sendTo(c *commands.Ctx, addr string, args [][]byte) resp.Reply {
	if lp := c.Loop(); lp != nil && cl.pool.OnLoops() {
		// On an event loop: a connection to the owner that the loop drives itself.
		return resp.Reply{Later: cl.pool.SendOn(lp, addr, args, cl.cfg.ForwardTimeout)}
	}
	call := cl.pool.Send(addr, args, pick(c), cl.cfg.ForwardTimeout)
	if c.Conn == nil {
		return call.Wait()
	}
	return resp.Reply{Later: call}
}

// blockingTimeout bounds a forwarded blocking command: its TIMEOUT option (milliseconds) or the
// default wait, plus the forward timeout.
func (cl *Cluster) blockingTimeout(args [][]byte) time.Duration {
	wait := cl.cfg.BlockingWait
	for i := 2; i+1 < len(args); i++ {
		if len(args[i]) == 7 && (args[i][0]|0x20) == 't' && string(lower(args[i])) == "timeout" {
			if ms, ok := redisnum.ParseInt(args[i+1]); ok && ms >= 0 {
				wait = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return wait + cl.cfg.ForwardTimeout
}

func lower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// routeReplicated routes a single-key command when keys have several holders: writes run on
// the owner (which copies them on), reads on the owner with the other holders as fallbacks.
func (cl *Cluster) routeReplicated(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte, key []byte) (resp.Reply, bool) {
	var buf [8]string
	owners := v.ring.Owners(key, cl.cfg.Replicas, buf[:0])
	if len(owners) == 0 {
		return resp.Reply{}, false
	}
	if cmd.Flags&commands.FlagWrite != 0 {
		if owners[0] == cl.self {
			if cmd.Flags&commands.FlagBlocking != 0 {
				return resp.Reply{}, false
			}
			return cl.writeLocal(c, v, cmd, args), true
		}
		return cl.forward(c, v, owners[0], args, cmd.Flags), true
	}
	if owners[0] == cl.self {
		return resp.Reply{}, false
	}
	if cmd.Flags&commands.FlagBlocking != 0 {
		return cl.forward(c, v, owners[0], args, cmd.Flags), true
	}
	if cl.nearR != nil && cmd.Name == "get" {
		return cl.nearGet(c, v, cmd, owners[0], owners, args), true
	}
	return cl.readHolders(c, v, cmd, owners, args), true
}

// readHolders sends a read to owners[0], the key's owner, and falls back to the key's other
// holders, in order, when the owner does not answer.
func (cl *Cluster) readHolders(c *commands.Ctx, v *view, cmd *commands.Command, owners []string, args [][]byte) resp.Reply {
	f := cl.newFallbackRead(c, v, cmd, owners, args)
	if lp := c.Loop(); lp != nil && cl.pool.OnLoops() {
		l := &fallbackOnLoop{f: f, lp: lp, next: 1}
		l.stepFn = l.step
		l.cur = cl.sendOn(lp, v, owners[0], args)
		return resp.Reply{Later: l}
	}
	f.first = cl.send(c, v, owners[0], args) // the client's own connection pick: keeps its order
	if c.Conn == nil {
		return f.Wait()
	}
	return resp.Reply{Later: f}
}

// newFallbackRead prepares a fallbackRead; the caller sends the first request.
func (cl *Cluster) newFallbackRead(c *commands.Ctx, v *view, cmd *commands.Command, owners []string, args [][]byte) *fallbackRead {
	// The fallback may run a command here from inside the connection's Settle: it gets a context
	// of its own, without the connection, so that the command does not settle again.
	detached := &commands.Ctx{Node: c.Node, Peer: c.Peer}
	return &fallbackRead{cl: cl, c: detached, v: v, cmd: cmd, owners: slices.Clone(owners), args: cloneArgs(args)}
}

// send forwards args to member without waiting.
func (cl *Cluster) send(c *commands.Ctx, v *view, member string, args [][]byte) *peer.Call {
	if cl.stats.On() {
		cl.stats.Forwards.Inc()
	}
	return cl.pool.Send(v.addrs[member], args, pick(c), cl.cfg.ForwardTimeout)
}

// fallbackRead is a read sent to a key's owner that is retried on the other holders when the
// owner does not answer.
type fallbackRead struct {
	cl     *Cluster
	c      *commands.Ctx
	v      *view
	cmd    *commands.Command
	owners []string
	args   [][]byte
	first  *peer.Call
}

// Reply implements resp.Later.
func (f *fallbackRead) Reply() resp.Reply { return f.Wait() }

// Flush implements resp.Flusher: the request to the owner goes out with the rest of the batch.
func (f *fallbackRead) Flush() { f.first.Flush() }

// Wait returns the owner's reply, or a fallback holder's.
func (f *fallbackRead) Wait() resp.Reply {
	r, err := f.first.Result()
	for _, o := range f.owners[1:] {
		if err == nil {
			break
		}
		if o == f.cl.self {
			return settled(f.cl.node.ExecLocal(f.c, f.cmd, f.args))
		}
		r, err = f.cl.send(f.c, f.v, o, f.args).Result()
	}
	if err != nil {
		return peer.ErrorReply(err)
	}
	return r
}

// sendOn forwards args to member on lp's own connection to it.
func (cl *Cluster) sendOn(lp *resp.Loop, v *view, member string, args [][]byte) *peer.LoopCall {
	if cl.stats.On() {
		cl.stats.Forwards.Inc()
	}
	return cl.pool.SendOn(lp, v.addrs[member], args, cl.cfg.ForwardTimeout)
}

// fallbackOnLoop is fallbackRead for a read an event loop runs: each request goes out on the
// loop's own connections, and when one fails the next holder is asked at once, from the loop's
// goroutine, as the failure is reported. The client's connection stays parked until a holder
// answers or none is left, and the loop is never blocked.
type fallbackOnLoop struct {
	f      *fallbackRead // the read; its first is unused
	lp     *resp.Loop
	cur    *peer.LoopCall // the request in flight
	next   int            // index in f.owners of the holder to ask after cur
	reply  resp.Reply
	done   bool
	notify func()
	stepFn func() // step, bound once
}

// Notify implements resp.Notifier.
func (l *fallbackOnLoop) Notify(fn func()) bool {
	l.notify = fn
	for !l.done {
		if l.cur.Notify(l.stepFn) {
			return true
		}
		l.advance()
	}
	return false
}

// step goes on once cur has finished: the reply is ready, or the next holder is asked.
func (l *fallbackOnLoop) step() {
	l.advance()
	for !l.done {
		if l.cur.Notify(l.stepFn) {
			return
		}
		l.advance()
	}
	if fn := l.notify; fn != nil {
		l.notify = nil
		fn()
	}
}

// advance takes cur's outcome (it has finished, or Result drives the loop until it has): its
// reply, or, when it failed, a request to the next holder (a local read when that is this node),
// or the failure when no holder is left.
func (l *fallbackOnLoop) advance() {
	r, err := l.cur.Result()
	f := l.f
	switch {
	case err == nil:
		l.reply, l.done = r, true
	case l.next >= len(f.owners):
		l.reply, l.done = peer.ErrorReply(err), true
	case f.owners[l.next] == f.cl.self:
		l.reply, l.done = settled(f.cl.node.ExecLocal(f.c, f.cmd, f.args)), true
	default:
		l.cur = f.cl.sendOn(l.lp, f.v, f.owners[l.next], f.args)
		l.next++
		l.cur.Flush()
	}
}

// NotifiesOnLoop implements resp.LoopNotifier.
func (l *fallbackOnLoop) NotifiesOnLoop() bool { return true }

// Flush implements resp.Flusher.
func (l *fallbackOnLoop) Flush() { l.cur.Flush() }

// Reply implements resp.Later (on the loop's goroutine, driving the loop's connections when
// called before Notify has reported).
func (l *fallbackOnLoop) Reply() resp.Reply {
	for !l.done {
		l.advance()
	}
	return l.reply
}

func cloneArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = slices.Clone(a)
	}
	return out
}

// settled waits for a reply a local handler deferred (a pipelined store call), where the
// cluster needs its value.
func settled(r resp.Reply) resp.Reply {
	if r.Later != nil {
		return r.Later.Reply()
	}
	return r
}

// stripe returns the lock serialising writes to key with their copies.
func (cl *Cluster) stripe(key []byte) int { return int(xxhash.Sum64(key) % numStripes) }
