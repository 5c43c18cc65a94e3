package partition

// Handoff windows: what keeps a handed-over copy from undoing a newer change.
//
// A key whose owner changed reaches its new owner in the background (the old owner's handoff
// pass, or a pull on first use) while the new owner already serves it. A copy read before a
// change made on the new owner could land after it: a deleted key would come back, an
// overwritten one could return to its old value once the new one expired or was deleted.
//
// So every change of the ring opens a handoff window on each node: fenceWindow after the last
// change, kept open while copies keep arriving. During it:
//
//   - Before a command changes keys here (any write or delete, from a client or a peer), the
//     node notes each key a copy of which may still come here: a key that moved here in a change
//     of the window, or one this node does not hold in its ring at all (the sender's ring is
//     ahead). FLUSHALL and FLUSHDB note "everything", TAGINVALIDATE its tags. The note is taken
//     under the key's fence lock (Cluster.fenceMu) before the command runs, even when the
//     command then changes nothing (DEL of a key that has not arrived yet).
//   - A copy arriving by handoff (VELA RESTORE … NX) or by pull (VELA TAKE's reply) is installed
//     only if the key is absent here, not noted, and carries no noted tag, under the same
//     lock: a note taken after the install belongs to a command that runs after it. The fence
//     locks are never held across network I/O, so event loops may take them.
//   - A peer writing a key this node does not hold in its ring has seen a change this node has
//     not: that opens a window here and notes the key (one ring lookup per peer write is all
//     this costs outside windows). Cluster-wide writes sent during a window are wrapped in VELA
//     FENCED for the same purpose. A peer's command on keys this node no longer holds (the
//     peer's ring is behind), or a write to keys it no longer owns, is passed on to their
//     holder or owner as VELA FINAL, which runs there, instead of changing a copy that is being
//     handed over. The exceptions: a member that is leaving passes a FINAL on once more, as
//     VELA LAST, which always runs where it lands; a member whose ring moved the FINAL's keys
//     away from it lately passes it on to their owner, as FINAL (movedAway).
//   - A member asked for a key it still owns in its own ring (VELA TAKE, PEEK: the asker's ring
//     is ahead) waits a moment for its ring to catch up before it answers, so that its own
//     clients' writes to the key go to the new owner from then on (awaitNotOwner).
//   - A member that hands a key on remembers, for its window, where it went; a pull that finds
//     the key handed on follows it, or sends the command there when this node's ring does not
//     know that member yet (handed.go).
//
// A member leaving gracefully announces it first (VELA LEAVING): the others route around it and
// open their window before its copies leave.
//
// Outside a window none of this runs but that lookup: the local fast path loads the view it
// already loads and finds fence nil. Notes are 64-bit key hashes in maps sharded like the fence
// locks, at most Config.Tombstones; when full, every further copy is refused until the window
// ends (a missing key rather than an older one). The maps go when the window ends.

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/ring"
	"github.com/vela-cache/vela/store"
)

const (
	// numStripes is the number of key stripes (Cluster.stripes, Cluster.fenceMu); a power of two.
	numStripes = 256
	// fenceWindow is how long a handoff window stays open after the last ring change, the last
	// handed-over copy received, or the last fenced request from a peer.
	fenceWindow = pullWindow
	// maxFrom is how many earlier rings a window remembers; after more changes every key
	// counts as moved.
	maxFrom = 8
	// defaultTombstones is Config.Tombstones' default (about 19 MB of maps when reached).
	defaultTombstones = 1 << 19
)

// fence is the state of one handoff window: what changed here since it opened.
type fence struct {
	limit   int64
	count   atomic.Int64 // keys noted
	full    atomic.Bool  // limit reached: every copy is refused
	flushed atomic.Bool  // FLUSHALL or FLUSHDB ran here: every copy is refused
	until   atomic.Int64 // unix nanoseconds: the window may end then; only moves later
	// keys[i] holds the hashes of the noted keys whose hash is i modulo numStripes; guarded by
	// Cluster.fenceMu[i].
	keys    [numStripes]map[uint64]struct{}
	anyTags atomic.Bool
	tagsMu  sync.Mutex          // guards tags
	tags    map[string]struct{} // tags invalidated here
	// away[i] maps the hashes of the keys whose hash is i modulo numStripes and which this
	// node handed on (or found elsewhere) during the window to where they went (handed.go);
	// guarded by Cluster.fenceMu[i]. nAway counts them, up to limit.
	away   [numStripes]map[uint64]*dest
	nAway  atomic.Int64
	destMu sync.Mutex     // guards dests
	dests  map[dest]*dest // the members away points to, one pointer each
}

