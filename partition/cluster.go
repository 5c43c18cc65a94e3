// Package partition is Vela's partitioned topology: every key has an owner on a consistent-hash
// ring (package ring) of the members memberlist knows (package membership); a node serves the
// keys it owns from its store and forwards the others to their owner over pipelined peer
// connections (package peer).
//
// # Routing
//
// Cluster installs itself as the command node's Router. Single-key commands go to the key's
// owner; multi-key commands (MGET, MSET, MSETNX, DEL, UNLINK, EXISTS, TOUCH) are split by owner
// and their replies gathered in order; commands flagged cluster-wide (DBSIZE, KEYS, SCAN,
// FLUSHALL, FLUSHDB, TAGINVALIDATE, and any other command registered with that flag) run on
// every member and their replies are merged. A forwarded command's reply is a resp.Later, so a
// client's pipelined batch is forwarded as a batch. Peers authenticate with the cluster secret
// (VELA PEER) and a peer's commands always run where they land, so nothing loops.
//
// # Replicas
//
// With cluster.replicas = N a key lives on its owner and the next N-1 members clockwise. Writes
// run on the owner, which then copies the key's resulting state (value, expiry, tags) to the
// other holders before replying. Reads go to the owner and fall back to the other holders when
// it does not answer.
//
// # Rebalancing
//
// After every membership change each node walks its keyspace in the background and hands the
// keys whose holders changed to their new holders (VELA RESTORE … NX), then drops the keys it no
// longer holds. A node that leaves gracefully first tells the others (VELA LEAVING), which route
// around it from then on, then hands all its keys over and leaves.
//
// Every change opens a handoff window (window.go) during which a handed-over copy is installed
// only if the new holder has not written, deleted, flushed or invalidated the key since the
// window opened: a copy in flight never brings back a deleted key or an older value.
//
// # Caveats
//
// MSETNX over keys of several owners checks every owner, then sets on every owner: a concurrent
// writer between the two steps can make it partial. Keys sharing a {hashtag} live on one owner,
// where MSETNX is atomic. A read may miss a key that is still being handed over (a joining node
// pulls such keys from their previous owner; see the README for the exact guarantee). A
// FETCHLOCK lease taken through a forwarding node belongs to the peer connection on the owner,
// so it ends by its LEASE time rather than when the client disconnects.
package partition

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/hashicorp/memberlist"
	"golang.org/x/sync/singleflight"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/fetchlock"
	"github.com/vela-cache/vela/membership"
	"github.com/vela-cache/vela/nearcache"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/ring"
	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store"
)

// Config configures a Cluster.
type Config struct {
	// NodeName is this member's unique name (cluster.node_name).
	NodeName string
	// GossipListen is the memberlist bind address (cluster.gossip_listen).
	GossipListen string
	// Advertise is the address peers use (cluster.advertise); empty: derived.
	Advertise string
	// Join lists seed members (cluster.join).
	Join []string
	// Secret encrypts gossip and authenticates peers (cluster.secret).
	Secret string
	// Replicas is the number of copies of each key (cluster.replicas, default 1).
	Replicas int
	// Profile is the membership timing profile (membership.ProfileLAN by default).
	Profile string
	// ForwardTimeout bounds one forwarded request (default 1s); cluster-wide commands get four
	// times as long.
	ForwardTimeout time.Duration
	// BlockingWait is how long a forwarded blocking command (FETCHLOCK) may wait on the owner
	// when it gives no TIMEOUT (stampede_timeout).
	BlockingWait time.Duration
	// RequirePass is the node's requirepass; peers send it with AUTH before authenticating.
	RequirePass string
	// VNodes is the number of ring points per member (default ring.DefaultVNodes).
	VNodes int
	// PeerConns is the number of pipelined connections to each peer (default 1).
	PeerConns int
	// Settle is how long rebalancing waits after a change for more changes (default 200ms).
	Settle time.Duration
	// Tombstones is the most keys a node notes as changed during one handoff window (default
	// 1<<19: about 19 MB when reached). Beyond it every further handed-over copy is refused until
	// the window ends: a key may then be missing, never older than a change made here. As many
	// keys handed on during the window are remembered with where they went (handed.go); past
	// that, a member asking for one finds nothing.
	Tombstones int
	// Transport replaces memberlist's network transport (fault-injection tests).
	Transport memberlist.NodeAwareTransport
	// PeerDial opens peer connections (default: TCP); fault-injection tests replace it.
	PeerDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Near is this node's near cache, for copies of other members' keys (nil: none); NearTTL
	// is the longest a copy lives (near_cache.l1_ttl). It needs Replicas = 1.
	Near    *nearcache.Cache
	NearTTL time.Duration
	// Log receives one line per join, leave and handoff.
	Log *slog.Logger
}

