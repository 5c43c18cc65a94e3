// Package replicate is Vela's replicated topology: every member holds every key and serves reads
// from its own store; writes reach every member, and concurrent writes to one key converge on
// every member to the same value.
//
// # Writes
//
// A write that does not depend on the key's present state (SET without NX, XX, GET or KEEPTTL;
// SETEX, PSETEX, MSET, DEL, UNLINK) runs on the member the client talks to. Every other write
// (INCR, APPEND, EXPIRE, SET NX…, FETCHLOCK and its fills) is decided by the key's owner on a
// consistent-hash ring of the members, so that it stays atomic: other members forward it there.
// Either way the member that ran the write stamps the key's resulting state (value, expiry,
// tags) with a hybrid-logical-clock Stamp and sends it to every other member (VELA RAPPLY)
// before replying. A member applies a copy only if it is newer than what it has (last writer
// wins), remembering the stamp of every key's last write and of every delete (versions.go).
//
// FLUSHALL and TAGINVALIDATE run on every member, stamped too: a copy older than the last
// FLUSHALL, or carrying a tag invalidated after it was written, is refused.
//
// # Joining and healing
//
// When a member sees another join (a new member, or one back after a network partition) it
// sends it its whole state: every key with its stamp, its tombstones and its FLUSHALL and
// TAGINVALIDATE stamps (sync.go), and then VELA RSYNCED. A new member reports ready once one
// member has sent it everything. After a partition heals both sides send each other their
// state and converge.
package replicate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/hashicorp/memberlist"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/fetchlock"
	"github.com/vela-cache/vela/membership"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/resp"
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
	// Profile is the membership timing profile (membership.ProfileLAN by default).
	Profile string
	// ForwardTimeout bounds one request to a peer: a forwarded write, or the copies of a write
	// (default 1s).
	ForwardTimeout time.Duration
	// BlockingWait is how long a forwarded FETCHLOCK may wait on the owner when it gives no
	// TIMEOUT (stampede_timeout).
	BlockingWait time.Duration
	// RequirePass is the node's requirepass; peers send it with AUTH before authenticating.
	RequirePass string
	// VNodes is the number of ring points per member (default ring.DefaultVNodes).
	VNodes int
	// Transport replaces memberlist's network transport (fault-injection tests).
	Transport memberlist.NodeAwareTransport
	// PeerDial opens peer connections (default: TCP); fault-injection tests replace it.
	PeerDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Log receives one line per join, leave and state transfer.
	Log *slog.Logger
	// Now is the wall clock (default time.Now); tests skew it.
	Now func() time.Time
	// StampsPath is the file the stamps are kept in across restarts (persist.go); "" keeps them
	// in memory only. The server sets it beside the disk store's file.
	StampsPath string
}

// numStripes is the number of key stripes that order a key's write with the stamping and
// sending of its copies, and with applying other members' copies.
const numStripes = 1024