func newFence(limit int) *fence { return &fence{limit: int64(limit)} }

// extend keeps the window open until t at least.
func (f *fence) extend(t time.Time) {
	n := t.UnixNano()
	for {
		cur := f.until.Load()
		if n <= cur || f.until.CompareAndSwap(cur, n) {
			return
		}
	}
}

// addLocked notes the key hashing to h. The caller holds fenceMu[h%numStripes].
func (f *fence) addLocked(h uint64) {
	if f.full.Load() {
		return
	}
	m := f.keys[h%numStripes]
	if _, ok := m[h]; ok {
		return
	}
	if f.count.Add(1) > f.limit {
		f.count.Add(-1)
		f.full.Store(true)
		return
	}
	if m == nil {
		m = make(map[uint64]struct{})
		f.keys[h%numStripes] = m
	}
	m[h] = struct{}{}
}

// refusesLocked reports whether a handed-over copy of the key hashing to h, carrying tags, must
// not be installed. The caller holds fenceMu[h%numStripes].
func (f *fence) refusesLocked(h uint64, tags [][]byte) bool {
	if f.full.Load() || f.flushed.Load() {
		return true
	}
	if _, ok := f.keys[h%numStripes][h]; ok {
		return true
	}
	if len(tags) > 0 && f.anyTags.Load() {
		f.tagsMu.Lock()
		defer f.tagsMu.Unlock()
		for _, t := range tags {
			if _, ok := f.tags[string(t)]; ok {
				return true
			}
		}
	}
	return false
}

// openWindow opens the handoff window of v, a view with a new ring replacing old, or extends the
// one old has: the notes are kept, the rings before the change are remembered.
func (cl *Cluster) openWindow(old, v *view, now time.Time) {
	f := old.fence
	if f == nil {
		f = newFence(cl.cfg.Tombstones)
	}
	f.extend(now.Add(fenceWindow))
	// The rings before: those of the window's recent changes, the one replaced, and for a
	// joining node the ring without it.
	from := slices.Clone(old.from)
	for _, r := range []*ring.Ring{old.ring, v.prev} {
		if r != nil && !slices.ContainsFunc(from, func(x *ring.Ring) bool { return slices.Equal(x.Members(), r.Members()) }) {
			from = append(from, r)
		}
	}
	v.all = old.all
	if len(from) > maxFrom {
		from, v.all = from[len(from)-maxFrom:], true
	}
	v.fence, v.from, v.changeEnd = f, from, now.Add(fenceWindow)
}

// ensureFence returns the current view with a handoff window open. When none is, it opens one
// for fenceWindow (a peer's ring changed before this node's did).
func (cl *Cluster) ensureFence() *view {
	v := cl.view.Load()
	if v.fence == nil {
		cl.membersMu.Lock()
		if v = cl.view.Load(); v.fence == nil {
			nv := *v
			nv.fence = newFence(cl.cfg.Tombstones)
			cl.storeView(&nv)
			v = &nv
		}
		cl.membersMu.Unlock()
		v.fence.extend(time.Now().Add(fenceWindow))
		cl.wake() // the rebalancer closes the window when it has run out
	}
	return v
}

// peerAhead reports whether a peer's command writes a key this node does not hold in its ring:
// the peer has seen a ring change this node has not, and a copy of the key may be on its way
// here. Outside a window this is the only cost a peer's command pays: a ring lookup per key.
func (cl *Cluster) peerAhead(v *view, cmd *commands.Command, args [][]byte) bool {
	if !changes(cmd) || cmd.Flags&commands.FlagClusterWide != 0 {
		return false
	}
	first, last, step := cmd.KeyPositions(len(args))
	for i := first; first > 0 && i <= last; i += step {
		if !cl.holds(v.ring, args[i]) {
			return true
		}
	}
	return false
}

