package partition

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/nearcache"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// The near cache in a partitioned cluster (README "Near cache"). A member with a near cache
// (the reader) keeps copies of other members' keys it has read; their owners tell it when they
// change:
//
//   - A GET that misses the copy goes to the owner as two requests on one connection:
//     VELA L1WATCH reader ttl key, which registers the reader and answers the time the key has
//     left, then the GET itself. The reader keeps the value only if the owner registered it (it
//     still owns the key) and no invalidation of the key arrived meanwhile (nearcache.Ticket).
//   - Every change the owner's commands make to a registered key (nodes' KeyChanged) queues its
//     name for each reader; one goroutine sends the queues (VELA L1INVALIDATE owner key …) and,
//     every beatEvery, a beat (VELA L1BEAT owner) to each member that registered lately.
//   - A reader that has copies from an owner and has heard nothing from it for beatLost drops
//     every copy: invalidations may have been lost. A change of the ring (any view change) drops
//     them too: keys may have moved to owners that never registered the reader.
//
// Expiry needs no message: a copy is kept until the key's expiry at the latest. An eviction on
// the owner is not reported: the copy lives until l1_ttl.

const (
	beatEvery = 500 * time.Millisecond
	beatLost  = 1500 * time.Millisecond
	// maxRegistrations bounds the owner's registrations; beyond it L1WATCH declines (the
	// reader reads without keeping a copy) until registrations expire.
	maxRegistrations = 1 << 20
	// maxOutbox bounds the keys queued for one reader; beyond it the reader is told to drop
	// every copy instead.
	maxOutbox  = 1 << 16
	nearShards = 64
)

// errNoCache is L1WATCH's answer when the reader must not keep what the GET after it returns.
var errNoCache = resp.Error("NOCACHE key not owned here")

// nearOwner is an owner's side: which members hold copies of which of its keys, and what to
// tell them.
type nearOwner struct {
	cl     *Cluster
	shards [nearShards]struct {
		mu sync.Mutex
		m  map[string][]nearReg
	}
	count atomic.Int64 // registrations held, read without locks by KeyChanged

	mu      sync.Mutex         // guards out
	out     map[string]*outbox // by reader
	wake    chan struct{}
	sending sync.WaitGroup // deliveries in flight (deliver)
}

// nearReg is one member's registration for a key, which lapses at until (unix ms).
type nearReg struct {
	member string
	until  int64
}

// outbox is what is due to one reader.
type outbox struct {
	keys     [][]byte
	flush    bool  // drop every copy (FLUSHALL, or too many keys queued)
	lastSent int64 // unix ms; 0 until the first message, so a new reader hears from us at once
	active   int64 // unix ms until which the reader may hold copies: beats are due until then
	inflight bool  // a delivery to the reader is under way
}

func newNearOwner(cl *Cluster) *nearOwner {
	o := &nearOwner{cl: cl, out: map[string]*outbox{}, wake: make(chan struct{}, 1)}
	for i := range o.shards {
		o.shards[i].m = map[string][]nearReg{}
	}
	return o
}

// register records that member may keep a copy of key until until.
func (o *nearOwner) register(key []byte, member string, until int64) bool {
	if o.count.Load() >= maxRegistrations {
		return false
	}
	sh := &o.shards[xxhash.Sum64(key)%nearShards]
	sh.mu.Lock()
	regs := sh.m[string(key)]
	found := false
	for i := range regs {
		if regs[i].member == member {
			regs[i].until, found = max(regs[i].until, until), true
		}
	}
	if !found {
		sh.m[string(key)] = append(regs, nearReg{member, until})
		o.count.Add(1)
	}
	sh.mu.Unlock()
	o.mu.Lock()
	ob := o.outboxLocked(member)
	first := ob.lastSent == 0
	ob.active = max(ob.active, until)
	o.mu.Unlock()
	if first {
		o.kick() // a first beat: the reader counts on hearing from us
	}
	return true
}

func (o *nearOwner) outboxLocked(member string) *outbox {
	ob := o.out[member]
	if ob == nil {
		ob = &outbox{}
		o.out[member] = ob
	}
	return ob
}

