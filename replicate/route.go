package replicate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// errCrossSlot is Redis Cluster's reply to a multi-key command whose keys have several owners.
const errCrossSlot = "CROSSSLOT Keys in request don't hash to the same slot"

var (
	_ commands.Router       = (*Cluster)(nil)
	_ commands.InlineRouter = (*Cluster)(nil)
)

// Route implements commands.Router. Reads (DBSIZE, KEYS and SCAN included) run here: this member
// holds every key. Writes run here and are copied to every member, or go to their key's owner
// when they depend on the key's present state.
func (cl *Cluster) Route(c *commands.Ctx, cmd *commands.Command, args [][]byte) (resp.Reply, bool) {
	if cl.down.Load() && !c.Peer && (cmd.FirstKey > 0 || cmd.Flags&commands.FlagClusterWide != 0) {
		return resp.Error(string(commands.ErrClusterDown)), true
	}
	if cmd.Flags&commands.FlagWrite == 0 {
		if c.InExec() {
			return resp.Reply{}, false // TxPrepare fetched the keys: EXEC must not wait for members
		}
		if forwarding(c) {
			// A pipelined GET must not overtake the client's earlier forwarded commands: an
			// INCR, say, whose result reaches this member with the owner's copy.
			c.Conn.Settle()
		}
		if cl.synced.Load() && !cl.paused() {
			return resp.Reply{}, false // the hot path: nothing allocated
		}
		if c.Peer {
			return resp.Error(errNotSynced), true // the peer asks another member
		}
		return cl.readElsewhere(c, cmd, args)
	}
	if cmd.Flags&commands.FlagClusterWide != 0 {
		switch cmd.Name {
		case "flushall", "flushdb":
			return cl.flushAll(c, cmd, args), true
		case "taginvalidate":
			return cl.tagInvalidate(c, cmd, args), true
		}
		return resp.Reply{}, false
	}
	first, last, step := cmd.KeyPositions(len(args))
	if first == 0 {
		return resp.Reply{}, false
	}
	if cmd.Flags&commands.FlagBlocking == 0 && !c.Peer && blind(cmd, args) {
		if forwarding(c) {
			// Stamped after the client's earlier forwarded writes, which the owners stamped.
			c.Conn.Settle()
		}
		return cl.writeAndCopy(c, cmd, args), true // it does not depend on the keys' state
	}
	v := cl.view.Load()
	owner := v.ring.Owner(args[first])
	for i := first + step; i <= last; i += step {
		if v.ring.Owner(args[i]) != owner {
			// MSETNX: one member must decide for all its keys, as Redis Cluster requires.
			return resp.Error(errCrossSlot), true
		}
	}
	cl.held.Forget(c, cmd, args[first])
	if !c.Peer && owner != cl.self && owner != "" {
		if c.Conn != nil && c.Conn.Pending() {
			// The owner must have the copies of the client's earlier writes before it decides
			// (SET … XX after a SET: SET is a pipelined command, which does not wait by itself).
			c.Conn.Settle()
		}
		return cl.forward(c, v, owner, cmd, args), true
	}
	if forwarding(c) {
		c.Conn.Settle()
	}
	// Decided here: a peer forwarded it, or this member owns its keys. Until this member holds
	// the whole state, the keys' present state is fetched first.
	if (!cl.synced.Load() || cl.paused()) && !c.InExec() {
		if err := cl.pullKeys(c, v, args, first, last, step); err != nil {
			return peer.ErrorReply(err), true
		}
	}
	if cmd.Flags&commands.FlagBlocking != 0 {
		return resp.Reply{}, false // FETCHLOCK writes nothing itself: its lease lives here
	}
	return cl.writeAndCopy(c, cmd, args), true
}