// Cluster is the partitioned topology of one node.
type Cluster struct {
	cfg   Config
	self  string
	node  *commands.Node
	store store.Store
	ks    store.Keyspace
	stats *stats.Stats
	log   *slog.Logger
	pool  *peer.Pool
	// silence is the pools' record of members not answering (WAIT's count, pubsub.go).
	silence *peer.Silence
	// copies carries, on connections of their own, the requests a member serves by itself
	// without waiting for another member: copies of writes to replicas, near-cache messages and
	// pulls (VELA TAKE). A peer's command forwarded here may wait for them on the goroutine
	// serving that peer; were they queued on the connections that carry forwards, two members
	// doing so towards each other could each wait behind the other's blocked connection until
	// the timeout.
	copies *peer.Pool
	// loopWrites: with replicas ≥ 2, writes may run on an event loop (inlineWithReplicas), their
	// copies and forwards on the loop's own connections. The store answers them at once (it is
	// not a Pipeliner, whose writes land later), and both pools can send from a loop.
	loopWrites bool
	token      string // VELA PEER proof derived from the secret

	ml   *membership.Membership
	view atomic.Pointer[view]
	// viewed is closed, and replaced, each time a view is installed (storeView): VELA TAKE
	// and PEEK wait on it for this node's ring to catch up with the asker's.
	viewed  atomic.Pointer[chan struct{}]
	version atomic.Uint64
	leaving atomic.Bool
	synced  atomic.Bool
	// balancedFor is the ring the local keys were last handed off for.
	balancedFor atomic.Pointer[ring.Ring]

	// members is the latest member list from membership, for rebuilding the view when this
	// node starts leaving.
	membersMu sync.Mutex // guards members
	members   []membership.Member
	joinedAt  time.Time  // when this node first saw the cluster it joined; guarded by membersMu
	joinPrev  *ring.Ring // the ring of the cluster it joined, without it; guarded by membersMu
	// joined is closed once the view holds the whole cluster this node joined (at once without
	// seeds): a peer's command arriving before waits for it (awaitJoin).
	joined     chan struct{}
	joinedOnce sync.Once
	joinDone   bool // the view has been built from a whole member list; guarded by membersMu

	stripes [numStripes]sync.Mutex // serialise a key's write and its copy to replicas, by key hash
	// fenceMu order, by key hash, a handoff window's notes with the installs of handed-over
	// copies, and fenceMu[i] guards the notes of the current fence's keys[i] (window.go). They
	// are never held across network I/O (an install holds one for its store write), so that an
	// event loop may take them: after stripes when both are taken.
	fenceMu [numStripes]sync.Mutex

	// departing are members that announced they are leaving (VELA LEAVING), and when: the ring
	// leaves them out until they are gone. Guarded by membersMu.
	departing map[string]time.Time
	refused   atomic.Uint64      // handed-over copies refused by a handoff window
	pulls     singleflight.Group // pulls of missing keys under way, by key (pullIfMissing)
	// waitedPulls counts pulls (VELA TAKE, PEEK) that waited for this node's ring to catch up.
	waitedPulls atomic.Uint64
	// redirected counts commands sent to the member a key was handed to, which this node's
	// ring did not know yet (handed.go).
	redirected atomic.Uint64
	handing    inFlight // the handoff pass's batch of keys on their way (handed.go)

	kick     chan struct{} // wakes the rebalancer
	stop     chan struct{}
	wg       sync.WaitGroup       // the rebalancer
	bg       sync.WaitGroup       // short-lived goroutines: closing connections to departed members, releasing leases
	held     *fetchlock.Forwarded // leases other members granted to this node's clients
	leaveMu  sync.Mutex           // serialises Leave
	left     bool                 // Leave has run
	shutOnce sync.Once
	shutErr  error

	nearO       *nearOwner  // the members holding copies of this node's keys (near.go)
	incarnation string      // this process's, random: readers tell a restarted owner by it
	nearR       *nearReader // this node's copies of other members' keys; nil without a near cache
	trackR      *nearReader // what this node's tracking clients read of other members' keys (tracking.go)
}

