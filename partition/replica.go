package partition

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/ring"
	"github.com/vela-cache/vela/store"
)

// writeLocal runs a write on this node, the owner of its keys, and copies the resulting state of
// each key to the key's other holders before replying. The key stripes stay locked from the
// write until the copies are queued, so copies of one key reach a replica in write order.
//
// On a connection the wait for the copies is deferred (a Later reply, copiesLater): the
// connection goes on with the commands pipelined behind the write, whose copies then travel
// with its own, instead of one round trip to the replicas per write. A client's or a peer's
// command that must not overtake the write waits for it, as for any Later reply (only GET and
// SET do not: commands.FlagPipelined); the write itself is done here before the reply is.
func (cl *Cluster) writeLocal(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte) resp.Reply {
	first, last, step := cmd.KeyPositions(len(args))
	var keys [][]byte
	for i := first; first > 0 && i <= last; i += step {
		keys = append(keys, args[i])
	}
	if c.InExec() {
		return cl.writeInExec(c, v, cmd, args, keys)
	}
	if v.prev != nil && !blindWrite(cmd, args) {
		for _, k := range keys { // before the stripes are locked: this waits for other members
			cl.fetchIfMissing(c, v, k)
		}
	}
	c.ReadLock() // the gate before the stripes, as a peer's copy, installed under both, takes them
	stripes := cl.lockStripes(keys)
	if v.fence != nil && changes(cmd) {
		for _, k := range keys {
			cl.note(v, k) // before the write: a copy handed over later must not undo it
		}
	}
	reply := settled(cl.node.ExecLocal(c, cmd, args))
	var calls []peer.Request
	if !reply.IsError() {
		lp := cl.copyLoop(c)
		for _, k := range keys {
			calls = cl.copyKey(c.Context(), v, k, calls, lp)
		}
	}
	cl.unlockStripes(stripes)
	c.ReadUnlock()
	if c.Conn != nil && len(calls) > 0 {
		l := &copiesLater{cl: cl, reply: reply}
		for _, call := range calls {
			l.Add(call)
		}
		return resp.Reply{Later: l}
	}
	cl.awaitCopies(calls)
	return reply
}

// copyLoop returns the event loop running c's command when the copies of its writes may travel
// on the loop's own connections (Inline lets only such writes run on a loop); nil otherwise.
func (cl *Cluster) copyLoop(c *commands.Ctx) *resp.Loop {
	if lp := c.Loop(); lp != nil && cl.loopWrites {
		return lp
	}
	return nil
}

// copiesLater is a write's reply, ready once its copies to the key's other holders have landed.
// On an event loop the client's connection is parked until then (peer.Joined); on a goroutine
// Reply waits.
type copiesLater struct {
	peer.Joined
	cl    *Cluster
	reply resp.Reply
}

// Reply implements resp.Later.
func (l *copiesLater) Reply() resp.Reply {
	l.cl.awaitCopies(l.Requests())
	return l.reply
}

// writeInExec is writeLocal for a command EXEC runs, while no other command of this node runs:
// the write needs no stripe, and its copies wait until EXEC has let other commands in again
// (AfterExec). Sent now, they would wait for members that may themselves be in an EXEC,
// sending copies here. The copies then carry the keys' state as it is after EXEC, and go out
// under the keys' stripes, in order with other writes' copies.
func (cl *Cluster) writeInExec(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte, keys [][]byte) resp.Reply {
	if v.fence != nil && changes(cmd) {
		for _, k := range keys {
			cl.note(v, k)
		}
	}
	reply := settled(cl.node.ExecLocal(c, cmd, args))
	if reply.IsError() || len(keys) == 0 {
		return reply
	}
	keys = cloneArgs(keys)
	ctx := c.Context()
	c.AfterExec(func() { cl.copyKeys(ctx, v, keys) })
	return reply
}

// copyKeys sends the current state of keys to their other holders, under their stripes, and
// waits for the copies to land.
func (cl *Cluster) copyKeys(ctx context.Context, v *view, keys [][]byte) {
	stripes := cl.lockStripes(keys)
	var calls []peer.Request
	for _, k := range keys {
		calls = cl.copyKey(ctx, v, k, calls, nil)
	}
	cl.unlockStripes(stripes)
	cl.awaitCopies(calls)
}

