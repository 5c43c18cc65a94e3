package partition

import (
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// errCrossSlot is Redis Cluster's reply to a multi-key command whose keys have several owners,
// for the commands Vela does not know how to split.
const errCrossSlot = "CROSSSLOT Keys in request don't hash to the same slot"

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
		return cl.clusterWide(c, cmd, args), true
	}
	first, last, step := cmd.KeyPositions(len(args))
	if first == 0 {
		return resp.Reply{}, false
	}
	v := cl.view.Load()
	if first+step > last {
		key := args[first]
		if cl.cfg.Replicas == 1 {
			owner := v.ring.Owner(key)
			if owner == cl.self || owner == "" {
				if v.fence != nil { // a handoff window (window.go)
					cl.localInWindow(c, v, cmd, key)
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
	if cl.cfg.Replicas != 1 || cmd.Flags&(commands.FlagClusterWide|commands.FlagBlocking) != 0 {
		return false
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

func cloneArgs(args [][]byte) [][]byte {
	out := make([][]byte, len(args))
	for i, a := range args {
		out[i] = slices.Clone(a)
	}
	return out
}

// mergeKind says how the per-owner replies of a split command combine.
type mergeKind uint8

const (
	mergePositional mergeKind = iota + 1 // MGET: one element per key, in the request's order
	mergeSum                             // DEL, EXISTS…: integers add up
	mergeOK                              // MSET: OK when every part is
)

// splittable are the multi-key commands Vela splits by owner.
var splittable = map[string]mergeKind{
	"mget": mergePositional, "del": mergeSum, "unlink": mergeSum, "exists": mergeSum,
	"touch": mergeSum, "mset": mergeOK, "msetnx": mergeOK,
}

// group is the part of a multi-key command for one owner.
type group struct {
	owner string
	idx   []int    // positions of the keys in the original request, in order
	args  [][]byte // the command name and this owner's keys (with their values)
	reply resp.Reply
	call  *peer.Call
}

// multi routes a command with several keys.
func (cl *Cluster) multi(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte, first, last, step int) (resp.Reply, bool) {
	if (len(args)-first)%step != 0 { // a key without its value: refused whole, before the split
		return resp.Error(string(commands.WrongArity(cmd.Name))), true
	}
	var groups []*group
	var buf [8]string
	nkeys := 0
	for i := first; i <= last; i += step {
		owners := v.ring.Owners(args[i], 1, buf[:0])
		owner := cl.self
		if len(owners) > 0 {
			owner = owners[0]
		}
		var g *group
		for _, x := range groups {
			if x.owner == owner {
				g = x
				break
			}
		}
		if g == nil {
			g = &group{owner: owner, args: [][]byte{args[0]}}
			groups = append(groups, g)
		}
		g.idx = append(g.idx, nkeys)
		g.args = append(g.args, args[i:min(i+step, len(args))]...)
		nkeys++
	}
	if v.fence != nil {
		cl.multiInWindow(c, v, cmd, args, first, last, step)
	}
	write := cmd.Flags&commands.FlagWrite != 0 && cl.cfg.Replicas > 1
	_, canSplit := splittable[cmd.Name]
	if len(groups) == 1 {
		switch {
		case groups[0].owner != cl.self && cl.readFallback(cmd) && canSplit:
			// Through runGroups below, which falls back to the other holders.
		case groups[0].owner != cl.self:
			return cl.forward(c, v, groups[0].owner, args, cmd.Flags), true
		case write:
			return cl.writeLocal(c, v, cmd, args), true
		default:
			return resp.Reply{}, false
		}
	}
	kind, ok := splittable[cmd.Name]
	if !ok {
		if len(groups) == 1 {
			return resp.Reply{}, false
		}
		return resp.Error(errCrossSlot), true
	}
	if cmd.Name == "msetnx" {
		return cl.msetnx(c, v, groups), true
	}
	cl.runGroups(c, v, cmd, groups)
	return merge(kind, groups, nkeys), true
}

// runGroups runs every group: the remote ones are sent first so they overlap the local one.
func (cl *Cluster) runGroups(c *commands.Ctx, v *view, cmd *commands.Command, groups []*group) {
	for _, g := range groups {
		if g.owner != cl.self {
			g.call = cl.send(c, v, g.owner, g.args)
		}
	}
	for _, g := range groups {
		if g.owner == cl.self {
			if cmd.Flags&commands.FlagWrite != 0 && cl.cfg.Replicas > 1 {
				g.reply = cl.writeLocal(c, v, cmd, g.args)
			} else {
				g.reply = settled(cl.node.ExecLocal(c, cmd, g.args))
			}
		}
	}
	for _, g := range groups {
		if g.call == nil {
			continue
		}
		r, err := g.call.Result()
		switch {
		case err == nil:
			g.reply = r
		case cl.readFallback(cmd):
			g.reply = cl.groupFallback(c, v, cmd, g)
		default:
			g.reply = peer.ErrorReply(err)
		}
	}
}

// readFallback reports whether cmd's keys may be read from their other holders when the owner
// does not answer.
func (cl *Cluster) readFallback(cmd *commands.Command) bool {
	return cl.cfg.Replicas > 1 && cmd.Flags&commands.FlagReadOnly != 0
}

// groupFallback runs a read-only group whose owner did not answer key by key on each key's other
// holders (they differ from key to key). Only MGET, EXISTS and TOUCH get here.
func (cl *Cluster) groupFallback(c *commands.Ctx, v *view, cmd *commands.Command, g *group) resp.Reply {
	var elems []resp.Reply
	var sum int64
	var buf [8]string
	for _, key := range g.args[1:] {
		args := [][]byte{g.args[0], key}
		var r resp.Reply
		var err error = peer.ErrUnreachable
		for _, o := range v.ring.Owners(key, cl.cfg.Replicas, buf[:0])[1:] {
			if o == cl.self {
				r, err = settled(cl.node.ExecLocal(c, cmd, args)), nil
			} else {
				r, err = cl.send(c, v, o, args).Result()
			}
			if err == nil {
				break
			}
		}
		switch {
		case err != nil:
			return peer.ErrorReply(err)
		case r.IsError():
			return r
		case r.Kind == resp.KindArray && len(r.Elems) == 1:
			elems = append(elems, r.Elems[0])
		default:
			sum += r.Int
		}
	}
	if cmd.Name == "mget" {
		return resp.Array(elems)
	}
	return resp.Int(sum)
}

func merge(kind mergeKind, groups []*group, nkeys int) resp.Reply {
	for _, g := range groups {
		if g.reply.IsError() {
			return g.reply
		}
	}
	switch kind {
	case mergePositional:
		out := make([]resp.Reply, nkeys)
		for _, g := range groups {
			if len(g.reply.Elems) != len(g.idx) {
				return resp.Error("ERR cluster: member " + g.owner + " sent a reply of the wrong length")
			}
			for j, pos := range g.idx {
				out[pos] = g.reply.Elems[j]
			}
		}
		return resp.Array(out)
	case mergeSum:
		var n int64
		for _, g := range groups {
			n += g.reply.Int
		}
		return resp.Int(n)
	}
	return resp.OK
}

// msetnx sets the keys only if none exists: it asks every owner with EXISTS, then runs MSETNX
// on each owner's part (atomic there). See the package's caveats.
func (cl *Cluster) msetnx(c *commands.Ctx, v *view, groups []*group) resp.Reply {
	exists := cl.node.Lookup([][]byte{[]byte("exists")})
	msetnx := cl.node.Lookup([][]byte{[]byte("msetnx")})
	checks := make([]*group, len(groups))
	for i, g := range groups {
		chk := &group{owner: g.owner, idx: g.idx, args: [][]byte{[]byte("EXISTS")}}
		for j := 1; j < len(g.args); j += 2 {
			chk.args = append(chk.args, g.args[j])
		}
		checks[i] = chk
	}
	cl.runGroups(c, v, exists, checks)
	if r := merge(mergeSum, checks, 0); r.IsError() || r.Int > 0 {
		if r.IsError() {
			return r
		}
		return resp.Zero
	}
	cl.runGroups(c, v, msetnx, groups)
	for _, g := range groups {
		if g.reply.IsError() {
			return g.reply
		}
		if g.reply.Int != 1 {
			return resp.Zero
		}
	}
	return resp.One
}

// fanoutTimeout bounds a cluster-wide command on one peer.
func (cl *Cluster) fanoutTimeout() time.Duration { return 4 * cl.cfg.ForwardTimeout }

// clusterWide runs a cluster-wide command on every member and merges the replies.
func (cl *Cluster) clusterWide(c *commands.Ctx, cmd *commands.Command, args [][]byte) resp.Reply {
	v := cl.view.Load()
	if cmd.Name == "scan" {
		return cl.scan(c, v, cmd, args)
	}
	// DBSIZE and KEYS count only the keys each member holds as owner (copies and keys still
	// being handed over would count twice), and so does TAGINVALIDATE's reply when there are
	// copies (each member still deletes all of its own); the rest run as they are.
	wire := args
	if cmd.Name == "dbsize" || cmd.Name == "keys" || (cmd.Name == "taginvalidate" && cl.cfg.Replicas > 1) {
		wire = append([][]byte{[]byte("VELA"), []byte("OWNED")}, args...)
	}
	peerArgs := outbound(v, wire, cmd.Flags)
	if v.fence != nil && cmd.Flags&commands.FlagWrite != 0 {
		cl.noteWide(cmd, args) // before it runs here (window.go)
	}
	members := v.ring.Members()
	calls := make([]*peer.Call, len(members))
	for i, m := range members {
		if m != cl.self {
			if cl.stats.On() {
				cl.stats.Forwards.Inc()
			}
			calls[i] = cl.pool.Send(v.addrs[m], peerArgs, pick(c), cl.fanoutTimeout())
		}
	}
	replies := make([]resp.Reply, 0, len(members))
	for i, m := range members {
		if m == cl.self {
			replies = append(replies, cl.owned(c, cmd, args))
		} else {
			replies = append(replies, calls[i].Wait())
		}
	}
	if len(members) == 0 { // leaving and alone: nothing holds keys
		return cl.owned(c, cmd, args)
	}
	return mergeAll(replies)
}

// mergeAll combines the replies of a cluster-wide command: the first error wins; integers add
// up (DBSIZE, TAGINVALIDATE); arrays concatenate (KEYS); anything else (OK) is taken once.
func mergeAll(replies []resp.Reply) resp.Reply {
	for _, r := range replies {
		if r.IsError() {
			return r
		}
	}
	if len(replies) == 0 {
		return resp.OK
	}
	switch replies[0].Kind {
	case resp.KindInt:
		var n int64
		for _, r := range replies {
			n += r.Int
		}
		return resp.Int(n)
	case resp.KindArray, resp.KindSet:
		var out []resp.Reply
		for _, r := range replies {
			out = append(out, r.Elems...)
		}
		if out == nil {
			out = []resp.Reply{}
		}
		return resp.Reply{Kind: replies[0].Kind, Elems: out}
	}
	return replies[0]
}

// Scan cursors encode the member (its index in the sorted member list) above that member's own
// cursor, which is below 2^store.CursorBits: with up to 1,024 members the whole cursor stays
// below 2^53, exact in clients that parse cursors as floating-point numbers (node-redis). A
// larger cluster still works, but such clients may then skip keys.
const (
	scanNodeShift = store.CursorBits
	scanLocalMask = 1<<scanNodeShift - 1
)

// scan serves the cluster-wide SCAN: one member at a time, in member order.
func (cl *Cluster) scan(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte) resp.Reply {
	cursor, ok := commands.ParseCursor(args[1])
	if !ok {
		return commands.ErrorReply(commands.ErrInvalidCur)
	}
	if _, err := commands.ParseScanOptions(args[2:]); err != nil {
		return commands.ErrorReply(err)
	}
	members := v.ring.Members()
	idx, local := int(cursor>>scanNodeShift), cursor&scanLocalMask
	if idx >= len(members) {
		return scanReply(0, nil)
	}
	sub := slices.Clone(args)
	sub[1] = strconv.AppendUint(nil, local, 10)
	var r resp.Reply
	if members[idx] == cl.self {
		r = cl.owned(c, cmd, sub)
	} else {
		if cl.stats.On() {
			cl.stats.Forwards.Inc()
		}
		sub = append([][]byte{[]byte("VELA"), []byte("OWNED")}, sub...)
		r = cl.pool.Send(v.addrs[members[idx]], sub, pick(c), cl.fanoutTimeout()).Wait()
	}
	if r.IsError() || len(r.Elems) != 2 {
		if r.IsError() {
			return r
		}
		return resp.Error("ERR cluster: bad SCAN reply from " + members[idx])
	}
	next, err := strconv.ParseUint(r.Elems[0].Text(), 10, 64)
	if err != nil || next > scanLocalMask {
		return resp.Error("ERR cluster: bad SCAN cursor from " + members[idx])
	}
	if next == 0 {
		idx++
		if idx >= len(members) {
			return scanReply(0, r.Elems[1].Elems)
		}
	}
	return scanReply(uint64(idx)<<scanNodeShift|next, r.Elems[1].Elems)
}

func scanReply(cursor uint64, keys []resp.Reply) resp.Reply {
	if keys == nil {
		keys = []resp.Reply{}
	}
	return resp.Array([]resp.Reply{resp.BulkString(strconv.FormatUint(cursor, 10)), resp.Array(keys)})
}

// owned runs a cluster-wide command's local part. DBSIZE, KEYS and SCAN report only the keys
// this node holds as owner when keys have copies elsewhere (or, for DBSIZE, while keys are
// being handed over); other commands run as they are.
func (cl *Cluster) owned(c *commands.Ctx, cmd *commands.Command, args [][]byte) resp.Reply {
	filter := cl.cfg.Replicas > 1
	switch cmd.Name {
	case "dbsize":
		if !filter {
			return settled(cl.node.ExecLocal(c, cmd, args))
		}
		return cl.countOwned(c)
	case "keys", "scan":
		r := settled(cl.node.ExecLocal(c, cmd, args))
		if !filter || r.IsError() {
			return r
		}
		v := cl.view.Load()
		keep := func(list []resp.Reply) []resp.Reply {
			out := list[:0]
			for _, k := range list {
				if v.ring.Owner(k.Bytes) == cl.self {
					out = append(out, k)
				}
			}
			return out
		}
		if cmd.Name == "keys" {
			r.Elems = keep(r.Elems)
		} else if len(r.Elems) == 2 {
			r.Elems[1].Elems = keep(r.Elems[1].Elems)
		}
		return r
	case "taginvalidate":
		if !filter {
			break
		}
		deleted, err := cl.node.InvalidateTags(c.Context(), args[1:])
		if err != nil {
			return commands.ErrorReply(err)
		}
		v := cl.view.Load()
		var n int64
		for _, k := range deleted {
			if v.ring.Owner(k) == cl.self {
				n++
			}
		}
		return resp.Int(n)
	}
	return settled(cl.node.ExecLocal(c, cmd, args))
}

// countOwned counts the live keys this node owns.
func (cl *Cluster) countOwned(c *commands.Ctx) resp.Reply {
	v := cl.view.Load()
	var n int64
	var cursor uint64
	for {
		keys, next, err := cl.ks.Scan(c.Context(), cursor, nil, 1024)
		if err != nil {
			return commands.ErrorReply(err)
		}
		for _, k := range keys {
			if v.ring.Owner(k) == cl.self {
				n++
			}
		}
		if next == 0 {
			return resp.Int(n)
		}
		cursor = next
	}
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