// KeyChanged implements commands.KeyWatcher: the key's readers are told, and their
// registrations end.
func (o *nearOwner) KeyChanged(key []byte) {
	if o.count.Load() == 0 {
		return
	}
	sh := &o.shards[xxhash.Sum64(key)%nearShards]
	sh.mu.Lock()
	regs, ok := sh.m[string(key)]
	if ok {
		delete(sh.m, string(key))
	}
	sh.mu.Unlock()
	if !ok {
		return
	}
	o.count.Add(-int64(len(regs)))
	now := time.Now().UnixMilli()
	o.mu.Lock()
	for _, r := range regs {
		if r.until < now {
			continue
		}
		ob := o.outboxLocked(r.member)
		if ob.flush {
			continue
		}
		if len(ob.keys) >= maxOutbox {
			ob.keys, ob.flush = nil, true
			continue
		}
		ob.keys = append(ob.keys, append([]byte(nil), key...))
	}
	o.mu.Unlock()
	o.kick()
}

// AllChanged implements commands.KeyWatcher: every reader drops every copy.
func (o *nearOwner) AllChanged() {
	for i := range o.shards {
		sh := &o.shards[i]
		sh.mu.Lock()
		n := 0
		for _, regs := range sh.m {
			n += len(regs)
		}
		clear(sh.m)
		sh.mu.Unlock()
		o.count.Add(-int64(n))
	}
	now := time.Now().UnixMilli()
	o.mu.Lock()
	for _, ob := range o.out {
		if ob.active >= now {
			ob.keys, ob.flush = nil, true
		}
	}
	o.mu.Unlock()
	o.kick()
}

func (o *nearOwner) kick() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// run sends what is due until stop is closed: queued invalidations at once, beats every
// beatEvery, and drops lapsed registrations every second. It waits for the deliveries in
// flight before it returns.
func (o *nearOwner) run(stop <-chan struct{}) {
	defer o.sending.Wait()
	tick := time.NewTicker(beatEvery / 2)
	defer tick.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-o.wake:
		case <-tick.C:
		}
		o.send()
		if time.Since(lastSweep) >= time.Second {
			o.sweep()
			lastSweep = time.Now()
		}
	}
}

// send starts a delivery to every reader that has something due and none in flight. Each runs
// on a goroutine of its own, so that a reader that is slow or unreachable holds up no other. A
// delivery that fails is kept for the next one; meanwhile the reader, hearing nothing, drops its
// copies after beatLost.
func (o *nearOwner) send() {
	now := time.Now().UnixMilli()
	v := o.cl.view.Load()
	o.mu.Lock()
	defer o.mu.Unlock()
	for member, ob := range o.out {
		if ob.inflight {
			continue
		}
		var keys [][]byte
		var flush bool
		switch {
		case ob.flush || len(ob.keys) > 0:
			keys, flush = ob.keys, ob.flush
			ob.keys, ob.flush, ob.lastSent = nil, false, now
		case ob.active >= now && now-ob.lastSent >= beatEvery.Milliseconds():
			ob.lastSent = now
		case ob.active < now-beatLost.Milliseconds():
			delete(o.out, member) // no copies left there
			continue
		default:
			continue
		}
		addr, ok := v.addrs[member]
		if !ok {
			continue // not a member now: its copies went with it
		}
		ob.inflight = true
		o.sending.Add(1)
		go o.deliver(member, addr, keys, flush)
	}
}

// deliver sends one reader what is due to it: the keys changed, a flush, or (neither) a beat.
func (o *nearOwner) deliver(member, addr string, keys [][]byte, flush bool) {
	defer o.sending.Done()
	self, inc := []byte(o.cl.self), []byte(o.cl.incarnation)
	var args [][]byte
	switch {
	case flush:
		args = [][]byte{[]byte("VELA"), []byte("L1FLUSH"), self, inc}
	case len(keys) > 0:
		args = append([][]byte{[]byte("VELA"), []byte("L1INVALIDATE"), self, inc}, keys...)
	default:
		args = [][]byte{[]byte("VELA"), []byte("L1BEAT"), self, inc}
	}
	_, err := o.cl.copies.Do(addr, args, 0, o.cl.cfg.ForwardTimeout)
	o.mu.Lock()
	ob := o.outboxLocked(member)
	ob.inflight = false
	if err != nil {
		o.cl.log.Debug("near cache: telling a reader failed; will retry", "member", member, "err", err)
		if flush || ob.flush || len(ob.keys)+len(keys) > maxOutbox {
			ob.keys, ob.flush = nil, true
		} else {
			ob.keys = append(keys, ob.keys...)
		}
	}
	pending := ob.flush || len(ob.keys) > 0
	o.mu.Unlock()
	if pending {
		o.kick()
	}
}