// lockStripes locks the stripes of keys, in order, and returns them for unlockStripes.
func (cl *Cluster) lockStripes(keys [][]byte) []int {
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

func (cl *Cluster) unlockStripes(stripes []int) {
	for _, s := range stripes {
		cl.stripes[s].Unlock()
	}
}

// awaitCopies waits for copies sent to replicas; one that fails is logged (except to a replica
// known not to answer, whose silence the pool has logged once).
func (cl *Cluster) awaitCopies(calls []peer.Request) {
	for _, call := range calls {
		if _, err := call.Result(); err != nil && !errors.Is(err, peer.ErrNotAnswering) {
			cl.log.Warn("cluster: copy to replica failed", "err", err)
		}
	}
}

// copyKey sends key's current state to its holders other than this node: on lp's own
// connections when lp is not nil (a write an event loop runs), else on the pooled ones.
func (cl *Cluster) copyKey(ctx context.Context, v *view, key []byte, calls []peer.Request, lp *resp.Loop) []peer.Request {
	var buf [8]string
	owners := v.ring.Owners(key, cl.cfg.Replicas, buf[:0])
	args, err := cl.restoreArgs(ctx, key, false)
	if err != nil {
		cl.log.Warn("cluster: reading key for replicas failed", "err", err)
		return calls
	}
	for _, o := range owners {
		if o == cl.self {
			continue
		}
		if cl.stats.On() {
			cl.stats.Forwards.Inc()
		}
		if lp != nil {
			calls = append(calls, cl.copies.SendOn(lp, v.addrs[o], args, cl.cfg.ForwardTimeout))
			continue
		}
		calls = append(calls, cl.copies.Send(v.addrs[o], args, uint64(cl.stripe(key)), cl.cfg.ForwardTimeout))
	}
	return calls
}

// restoreArgs builds the peer command that recreates key's current state elsewhere: VELA RESTORE
// key value pxat [NX] [TAGS tag …], or VELA DROP key when the key is gone.
func (cl *Cluster) restoreArgs(ctx context.Context, key []byte, nx bool) ([][]byte, error) {
	ins, err := cl.store.Do(ctx, key, store.Op{Kind: store.Inspect})
	if err != nil {
		return nil, err
	}
	var val store.Result
	if ins.Found {
		if val, err = cl.store.Do(ctx, key, store.Op{Kind: store.Get}); err != nil {
			return nil, err
		}
	}
	if !ins.Found || !val.Found {
		return [][]byte{[]byte("VELA"), []byte("DROP"), key}, nil
	}
	args := [][]byte{[]byte("VELA"), []byte("RESTORE"), key, val.Value, strconv.AppendInt(nil, ins.ExpireAt, 10)}
	if nx {
		args = append(args, []byte("NX"))
	}
	if tr, ok := cl.store.(store.TagReader); ok {
		tags, err := tr.KeyTags(ctx, key)
		if err != nil {
			return nil, err
		}
		if len(tags) > 0 {
			args = append(append(args, []byte("TAGS")), tags...)
		}
	}
	return args, nil
}

// restore serves VELA RESTORE key value pxat [NX] [TAGS tag …] for peers: it writes the entry
// as given (pxat 0: no expiry). With NX (a handed-over copy) it is installed only if the key is
// absent and, during a handoff window, was not changed here since the window opened; without
// (the owner's copy to a replica) it is written and, if a copy may still arrive, noted.
// Replies 1 when written.
func (cl *Cluster) restore(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	if len(args) < 5 {
		return resp.Reply{}, commands.ErrSyntax
	}
	at, err := strconv.ParseInt(string(args[4]), 10, 64)
	if err != nil || at < 0 {
		return resp.Reply{}, commands.ErrNotInteger
	}
	op := store.Op{Kind: store.Set, Value: args[3], TTL: store.TTLSet, ExpireAt: at}
	for i := 5; i < len(args); i++ {
		switch {
		case commands.ArgIs(args[i], "nx"):
			op.Cond = store.CondNX
		case commands.ArgIs(args[i], "tags"):
			op.Tags = args[i+1:]
			i = len(args)
		default:
			return resp.Reply{}, commands.ErrSyntax
		}
	}
	if at != 0 && at <= time.Now().UnixMilli() {
		return resp.Zero, nil // already expired: nothing to keep
	}
	if op.Cond == store.CondNX {
		done, err := cl.install(c.Context(), args[2], op)
		if err != nil {
			return resp.Reply{}, err
		}
		return resp.Bool(done), nil
	}
	cl.notePeerWrite(args[2])
	res, err := cl.store.Do(c.Context(), args[2], op)
	if err != nil {
		return resp.Reply{}, err
	}
	if res.Done {
		cl.node.NotifyKey(args[2])
	}
	return resp.Bool(res.Done), nil
}

// drop serves VELA DROP key for peers: the key was deleted on its owner. If a copy of the key
// may still arrive, the delete is noted, even when the key had not arrived here yet.
func (cl *Cluster) drop(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	cl.notePeerWrite(args[2])
	res, err := cl.store.Do(c.Context(), args[2], store.Op{Kind: store.Delete})
	if err != nil {
		return resp.Reply{}, err
	}
	if res.Done {
		cl.node.NotifyKey(args[2])
	}
	return resp.Bool(res.Done), nil
}

// pullIfMissing fetches key from its previous owner when the ring changed lately, the key is
// not here, and that owner is still reachable (a member, or a member leaving): the key may not
// have been handed over yet. The previous owner gives it up (VELA TAKE), so its handoff pass
// will not send it again later. The copy is installed as a handed-over one: not over a change
// made here since the handoff window opened.
//
// When several members changed lately (one leaving while another joins), the key may be at its
// owner in any of the recent rings: up to maxPullFrom of them are asked in turn (pullSources),
// until one has it.
//
// It returns the member the key went to when that is one this node's ring does not know yet
// (handed.go): the caller must send its command there rather than run it on the missing key.
func (cl *Cluster) pullIfMissing(c *commands.Ctx, v *view, key []byte) *dest {
	if time.Since(v.since) >= pullWindow {
		return nil
	}
	from := cl.pullSources(v, key)
	if len(from) == 0 {
		return nil
	}
	if res, err := cl.store.Do(c.Context(), key, store.Op{Kind: store.Inspect}); err != nil || res.Found {
		return nil
	}
	// One pull of a key at a time: the previous owner gives the key to the first TAKE and
	// answers nil to the next, and a command that went on at that nil before the first pull
	// installed the key would run on the missing key (and the copy would then be refused).
	// Later callers wait for the pull under way and find the key installed (or share its
	// answer that the key is elsewhere).
	to, _, _ := cl.pulls.Do(string(key), func() (any, error) {
		return cl.pull(c, v, key, from), nil
	})
	d, _ := to.(*dest)
	return d
}

// pull asks the members in from, in turn, for key (VELA TAKE) and installs the first copy one
// hands out. A member that answers it is leaving (errTakeLeaving) has handed its keys on: the
// members after it in the rings it was taken from are asked too, as for a member this node
// knows is leaving (pullSources). This node may not know: it joined while that member was
// leaving, and learned of it neither from the member (which announced its leave before this
// node joined) nor from gossip yet. A member that cannot be reached (or drops the connection)
// counts as leaving too: it may have left meanwhile, and its successors have its keys.
//
// A member that answers it handed the key on (HANDED-TO, handed.go) is followed: a member this
// node knows is asked in turn; one it does not know yet is returned, and remembered for the next
// commands on the key (as is a member this node handed the key to itself). This node's ring
// lags that member's join: the key's owner is that member, which holds the key.
func (cl *Cluster) pull(c *commands.Ctx, v *view, key []byte, from []string) *dest {
	if res, err := cl.store.Do(c.Context(), key, store.Op{Kind: store.Inspect}); err != nil || res.Found {
		return nil // a pull that has just ended installed it
	}
	if d, ok := cl.wentTo(key); ok {
		if v.addrs[d.member] == "" {
			return d
		}
		from = append([]string{d.member}, slices.DeleteFunc(slices.Clone(from), func(m string) bool { return m == d.member })...)
	}
	gone := v.gone
	for i := 0; i < len(from); i++ {
		m := from[i]
		if cl.refuses(key) {
			return nil // changed here since: this node's state wins
		}
		if cl.stats.On() {
			cl.stats.Forwards.Inc()
		}
		// On the connections that carry no forwards (Cluster.copies): a peer's command may be
		// waiting for this pull, and the previous owner may be pulling from this node meanwhile.
		r, err := cl.copies.Do(v.addrs[m], cl.takeArgs(v, key), uint64(cl.stripe(key)), cl.cfg.ForwardTimeout)
		if err == nil && r.Kind == resp.KindArray && len(r.Elems) >= 2 {
			// Installed even if the client that asked has gone: the previous owner gave the
			// key up, and it is here or nowhere.
			cl.installPulled(context.WithoutCancel(c.Context()), key, r)
			return nil
		}
		if d, ok := parseHandedTo(r.Str); err == nil && r.IsError() && ok {
			switch {
			case d.member == cl.self:
				return nil // handed here, and gone since (deleted, expired)
			case v.addrs[d.member] != "":
				if !slices.Contains(from, d.member) {
					from = append(from, d.member)
				}
			case d.addr != "":
				cl.sentTo(key, d)
				return &d
			}
			continue
		}
		// Unreachable, or closing the connection, the member may have left since: its
		// successors took its keys. (A member that took the key and lost the reply gave it to
		// nobody: asking further finds nothing, as stopping would.) One too slow to answer is
		// not asked past: it is there, and the command has waited long enough.
		left := (err != nil && !errors.Is(err, peer.ErrTimeout)) || (err == nil && r.IsError() && r.Str == errTakeLeaving)
		if left && !slices.Contains(gone, m) {
			gone = append(slices.Clip(gone), m)
			nv := *v
			nv.gone = gone
			for _, n := range cl.pullSources(&nv, key) {
				if !slices.Contains(from, n) {
					from = append(from, n)
				}
			}
		}
	}
	return nil
}

// errTakeLeaving is a leaving member's answer to VELA TAKE for a key it does not hold: it may
// have handed the key on already.
const errTakeLeaving = "LEAVING cluster: this member is leaving, its keys are handed on"

// installPulled installs r, a TAKE or PEEK reply [value, pxat, tag …], as a handed-over copy
// of key, unless it has expired meanwhile.
func (cl *Cluster) installPulled(ctx context.Context, key []byte, r resp.Reply) {
	at, err := strconv.ParseInt(r.Elems[1].Text(), 10, 64)
	if err != nil || (at != 0 && at <= time.Now().UnixMilli()) {
		return
	}
	op := store.Op{Kind: store.Set, Value: r.Elems[0].Bytes, TTL: store.TTLSet, ExpireAt: at}
	for _, t := range r.Elems[2:] {
		op.Tags = append(op.Tags, t.Bytes)
	}
	if _, err := cl.install(ctx, key, op); err != nil {
		cl.log.Warn("cluster: installing a pulled key failed", "err", err)
	}
}

// maxPullFrom bounds the members a pull asks for one key.
const maxPullFrom = 3

// pullSources returns the members key may be at, in the order a pull asks them: its owner in
// v.prev, in v.prevAlt, then in the rings before the window's changes, most recent first; each
// once, not this node, at most maxPullFrom. A member no longer reachable (it has left) handed
// its keys to its successor in the ring: that member is asked instead. After a member that is
// leaving, its successor is asked too (the member may have handed the key over already), as is
// this node's (the member may have handed it over by a ring without this node).
func (cl *Cluster) pullSources(v *view, key []byte) []string {
	var out []string
	var buf [8]string
	add := func(r *ring.Ring) {
		for _, m := range r.Owners(key, r.Len(), buf[:0]) {
			if len(out) == maxPullFrom {
				return
			}
			if v.addrs[m] == "" || m == cl.self {
				continue // gone (its successor took its keys), or here
			}
			if !slices.Contains(out, m) {
				out = append(out, m)
			}
			if !slices.Contains(v.gone, m) {
				return
			}
		}
	}
	for _, r := range []*ring.Ring{v.prev, v.prevAlt} {
		if r != nil {
			add(r)
		}
	}
	for i := len(v.from) - 1; i >= 0; i-- {
		add(v.from[i])
	}
	return out
}

// take serves VELA TAKE key [member addr] for peers: the new owner of key (member, at addr)
// wants it before the handoff pass gets to it. It replies [value, pxat, tag …] and deletes the
// key here, remembering where it went; when the key is absent, where it went (HANDED-TO,
// handed.go), errTakeLeaving when this member is leaving, or nil.
//
// It waits first for this node's ring to place the key elsewhere (awaitNotOwner), then for the
// handoff pass's copy of the key, if one is on its way to another member (awaitLanded), both
// within half the forward timeout.
func (cl *Cluster) take(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	start := time.Now()
	var to dest
	switch len(args) {
	case 3:
	case 5:
		to = dest{member: string(args[3]), addr: string(args[4])}
	default:
		return resp.Reply{}, commands.ErrSyntax
	}
	cl.awaitNotOwner(c, args[2])
	cl.awaitLanded(c, args[2], to.member, start.Add(cl.cfg.ForwardTimeout/2))
	return cl.handOut(c, args[2], &to)
}

// awaitNotOwner waits, up to half the forward timeout the asker gives its request, until this
// node's ring no longer makes it key's owner.
//
// A member asks for a key (VELA TAKE, PEEK) because its ring makes it the key's owner. When
// this node's own ring still does so too, this node has not seen the change the asker has (a
// join it has not heard of yet): its clients' writes to key would still run here after the
// copy is handed out, on a missing key (TAKE) or on a copy the new owner no longer reads
// (PEEK), and be lost to the new owner's copy. Once this node's ring has caught up its writes
// to key go to the new owner. When the rings may never agree the copy is handed out after
// that wait all the same.
func (cl *Cluster) awaitNotOwner(c *commands.Ctx, key []byte) {
	var t *time.Timer
	for {
		ch := cl.viewed.Load()
		if cl.view.Load().ring.Owner(key) != cl.self {
			break
		}
		if t == nil {
			t = time.NewTimer(cl.cfg.ForwardTimeout / 2)
			defer t.Stop()
			cl.waitedPulls.Add(1)
		}
		select {
		case <-*ch:
		case <-t.C:
			return
		case <-c.Context().Done():
			return
		}
	}
}

// peek serves VELA PEEK key for peers: with replicas, the key's new owner lacks it and this
// node, one of its holders, keeps its copy. It replies as TAKE does, deleting nothing, once
// this node's ring no longer makes it the owner (awaitNotOwner).
func (cl *Cluster) peek(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	cl.awaitNotOwner(c, args[2])
	return cl.handOut(c, args[2], nil)
}

// handOut replies [value, pxat, tag …] for key, or nil when absent. For TAKE (to not nil) it
// deletes the key and records that it went to *to; a key absent after it was handed on is
// answered with where it went (HANDED-TO), so that the asker does not run on a missing key.
//
// A TAKE holds the key's stripe from its read to its delete, as the handoff pass does around
// its drop and record: two members whose rings disagree may ask at once, and only one may get
// the key.
func (cl *Cluster) handOut(c *commands.Ctx, key []byte, to *dest) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	del := to != nil
	if del {
		s := cl.stripe(key)
		cl.stripes[s].Lock()
		defer cl.stripes[s].Unlock()
	}
	rest, err := cl.restoreArgs(c.Context(), key, false)
	if err != nil {
		return resp.Reply{}, err
	}
	if string(rest[1]) == "DROP" {
		if !del {
			return resp.NilArray, nil
		}
		if d, ok := cl.wentTo(key); ok {
			return handedToReply(d), nil // the asker follows it (pull)
		}
		if cl.leaving.Load() {
			return resp.Error(errTakeLeaving), nil // the asker looks further (pull)
		}
		return resp.NilArray, nil
	}
	out := []resp.Reply{resp.Bulk(rest[3]), resp.Bulk(rest[4])}
	if len(rest) > 6 { // … TAGS tag …
		for _, t := range rest[6:] {
			out = append(out, resp.Bulk(t))
		}
	}
	if !del {
		return resp.Array(out), nil
	}
	cl.sentTo(key, *to) // before the delete: a later asker never finds the key gone unrecorded
	if res, err := cl.store.Do(c.Context(), key, store.Op{Kind: store.Delete}); err == nil && res.Done {
		cl.node.NotifyKey(key)
	}
	return resp.Array(out), nil
}