// Cluster is the replicated topology of one node.
type Cluster struct {
	cfg   Config
	self  string
	id    uint64 // Stamp.Node of this member's writes
	node  *commands.Node
	store store.Store
	ks    store.Keyspace
	stats *stats.Stats
	log   *slog.Logger
	token string // VELA PEER proof derived from the secret

	// forwards carries writes sent to their key's owner; copies carries the copies of writes;
	// syncs carries whole-state transfers. They are separate so that a member waiting for its
	// copies never waits behind a forward, nor a write behind a transfer of a million keys.
	forwards *peer.Pool
	copies   *peer.Pool
	syncs    *peer.Pool

	clock    clock
	versions *versions
	stripes  [numStripes]sync.Mutex // a key's write, stamp and copies, and the copies it applies
	// loopWrites: blind writes may run on an event loop (Inline). The store answers them at
	// once (it is not a Pipeliner, whose writes land later), and the copies pool can send on a
	// loop's own connections.
	loopWrites bool
	// changes counts, by stripe, the key changes the node reports (KeyChanged): a write copies
	// a key only if its stripe's count moved while the write ran.
	changes [numStripes]atomic.Uint64

	ml   *membership.Membership
	view atomic.Pointer[view]

	held *fetchlock.Forwarded // leases owners granted to this node's clients

	behindMu sync.Mutex          // guards behind, pending, requests, sending and waitingFor
	behind   map[string]struct{} // members that missed a copy: sent their state again, not waited for
	pending  map[string]struct{} // members to send the whole state to
	requests map[string]struct{} // members to ask for their whole state (VELA RSYNCME)
	sending  string              // the member the state sender is sending the whole state to
	// waitingFor are the members that told this one it missed their copies (VELA RBEHIND) and
	// have not sent it their whole state since.
	waitingFor map[string]struct{}

	// down is set while this node has seeds and has joined none of them yet: alone, it holds
	// none of the cluster's keys, so clients' commands on keys get CLUSTERDOWN.
	down atomic.Bool

	synced       atomic.Bool   // a member has sent this one its whole state, or it started alone
	epoch        time.Time     // when Start ran: tick counts from it
	tick         atomic.Int64  // when the pause watcher last ran, in ns since epoch (sync.go)
	syncKick     chan struct{} // wakes the state sender
	syncsSent    atomic.Uint64
	syncsGot     atomic.Uint64
	copiesFailed atomic.Uint64
	refused      atomic.Uint64 // copies not applied: something newer was here

	stop     chan struct{}
	wg       sync.WaitGroup // the state sender, the pause watcher, the collector and the saver
	leaveMu  sync.Mutex     // serialises Leave
	left     bool           // Leave has run
	shutOnce sync.Once
	shutErr  error
}

// view is one immutable membership state: the ring that picks each key's owner, and where to
// reach each member.
type view struct {
	ring   *ring.Ring
	others *ring.Ring        // the ring without this member: where it reads before it is synced
	addrs  map[string]string // member name → RESP address
}