// sweep drops lapsed registrations.
func (o *nearOwner) sweep() {
	if o.count.Load() == 0 {
		return
	}
	now := time.Now().UnixMilli()
	for i := range o.shards {
		sh := &o.shards[i]
		sh.mu.Lock()
		for key, regs := range sh.m {
			kept := regs[:0]
			for _, r := range regs {
				if r.until >= now {
					kept = append(kept, r)
				}
			}
			o.count.Add(-int64(len(regs) - len(kept)))
			if len(kept) == 0 {
				delete(sh.m, key)
			} else {
				sh.m[key] = kept
			}
		}
		sh.mu.Unlock()
	}
}

// nearReader is a reader's side: the near cache, and what it knows of each owner.
//
// Only an owner's own messages (invalidations, flushes, beats, on the owner's connections to
// this node) count as hearing from it: replies to this node's requests travel the other way and
// say nothing of whether the owner's messages arrive. Each owner process has an incarnation,
// sent with every message and registration; a new one means a restarted owner that has
// forgotten this node's registrations, so every copy goes.
type nearReader struct {
	c   *nearcache.Cache // the near cache, or nil for the reader of tracked keys (tracking.go)
	ttl time.Duration
	// drop is what loses its copies when an owner's word may have been lost: the near cache,
	// or the client tracking table. flushEvery, for the latter, drops everything that often
	// when keys were registered since the last time, before their registrations run out (the
	// near cache's copies run out with them by themselves); lastFlush and registered serve it.
	drop       dropper
	flushEvery time.Duration
	lastFlush  time.Time
	registered bool

	mu     sync.Mutex
	heard  map[string]int64  // owner → its last message (unix ms)
	expect map[string]int64  // owner → the last copy from it may live until (unix ms)
	inc    map[string]string // owner → its incarnation
}

// dropper is what a reader keeps of owners' keys.
type dropper interface {
	Invalidate(key []byte)
	Flush()
}

func newNearReader(c *nearcache.Cache, ttl time.Duration) *nearReader {
	return &nearReader{c: c, drop: c, ttl: ttl, heard: map[string]int64{}, expect: map[string]int64{},
		inc: map[string]string{}}
}

// seeIncarnationLocked records owner's incarnation and reports whether it changed (a restarted
// owner). r.mu must be held.
func (r *nearReader) seeIncarnationLocked(owner, inc string) bool {
	old, ok := r.inc[owner]
	r.inc[owner] = inc
	return ok && old != inc
}

// heardFrom records a message from owner's incarnation inc.
func (r *nearReader) heardFrom(owner, inc string) {
	now := time.Now().UnixMilli()
	r.mu.Lock()
	r.heard[owner] = now
	restarted := r.seeIncarnationLocked(owner, inc)
	if restarted {
		clear(r.expect)
	}
	r.mu.Unlock()
	if restarted {
		r.drop.Flush()
	}
}

// filling records that a copy from owner's incarnation inc may live until until, and reports
// whether it may be kept (false when the owner restarted: every copy was dropped). An owner
// with no copies here lately gets beatLost from now to be heard from (its first beat is on its
// way); one with copies here must have been heard from already.
func (r *nearReader) filling(owner, inc string, until int64) bool {
	now := time.Now().UnixMilli()
	r.mu.Lock()
	restarted := r.seeIncarnationLocked(owner, inc)
	if restarted {
		clear(r.expect)
	}
	if r.expect[owner] < now {
		r.heard[owner] = max(r.heard[owner], now)
	}
	r.expect[owner] = max(r.expect[owner], until)
	r.registered = true
	r.mu.Unlock()
	if restarted {
		r.drop.Flush()
		return false
	}
	return true
}

// check drops every copy when an owner that may have copies here has gone quiet.
func (r *nearReader) check() {
	now := time.Now().UnixMilli()
	quiet := false
	r.mu.Lock()
	for owner, until := range r.expect {
		if until < now {
			delete(r.expect, owner)
			continue
		}
		if now-r.heard[owner] > beatLost.Milliseconds() {
			quiet = true
		}
	}
	for owner, at := range r.heard { // forget owners long gone
		if _, ok := r.expect[owner]; !ok && now-at > time.Hour.Milliseconds() {
			delete(r.heard, owner)
			delete(r.inc, owner)
		}
	}
	if r.flushEvery > 0 && r.registered && time.Since(r.lastFlush) >= r.flushEvery {
		quiet = true
	}
	if quiet {
		clear(r.expect)
		r.registered, r.lastFlush = false, time.Now()
	}
	r.mu.Unlock()
	if quiet {
		r.drop.Flush()
	}
}