// notePeerWrite notes a write a peer makes here outside a command (a replica's copy from its
// owner) when a copy of key may still arrive: during a window, or when this node does not hold
// key in its ring (the owner's ring is ahead: a window opens).
func (cl *Cluster) notePeerWrite(key []byte) {
	v := cl.view.Load()
	if v.fence == nil {
		if cl.holds(v.ring, key) {
			return
		}
		v = cl.ensureFence()
	}
	cl.note(v, key)
}

// holds reports whether this node holds key in r.
func (cl *Cluster) holds(r *ring.Ring, key []byte) bool {
	return r.IsOwner(key, cl.cfg.Replicas, cl.self)
}

// moving reports whether a copy of key may still be handed to this node during v's window: the
// key moved here in one of the window's changes, or this node does not hold it at all.
func (cl *Cluster) moving(v *view, key []byte) bool {
	if v.all || !cl.holds(v.ring, key) {
		return true
	}
	for _, r := range v.from {
		if !cl.holds(r, key) {
			return true
		}
	}
	return false
}

// note records, before a command changes key here, that copies of key handed over later must
// not be installed. v is the view the command was routed with; the notes go to the current
// window (a window that has just closed takes no more).
func (cl *Cluster) note(v *view, key []byte) {
	if !cl.moving(v, key) {
		return
	}
	h := xxhash.Sum64(key)
	mu := &cl.fenceMu[h%numStripes]
	mu.Lock()
	if f := cl.view.Load().fence; f != nil {
		f.addLocked(h)
	}
	mu.Unlock()
}

// unnote forgets that key changed here during the current window, once its state has been
// handed to its new holders and dropped here: a copy handed back later (the member it went to
// leaves again within the window) is that state, not an older one, and must be installed.
func (cl *Cluster) unnote(key []byte) {
	h := xxhash.Sum64(key)
	mu := &cl.fenceMu[h%numStripes]
	mu.Lock()
	if f := cl.view.Load().fence; f != nil {
		if m := f.keys[h%numStripes]; m != nil {
			if _, ok := m[h]; ok {
				delete(m, h)
				f.count.Add(-1)
			}
		}
	}
	mu.Unlock()
}

// noteWide records a cluster-wide write about to run here: FLUSHALL and FLUSHDB (and any other
// cluster-wide write) refuse every later copy, TAGINVALIDATE the copies carrying its tags. Every
// fenceMu is taken, so that no install is halfway.
func (cl *Cluster) noteWide(cmd *commands.Command, args [][]byte) {
	for i := range cl.fenceMu {
		cl.fenceMu[i].Lock()
	}
	if f := cl.view.Load().fence; f != nil {
		if cmd.Name == "taginvalidate" {
			f.tagsMu.Lock()
			if f.tags == nil {
				f.tags = map[string]struct{}{}
			}
			for _, t := range args[1:] {
				f.tags[string(t)] = struct{}{}
			}
			f.tagsMu.Unlock()
			f.anyTags.Store(true)
		} else {
			f.flushed.Store(true)
		}
	}
	for i := range cl.fenceMu {
		cl.fenceMu[i].Unlock()
	}
}

// changes reports whether cmd may change the keys it names. FETCHLOCK (blocking) changes
// nothing itself: its fill comes as FETCHFILL.
func changes(cmd *commands.Command) bool {
	return cmd.Flags&commands.FlagWrite != 0 && cmd.Flags&commands.FlagBlocking == 0
}

// install writes a handed-over (or pulled) copy of key: only if the key is absent here and,
// during a handoff window, was not changed here since the window opened. It reports whether it
// wrote.
func (cl *Cluster) install(ctx context.Context, key []byte, op store.Op) (bool, error) {
	op.Cond = store.CondNX
	h := xxhash.Sum64(key)
	mu := &cl.fenceMu[h%numStripes]
	mu.Lock()
	if f := cl.view.Load().fence; f != nil {
		if f.refusesLocked(h, op.Tags) {
			mu.Unlock()
			cl.refused.Add(1)
			return false, nil
		}
		f.extend(time.Now().Add(fenceWindow)) // copies still arrive: keep the notes
		f.dropAwayLocked(h)                   // here again, whatever happens to the copy
	}
	res, err := cl.store.Do(ctx, key, op)
	mu.Unlock()
	if err != nil {
		return false, err
	}
	if res.Done {
		cl.node.NotifyKey(key)
	}
	return res.Done, nil
}