// Inline implements commands.InlineRouter. Once this member holds the whole state, and unless
// the client's earlier forwarded commands are still in flight (the command waits for them), an
// event loop runs reads, and blind writes on a store that answers at once: their copies go out
// on the loop's own connections and the loop parks the client until they are answered
// (copiesOnLoop). Writes forwarded to their key's owner wait on a goroutine.
func (cl *Cluster) Inline(c *commands.Ctx, cmd *commands.Command, args [][]byte) bool {
	if !cl.synced.Load() || cl.paused() || forwarding(c) {
		return false
	}
	if cmd.Flags&commands.FlagWrite == 0 {
		return true
	}
	return cl.loopWrites && !c.Peer && !c.InExec() &&
		cmd.Flags&(commands.FlagBlocking|commands.FlagClusterWide) == 0 && blind(cmd, args)
}

// connState is what the topology remembers of a client connection: how many of its commands
// forwarded to another member still wait for their reply.
type connState struct {
	forwards atomic.Int32
}

func stateOf(c *commands.Ctx) *connState {
	if st, ok := c.RouterState.(*connState); ok {
		return st
	}
	st := &connState{}
	c.RouterState = st
	return st
}

// forwarding reports whether the client's earlier commands include one forwarded to another
// member whose reply has not been written yet: a command that must not overtake it waits.
func forwarding(c *commands.Ctx) bool {
	if c.Conn == nil || !c.Conn.Pending() {
		return false
	}
	st, ok := c.RouterState.(*connState)
	return ok && st.forwards.Load() > 0
}

// forwardLater is a forwarded command's reply; it counts in connState.forwards until it is
// taken.
type forwardLater struct {
	*peer.Call
	st *connState
}

func (l *forwardLater) Reply() resp.Reply {
	defer l.st.forwards.Add(-1)
	return l.Call.Reply()
}

// readElsewhere serves a read while this member does not hold the whole state: it goes to the
// key's owner among the other members, or the next one when that member does not hold it
// either (it answers errNotSynced) or does not answer.
func (cl *Cluster) readElsewhere(c *commands.Ctx, cmd *commands.Command, args [][]byte) (resp.Reply, bool) {
	v := cl.view.Load()
	if v.others == nil {
		return resp.Reply{}, false // alone: nobody holds more
	}
	var order []string
	if first, _, _ := cmd.KeyPositions(len(args)); first > 0 {
		order = v.others.Owners(args[first], v.others.Len(), nil)
	} else if cmd.Flags&commands.FlagClusterWide != 0 {
		order = v.others.Members() // DBSIZE, KEYS, SCAN
	}
	if len(order) == 0 {
		return resp.Reply{}, false
	}
	last := resp.Error("ERR cluster: no member holds the whole state yet")
	for _, m := range order {
		addr := v.addrs[m]
		if addr == "" {
			continue
		}
		if cl.stats.On() {
			cl.stats.Forwards.Inc()
		}
		r, err := cl.forwards.Do(addr, args, pick(c), cl.cfg.ForwardTimeout)
		if err != nil {
			last = peer.ErrorReply(err)
			continue
		}
		if r.IsError() && r.Text() == errNotSynced {
			continue
		}
		return r, true
	}
	return last, true
}

// errNotSynced is a member's answer to a peer's read while it does not hold the whole state
// either.
const errNotSynced = "ERR cluster: this member does not hold the whole state right now"

// pullKeys fetches the present state of a command's keys from another member (VELA RSTATE;
// the key's owner among the others first, then the rest in ring order) and applies what is
// newer, so that a member that does not hold the whole state decides a read-modify-write
// command on the keys' latest state. When no other member answers for a key it returns the
// error the command gets instead of running on what is here.
func (cl *Cluster) pullKeys(c *commands.Ctx, v *view, args [][]byte, first, last, step int) error {
	if v.others == nil {
		return nil
	}
	for i := first; i <= last; i += step {
		key := args[i]
		var lastErr error
		pulled := false
		for _, m := range v.others.Owners(key, v.others.Len(), nil) {
			addr := v.addrs[m]
			if addr == "" {
				continue
			}
			r, err := cl.forwards.Do(addr, [][]byte{[]byte("VELA"), []byte("RSTATE"), key}, pick(c), cl.cfg.ForwardTimeout)
			if err == nil && (r.Kind != resp.KindArray || len(r.Elems) < 3) {
				err = errors.New(m + " answered " + r.Text())
			}
			if err != nil {
				lastErr = err
				continue
			}
			wire := make([][]byte, len(r.Elems))
			for j, e := range r.Elems {
				wire[j] = []byte(e.Text())
			}
			st, err := parseState(wire)
			if err != nil {
				lastErr = err
				continue
			}
			if !st.stamp.IsZero() || st.found {
				s := cl.stripe(key)
				cl.stripes[s].Lock()
				_, err = cl.apply(c.Context(), key, st)
				cl.stripes[s].Unlock()
				if err != nil {
					return err
				}
			}
			pulled = true
			break
		}
		if !pulled && lastErr != nil {
			return fmt.Errorf("cannot fetch the state of a key this member does not hold yet: %w", lastErr)
		}
	}
	return nil
}