// run checks the owners every beatEvery/2 until stop is closed.
func (r *nearReader) run(stop <-chan struct{}) {
	tick := time.NewTicker(beatEvery / 2)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			r.check()
		}
	}
}

// KeyChanged implements commands.KeyWatcher for this node's own commands (their keys are this
// node's, of which it keeps no copy, or were invalidated before they were forwarded).
func (r *nearReader) KeyChanged([]byte) {}

// AllChanged implements commands.KeyWatcher: FLUSHALL drops every copy.
func (r *nearReader) AllChanged() { r.drop.Flush() }

// nearGet serves a client's GET of owner's key through the near cache: the copy, or the
// owner's value, kept when the owner registered this node. holders is nil with one copy of each
// key; with more it lists the key's holders, owner first, and a GET the owner does not answer
// is read from the others (a copy is kept only from the owner).
//
// While the client's earlier commands are still in flight the GET goes to the owner behind
// them, on the same connection: one of them may be a write to key.
func (cl *Cluster) nearGet(c *commands.Ctx, v *view, cmd *commands.Command, owner string, holders []string, args [][]byte) resp.Reply {
	key := args[1]
	if c.Conn != nil && c.Conn.Pending() {
		if cl.stats.On() {
			cl.stats.L1Misses.Inc()
		}
		return cl.nearPassed(c, v, cmd, owner, holders, args)
	}
	if val, ok := cl.nearR.c.Get(key); ok {
		if cl.stats.On() {
			cl.stats.Hits.Inc()
			cl.stats.L1Hits.Inc()
		}
		return resp.Bulk(val)
	}
	if cl.stats.On() {
		cl.stats.L1Misses.Inc()
	}
	addr, ok := v.addrs[owner]
	if !ok || addr == "" || c.Conn == nil {
		return cl.nearPassed(c, v, cmd, owner, holders, args)
	}
	t := cl.nearR.c.Begin(key)
	if cl.view.Load() != v { // the ring changed (and the copies went) since v was read
		return cl.nearPassed(c, v, cmd, owner, holders, args)
	}
	sentAt := time.Now().UnixMilli()
	watch := [][]byte{[]byte("VELA"), []byte("L1WATCH"), []byte(cl.self),
		strconv.AppendInt(nil, cl.nearR.ttl.Milliseconds(), 10), key}
	f := &nearFetch{cl: cl, owner: owner, key: append([]byte(nil), key...), t: t, sentAt: sentAt}
	if cl.stats.On() {
		cl.stats.Forwards.Inc()
	}
	if holders != nil {
		// Served on a goroutine (Inline declines more copies): the fallback may wait.
		f.fallback = cl.newFallbackRead(c, v, cmd, holders, args)
		f.watch = cl.pool.Send(addr, watch, pick(c), cl.cfg.ForwardTimeout)
		get := cl.pool.Send(addr, args, pick(c), cl.cfg.ForwardTimeout)
		f.get, f.fallback.first = get, get
		return resp.Reply{Later: &nearFetchFallback{nearFetch: f}}
	}
	if lp := c.Loop(); lp != nil && cl.pool.OnLoops() {
		f.watch = cl.pool.SendOn(lp, addr, watch, cl.cfg.ForwardTimeout)
		get := cl.pool.SendOn(lp, addr, args, cl.cfg.ForwardTimeout)
		f.get = get
		return resp.Reply{Later: &nearFetchOnLoop{nearFetch: f, notify: get}}
	}
	f.watch = cl.pool.Send(addr, watch, pick(c), cl.cfg.ForwardTimeout)
	get := cl.pool.Send(addr, args, pick(c), cl.cfg.ForwardTimeout)
	f.get = get
	return resp.Reply{Later: &nearFetchNotify{nearFetch: f, notify: get}}
}

// nearPassed sends a GET on as if there were no near cache: to the owner, or with more copies
// to the key's holders in turn.
func (cl *Cluster) nearPassed(c *commands.Ctx, v *view, cmd *commands.Command, owner string, holders []string, args [][]byte) resp.Reply {
	if holders != nil {
		return cl.readHolders(c, v, cmd, holders, args)
	}
	return cl.forward(c, v, owner, args, 0)
}

// notifyFlusher is a forwarded call's reply: it says when it is ready and sends when flushed.
type notifyFlusher interface {
	resp.Notifier
	resp.Flusher
}