// refuses reports whether a copy of key would be refused now (a pull need not fetch it).
func (cl *Cluster) refuses(key []byte) bool {
	h := xxhash.Sum64(key)
	mu := &cl.fenceMu[h%numStripes]
	mu.Lock()
	defer mu.Unlock()
	f := cl.view.Load().fence
	return f != nil && f.refusesLocked(h, nil)
}

// localInWindow prepares a client's command on key, which this node owns, during a handoff
// window: the key is pulled from its previous owner if it has not arrived yet, then noted if the
// command changes it. When the pull found the key handed on to a member this node's ring does
// not know yet, it returns that member: the command goes there (redirect) and changes nothing
// here. Blocking commands (FETCHLOCK) run here all the same.
func (cl *Cluster) localInWindow(c *commands.Ctx, v *view, cmd *commands.Command, key []byte) *dest {
	if v.prev != nil && !c.InExec() { // TxPrepare pulled the keys of a transaction
		if to := cl.pullIfMissing(c, v, key); to != nil && cmd.Flags&commands.FlagBlocking == 0 {
			return to
		}
	}
	if changes(cmd) {
		cl.note(v, key)
	}
	return nil
}

// multiInWindow is localInWindow for the keys of a multi-key command this node owns. With
// replicas, writes are noted by writeLocal.
func (cl *Cluster) multiInWindow(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte, first, last, step int) {
	if cl.cfg.Replicas > 1 {
		return
	}
	for i := first; i <= last; i += step {
		if v.ring.Owner(args[i]) != cl.self {
			continue
		}
		if v.prev != nil && !c.InExec() {
			cl.pullIfMissing(c, v, args[i])
		}
		if changes(cmd) {
			cl.note(v, args[i])
		}
	}
}

// peerInWindow routes a peer's command during a handoff window. When this node's ring changed
// lately and places some of the command's keys elsewhere (a write's owner, or a read's holders),
// the peer's ring is behind: the command is passed on (VELA FINAL) to where they are now.
// Otherwise it runs here, and the keys it changes are noted first.
func (cl *Cluster) peerInWindow(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte) (resp.Reply, bool) {
	if cmd.Flags&commands.FlagClusterWide != 0 {
		if cmd.Flags&commands.FlagWrite != 0 {
			cl.noteWide(cmd, args)
		}
		return resp.Reply{}, false
	}
	first, last, step := cmd.KeyPositions(len(args))
	if first == 0 {
		return resp.Reply{}, false
	}
	// With more copies too: two members that each take themselves for a key's owner would each
	// write their own copy and copy it over the other's. (The holder it is passed to copies
	// the result back to this node on connections of their own, Cluster.copies, not on the
	// one whose reply this node waits for.)
	if v.from != nil {
		if r, ok := cl.passOn(c, v, cmd, args, first, last, step, "FINAL"); ok {
			return r, true
		}
	}
	if cl.cfg.Replicas == 1 {
		if to := cl.pullForPeer(c, v, cmd, args, first, last, step, false); to != nil {
			return cl.redirect(c, to, "FINAL", args), true // handed.go
		}
		if changes(cmd) { // with replicas, writeLocal notes them
			for i := first; i <= last; i += step {
				cl.note(v, args[i])
			}
		}
	}
	return resp.Reply{}, false
}

// pullForPeer pulls the keys of a peer's command that moved here and have not arrived, as
// localInWindow does for a client's, unless the command overwrites them without reading them
// first. Without it a command a member forwards before the copy lands runs on a missing key,
// and the copy is then refused: INCRBY would start from 0, EXPIRE would lose the key. With
// replicas ≥ 2 the other holders have the key and nothing is pulled.
//
// With anywhere (a VELA FINAL or LAST, which runs here whatever this node's ring says) the keys
// missing here are pulled even when this node's ring places them elsewhere: a member that is
// leaving passed the command on to the owner in its ring, which this node is, though its own
// ring has not seen the leave yet (it may still place the key on the leaving member). Run on
// the missing key, the command would start from nothing and its result would then refuse the
// key's copy.
//
// For a command on one key (not a blocking one), it returns the member the key was found
// handed on to, when this node's ring does not know it yet: the command is sent there (handed.go).
// A command on several keys runs here all the same.
func (cl *Cluster) pullForPeer(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte, first, last, step int, anywhere bool) *dest {
	if v.prev == nil || c.InExec() || cl.cfg.Replicas != 1 || blindWrite(cmd, args) {
		return nil
	}
	for i := first; first > 0 && i <= last; i += step {
		if anywhere || v.ring.Owner(args[i]) == cl.self {
			to := cl.pullIfMissing(c, v, args[i])
			if to != nil && first+step > last && cmd.Flags&commands.FlagBlocking == 0 {
				return to
			}
		}
	}
	return nil
}