// view is one immutable routing state: the ring and where to reach each member.
type view struct {
	ring  *ring.Ring
	addrs map[string]string // member name → RESP address
	// prev is the ring a key not handed over yet is pulled from on first use, during pullWindow
	// after since: the ring of the other members after this node joined, or the ring with the
	// members that announced they are leaving. nil outside that window. prev != nil implies
	// fence != nil.
	prev  *ring.Ring
	since time.Time
	// prevAlt is where a key is looked for next, when a member is leaving while this node's own
	// join is recent: the ring this node joined (nil otherwise). After it come the rings before
	// the window's changes (from), most recent first: pullIfMissing.
	prevAlt *ring.Ring
	gone    []string // members leaving (announced, still members), who still hold some keys

	// The handoff window (window.go). fence holds the notes of keys changed here while
	// handed-over copies may still arrive (nil outside a window). from lists the rings in force
	// before the membership changes of the window, until changeEnd (nil when no change happened
	// here lately: the window was opened by a peer's fenced request); all is set when there
	// were more changes than from keeps.
	fence     *fence
	from      []*ring.Ring
	all       bool
	changeEnd time.Time

	// joining is set until this node has the whole member list of the cluster it joins: the
	// ring is then this node alone, and a peer's command waits (awaitJoin) rather than run on it.
	joining bool
	// down is set while this node has seeds and has not joined a cluster yet: its ring of one
	// would answer for keys the members hold (a miss, or a write its join would then drop), so
	// clients' commands on keys get Redis Cluster's CLUSTERDOWN instead.
	down bool
}

// pullWindow is how long after joining a node looks for a key it owns but lacks at the key's
// previous owner (and how long after a member announced it is leaving the others look for it
// there).
const pullWindow = 30 * time.Second

// departGrace is how long a member that announced it is leaving stays out of the ring while it
// is still in the membership (its handoff is taking that long, or it never left).
const departGrace = 5 * time.Minute

// New builds the topology for node, whose commands run on st, and installs it as the node's
// router. Nothing runs until Start.
func New(node *commands.Node, st store.Store, cfg Config) (*Cluster, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("partition: node name required")
	}
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = time.Second
	}
	if cfg.BlockingWait <= 0 {
		cfg.BlockingWait = 5 * time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 200 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Tombstones <= 0 {
		cfg.Tombstones = defaultTombstones
	}
	ks, ok := st.(store.Keyspace)
	if !ok {
		return nil, errors.New("partition: the store cannot enumerate its keys, which rebalancing needs")
	}
	cl := &Cluster{cfg: cfg, self: cfg.NodeName, node: node, store: st, ks: ks, stats: node.Stats(),
		log: cfg.Log, token: peer.Token(cfg.Secret), kick: make(chan struct{}, 1), stop: make(chan struct{}),
		joined: make(chan struct{})}
	cl.held = fetchlock.NewForwarded(cl.releaseLease)
	handshake := [][][]byte{}
	if cfg.RequirePass != "" {
		handshake = append(handshake, [][]byte{[]byte("AUTH"), []byte(cfg.RequirePass)})
	}
	handshake = append(handshake,
		[][]byte{[]byte("VELA"), []byte("PEER"), []byte(cl.token)},
		[][]byte{[]byte("HELLO"), []byte("3")})
	silence := peer.NewSilence() // a member found not answering by one pool fails fast in both
	cl.silence = silence
	cl.pool = peer.NewPool(peer.Config{Conns: cfg.PeerConns, DialTimeout: cfg.ForwardTimeout,
		Handshake: handshake, Dial: cfg.PeerDial, Log: cfg.Log, Silence: silence})
	cl.copies = peer.NewPool(peer.Config{Conns: 1, DialTimeout: cfg.ForwardTimeout,
		Handshake: handshake, Dial: cfg.PeerDial, Log: cfg.Log, Silence: silence})
	_, piped := st.(store.Pipeliner)
	cl.loopWrites = cl.pool.OnLoops() && cl.copies.OnLoops() && !piped
	inc := make([]byte, 8)
	_, _ = rand.Read(inc)
	cl.incarnation = hex.EncodeToString(inc)
	cl.nearO = newNearOwner(cl)
	node.Watch(cl.nearO)
	if cfg.Near != nil {
		if cfg.NearTTL <= 0 {
			cfg.NearTTL = time.Minute
			cl.cfg.NearTTL = cfg.NearTTL
		}
		cl.nearR = newNearReader(cfg.Near, cfg.NearTTL)
		node.Watch(cl.nearR)
	}
	cl.trackR = newTrackReader(node)
	cl.setView(nil)
	cl.registerCommands()
	node.AddInfoSection("vela", cl.infoLines)
	node.SetRouter(cl)
	return cl, nil
}