// fetchIfMissing is pullIfMissing with replicas = N ≥ 2, for a write that reads its key first:
// this node owns key but lacks it (it joined lately, or its holders changed), while the key's
// other holders, before or after the change, keep theirs. It asks them (VELA PEEK, which
// deletes nothing) in turn and installs the first copy found, as a handed-over copy. Without
// it the write would start from a missing key, and its result, copied to the holders, would
// overwrite their copies.
func (cl *Cluster) fetchIfMissing(c *commands.Ctx, v *view, key []byte) {
	if v.prev == nil || time.Since(v.since) >= pullWindow {
		return
	}
	var buf [16]string
	holders := v.prev.Owners(key, cl.cfg.Replicas, buf[:0])
	holders = v.ring.Owners(key, cl.cfg.Replicas, holders)
	holders = slices.DeleteFunc(holders, func(m string) bool { return m == cl.self || v.addrs[m] == "" })
	if len(holders) == 0 {
		return
	}
	if res, err := cl.store.Do(c.Context(), key, store.Op{Kind: store.Inspect}); err != nil || res.Found {
		return
	}
	seen := holders[:0:0]
	for _, m := range holders {
		if slices.Contains(seen, m) {
			continue
		}
		seen = append(seen, m)
		if cl.refuses(key) {
			return // changed here since: this node's state wins
		}
		r, err := cl.copies.Do(v.addrs[m], [][]byte{[]byte("VELA"), []byte("PEEK"), key}, uint64(cl.stripe(key)), cl.cfg.ForwardTimeout)
		if err == nil && r.Kind == resp.KindArray && len(r.Elems) >= 2 {
			cl.installPulled(c.Context(), key, r)
			return
		}
	}
}