// blindWrite reports whether cmd sets its keys whatever they held: its outcome and reply do
// not depend on their values (SET without NX, XX, GET or KEEPTTL; SETEX; PSETEX; MSET).
func blindWrite(cmd *commands.Command, args [][]byte) bool {
	switch cmd.Name {
	case "setex", "psetex", "mset":
		return true
	case "set":
		for _, a := range args[3:] {
			switch strings.ToLower(string(a)) {
			case "nx", "xx", "get", "keepttl":
				return false
			}
		}
		return true
	}
	return false
}

// target is where a command on key runs in v: its owner for a write, any holder for a read
// ("" when that is this node).
func (cl *Cluster) target(v *view, cmd *commands.Command, key []byte) string {
	if cmd.Flags&commands.FlagWrite == 0 && cl.holds(v.ring, key) {
		return ""
	}
	if o := v.ring.Owner(key); o != cl.self {
		return o
	}
	return ""
}

// passOn sends a peer's command on to where its keys are in v, wrapped in VELA wrap (FINAL, or
// LAST from a leaving member: final): whole when they all go to one member, split by member for
// the multi-key commands Vela splits (but MSETNX). It reports false when the keys are all here,
// or cannot be split: the command then runs here.
func (cl *Cluster) passOn(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte, first, last, step int, wrap string) (resp.Reply, bool) {
	var groups []*group
	nkeys, away := 0, false
	for i := first; i <= last; i += step {
		t := cl.target(v, cmd, args[i])
		away = away || t != ""
		var g *group
		for _, x := range groups {
			if x.owner == t {
				g = x
				break
			}
		}
		if g == nil {
			g = &group{owner: t, args: [][]byte{args[0]}}
			groups = append(groups, g)
		}
		g.idx = append(g.idx, nkeys)
		g.args = append(g.args, args[i:min(i+step, len(args))]...)
		nkeys++
	}
	if !away {
		return resp.Reply{}, false
	}
	if len(groups) == 1 && cmd.Flags&commands.FlagBlocking != 0 {
		// FETCHLOCK: the lease is taken where the key now lives, on a connection of its own.
		// This runs on the peer's own exclusive connection, which may wait as long.
		out := append([][]byte{[]byte("VELA"), []byte(wrap)}, args...)
		r, err := cl.pool.DoExclusive(c.Context(), v.addrs[groups[0].owner], out, cl.blockingTimeout(args))
		if err != nil {
			return peer.ErrorReply(err), true
		}
		return r, true
	}
	if len(groups) == 1 {
		cl.pushCopies(c, v, groups[0].owner, cmd, args)
		call := cl.sendFinal(c, v, groups[0].owner, wrap, args)
		if c.Conn == nil {
			return call.Wait(), true
		}
		return resp.Reply{Later: call}, true
	}
	kind, ok := splittable[cmd.Name]
	if !ok || cmd.Name == "msetnx" || cmd.Flags&commands.FlagBlocking != 0 {
		return resp.Reply{}, false
	}
	for _, g := range groups {
		if g.owner != "" {
			cl.pushCopies(c, v, g.owner, cmd, g.args)
			g.call = cl.sendFinal(c, v, g.owner, wrap, g.args)
		}
	}
	for _, g := range groups {
		if g.owner == "" {
			g.reply = settled(cl.runHere(c, v, cmd, g.args, ""))
		}
	}
	for _, g := range groups {
		if g.call != nil {
			g.reply = g.call.Wait()
		}
	}
	return merge(kind, groups, nkeys), true
}