// Start joins the cluster (in the background: seeds are retried until one answers) and starts
// rebalancing. respAddr is the listener's address, advertised to peers.
func (cl *Cluster) Start(respAddr string) error {
	ml, err := membership.Start(membership.Config{
		NodeName: cl.cfg.NodeName, Bind: cl.cfg.GossipListen, Advertise: cl.cfg.Advertise,
		RESP: respAddr, Join: cl.cfg.Join, Secret: cl.cfg.Secret, Profile: cl.cfg.Profile,
		Transport: cl.cfg.Transport, OnChange: cl.onChange, Log: cl.log,
	})
	if err != nil {
		return err
	}
	cl.ml = ml
	cl.wg.Add(1)
	go cl.rebalanceLoop()
	cl.wg.Add(1)
	go func() { defer cl.wg.Done(); cl.nearO.run(cl.stop) }()
	cl.wg.Add(1)
	go func() { defer cl.wg.Done(); cl.trackR.run(cl.stop) }()
	if cl.nearR != nil {
		cl.wg.Add(1)
		go func() { defer cl.wg.Done(); cl.nearR.run(cl.stop) }()
	}
	return nil
}

// onChange is membership's callback: it rebuilds the view and wakes the rebalancer. It runs
// serially on memberlist's goroutines and does not block.
func (cl *Cluster) onChange(ev membership.Event) {
	cl.membersMu.Lock()
	cl.members = ev.Members
	for _, m := range ev.Members {
		// A member marked leaving in its metadata announced it (VELA LEAVING) to the members
		// it knew; a member joining since learns it here.
		if m.State == "leaving" && m.Name != cl.self {
			if _, ok := cl.departing[m.Name]; !ok {
				if cl.departing == nil {
					cl.departing = map[string]time.Time{}
				}
				cl.departing[m.Name] = time.Now()
			}
		}
	}
	cl.pruneDeparting(ev.Members)
	// While this node joins, memberlist reports the seed's members one at a time: a ring of
	// some of them would place keys where no other member does (and pull them from the wrong
	// member). The view is built once the list is whole.
	if !ev.Joining {
		cl.joinDone = true
		cl.setView(ev.Members)
	}
	cl.membersMu.Unlock()
	if !ev.Joining {
		cl.joinedOnce.Do(func() { close(cl.joined) })
	}
	if ev.Kind == membership.Left || ev.Kind == membership.Failed {
		if ev.Member.RESP != "" && ev.Member.Name != cl.self {
			cl.bg.Add(1)
			go func() { // Forget may wait for a dial in progress: not on memberlist's goroutine
				defer cl.bg.Done()
				cl.pool.Forget(ev.Member.RESP)
				cl.copies.Forget(ev.Member.RESP)
			}()
		}
	}
	cl.wake()
}