// New builds the topology for node, whose commands run on st, and installs it as the node's
// router. Nothing runs until Start.
func New(node *commands.Node, st store.Store, cfg Config) (*Cluster, error) {
	if cfg.NodeName == "" {
		return nil, errors.New("replicate: node name required")
	}
	if cfg.ForwardTimeout <= 0 {
		cfg.ForwardTimeout = time.Second
	}
	if cfg.BlockingWait <= 0 {
		cfg.BlockingWait = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ks, ok := st.(store.Keyspace)
	if !ok {
		return nil, errors.New("replicate: the store cannot enumerate its keys, which sending the whole state needs")
	}
	cl := &Cluster{cfg: cfg, self: cfg.NodeName, id: xxhash.Sum64String(cfg.NodeName), node: node,
		store: st, ks: ks, stats: node.Stats(), log: cfg.Log, token: peer.Token(cfg.Secret),
		versions: newVersions(), behind: map[string]struct{}{}, syncKick: make(chan struct{}, 1),
		stop: make(chan struct{})}
	cl.clock.now = cfg.Now
	if cfg.StampsPath != "" {
		if err := cl.versions.load(cfg.StampsPath); err != nil {
			return nil, err
		}
		cl.clock.observe(max(cl.versions.newest.Load(), cl.versions.flushStamp().Time))
	}
	cl.held = fetchlock.NewForwarded(cl.releaseLease)
	handshake := [][][]byte{}
	if cfg.RequirePass != "" {
		handshake = append(handshake, [][]byte{[]byte("AUTH"), []byte(cfg.RequirePass)})
	}
	handshake = append(handshake,
		[][]byte{[]byte("VELA"), []byte("PEER"), []byte(cl.token)},
		[][]byte{[]byte("HELLO"), []byte("3")})
	silence := peer.NewSilence() // a member found not answering by one pool fails fast in all
	pool := func(conns int) *peer.Pool {
		return peer.NewPool(peer.Config{Conns: conns, DialTimeout: cfg.ForwardTimeout,
			Handshake: handshake, Dial: cfg.PeerDial, Log: cfg.Log, Silence: silence})
	}
	cl.forwards, cl.copies, cl.syncs = pool(1), pool(1), pool(1)
	_, piped := st.(store.Pipeliner)
	cl.loopWrites = cl.copies.OnLoops() && !piped
	cl.setView(nil)
	node.Watch(cl)
	cl.registerCommands()
	node.AddInfoSection("vela", cl.infoLines)
	node.SetRouter(cl)
	return cl, nil
}

// Start joins the cluster (in the background: seeds are retried until one answers) and starts
// the state sender and the collector of old versions. respAddr is the listener's address,
// advertised to peers.
func (cl *Cluster) Start(respAddr string) error {
	if len(cl.cfg.Join) == 0 {
		cl.synced.Store(true) // a new cluster: nothing to receive
	} else {
		cl.down.Store(true) // until membership reports a whole member list
	}
	ml, err := membership.Start(membership.Config{
		NodeName: cl.cfg.NodeName, Bind: cl.cfg.GossipListen, Advertise: cl.cfg.Advertise,
		RESP: respAddr, Join: cl.cfg.Join, Secret: cl.cfg.Secret, Profile: cl.cfg.Profile,
		Transport: cl.cfg.Transport, OnChange: cl.onChange, Log: cl.log,
	})
	if err != nil {
		return err
	}
	cl.ml = ml
	cl.epoch = time.Now()
	cl.wg.Add(4)
	go func() { defer cl.wg.Done(); cl.watchPauses() }()
	go func() { defer cl.wg.Done(); cl.sendLoop() }()
	go func() { defer cl.wg.Done(); cl.collectLoop() }()
	go func() { defer cl.wg.Done(); cl.saveLoop() }()
	return nil
}

// onChange is membership's callback: it rebuilds the view and, for a member that joined,
// queues the transfer of this node's state to it. It runs serially on memberlist's goroutines
// and does not block.
func (cl *Cluster) onChange(ev membership.Event) {
	cl.setView(ev.Members)
	if !ev.Joining {
		cl.down.Store(false) // the member list is whole: joined, or a cluster of one
	}
	switch ev.Kind {
	case membership.Joined:
		if ev.Member.Name != cl.self {
			cl.queueSync(ev.Member.Name)
			if !cl.synced.Load() {
				// The member may not see this one join (it restarted before being declared
				// dead): ask it for its state as well.
				cl.queueRequest(ev.Member.Name)
			}
		} else if len(ev.Members) <= 1 && len(cl.cfg.Join) == 0 {
			cl.synced.Store(true)
		}
	case membership.Left, membership.Failed:
		if ev.Member.RESP != "" && ev.Member.Name != cl.self {
			cl.wg.Add(1)
			go func() { // Forget may wait for a dial in progress: not on memberlist's goroutine
				defer cl.wg.Done()
				for _, p := range []*peer.Pool{cl.forwards, cl.copies, cl.syncs} {
					p.Forget(ev.Member.RESP)
				}
			}()
		}
	}
}

// setView builds and publishes the view for members (before membership starts: this node
// alone).
func (cl *Cluster) setView(members []membership.Member) {
	names := make([]string, 0, len(members)+1)
	addrs := make(map[string]string, len(members))
	for _, m := range members {
		names = append(names, m.Name)
		addrs[m.Name] = m.RESP
	}
	if members == nil {
		names = append(names, cl.self)
	}
	sort.Strings(names)
	old := cl.view.Load()
	version := uint64(1)
	if old != nil {
		version = old.ring.Version()
		if !equal(old.ring.Members(), names) {
			version++
		}
	}
	var others []string
	for _, n := range names {
		if n != cl.self {
			others = append(others, n)
		}
	}
	nv := &view{ring: ring.New(names, version, ring.Config{VNodes: cl.cfg.VNodes}), addrs: addrs}
	if len(others) > 0 {
		nv.others = ring.New(others, version, ring.Config{VNodes: cl.cfg.VNodes})
	}
	cl.view.Store(nv)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// Ready reports whether the node has joined the cluster and holds the whole state: a member
// sent it everything, or it started the cluster.
func (cl *Cluster) Ready() bool {
	return cl.ml != nil && cl.ml.Joined() && !cl.down.Load() && cl.synced.Load()
}

// Members returns the membership as memberlist sees it.
func (cl *Cluster) Members() []membership.Member {
	if cl.ml == nil {
		return nil
	}
	return cl.ml.Members()
}

// RingMembers returns the members of the current ring, sorted.
func (cl *Cluster) RingMembers() []string { return cl.view.Load().ring.Members() }

// Name is this member's name.
func (cl *Cluster) Name() string { return cl.self }

// GossipAddr is the memberlist address peers and seeds use to reach this node ("" before
// Start).
func (cl *Cluster) GossipAddr() string {
	if cl.ml == nil {
		return ""
	}
	return cl.ml.Self().Gossip
}

// Leave leaves the membership gracefully. Every other member holds every key already, so there
// is nothing to hand over. The node keeps serving until Shutdown. It is idempotent.
func (cl *Cluster) Leave(ctx context.Context) {
	cl.leaveMu.Lock()
	defer cl.leaveMu.Unlock()
	if cl.left || cl.ml == nil {
		return
	}
	cl.left = true
	timeout := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d)/2, 100*time.Millisecond)
	}
	cl.ml.Leave(timeout)
}