// pushCopies sends member, ahead of a command this node forwards or passes on there (on the
// same connection, so that they run in order), this node's copies of the command's keys, as
// handed-over copies: installed only where the key is absent and unchanged in the window. The
// member may not have seen the change that moved the keys (its ring is behind this node's, as
// when this node is leaving) and would otherwise run the command on a missing key, which its
// window then keeps from ever receiving the copy. Blind overwrites need no copy.
func (cl *Cluster) pushCopies(c *commands.Ctx, v *view, member string, cmd *commands.Command, args [][]byte) {
	if blindWrite(cmd, args) || cl.cfg.Replicas != 1 {
		return
	}
	first, last, step := cmd.KeyPositions(len(args))
	for i := first; first > 0 && i <= last; i += step {
		if to, _ := cl.handing.to(args[i]); to != "" && to != member {
			// The handoff pass's copy is on its way elsewhere: a second copy would make two
			// holders (handed.go). The member pulls the key, and is told where it went.
			continue
		}
		rest, err := cl.restoreArgs(c.Context(), args[i], true)
		if err != nil || string(rest[1]) == "DROP" {
			continue
		}
		// Not waited for: the command's reply comes after it on the same connection.
		cl.sendAhead(c, v.addrs[member], rest)
	}
}

// sendAhead sends args to addr, not waiting for the reply, on the connection a command of c
// sent there next takes (forward, sendFinal), so that it runs first.
func (cl *Cluster) sendAhead(c *commands.Ctx, addr string, args [][]byte) {
	if lp := c.Loop(); lp != nil && cl.pool.OnLoops() {
		cl.pool.SendOn(lp, addr, args, cl.cfg.ForwardTimeout)
		return
	}
	cl.pool.Send(addr, args, pick(c), cl.cfg.ForwardTimeout)
}

// sendFinal sends args to member as VELA wrap (FINAL or LAST): it runs there, whatever that
// member's ring says.
func (cl *Cluster) sendFinal(c *commands.Ctx, v *view, member, wrap string, args [][]byte) *peer.Call {
	if cl.stats.On() {
		cl.stats.Forwards.Inc()
	}
	out := append([][]byte{[]byte("VELA"), []byte(wrap)}, args...)
	return cl.pool.Send(v.addrs[member], out, pick(c), cl.cfg.ForwardTimeout)
}

// runHere runs a keyed command on this node, which came as VELA wrap (FINAL or LAST; "" for
// the part of a split command this node runs): keys that moved here and have not arrived are
// pulled first (pullForPeer; for a FINAL or LAST, which run here, every key missing here), the
// keys it changes are noted
// (or, with replicas, by writeLocal, which also copies the result to the other holders). When
// the pull finds the one key of a FINAL handed on to a member this node's ring does not know
// yet, the command goes there as LAST (handed.go).
func (cl *Cluster) runHere(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte, wrap string) resp.Reply {
	if first, last, step := cmd.KeyPositions(len(args)); first > 0 {
		to := cl.pullForPeer(c, v, cmd, args, first, last, step, wrap != "")
		if to != nil && wrap == "FINAL" {
			return cl.redirect(c, to, "LAST", args)
		}
	}
	if cl.cfg.Replicas > 1 && changes(cmd) && cmd.Flags&commands.FlagClusterWide == 0 {
		return settled(cl.writeLocal(c, v, cmd, args))
	}
	if changes(cmd) && v.fence != nil {
		first, last, step := cmd.KeyPositions(len(args))
		for i := first; first > 0 && i <= last; i += step {
			cl.note(v, args[i])
		}
	}
	return cl.node.ExecLocal(c, cmd, args)
}

// outbound is the request a cluster-wide command sends the other members: during this node's
// handoff window (its ring changed lately) a write (FLUSHALL, TAGINVALIDATE) is wrapped in VELA
// FENCED, so that a member that has not seen the change yet opens a window and notes it too.
// (A keyed write needs no wrapper: a member that does not hold the key sees it by itself.)
func outbound(v *view, args [][]byte, flags commands.Flags) [][]byte {
	if v.from == nil || flags&commands.FlagWrite == 0 || flags&commands.FlagClusterWide == 0 {
		return args
	}
	return append([][]byte{[]byte("VELA"), []byte("FENCED")}, args...)
}

// fenced serves VELA FENCED command…: a peer in a handoff window sends a cluster-wide write (or
// any command). This node opens (or extends) its own window, then serves the command as any
// peer's, noting what it changes.
func (cl *Cluster) fenced(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	inner := args[2:]
	cmd, err := cl.wrapped(c, inner)
	if err != nil {
		return resp.Reply{}, err
	}
	cl.ensureFence().fence.extend(time.Now().Add(fenceWindow))
	if r, ok := cl.Route(c, cmd, inner); ok {
		return r, nil
	}
	return cl.node.ExecLocal(c, cmd, inner), nil
}

