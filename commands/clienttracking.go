package commands

import (
	"bytes"
	"maps"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/vela-cache/vela/resp"
)

// Client-side caching (CLIENT TRACKING), as Redis 7 serves it. A tracking client is told, by
// RESP3 push messages ("invalidate" and the keys), when keys it may have cached change:
//
//   - Default mode: the keys it read with read-only commands, each reported once (its entry in
//     the table goes with the message) until it reads the key again.
//   - BCAST: every key under the prefixes it registered, whether it read them or not, gathered
//     per prefix and sent once the command that changed them has run.
//   - OPTIN / OPTOUT: only the reads after CLIENT CACHING YES / all but those after CLIENT
//     CACHING NO are remembered. NOLOOP: not the keys it changed itself.
//   - REDIRECT id: the messages go to another connection: as pushes to a RESP3 one, as Pub/Sub
//     messages on __redis__:invalidate to a RESP2 one with a subscription (to anything, as in
//     Redis). A RESP2 connection that redirects nowhere, or to a RESP2 connection without a
//     subscription, receives nothing: RESP2 has no other way to carry them.
//
// Writes by this node's clients, by scripts and transactions, copies from other members
// (replicated topology), owners' word of their keys' changes (partitioned topology, through a
// ReadWatcher and TrackingInvalidate), expiry and eviction all invalidate, as do FLUSHALL and
// FLUSHDB (a null key list: drop everything). Vela's reads and writes run in parallel where Redis runs one
// command at a time, so a read remembers its keys both before and after it reads: a change
// that lands between the read and the remembering is still reported, at worst once too often.

// maxTrackedKeys bounds the tracking table, as Redis's tracking-table-max-keys (its default):
// beyond it, keys are dropped from the table with an invalidation, so their clients forget them.
const maxTrackedKeys = 1_000_000

// trackState is one connection's tracking settings. The connection's commands change it, under
// the tracker's lock; other connections' changes read it under that lock.
type trackState struct {
	conn                     *resp.Conn
	on, bcast, optin, optout bool
	noloop, brokenRedirect   bool
	redirect                 int64
	redirConn                *resp.Conn // the connection redirect names, found when set
	prefixes                 []string   // BCAST prefixes, sorted
	caching                  bool       // CLIENT CACHING YES/NO applies to the next command
	// provisional holds the keys a read in progress remembered before it ran that were not
	// remembered already (rememberBefore); rememberAfter empties it.
	provisional map[string]struct{}
}

// prefixState is one BCAST prefix: its clients and the keys under it changed since the last
// messages, each with the client that changed it last (0: none), for NOLOOP.
type prefixState struct {
	clients map[int64]*trackState
	changed map[string]int64
}

// tracker is the node's tracking table: which clients may hold which keys, and the BCAST
// prefixes.
type tracker struct {
	// clients counts the connections with tracking on; keys the table's keys and prefixes the
	// registered prefixes: a change checks them, lock-free, before anything else.
	clients, keys, prefixN atomic.Int64
	bcastDue               atomic.Bool // a prefix has changed keys not yet sent

	mu       sync.Mutex
	table    map[string]map[int64]struct{} // key → IDs of the clients that read it
	items    int64                         // client IDs in table, all keys together
	byID     map[int64]*trackState         // clients with tracking on
	prefixes map[string]*prefixState
}

func newTracker() *tracker {
	return &tracker{table: make(map[string]map[int64]struct{}), byID: make(map[int64]*trackState),
		prefixes: make(map[string]*prefixState)}
}

// Messages, in RESP3.
var (
	pushInvalidate  = []byte(">2\r\n$10\r\ninvalidate\r\n")
	pushRedirBroken = []byte(">2\r\n$21\r\ntracking-redir-broken\r\n")
)

// invalidation returns the push that invalidates keys; nil keys is the null that means every
// key (FLUSHALL).
func invalidation(keys [][]byte) []byte {
	msg := append([]byte(nil), pushInvalidate...)
	if keys == nil {
		return append(msg, "_\r\n"...)
	}
	elems := make([]resp.Reply, len(keys))
	for i, k := range keys {
		elems[i] = resp.Bulk(k)
	}
	return resp.Append(msg, resp.Array(elems), 3)
}