// Shutdown leaves the cluster if Leave has not run, stops the background work, closes the
// peer connections and stops gossiping. It is idempotent.
func (cl *Cluster) Shutdown(ctx context.Context) error {
	cl.shutOnce.Do(func() {
		cl.held.Close()
		cl.Leave(ctx)
		close(cl.stop)
		var err error
		if cl.ml != nil {
			err = cl.ml.Shutdown()
		}
		cl.wg.Wait()
		if cl.cfg.StampsPath != "" {
			// The listener is closed by now (server.Shutdown): nothing changes any more.
			if serr := cl.versions.save(cl.cfg.StampsPath); serr != nil {
				err = errors.Join(err, fmt.Errorf("replicate: saving the stamps: %w", serr))
			}
		}
		cl.forwards.Close()
		cl.copies.Close()
		cl.syncs.Close()
		cl.shutErr = err
	})
	return cl.shutErr
}

func (cl *Cluster) infoLines(context.Context) []string {
	v := cl.view.Load()
	ready := 0
	if cl.Ready() {
		ready = 1
	}
	return append([]string{
		"cluster_topology:replicated",
		fmt.Sprintf("cluster_members:%d", v.ring.Len()),
		fmt.Sprintf("cluster_ring_version:%d", v.ring.Version()),
		"cluster_ring_checksum:" + checksum(v.ring.Members()),
		fmt.Sprintf("cluster_ready:%d", ready),
		fmt.Sprintf("cluster_forwards:%d", cl.stats.Forwards.Load()),
		fmt.Sprintf("cluster_loop_peer_connections:%d", cl.copies.LoopConns()),
		fmt.Sprintf("cluster_versions:%d", cl.versions.len()),
		fmt.Sprintf("cluster_copies_refused:%d", cl.refused.Load()),
		fmt.Sprintf("cluster_copies_failed:%d", cl.copiesFailed.Load()),
		fmt.Sprintf("cluster_state_transfers_sent:%d", cl.syncsSent.Load()),
		fmt.Sprintf("cluster_state_transfers_received:%d", cl.syncsGot.Load()),
	}, peer.SilentInfo(cl.forwards, cl.copies, cl.syncs)...)
}

// SilentPeers returns how many members this one finds not answering, and how many requests it
// failed at once because of it (peer.ErrNotAnswering).
func (cl *Cluster) SilentPeers() (int, int64) {
	return peer.SilentCounts(cl.forwards, cl.copies, cl.syncs)
}

// checksum identifies a member list: equal on every node that agrees on the members.
func checksum(members []string) string {
	return fmt.Sprintf("%016x", xxhash.Sum64String(strings.Join(members, "\x00")))
}

// errPeerOnly answers a client that calls a command meant for cluster peers.
var errPeerOnly = commands.ErrPeerOnly