// final serves VELA FINAL command… and VELA LAST command…: a peer passed on a command on keys its
// ring places here. It runs here, after its keys are noted, but for a FINAL reaching a member
// that is leaving: its ring holds no key, and its copies are being handed over (passOn pushed
// them to their new owners ahead of commands, a pull may have taken them, the handoff pass sends
// them), while the sender's ring is behind (it has not applied VELA LEAVING yet). Run here, the
// command would change a copy the new owner no longer reads, and be lost. It is passed on once
// more, to the keys' owners in this node's ring, as VELA LAST, which runs where it lands even on
// a member leaving too: requests never loop. A FINAL whose keys this node's ring moved away
// lately is passed on as FINAL (movedAway). A FINAL whose key this node finds handed on to a
// member its ring does not know yet goes there as LAST, and a LAST pulls the keys it lacks
// (runHere).
func (cl *Cluster) final(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	inner := args[2:]
	cmd, err := cl.wrapped(c, inner)
	if err != nil {
		return resp.Reply{}, err
	}
	if cmd.FirstKey == 0 || cmd.Flags&commands.FlagClusterWide != 0 {
		return resp.Reply{}, commands.ErrSyntax
	}
	v := cl.ensureFence()
	v.fence.extend(time.Now().Add(fenceWindow))
	first, last, step := cmd.KeyPositions(len(inner))
	came := "LAST"
	if commands.ArgIs(args[1], "final") {
		came = "FINAL"
		wrap := ""
		switch {
		case cl.leaving.Load():
			wrap = "LAST"
		case cl.movedAway(v, cmd, inner, first, last, step):
			wrap = "FINAL"
		}
		if wrap != "" {
			if r, ok := cl.passOn(c, v, cmd, inner, first, last, step, wrap); ok {
				return r, nil
			}
		}
	}
	return cl.runHere(c, v, cmd, inner, came), nil
}

// movedAway reports whether a FINAL passed on here has keys that this node's ring placed here
// in one of its window's changes and places elsewhere now, and no other keys placed elsewhere:
// the sender's ring may be behind this node's (it had not seen a member join when it passed the
// command on, and the command was on its way while the joiner took the sender's copy). Run
// here, on the copy pushed ahead of it, the command would be lost. It is passed on once more as
// VELA FINAL: the sender's ring may instead be ahead (a member leaving, which this node has not
// heard of yet, owns the key in this node's ring), and that member then passes it on as LAST,
// to the owner in its ring. Requests still never loop: a member not leaving passes a key on
// only to the key's owner in its own ring, which has this member, so to a member whose first
// point on the ring follows the key's hash more closely than its own (points do not depend on
// the ring); a member leaving passes it on as LAST, which runs where it lands.
func (cl *Cluster) movedAway(v *view, cmd *commands.Command, args [][]byte, first, last, step int) bool {
	if v.from == nil {
		return false
	}
	away := false
	for i := first; i <= last; i += step {
		if cl.target(v, cmd, args[i]) == "" {
			continue
		}
		if !slices.ContainsFunc(v.from, func(r *ring.Ring) bool { return cl.holds(r, args[i]) }) {
			return false
		}
		away = true
	}
	return away
}

// wrapped returns the command a peer wrapped in VELA FENCED or FINAL, checked as Exec checks a
// request.
func (cl *Cluster) wrapped(c *commands.Ctx, inner [][]byte) (*commands.Command, error) {
	if !c.Peer {
		return nil, errPeerOnly
	}
	cmd := cl.node.Lookup(inner)
	if cmd == nil || cmd.Handler == nil {
		return nil, commands.ErrSyntax
	}
	if (cmd.Arity > 0 && len(inner) != cmd.Arity) || len(inner) < -cmd.Arity {
		return nil, commands.Error("ERR wrong number of arguments for '" + cmd.Name + "' command")
	}
	return cmd, nil
}

// leavingCmd serves VELA LEAVING member: member is about to hand its keys over and leave.
func (cl *Cluster) leavingCmd(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	if string(args[2]) == cl.self {
		return resp.Reply{}, commands.Error("ERR cluster: a member cannot announce this node's leave")
	}
	cl.noteDeparting(string(args[2]))
	return resp.OK, nil
}