// nearFetch is the reply to a GET that missed the near cache: the owner's GET reply, kept when
// the L1WATCH before it (on the same connection, so answered first) registered this node.
type nearFetch struct {
	cl         *Cluster
	owner      string
	key        []byte
	t          nearcache.Ticket
	sentAt     int64 // unix ms before the requests left: the key's remaining time counts from it
	watch, get resp.Later
	fallback   *fallbackRead // with more copies: reads the other holders when the owner fails
}

// Reply implements resp.Later.
func (f *nearFetch) Reply() resp.Reply {
	w := f.watch.Reply()
	if f.fallback != nil {
		if _, err := f.fallback.first.Result(); err != nil {
			return f.fallback.Wait() // another holder's value: not kept, nobody tells us of it
		}
	}
	g := f.get.Reply()
	if w.Kind != resp.KindArray || len(w.Elems) != 2 || w.Elems[0].Kind != resp.KindInt ||
		w.Elems[0].Int < -1 || g.Kind != resp.KindBulk {
		return g // NOCACHE, an error, or no such key
	}
	// The owner answers the time left (its clock may differ from this one's): counted from
	// before the request left, the copy ends no later than the key.
	left, inc := w.Elems[0].Int, w.Elems[1].Text()
	expireAt := int64(0)
	if left >= 0 {
		expireAt = f.sentAt + left
	}
	until := time.Now().Add(f.cl.nearR.ttl).UnixMilli()
	if expireAt != 0 {
		until = min(until, expireAt)
	}
	if f.cl.nearR.filling(f.owner, inc, until) {
		val := g.Bytes
		if val == nil {
			val = []byte(g.Str)
		}
		f.cl.nearR.c.Fill(f.key, f.t, val, expireAt)
	}
	return g
}

// nearFetchFallback is a nearFetch that may read the other holders: it waits, so it is served
// on a goroutine.
type nearFetchFallback struct{ *nearFetch }

// Flush implements resp.Flusher: the requests go out with the rest of the batch.
func (f *nearFetchFallback) Flush() { f.fallback.first.Flush() }

// nearFetchNotify is a nearFetch whose calls notify from any goroutine (peer.Call).
type nearFetchNotify struct {
	*nearFetch
	notify notifyFlusher // the GET: its reply comes after the L1WATCH's
}

// Notify implements resp.Notifier.
func (f *nearFetchNotify) Notify(fn func()) bool { return f.notify.Notify(fn) }

// Flush implements resp.Flusher.
func (f *nearFetchNotify) Flush() { f.notify.Flush() }

// nearFetchOnLoop is a nearFetch whose calls the event loop drives (peer.LoopCall).
type nearFetchOnLoop struct {
	*nearFetch
	notify *peer.LoopCall
}

// Notify implements resp.Notifier.
func (f *nearFetchOnLoop) Notify(fn func()) bool { return f.notify.Notify(fn) }

// Flush implements resp.Flusher.
func (f *nearFetchOnLoop) Flush() { f.notify.Flush() }

// NotifiesOnLoop implements resp.LoopNotifier.
func (f *nearFetchOnLoop) NotifiesOnLoop() bool { return true }

// l1Watch serves VELA L1WATCH reader ttl-ms key on the key's owner: it registers reader for the
// key and answers the milliseconds the key has left (-1: no expiry) and this process's
// incarnation, or NOCACHE when the reader must not keep a copy.
func (cl *Cluster) l1Watch(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	ttl, err := strconv.ParseInt(string(args[3]), 10, 64)
	if err != nil || ttl <= 0 {
		return resp.Reply{}, commands.ErrSyntax
	}
	key := args[4]
	// Every write this node makes to a key it owns reports it (installs of handed-over copies
	// included), so a handoff window needs no care here; a key that is no longer this node's
	// may be written where nobody knows of the reader.
	// With more copies the owner makes every change (the other holders apply its copies), so
	// the same holds.
	if cl.leaving.Load() || cl.view.Load().ring.Owner(key) != cl.self {
		return errNoCache, nil
	}
	// Registered before the read: a write after it tells the reader.
	until := time.Now().UnixMilli() + ttl + 2*cl.cfg.ForwardTimeout.Milliseconds()
	if !cl.nearO.register(key, string(args[2]), until) {
		return errNoCache, nil
	}
	res, err := cl.store.Do(c.Context(), key, store.Op{Kind: store.Inspect})
	left := int64(-1) // no expiry (or no key: the GET after this finds none)
	switch {
	case err != nil:
		return errNoCache, nil
	case res.Found && res.ExpireAt != 0:
		left = max(res.ExpireAt-time.Now().UnixMilli(), 0)
	}
	return resp.Array([]resp.Reply{resp.Int(left), resp.BulkString(cl.incarnation)}), nil
}