// setView builds and publishes the routing state for members (this node is left out while it
// is leaving, and so are the members that announced they are leaving). A new ring opens a
// handoff window. Callers hold membersMu, or run before Start.
func (cl *Cluster) setView(members []membership.Member) {
	now := time.Now()
	names := make([]string, 0, len(members)+1)
	addrs := make(map[string]string, len(members))
	var gone []string // alive members that announced they are leaving
	var goneSince time.Time
	for _, m := range members {
		if m.Name == cl.self && cl.leaving.Load() {
			continue
		}
		addrs[m.Name] = m.RESP
		if at, ok := cl.departing[m.Name]; ok && m.Name != cl.self {
			gone = append(gone, m.Name)
			if goneSince.IsZero() || at.Before(goneSince) {
				goneSince = at
			}
			continue
		}
		names = append(names, m.Name)
	}
	if members == nil && !cl.leaving.Load() {
		names = append(names, cl.self) // before membership starts: a cluster of one
	}
	old := cl.view.Load()
	v := &view{addrs: addrs, joining: !cl.joinDone, down: !cl.joinDone && len(cl.cfg.Join) > 0, gone: gone}
	sort.Strings(names)
	names = slices.Compact(names)
	if old != nil && slices.Equal(old.ring.Members(), names) {
		nv := *old // only an address changed (or the join completed)
		nv.addrs, nv.joining, nv.down, nv.gone = addrs, v.joining, v.down, gone
		cl.storeView(&nv)
		return
	}
	v.ring = ring.New(names, cl.version.Add(1), ring.Config{VNodes: cl.cfg.VNodes})
	// A node that joins an existing cluster (it has seeds) takes keys from the others.
	if cl.joinedAt.IsZero() && len(cl.cfg.Join) > 0 && len(names) > 1 && v.ring.Has(cl.self) {
		// The keys this node owns were until now where the ring without it put them. Later
		// changes within the window do not move keys to this node from where that ring says.
		// Members leaving then still hold their keys.
		cl.joinedAt = time.Now()
		others := slices.DeleteFunc(append(slices.Clone(names), gone...), func(n string) bool { return n == cl.self })
		cl.joinPrev = ring.New(others, 0, ring.Config{VNodes: cl.cfg.VNodes})
	}
	joinWindow := !cl.joinedAt.IsZero() && time.Since(cl.joinedAt) < pullWindow && v.ring.Has(cl.self) && len(names) > 1
	switch {
	case len(gone) > 0 && time.Since(goneSince) < pullWindow && v.ring.Has(cl.self):
		// Members leaving hand their keys over; until a key arrives it can be pulled from them.
		v.prev, v.since = ring.New(append(slices.Clone(names), gone...), 0, ring.Config{VNodes: cl.cfg.VNodes}), goneSince
		if joinWindow { // and this node joined lately: a key may still be where it was then
			v.prevAlt, v.since = cl.joinPrev, later(goneSince, cl.joinedAt)
		}
	case joinWindow:
		v.prev, v.since = cl.joinPrev, cl.joinedAt
	}
	if old != nil {
		cl.openWindow(old, v, now)
	}
	cl.storeView(v)
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// storeView installs v. A near cache drops its copies: keys may have moved to owners that never
// registered this node, and a window may have opened. Tracking clients drop theirs when the
// ring changed.
func (cl *Cluster) storeView(v *view) {
	old := cl.view.Swap(v)
	next := make(chan struct{})
	if ch := cl.viewed.Swap(&next); ch != nil {
		close(*ch)
	}
	if cl.nearR != nil {
		cl.nearR.c.Flush()
	}
	if old == nil || old.ring != v.ring { // keys may have moved: tracking clients drop them
		cl.trackR.drop.Flush()
	}
}

// noteDeparting records that member announced it is leaving, and rebuilds the view without it.
// Entries end when the member is gone from the membership, or after departGrace (a member that
// is still there by then is routed to again).
func (cl *Cluster) noteDeparting(member string) {
	cl.membersMu.Lock()
	if cl.departing == nil {
		cl.departing = map[string]time.Time{}
	}
	cl.departing[member] = time.Now()
	if cl.members != nil { // before the first membership event there is no ring to change
		cl.setView(cl.members)
	}
	cl.membersMu.Unlock()
	cl.wake()
}

// pruneDeparting drops the departing entries of members no longer in members, or announced
// longer ago than departGrace. Callers hold membersMu.
func (cl *Cluster) pruneDeparting(members []membership.Member) {
	for name, at := range cl.departing {
		if time.Since(at) >= departGrace || !slices.ContainsFunc(members, func(m membership.Member) bool { return m.Name == name }) {
			delete(cl.departing, name)
		}
	}
}

// closeWindows ends the pull window and the handoff window once they have run out, and reports
// whether either is still open.
func (cl *Cluster) closeWindows() bool {
	cl.membersMu.Lock()
	defer cl.membersMu.Unlock()
	if len(cl.departing) > 0 && cl.members != nil {
		n := len(cl.departing)
		if cl.pruneDeparting(cl.members); len(cl.departing) != n {
			cl.setView(cl.members)
		}
	}
	v := cl.view.Load()
	now := time.Now()
	nv := *v
	if nv.prev != nil && now.Sub(nv.since) >= pullWindow {
		nv.prev = nil
	}
	if nv.from != nil && !now.Before(nv.changeEnd) {
		nv.from, nv.all = nil, false
	}
	if nv.fence != nil && nv.from == nil && nv.prev == nil && now.UnixNano() >= nv.fence.until.Load() {
		nv.fence = nil
	}
	if nv.prev != v.prev || nv.fence != v.fence || (nv.from == nil) != (v.from == nil) {
		cl.storeView(&nv)
	}
	return nv.fence != nil || nv.prev != nil
}

// wake tells the rebalancer to look at the view again.
func (cl *Cluster) wake() {
	select {
	case cl.kick <- struct{}{}:
	default:
	}
}

// Ready reports whether the node has joined the cluster (and serves clients' commands on keys)
// and finished its first rebalancing pass since.
func (cl *Cluster) Ready() bool {
	return cl.ml != nil && cl.ml.Joined() && !cl.view.Load().down && cl.synced.Load() && !cl.leaving.Load()
}

// Balanced reports whether the last handoff pass ran for the current ring: every key this node
// held that belongs elsewhere has been handed over.
func (cl *Cluster) Balanced() bool {
	b := cl.balancedFor.Load()
	return b != nil && slices.Equal(b.Members(), cl.view.Load().ring.Members())
}

// Members returns the membership as memberlist sees it.
func (cl *Cluster) Members() []membership.Member {
	if cl.ml == nil {
		return nil
	}
	return cl.ml.Members()
}

// Leave tells the other members that this node is leaving (they route around it from then on),
// hands its keys to the members that now own them, then leaves the membership. The node keeps
// serving (forwarding everything) until Shutdown. It is idempotent.
func (cl *Cluster) Leave(ctx context.Context) {
	cl.leaveMu.Lock()
	defer cl.leaveMu.Unlock()
	if cl.left || cl.ml == nil {
		return
	}
	cl.left = true
	cl.stopRebalancer()
	old := cl.view.Load().ring
	cl.leaving.Store(true)
	cl.membersMu.Lock()
	cl.setView(cl.members)
	cl.membersMu.Unlock()
	v := cl.view.Load()
	if v.ring.Len() > 0 {
		// Gossip says it too (a member joining meanwhile learns it with the member list),
		// then every member is told directly.
		cl.ml.MarkLeaving(min(cl.cfg.ForwardTimeout, time.Second))
		cl.announceLeave(v)
		// A failed handoff is logged, not returned: the node leaves anyway, and with replicas
		// the copies elsewhere survive it.
		st, err := cl.handoff(ctx, old, v)
		cl.log.Info("cluster handoff before leaving", "node", cl.self, "moved", st.moved,
			"dropped", st.dropped, "failed", st.failed, "took", st.took.Round(time.Millisecond), "err", err)
	}
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d)/2, 100*time.Millisecond)
	}
	cl.ml.Leave(timeout)
}