// sendLocked delivers msg to st's client, or to the client it redirects to. The caller holds
// t.mu.
func (t *tracker) sendLocked(st *trackState, msg []byte) {
	if to := t.targetLocked(st); to != nil {
		deliver(to, msg)
	}
}

// targetLocked returns the connection st's messages go to, or nil when none can take them: a
// RESP2 one, or a redirect target that has gone (the client is then told, in RESP3, and
// CLIENT LIST shows R). The caller holds t.mu.
func (t *tracker) targetLocked(st *trackState) *resp.Conn {
	to := st.conn
	if st.redirect != 0 {
		if st.redirConn == nil || st.redirConn.Context().Err() != nil {
			if !st.brokenRedirect {
				st.brokenRedirect = true
				st.publishLocked()
			}
			if st.conn.SpeaksRESP3() {
				st.conn.Push(resp.Append(append([]byte(nil), pushRedirBroken...), resp.Int(st.redirect), 3))
			}
			return nil
		}
		to = st.redirConn
	}
	if !to.SpeaksRESP3() && (st.redirect == 0 || !to.Subscribed()) {
		return nil
	}
	return to
}

// redirMessage starts an invalidation as a RESP2 redirect target receives it: a Pub/Sub message
// on Redis's __redis__:invalidate channel, followed by the same payload as the push.
var redirMessage = []byte("*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n")

// deliver queues msg, an invalidation push, on to: as it is for a RESP3 connection, as a Pub/Sub
// message for a RESP2 redirect target in the Pub/Sub context (targetLocked lets no other RESP2
// connection through), as Redis sends them there.
func deliver(to *resp.Conn, msg []byte) {
	if to.SpeaksRESP3() {
		to.Push(msg)
		return
	}
	body := msg[len(pushInvalidate):]
	if string(body) == "_\r\n" { // every key: a null, RESP2's
		body = []byte("$-1\r\n")
	}
	to.Push(append(append(make([]byte, 0, len(redirMessage)+len(body)), redirMessage...), body...))
}

// publishLocked shows st in CLIENT LIST (flags t, R, B; redir).
func (st *trackState) publishLocked() {
	if !st.on {
		st.conn.SetTracking("", -1)
		return
	}
	flags := "t"
	if st.brokenRedirect {
		flags += "R"
	}
	if st.bcast {
		flags += "B"
	}
	st.conn.SetTracking(flags, st.redirect)
}

// active reports whether a change must be reported to the tracker: a key is tracked, or a
// prefix registered.
func (t *tracker) active() bool { return t.keys.Load() != 0 || t.prefixN.Load() != 0 }

// rememberBefore records, before a read runs, that st's client may cache keys: a change made
// while the read runs then reaches the client after the read's reply, which the client drops.
// The keys not remembered already are provisional until rememberAfter: their expiry or
// eviction meanwhile (the read's own lazy expiry, say) does not reach the client, which has no
// copy of them, as Redis remembers a read's keys only once it has run.
func (t *tracker) rememberBefore(st *trackState, keys [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		if t.addLocked(st, k) {
			if st.provisional == nil {
				st.provisional = make(map[string]struct{})
			}
			st.provisional[string(k)] = struct{}{}
		}
	}
	t.boundLocked()
}