// l1Message serves VELA L1INVALIDATE owner incarnation key …, L1FLUSH owner incarnation and
// L1BEAT owner incarnation: what an owner tells this node about the copies it keeps.
func (cl *Cluster) l1Message(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	for _, r := range []*nearReader{cl.nearR, cl.trackR} {
		if r == nil {
			continue
		}
		r.heardFrom(string(args[2]), string(args[3]))
		switch string(lower(args[1])) {
		case "l1invalidate":
			for _, k := range args[4:] {
				r.drop.Invalidate(k)
			}
		case "l1flush":
			r.drop.Flush()
		}
	}
	return resp.OK, nil
}

// nearInvalidateWrites drops this node's copies of the keys a client's write names, before the
// write is forwarded, so the client reads its own writes.
func (cl *Cluster) nearInvalidateWrites(cmd *commands.Command, args [][]byte) {
	first, last, step := cmd.KeyPositions(len(args))
	if first == 0 {
		return
	}
	for i := first; i <= last; i += step {
		cl.nearR.c.Invalidate(args[i])
	}
}

// nearAfterWrite drops this node's copies of the keys of a client's write again once the write
// is done, before its reply goes out: another client may have filled one from a read the owner
// ran before the write, and the owner's word of the change may arrive after the reply.
//
// A write that names no keys but acts on the whole cluster (TAGINVALIDATE, FLUSHALL) drops every
// copy: which keys it changed is known only to their owners.
func (cl *Cluster) nearAfterWrite(cmd *commands.Command, args [][]byte, r resp.Reply) resp.Reply {
	first, last, step := cmd.KeyPositions(len(args))
	all := first == 0
	if all && cmd.Flags&commands.FlagClusterWide == 0 {
		return r
	}
	if r.Later == nil {
		if all {
			cl.nearR.c.Flush()
		} else {
			cl.nearInvalidateWrites(cmd, args)
		}
		return r
	}
	var keys [][]byte
	for i := first; !all && i <= last; i += step {
		keys = append(keys, append([]byte(nil), args[i]...))
	}
	w := &nearWritten{cl: cl, inner: r.Later, keys: keys, all: all}
	switch in := r.Later.(type) {
	case resp.LoopNotifier:
		if f, ok := in.(resp.Flusher); ok {
			return resp.Reply{Later: &nearWrittenOnLoop{nearWritten: w, n: in, f: f}}
		}
	case notifyFlusher:
		return resp.Reply{Later: &nearWrittenNotify{nearWritten: w, n: in}}
	}
	return resp.Reply{Later: w}
}

// nearWritten is the reply of a forwarded write that drops the keys' copies when it is ready.
type nearWritten struct {
	cl    *Cluster
	inner resp.Later
	keys  [][]byte
	all   bool // a cluster-wide write: every copy goes
}

// Reply implements resp.Later.
func (w *nearWritten) Reply() resp.Reply {
	r := w.inner.Reply()
	if w.all {
		w.cl.nearR.c.Flush()
	}
	for _, k := range w.keys {
		w.cl.nearR.c.Invalidate(k)
	}
	return r
}

// nearWrittenNotify is nearWritten over a call that notifies from any goroutine.
type nearWrittenNotify struct {
	*nearWritten
	n notifyFlusher
}

// Notify implements resp.Notifier.
func (w *nearWrittenNotify) Notify(fn func()) bool { return w.n.Notify(fn) }

// Flush implements resp.Flusher.
func (w *nearWrittenNotify) Flush() { w.n.Flush() }

// nearWrittenOnLoop is nearWritten over a call the event loop drives.
type nearWrittenOnLoop struct {
	*nearWritten
	n resp.LoopNotifier
	f resp.Flusher
}

// Notify implements resp.Notifier.
func (w *nearWrittenOnLoop) Notify(fn func()) bool { return w.n.Notify(fn) }

// Flush implements resp.Flusher.
func (w *nearWrittenOnLoop) Flush() { w.f.Flush() }

// NotifiesOnLoop implements resp.LoopNotifier.
func (w *nearWrittenOnLoop) NotifiesOnLoop() bool { return true }