// registerCommands adds VELA and its subcommands: NODES, RING and OWNER for people; PEER,
// RAPPLY, RFLUSH, RTAGS, RSYNCED, RSYNCME, RSTATE and RBEHIND for peers.
func (cl *Cluster) registerCommands() {
	sub := commands.VelaSubcommand
	owner := sub("owner", 3, commands.FlagReadOnly, cl.owner, "Returns the members holding a key, the one deciding its read-modify-write commands first.")
	owner.Args = []commands.Arg{{Name: "key", Type: "key"}}
	cl.node.Table().Register(&commands.Command{Name: "vela", Arity: -2, Group: "vela",
		Summary: "Vela cluster introspection and peer commands.",
		Subcommands: map[string]*commands.Command{
			"help":   sub("help", 2, commands.FlagLoading, commands.VelaHelp, "Shows the VELA subcommands."),
			"nodes":  sub("nodes", 2, commands.FlagLoading, cl.nodes, "Lists the cluster members: name, RESP address, gossip address, state."),
			"ring":   sub("ring", 2, commands.FlagLoading, cl.ringInfo, "Describes the hash ring: version, checksum, virtual nodes per member."),
			"owner":  owner,
			"peer":   sub("peer", 3, commands.FlagNoAuth|commands.FlagLoading, commands.PeerAuth(cl.token, cl.cfg.Secret != ""), "Marks the connection as a cluster peer's (internal)."),
			"rapply": sub("rapply", -6, commands.FlagWrite, cl.rapply, "Applies another member's stamped copy of a key if it is newer (internal)."),
			// RFLUSH and RTAGS may send copies of their own: never on an event loop.
			"rflush":  sub("rflush", 4, commands.FlagWrite|commands.FlagBlocking, cl.rflush, "Applies another member's stamped FLUSHALL (internal)."),
			"rtags":   sub("rtags", -5, commands.FlagWrite|commands.FlagBlocking, cl.rtags, "Applies another member's stamped TAGINVALIDATE (internal)."),
			"rsynced": sub("rsynced", 3, commands.FlagLoading, cl.rsynced, "Tells a member that another has sent it its whole state (internal)."),
			"rsyncme": sub("rsyncme", 3, commands.FlagLoading, cl.rsyncme, "Asks a member for its whole state (internal)."),
			"rstate":  sub("rstate", 3, commands.FlagReadOnly, cl.rstate, "Answers a key's state and stamp (internal)."),
			"rbehind": sub("rbehind", 3, commands.FlagLoading, cl.rbehind, "Tells a member that it missed copies (internal)."),
		}})
}

func (cl *Cluster) nodes(_ *commands.Ctx, _ [][]byte) (resp.Reply, error) {
	out := []resp.Reply{}
	for _, m := range cl.Members() {
		out = append(out, resp.BulkStrings(m.Name, m.RESP, m.Gossip, m.State))
	}
	return resp.Array(out), nil
}

func (cl *Cluster) ringInfo(_ *commands.Ctx, _ [][]byte) (resp.Reply, error) {
	r := cl.view.Load().ring
	members := make([]resp.Reply, 0, 2*r.Len())
	for _, m := range r.Members() {
		members = append(members, resp.BulkString(m), resp.Int(int64(r.VNodes())))
	}
	return resp.Map([]resp.Reply{
		resp.BulkString("version"), resp.Int(int64(r.Version())),
		resp.BulkString("checksum"), resp.BulkString(checksum(r.Members())),
		resp.BulkString("replicas"), resp.Int(int64(r.Len())),
		resp.BulkString("vnodes"), resp.Int(int64(r.VNodes())),
		resp.BulkString("members"), resp.Map(members),
	}), nil
}

func (cl *Cluster) owner(_ *commands.Ctx, args [][]byte) (resp.Reply, error) {
	r := cl.view.Load().ring
	return resp.BulkStrings(r.Owners(args[2], r.Len(), nil)...), nil
}

// Owner returns the member that decides key's read-modify-write commands in the current ring.
func (cl *Cluster) Owner(key []byte) string { return cl.view.Load().ring.Owner(key) }

// KeyChanged implements commands.KeyWatcher: it counts the change in key's stripe.
func (cl *Cluster) KeyChanged(key []byte) { cl.changes[cl.stripe(key)].Add(1) }

// AllChanged implements commands.KeyWatcher. FLUSHALL copies itself (VELA RFLUSH).
func (cl *Cluster) AllChanged() {}