// announceLeave tells every member of v (VELA LEAVING) that this node is leaving, and waits for
// their answers (a forward timeout at most): a member that answered routes the keys of this node
// to their new owners and has opened its handoff window, so that what its clients change there
// wins over the copies this node is about to send. A member that did not answer still reaches
// the new owners through this node, which passes its requests on (window.go).
func (cl *Cluster) announceLeave(v *view) {
	args := [][]byte{[]byte("VELA"), []byte("LEAVING"), []byte(cl.self)}
	var calls []*peer.Call
	for _, m := range v.ring.Members() {
		calls = append(calls, cl.pool.Send(v.addrs[m], args, 0, cl.cfg.ForwardTimeout))
	}
	failed := 0
	for _, c := range calls {
		if _, err := c.Result(); err != nil {
			failed++
			cl.log.Warn("cluster: announcing the leave failed", "node", cl.self, "err", err)
		}
	}
	cl.log.Info("cluster leave announced", "node", cl.self, "members", len(calls), "failed", failed)
}

func (cl *Cluster) stopRebalancer() {
	select {
	case <-cl.stop:
	default:
		close(cl.stop)
	}
	cl.wg.Wait()
}

// Shutdown leaves the cluster if Leave has not run, closes the peer connections and stops
// gossiping. It is idempotent.
func (cl *Cluster) Shutdown(ctx context.Context) error {
	cl.shutOnce.Do(func() {
		cl.held.Close()
		cl.Leave(ctx)
		cl.stopRebalancer()
		var err error
		if cl.ml != nil {
			err = cl.ml.Shutdown()
		}
		cl.bg.Wait()
		cl.pool.Close()
		cl.copies.Close()
		cl.shutErr = err
	})
	return cl.shutErr
}