// blind reports whether a write sets its keys' state regardless of what it was, so that any
// member may run it: SET without NX, XX, GET or KEEPTTL; SETEX, PSETEX, MSET, DEL, UNLINK.
// Inline asks before the command's arity is checked: args may be short.
func blind(cmd *commands.Command, args [][]byte) bool {
	switch cmd.Name {
	case "setex", "psetex", "mset", "del", "unlink":
		return true
	case "set":
		if len(args) < 3 {
			return false
		}
		for _, a := range args[3:] {
			if commands.ArgIs(a, "tags") {
				return true // the rest are tags
			}
			if commands.ArgIs(a, "nx") || commands.ArgIs(a, "xx") || commands.ArgIs(a, "get") || commands.ArgIs(a, "keepttl") {
				return false
			}
		}
		return true
	}
	return false
}

func (cl *Cluster) stripe(key []byte) int { return int(xxhash.Sum64(key) % numStripes) }

// lockKeys locks the stripes of keys in order and returns them, for unlockKeys.
func (cl *Cluster) lockKeys(keys [][]byte) []int {
	stripes := make([]int, 0, len(keys))
	for _, k := range keys {
		stripes = append(stripes, cl.stripe(k))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, s := range stripes {
		cl.stripes[s].Lock()
	}
	return stripes
}

func (cl *Cluster) unlockKeys(stripes []int) {
	for _, s := range stripes {
		cl.stripes[s].Unlock()
	}
}

// writeAndCopy runs a write here, stamps each of its keys' resulting state and sends it to every
// other member, and replies once they have applied it (or failed to within the forward
// timeout). The keys' stripes stay locked from the write until the copies are queued, so the
// stamps of one key follow the order of its writes here.
//
// On a connection the wait is deferred (a Later reply), so that the copies of a pipelined batch
// travel together. Only GET and SET may run before the replies of the commands ahead of them
// are ready: a GET runs here after the write (and waits for earlier forwards, see Route), a SET
// is stamped after it; every other command, a read-modify-write forwarded to the key's owner
// among them, waits until the copies have been applied (commands.FlagPipelined).
func (cl *Cluster) writeAndCopy(c *commands.Ctx, cmd *commands.Command, args [][]byte) resp.Reply {
	first, last, step := cmd.KeyPositions(len(args))
	keys := make([][]byte, 0, (last-first)/step+1)
	for i := first; i <= last; i += step {
		keys = append(keys, args[i])
	}
	if c.InExec() {
		return cl.writeInExec(c, cmd, args, keys)
	}
	c.ReadLock() // the gate before the stripes, as another member's copy (VELA RAPPLY) takes them
	stripes := cl.lockKeys(keys)
	before := make([]uint64, len(keys))
	for i, k := range keys {
		before[i] = cl.changes[cl.stripe(k)].Load()
	}
	reply := cl.node.ExecLocal(c, cmd, args)
	if reply.Later != nil && c.Conn != nil {
		// The write is on the store's pipelined path (a SET on the disk store): it commits
		// together with the client's next pipelined writes instead of alone. Its keys are stamped
		// and copied once it has landed.
		cl.unlockKeys(stripes)
		c.ReadUnlock()
		return resp.Reply{Later: &landedLater{cl: cl, ctx: c.Context(), write: reply.Later, keys: cloneArgs(keys), before: before}}
	}
	reply = settled(reply)
	sent := cl.stampChanged(c.Context(), keys, before, reply, cl.copyLoop(c))
	cl.unlockKeys(stripes)
	c.ReadUnlock()
	return cl.afterCopies(c, reply, sent)
}

// copyLoop returns the event loop running c's command when the copies of its writes may travel
// on the loop's own connections (Inline lets only such writes run on a loop); nil otherwise.
func (cl *Cluster) copyLoop(c *commands.Ctx) *resp.Loop {
	if lp := c.Loop(); lp != nil && cl.loopWrites {
		return lp
	}
	return nil
}

// stampChanged stamps and copies the keys a write that answered reply changed, given their
// stripes' change counts before it ran. Callers hold the keys' stripes.
//
// Only a key the command changed is copied: an EXPIRE of a key whose SET has not arrived here
// yet changes nothing, and copying its absence, stamped now, would delete that SET everywhere.
// The copies go out on lp's connections when lp is not nil (see sendToOthers).
func (cl *Cluster) stampChanged(ctx context.Context, keys [][]byte, before []uint64, reply resp.Reply, lp *resp.Loop) []sentCopy {
	if reply.IsError() {
		return nil
	}
	var sent []sentCopy
	v := cl.view.Load()
	for i, k := range keys {
		if cl.changes[cl.stripe(k)].Load() != before[i] {
			sent = cl.stampAndCopy(ctx, v, k, sent, lp)
		}
	}
	return sent
}

// landedLater is the reply of a write begun on the store's pipelined path: once the write has
// landed, its keys' state is stamped and copied, under their stripes, and the reply waits for
// the copies. A key's copies thus carry its state as it is when stamped, the latest write
// included, whatever order writes of several clients land and are stamped in.
type landedLater struct {
	cl     *Cluster
	ctx    context.Context
	write  resp.Later
	keys   [][]byte
	before []uint64
}

// Reply implements resp.Later.
func (l *landedLater) Reply() resp.Reply {
	r := l.write.Reply()
	stripes := l.cl.lockKeys(l.keys)
	sent := l.cl.stampChanged(l.ctx, l.keys, l.before, r, nil)
	l.cl.unlockKeys(stripes)
	l.cl.awaitCopies(sent)
	return r
}

// Flush implements resp.Flusher: the write goes out with the rest of the batch.
func (l *landedLater) Flush() {
	if f, ok := l.write.(resp.Flusher); ok {
		f.Flush()
	}
}

// afterCopies returns reply once the copies in sent have been applied: a Later reply on a
// connection, so that the connection goes on with its next pipelined commands meanwhile.
func (cl *Cluster) afterCopies(c *commands.Ctx, reply resp.Reply, sent []sentCopy) resp.Reply {
	if len(sent) == 0 {
		return reply
	}
	if cl.copyLoop(c) != nil {
		l := &copiesOnLoop{cl: cl, reply: reply, sent: sent}
		for _, s := range sent {
			l.Add(s.call)
		}
		return resp.Reply{Later: l}
	}
	if c.Conn == nil {
		cl.awaitCopies(sent)
		return reply
	}
	return resp.Reply{Later: &copiesLater{cl: cl, reply: reply, sent: sent}}
}

// copiesLater is a write's reply, ready once its copies have been applied.
type copiesLater struct {
	cl    *Cluster
	reply resp.Reply
	sent  []sentCopy
}

func (l *copiesLater) Reply() resp.Reply {
	l.cl.awaitCopies(l.sent)
	return l.reply
}

// settled waits for a deferred reply.
func settled(r resp.Reply) resp.Reply {
	if r.Later != nil {
		return r.Later.Reply()
	}
	return r
}

// sentCopy is one copy in flight and the member it went to: on a pooled connection
// (peer.Call), or on an event loop's own connection (peer.LoopCall, which only that loop may
// wait for).
type sentCopy struct {
	member string
	call   peer.Request
}

// stampAndCopy stamps key's present state as its last write here and sends it to every other
// member of v, on lp's connections when lp is not nil. Callers hold key's stripe.
func (cl *Cluster) stampAndCopy(ctx context.Context, v *view, key []byte, sent []sentCopy, lp *resp.Loop) []sentCopy {
	st, err := cl.readState(ctx, key)
	if err != nil {
		cl.log.Warn("replicate: reading a written key failed", "err", err)
		return sent
	}
	st.stamp = Stamp{Time: cl.clock.next(), Node: cl.id}
	cl.versions.put(key, entry{stamp: st.stamp, gone: !st.found})
	var num [3 * 20]byte
	words, n := st.argsArray(num[:0], key)
	args := words[:n]
	if n == 0 {
		args = st.args(key)
	}
	return cl.sendToOthers(v, args, uint64(cl.stripe(key)), sent, lp)
}

// sendToOthers sends args to every member of v but this one, on the connection pick chooses,
// and appends the calls to sent. A member behind is skipped: it is sent the whole state once it
// answers. A member that cannot be reached is behind from then on.
//
// With lp (a command an event loop runs) the copies go out on connections that loop drives
// itself, with the other requests of its poll round, and their replies resume the client's
// connection on the loop (copiesOnLoop): no goroutine switch per write. Their order relative
// to copies sent on the pooled connections does not matter: each carries its stamp, and a
// member applies only the newest.
func (cl *Cluster) sendToOthers(v *view, args [][]byte, pick uint64, sent []sentCopy, lp *resp.Loop) []sentCopy {
	for _, m := range v.ring.Members() {
		if m == cl.self || v.addrs[m] == "" || cl.isBehind(m) {
			continue
		}
		if cl.stats.On() {
			cl.stats.Forwards.Inc()
		}
		if lp != nil {
			// A connection that cannot be opened fails the call once the dial, on a goroutine
			// of its own, has failed; the reply then marks the member behind (copyDone).
			sent = append(sent, sentCopy{m, cl.copies.SendOn(lp, v.addrs[m], args, cl.copyTimeout())})
			continue
		}
		call := cl.copies.Send(v.addrs[m], args, pick, cl.copyTimeout())
		if call.Failed() {
			// Not reachable (the dial failed): the writes after this one, this command's
			// other keys included, skip it instead of dialling again.
			cl.copyFailed(m, "could not reach it")
			continue
		}
		sent = append(sent, sentCopy{m, call})
	}
	return sent
}

// copyTimeout bounds a copy: the forward timeout, plus one more for the dial that sending a later
// copy of the same write to a member that stopped answering may take (the copies already sent
// are not read meanwhile, and their replies must not be counted late).
func (cl *Cluster) copyTimeout() time.Duration { return 2 * cl.cfg.ForwardTimeout }

// awaitCopies waits for the copies sent to members that are not behind. A member whose copy
// failed is behind: it is sent the whole state again, and until that is done the copies sent to
// it are not waited for, so that a member that stopped answering delays writes by one forward
// timeout, not one per write.
func (cl *Cluster) awaitCopies(sent []sentCopy) {
	// Every copy is read as soon as its reply arrives (Notify starts a reader on each
	// connection), not in turn: waiting for a member that stopped answering must not let the
	// deadline of another member's copy, already answered, run out unread.
	var wg sync.WaitGroup
	for _, s := range sent {
		if cl.isBehind(s.member) {
			continue
		}
		s.call.Flush() // the request may still sit in the connection's buffer
		wg.Add(1)
		if !s.call.Notify(wg.Done) {
			wg.Done() // finished already
		}
	}
	wg.Wait()
	for _, s := range sent {
		if cl.isBehind(s.member) {
			continue
		}
		cl.copyDone(s)
	}
}

// copyDone takes note of how the finished copy s went: a member that did not answer is behind.
func (cl *Cluster) copyDone(s sentCopy) {
	r, err := s.call.Result()
	if err == nil && r.IsError() {
		// The member answered but could not apply it (out of memory, say): sending it
		// everything again would not help.
		cl.copiesFailed.Add(1)
		cl.log.Warn("replicate: a member refused a copy", "member", s.member, "err", r.Text())
		return
	}
	if err != nil {
		cl.copyFailed(s.member, err.Error())
	}
}

// copiesOnLoop is the reply of a write an event loop ran, ready once its copies, sent on the
// loop's own connections, have been answered. The loop parks the client's connection meanwhile
// (peer.Joined) and serves its other clients.
type copiesOnLoop struct {
	peer.Joined
	cl    *Cluster
	reply resp.Reply
	sent  []sentCopy
}

// Reply implements resp.Later: the write's reply, once every copy has been answered (it drives
// the loop's connections itself when called before that).
func (l *copiesOnLoop) Reply() resp.Reply {
	for _, s := range l.sent {
		if !l.cl.isBehind(s.member) {
			l.cl.copyDone(s)
		}
	}
	return l.reply
}

func (cl *Cluster) isBehind(member string) bool {
	cl.behindMu.Lock()
	_, ok := cl.behind[member]
	cl.behindMu.Unlock()
	return ok
}

// copyFailed notes that member missed a copy (why says what happened): it is behind until it
// has been sent the whole state, which is queued.
func (cl *Cluster) copyFailed(member, why string) {
	cl.copiesFailed.Add(1)
	cl.behindMu.Lock()
	_, was := cl.behind[member]
	cl.behind[member] = struct{}{}
	cl.behindMu.Unlock()
	if !was {
		cl.log.Warn("replicate: a copy failed; the member will be sent the whole state once it answers",
			"member", member, "err", why)
		cl.queueSync(member)
	}
}

// forward sends a write that depends on its key's state to the key's owner, which decides it and
// copies the result to every member (this one included) before replying.
func (cl *Cluster) forward(c *commands.Ctx, v *view, owner string, cmd *commands.Command, args [][]byte) resp.Reply {
	addr := v.addrs[owner]
	if addr == "" {
		return resp.Error("ERR cluster: no address for member " + owner)
	}
	if cl.stats.On() {
		cl.stats.Forwards.Inc()
	}
	if cmd.Flags&commands.FlagBlocking != 0 {
		// Watched, like a FETCHLOCK waiting here: a client that disconnects ends the wait (and
		// its connection to the owner) at once, not when its TIMEOUT runs out.
		var r resp.Reply
		var err error
		c.Blocking(func() { r, err = cl.forwards.DoExclusive(c.Context(), addr, args, cl.blockingTimeout(args)) })
		if err != nil {
			return peer.ErrorReply(err)
		}
		cl.held.Track(c, args[1], r) // FETCHLOCK: the lease must end if the client goes
		return r
	}
	// A forwarded write waits for the owner's copies, which may wait for a member that stopped
	// answering (copyTimeout).
	call := cl.forwards.Send(addr, args, pick(c), cl.copyTimeout()+cl.cfg.ForwardTimeout)
	if c.Conn == nil {
		return call.Wait()
	}
	st := stateOf(c)
	st.forwards.Add(1)
	return resp.Reply{Later: &forwardLater{Call: call, st: st}}
}

// pick keeps one client's requests to a peer on one connection, so they stay in order.
func pick(c *commands.Ctx) uint64 {
	if c.Conn == nil {
		return 0
	}
	return uint64(c.Conn.ID)
}

// blockingTimeout bounds a forwarded FETCHLOCK: its TIMEOUT option (milliseconds) or the default
// wait, plus the forward timeout.
func (cl *Cluster) blockingTimeout(args [][]byte) time.Duration {
	wait := cl.cfg.BlockingWait
	for i := 2; i+1 < len(args); i++ {
		if commands.ArgIs(args[i], "timeout") {
			if ms, ok := redisnum.ParseInt(args[i+1]); ok && ms >= 0 {
				wait = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return wait + cl.cfg.ForwardTimeout
}

// flushAll runs FLUSHALL or FLUSHDB here, stamped, and on every other member.
func (cl *Cluster) flushAll(c *commands.Ctx, cmd *commands.Command, args [][]byte) resp.Reply {
	c.ReadLock() // the gate before the stripes, as every write takes them; never across broadcast
	cl.lockAll()
	s := Stamp{Time: cl.clock.next(), Node: cl.id}
	reply := settled(cl.node.ExecLocal(c, cmd, args))
	if !reply.IsError() {
		cl.versions.setFlush(s)
		cl.versions.dropOlder(s)
	}
	cl.unlockAll()
	c.ReadUnlock()
	if reply.IsError() {
		return reply
	}
	cl.broadcast([][]byte{[]byte("VELA"), []byte("RFLUSH"), u64(s.Time), u64(s.Node)})
	return reply
}

// tagInvalidate runs TAGINVALIDATE here, stamped, and on every other member. It replies with
// the number of keys deleted here (every member holds every key).
func (cl *Cluster) tagInvalidate(c *commands.Ctx, _ *commands.Command, args [][]byte) resp.Reply {
	if _, ok := cl.store.(store.Tagger); !ok {
		return resp.Error(string(commands.ErrNoTags))
	}
	s := Stamp{Time: cl.clock.next(), Node: cl.id}
	cl.versions.setTags(args[1:], s)
	c.ReadLock() // not in the middle of an EXEC here; never across broadcast
	n, err := cl.invalidate(c.Context(), args[1:], s)
	c.ReadUnlock()
	if err != nil {
		return resp.Error("ERR " + err.Error())
	}
	cl.broadcast(append([][]byte{[]byte("VELA"), []byte("RTAGS"), u64(s.Time), u64(s.Node)}, args[1:]...))
	return resp.Int(int64(n))
}

// broadcast sends args (VELA RFLUSH or RTAGS) to every other member and waits for them. A member
// behind is skipped: the whole state it is sent carries the FLUSHALL and TAGINVALIDATE stamps.
func (cl *Cluster) broadcast(args [][]byte) {
	cl.awaitCopies(cl.sendToOthers(cl.view.Load(), args, 0, nil, nil))
}

func (cl *Cluster) lockAll() {
	for i := range cl.stripes {
		cl.stripes[i].Lock()
	}
}

func (cl *Cluster) unlockAll() {
	for i := range cl.stripes {
		cl.stripes[i].Unlock()
	}
}

func u64(n uint64) []byte { return strconv.AppendUint(nil, n, 10) }

// releaseLease gives up, on the key's owner, a lease that owner granted to a client of this node
// that has disconnected (fetchlock.Forwarded).
func (cl *Cluster) releaseLease(key, token string) {
	v := cl.view.Load()
	owner := v.ring.Owner([]byte(key))
	addr := v.addrs[owner]
	if owner == cl.self || addr == "" {
		return // the key's owner is now this node, or left: the lease ended with it
	}
	args := [][]byte{[]byte("FETCHRELEASE"), []byte(key), []byte(token)}
	if _, err := cl.forwards.Do(addr, args, 0, cl.cfg.ForwardTimeout); err != nil {
		cl.log.Debug("releasing a disconnected client's lease failed", "key", key, "err", err)
	}
}

// cloneArgs copies args, which belong to the connection's read buffer, for a reply computed later.
func cloneArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = slices.Clone(a)
	}
	return out
}

// AckedCopies implements commands.CopyCounter for WAIT: a write is acknowledged once every
// other member not behind has applied its copy, so each of those holds every acknowledged
// write.
func (cl *Cluster) AckedCopies() int {
	v := cl.view.Load()
	if v == nil {
		return 0
	}
	n := 0
	cl.behindMu.Lock()
	for member := range v.addrs {
		if _, behind := cl.behind[member]; member != cl.cfg.NodeName && !behind {
			n++
		}
	}
	cl.behindMu.Unlock()
	return n
}