// rememberAfter records, once a read has run, that st's client may cache keys.
func (t *tracker) rememberAfter(st *trackState, keys [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, k := range keys {
		t.addLocked(st, k)
	}
	clear(st.provisional)
	t.boundLocked()
}

// addLocked adds st's client to key's readers, reporting whether it was not among them.
func (t *tracker) addLocked(st *trackState, k []byte) bool {
	ids := t.table[string(k)]
	if ids == nil {
		ids = make(map[int64]struct{}, 1)
		t.table[string(k)] = ids
		t.keys.Add(1)
	}
	if _, ok := ids[st.conn.ID]; ok {
		return false
	}
	ids[st.conn.ID] = struct{}{}
	t.items++
	return true
}

// boundLocked drops keys beyond maxTrackedKeys, with their invalidations.
func (t *tracker) boundLocked() {
	for len(t.table) > maxTrackedKeys {
		for k := range t.table { // any key: Redis drops random ones
			t.invalidateLocked([]byte(k), 0, false)
			break
		}
	}
}

// removed reports a key the store removed on its own: it expired or was evicted.
func (t *tracker) removed(key []byte) {
	if !t.active() {
		return
	}
	t.mu.Lock()
	t.bcastLocked(key, 0)
	t.invalidateLocked(key, 0, true)
	t.mu.Unlock()
	t.sendBroadcasts()
}

// bcastLocked queues key for the BCAST clients of the prefixes it starts with.
func (t *tracker) bcastLocked(key []byte, origin int64) {
	for p, ps := range t.prefixes {
		if bytes.HasPrefix(key, []byte(p)) {
			ps.changed[string(key)] = origin
			t.bcastDue.Store(true)
		}
	}
}

// changed reports that key was written or deleted, by the client whose ID is origin (0: by no
// client of this node: a copy, an expiry, an eviction).
func (t *tracker) changed(key []byte, origin int64) {
	if !t.active() {
		return
	}
	t.mu.Lock()
	t.bcastLocked(key, origin)
	t.invalidateLocked(key, origin, false)
	t.mu.Unlock()
	if origin == 0 {
		t.sendBroadcasts() // no command is running whose end would send them
	}
}

// invalidateLocked tells the clients that read key that it changed and forgets them. For a
// removal by the store itself (expiry, eviction), a client whose read in progress remembered
// key provisionally is neither told nor forgotten.
func (t *tracker) invalidateLocked(key []byte, origin int64, byStore bool) {
	ids, ok := t.table[string(key)]
	if !ok {
		return
	}
	delete(t.table, string(key))
	t.keys.Add(-1)
	t.items -= int64(len(ids))
	var msg []byte
	var kept map[int64]struct{}
	for id := range ids {
		st := t.byID[id]
		if st == nil || !st.on || st.bcast || (st.noloop && id == origin) {
			continue
		}
		if _, ok := st.provisional[string(key)]; ok && byStore {
			if kept == nil {
				kept = make(map[int64]struct{}, 1)
			}
			kept[id] = struct{}{}
			continue
		}
		if to := t.targetLocked(st); to != nil {
			if msg == nil {
				msg = invalidation([][]byte{key})
			}
			deliver(to, msg)
		}
	}
	if kept != nil {
		t.table[string(key)] = kept
		t.keys.Add(1)
		t.items += int64(len(kept))
	}
}

// tell invalidates keys for st's client alone and forgets that it read them: keys whose changes
// this node cannot promise to hear of.
func (t *tracker) tell(st *trackState, keys [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgetLocked(st, keys)
	if to := t.targetLocked(st); to != nil {
		deliver(to, invalidation(keys))
	}
}

// forgetOwn forgets, without telling it, that st's client read keys it is about to change on
// another member (partitioned topology): the owner's word of the change comes back as anyone's
// (TrackingInvalidate), and a NOLOOP client must not be told of its own write. Forgetting
// first has the effect NOLOOP has on a local write: the client is no longer told of the key's
// changes until it reads it again.
func (t *tracker) forgetOwn(st *trackState, keys [][]byte) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.forgetLocked(st, keys)
}

// forgetLocked removes st's client from the table entries of keys. The caller holds t.mu.
func (t *tracker) forgetLocked(st *trackState, keys [][]byte) {
	for _, k := range keys {
		if ids, ok := t.table[string(k)]; ok {
			if _, ok := ids[st.conn.ID]; ok {
				delete(ids, st.conn.ID)
				t.items--
			}
			if len(ids) == 0 {
				delete(t.table, string(k))
				t.keys.Add(-1)
			}
		}
	}
}

// flushed reports FLUSHALL or FLUSHDB: every tracking client is told to drop everything, and
// the table is emptied.
func (t *tracker) flushed() {
	if t.clients.Load() == 0 && t.keys.Load() == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	msg := invalidation(nil)
	for _, st := range t.byID {
		t.sendLocked(st, msg)
	}
	t.keys.Add(-int64(len(t.table)))
	t.table = make(map[string]map[int64]struct{})
	t.items = 0
}

// sendBroadcasts sends each BCAST client the keys changed under its prefixes, sorted, one
// message per prefix.
func (t *tracker) sendBroadcasts() {
	if !t.bcastDue.Load() {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bcastDue.Store(false)
	for _, p := range slices.Sorted(maps.Keys(t.prefixes)) { // in Redis's order (its prefix tree's)
		ps := t.prefixes[p]
		if len(ps.changed) == 0 {
			continue
		}
		keys := make([]string, 0, len(ps.changed))
		for k := range ps.changed {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var all []byte
		for _, st := range ps.clients {
			list := make([][]byte, 0, len(keys))
			for _, k := range keys {
				if !st.noloop || ps.changed[k] != st.conn.ID {
					list = append(list, []byte(k))
				}
			}
			switch {
			case len(list) == 0:
			case len(list) < len(keys):
				t.sendLocked(st, invalidation(list))
			default:
				if all == nil {
					all = invalidation(list)
				}
				t.sendLocked(st, all)
			}
		}
		clear(ps.changed)
	}
}

// enable turns tracking on for st with the options of CLIENT TRACKING ON, checked already.
func (t *tracker) enable(st *trackState, redirect int64, redirConn *resp.Conn, bcast, optin, optout, noloop bool, prefixes []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !st.on {
		t.clients.Add(1)
		t.byID[st.conn.ID] = st
	}
	st.on, st.redirect, st.redirConn, st.brokenRedirect = true, redirect, redirConn, false
	st.bcast, st.optin, st.optout, st.noloop = bcast, optin, optout, noloop
	if bcast {
		if len(prefixes) == 0 {
			prefixes = []string{""}
		}
		for _, p := range prefixes {
			if slices.Contains(st.prefixes, p) {
				continue
			}
			ps := t.prefixes[p]
			if ps == nil {
				ps = &prefixState{clients: make(map[int64]*trackState), changed: make(map[string]int64)}
				t.prefixes[p] = ps
				t.prefixN.Add(1)
			}
			ps.clients[st.conn.ID] = st
			st.prefixes = append(st.prefixes, p)
		}
		slices.Sort(st.prefixes)
	}
	st.publishLocked()
}

// disable turns tracking off for st (CLIENT TRACKING OFF, or its connection closed). The keys
// it read stay in the table, as in Redis, until they change.
func (t *tracker) disable(st *trackState) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range st.prefixes {
		if ps := t.prefixes[p]; ps != nil {
			delete(ps.clients, st.conn.ID)
			if len(ps.clients) == 0 {
				delete(t.prefixes, p)
				t.prefixN.Add(-1)
			}
		}
	}
	if st.on {
		t.clients.Add(-1)
		delete(t.byID, st.conn.ID)
	}
	*st = trackState{conn: st.conn}
	st.publishLocked()
}

// ReadWatcher is implemented by routers whose tracked reads must be registered elsewhere
// first: a partitioned member registers with the owners of the keys it does not own, whose
// changes only they see. exec calls WatchReads for a tracking client's read, before the read
// runs; the keys it returns could not be registered, and the client is told to drop them right
// after the reply. WatchReads may wait for other members: such a client's commands never run
// on an event loop.
type ReadWatcher interface {
	WatchReads(c *Ctx, keys [][]byte) (unwatched [][]byte)
}

// TrackingInvalidate reports a change of key that this node learnt of from another member (its
// owner): its tracking clients are told.
func (n *Node) TrackingInvalidate(key []byte) { n.clientCache.changed(key, 0) }

// TrackingFlush tells every tracking client to drop everything: this node may have missed
// changes (an owner went quiet, the ring changed).
func (n *Node) TrackingFlush() { n.clientCache.flushed() }

// TrackingFigures returns the clients with tracking on and the keys in the tracking table, for
// metrics.
func (n *Node) TrackingFigures() (clients, keys int64) {
	return n.clientCache.clients.Load(), n.clientCache.keys.Load()
}

// figures returns INFO's tracking_total_keys, tracking_total_items and tracking_total_prefixes.
func (t *tracker) figures() (keys, items, prefixes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return int64(len(t.table)), t.items, int64(len(t.prefixes))
}

// overlap returns an error when a prefix of ps, or of st's prefixes, starts another, as Redis's
// checkPrefixCollisionsOrReply does.
func (t *tracker) overlap(st *trackState, ps [][]byte) error {
	t.mu.Lock()
	existing := slices.Clone(st.prefixes)
	t.mu.Unlock()
	startsEither := func(a, b []byte) bool {
		n := min(len(a), len(b))
		return bytes.Equal(a[:n], b[:n])
	}
	for i, p := range ps {
		for _, e := range existing {
			if startsEither([]byte(e), p) {
				return Error("ERR Prefix '" + string(p) + "' overlaps with an existing prefix '" + e +
					"'. Prefixes for a single client must not overlap.")
			}
		}
		for _, q := range ps[i+1:] {
			if startsEither(p, q) {
				return Error("ERR Prefix '" + string(p) + "' overlaps with another provided prefix '" +
					string(q) + "'. Prefixes for a single client must not overlap.")
			}
		}
	}
	return nil
}

// trackedKeys returns the keys a read-only command's run must remember for c's client, or nil
// when its mode says otherwise (BCAST; OPTIN without CLIENT CACHING YES; OPTOUT after CLIENT
// CACHING NO). The scripts' own commands (EVAL_RO…) are not reads: the commands they run are.
// exec remembers them before the command runs (rememberBefore) and again once it has.
func (n *Node) trackedKeys(c *Ctx, cmd *Command, args [][]byte) [][]byte {
	st := c.trk
	if st.bcast || (st.optin && !st.caching) || (st.optout && st.caching) {
		return nil
	}
	if cmd.Flags&flagScript != 0 {
		// A script's reads are tracked one by one as they run here; on a partitioned member a
		// script may run on its keys' owner instead, out of sight: its declared keys are then
		// registered as a read's are (a key it only writes is reported too, needlessly).
		if _, ok := n.router.(ReadWatcher); !ok {
			return nil
		}
	}
	return cmd.Keys(args)
}

// txTrackedKeys returns the keys the reads queued in c's transaction must remember for its
// client: EXEC sent to another member runs them there, out of exec's sight.
func (n *Node) txTrackedKeys(c *Ctx, tx *txState) [][]byte {
	if c.trk == nil || !c.trk.on {
		return nil
	}
	var keys [][]byte
	for _, q := range tx.queue {
		if q.cmd.Flags&FlagReadOnly != 0 {
			keys = append(keys, n.trackedKeys(c, q.cmd, q.args)...)
		}
	}
	return keys
}

// trackedRead ends a tracked read: its keys are remembered again, and those WatchReads could
// not register are invalidated for the client at once (after the read's reply).
func (n *Node) trackedRead(st *trackState, keys, unwatched [][]byte) {
	n.clientCache.rememberAfter(st, keys)
	if len(unwatched) > 0 {
		n.clientCache.tell(st, unwatched)
	}
}

// afterCommand ends a client's command (top-level, not one EXEC or a script runs) for client
// tracking: CLIENT CACHING applied to it only, unless it is a CLIENT command or one queued in
// MULTI (then it holds until EXEC), as Redis's resetClient does; and BCAST messages for the
// keys it changed are sent.
func (n *Node) afterCommand(c *Ctx, cmd *Command) {
	if st := c.trk; st != nil && st.caching && (cmd == nil || cmd.Name != "client") && (c.tx == nil || !c.tx.multi) {
		st.caching = false
	}
	n.clientCache.sendBroadcasts()
}

// originOf is the ID of the client whose command runs in c, for NOLOOP (0: none).
func originOf(c *Ctx) int64 {
	if c == nil || c.Conn == nil || c.Peer {
		return 0
	}
	return c.Conn.ID
}