// checksum identifies a member list: equal on every node that agrees on the members.
func checksum(members []string) string {
	return fmt.Sprintf("%016x", xxhash.Sum64String(strings.Join(members, "\x00")))
}

func (cl *Cluster) infoLines(context.Context) []string {
	v := cl.view.Load()
	ready := 0
	if cl.Ready() {
		ready = 1
	}
	window, tombstones := 0, int64(0)
	if v.fence != nil {
		window, tombstones = 1, v.fence.count.Load()
	}
	return append([]string{
		fmt.Sprintf("cluster_members:%d", v.ring.Len()),
		fmt.Sprintf("cluster_ring_version:%d", v.ring.Version()),
		"cluster_ring_checksum:" + checksum(v.ring.Members()),
		fmt.Sprintf("cluster_replicas:%d", cl.cfg.Replicas),
		fmt.Sprintf("cluster_ready:%d", ready),
		fmt.Sprintf("cluster_forwards:%d", cl.stats.Forwards.Load()),
		fmt.Sprintf("cluster_loop_peer_connections:%d", cl.pool.LoopConns()+cl.copies.LoopConns()),
		fmt.Sprintf("cluster_handoff_window:%d", window),
		fmt.Sprintf("cluster_tombstones:%d", tombstones),
		fmt.Sprintf("cluster_copies_refused:%d", cl.refused.Load()),
		fmt.Sprintf("cluster_pulls_waited:%d", cl.waitedPulls.Load()),
		fmt.Sprintf("cluster_pulls_redirected:%d", cl.redirected.Load()),
	}, peer.SilentInfo(cl.pool, cl.copies)...)
}

// SilentPeers returns how many peers this node finds not answering, and how many requests it
// failed at once because of it (peer.ErrNotAnswering).
func (cl *Cluster) SilentPeers() (int, int64) { return peer.SilentCounts(cl.pool, cl.copies) }

// GossipAddr is the memberlist address peers and seeds use to reach this node ("" before
// Start).
func (cl *Cluster) GossipAddr() string {
	if cl.ml == nil {
		return ""
	}
	return cl.ml.Self().Gossip
}

// RingMembers returns the members of the current ring, sorted.
func (cl *Cluster) RingMembers() []string { return cl.view.Load().ring.Members() }

// Name is this member's name.
func (cl *Cluster) Name() string { return cl.self }

// Owner returns the member owning key in the current ring.
func (cl *Cluster) Owner(key []byte) string { return cl.view.Load().ring.Owner(key) }

// Holders returns the members holding key in the current ring, owner first (cluster.replicas
// of them at most).
func (cl *Cluster) Holders(key []byte) []string {
	return cl.view.Load().ring.Owners(key, cl.cfg.Replicas, nil)
}
