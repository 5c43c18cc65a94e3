package commands

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vela-cache/vela/latency"
	"github.com/vela-cache/vela/nearcache"
	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/slowlog"
	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store"
)

// Version is the Redis version Vela reports to clients (HELLO, INFO). Clients gate features on
// it; Vela implements the Redis 7 behaviour of every command it serves.
const Version = "7.0.15"

// VelaVersion is Vela's own version, reported in INFO's vela section.
const VelaVersion = "0.1.0"

// Config is what the commands need to know about the node. The zero value is a local node with
// no password and no default TTL.
type Config struct {
	// RequirePass is the password AUTH expects; "" means none.
	RequirePass string
	// DefaultTTL applies to writes that give no expiry (0: none).
	DefaultTTL time.Duration
	// MaxBulkLen is proto_max_bulk_len, the largest string a command may build.
	MaxBulkLen int64
	// Port is the TCP port reported by INFO.
	Port int
	// Settings are the values CONFIG GET reports, by Redis parameter name.
	Settings map[string]string
	// Rewrite writes settings (the parameters CONFIG SET changes, by Redis name, with their
	// values now) to the configuration file the node was started from, for CONFIG REWRITE;
	// nil when it was started without one.
	Rewrite func(settings map[string]string) error
	// StoreType and Topology name the layers below, for INFO's vela section.
	StoreType, Topology string
	// MaxSize, MaxMemory and EvictionPolicy are the store's bounds, for INFO (0: unbounded).
	MaxSize, MaxMemory int64
	EvictionPolicy     string
	// ScriptLimit stops a script that runs longer (0: DefaultScriptLimit).
	ScriptLimit time.Duration
	// Slowlog is the log SLOWLOG serves and the node adds slow commands to; nil keeps none.
	Slowlog *slowlog.Log
	// Latency is the node's latency monitor (LATENCY); nil keeps none (a threshold of 0).
	Latency *latency.Monitor
	// Tracking is latency-tracking: whether commands' run times are recorded for INFO
	// latencystats and LATENCY HISTOGRAM, and the percentiles INFO prints. nil: on, with
	// Redis's default percentiles.
	Tracking *latency.Tracking
}

// DefaultScriptLimit is how long a script may run before it is stopped: Redis's
// busy-reply-threshold, past which Redis answers BUSY to everyone else.
const DefaultScriptLimit = 5 * time.Second

// Clients is what CLIENT LIST and INFO need from the listener. *resp.Server implements it.
type Clients interface {
	Clients(fn func(c *resp.Conn))
	ClientCount() int
	// NetStats returns the bytes read and written on every connection since the start, and the
	// connections refused for the client limit.
	NetStats() (in, out, rejected uint64)
}

// Node executes commands against a store. It implements resp.Handler.
type Node struct {
	table   *Table
	store   store.Store
	cfg     Config
	stats   *stats.Stats
	slowlog *slowlog.Log
	latency *latency.Monitor
	track   *latency.Tracking
	log     *slog.Logger
	started time.Time
	runID   string
	clients Clients

	shutdown func() // SHUTDOWN's effect (SetShutdown)
	// netBase is Clients.NetStats at the last CONFIG RESETSTAT, from which INFO counts.
	netBase atomic.Pointer[[3]uint64]
	blocked sync.Map // client ID → the context.CancelCauseFunc of its blocking command's wait (unblock.go)
	// blockedN counts blocked's entries: INFO's blocked_clients.
	blockedN atomic.Int64

	// memStartup is used_memory when the node was made, memPeak the highest seen since
	// (memstats.go).
	memStartup uint64
	memPeak    atomic.Uint64

	pipe      store.Pipeliner     // the store's pipelined path, if it has one
	loopPipe  store.LoopPipeliner // pipe, when event loops can drive its calls themselves
	extraInfo []namedSection      // INFO lines contributed by other packages
	watchers  []KeyWatcher        // told about every key change (watch.go)
	router    Router              // decides where keyed and cluster-wide commands run; nil: here
	txr       TxRouter            // router, when it places transactions (txn_routed.go)

	errs  errorCounts // error replies, for INFO's total_error_replies and errorstats
	pause clientPause // CLIENT PAUSE (pause.go)
	ops   opsRate     // samples for INFO's instantaneous_ops_per_sec (opsrate.go)

	near      *nearcache.Cache // the L1 in front of the store (near.go), or nil
	nearShown *nearcache.Cache // the near cache INFO reports: near, or one another layer uses
	gate      *gate            // isolates EXEC (gate.go); nil when the store is shared with others
	remote    store.Transactor // runs transactions itself when the store is shared (txn_remote.go)
	watches   watchedKeys      // the keys WATCH watches (watchkeys.go)
	// clientCache is the table of client tracking (clienttracking.go).
	clientCache *tracker
	hub         *pubsub.Hub   // Pub/Sub subscriptions (pubsub.go)
	remotePS    store.PubSub  // the store's own Pub/Sub, which clients then share (the redis store), or nil
	events      atomic.Uint32 // the pubsub.Events keyspace notifications publish (notify.go)
	nextStripe  atomic.Uint32 // deals connections to the gate's stripes
	scripts     scripting     // EVAL's script cache and runner (script.go)
	monitors    monitors      // the connections in MONITOR mode (monitor.go)
	settingsMu  sync.RWMutex  // guards cfg.Settings, which CONFIG SET changes (config.go)
}

// Router decides where a command runs when the node is part of a cluster. Exec calls Route for
// every command that names keys or acts cluster-wide, after the command has passed Redis's
// checks (arity, authentication). On a cluster peer's connection (Ctx.Peer) a router must run
// the command here (it may add local work, such as copying a write to replicas) and never
// forward it again, so requests never loop. Route returns handled = false to let the command
// run locally as usual; that path must not allocate. A reply may be deferred (resp.Reply.Later). Route
// is called concurrently from every connection's goroutine.
type Router interface {
	Route(c *Ctx, cmd *Command, args [][]byte) (reply resp.Reply, handled bool)
}

// InlineRouter is implemented by a Router that can tell, before routing, that a command can run
// on an event loop: Route will run it here without touching the network, or forward it with a
// Later reply that implements resp.Notifier (not, for example, gather a multi-key command).
type InlineRouter interface {
	Inline(c *Ctx, cmd *Command, args [][]byte) bool
}

// TxRouter is implemented by a Router that can run a transaction whose keys all live on one
// member, as Redis Cluster runs one whose keys are in one slot (txn_routed.go).
type TxRouter interface {
	// TxUnsupported says why this node cannot run transactions at all, or returns nil.
	TxUnsupported() error
	// TxPlace returns where keys live together: "" for this node, or the address of the member
	// holding them. Keys on several members get Redis Cluster's CROSSSLOT error; keys that
	// cannot be placed now (the members are changing) get an error too.
	TxPlace(keys [][]byte) (string, error)
	// TxConn opens a connection to the member at place that a client's transaction keeps from
	// WATCH to EXEC; the member runs the commands it receives there itself.
	TxConn(ctx context.Context, place string) (store.TxConn, error)
	// TxPrepare fetches from other members what running commands on keys here may need (a key
	// not handed over yet), before EXEC keeps every other command out: inside EXEC
	// (Ctx.InExec) Route must not wait for the network on keys this node owns, since the
	// member it would wait for may itself be waiting for this one.
	TxPrepare(c *Ctx, keys [][]byte)
}

// SetRouter installs r. Call it during start-up, before the node serves clients. A routed node
// runs transactions only if r can place them (TxRouter); otherwise it refuses them, and its
// commands skip the gate.
func (n *Node) SetRouter(r Router) {
	n.router = r
	if tr, ok := r.(TxRouter); ok && n.gate != nil && tr.TxUnsupported() == nil {
		n.txr = tr
		return
	}
	n.gate = nil
}

// NewNode returns a Node serving the built-in commands on st. stats may be nil.
func NewNode(st store.Store, cfg Config, counters *stats.Stats, log *slog.Logger) *Node {
	if cfg.MaxBulkLen <= 0 {
		cfg.MaxBulkLen = 512 << 20
	}
	if cfg.ScriptLimit <= 0 {
		cfg.ScriptLimit = DefaultScriptLimit
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if counters == nil {
		counters = &stats.Stats{Disabled: true}
	}
	id := make([]byte, 20)
	_, _ = rand.Read(id)
	n := &Node{table: NewTable(), store: st, cfg: cfg, stats: counters, log: log,
		started: time.Now(), runID: hex.EncodeToString(id), memStartup: heapBytes()}
	n.slowlog = newSlowlog(cfg.Slowlog)
	n.clientCache = newTracker()
	n.hub = pubsub.NewHub()
	n.remotePS, _ = st.(store.PubSub)
	if ev, ok := pubsub.ParseEvents(cfg.Settings["notify-keyspace-events"]); ok {
		n.events.Store(uint32(ev))
	}
	if rn, ok := st.(store.RemovalNotifier); ok {
		rn.NotifyRemovals(n.removedByStore)
	}
	if n.latency = cfg.Latency; n.latency == nil {
		n.latency = latency.New(0)
	}
	if n.track = cfg.Tracking; n.track == nil {
		n.track = latency.NewTracking(true, latency.DefaultPercentiles)
	}
	n.pipe, _ = st.(store.Pipeliner)
	if lp, ok := st.(store.LoopPipeliner); ok && lp.OnLoops() {
		n.loopPipe = lp
	}
	if sh, ok := st.(sharedStore); !ok || !sh.Shared() {
		n.gate = &gate{}
	} else if t, ok := st.(interface {
		store.Transactor
		Transactions() bool
	}); ok && t.Transactions() {
		n.remote = t
	}
	n.registerConnection()
	n.registerServer()
	n.registerWait()
	n.registerStrings()
	n.registerKeys()
	n.registerVela()
	n.registerTransactions()
	n.registerScripts()
	n.registerSlowlog()
	n.registerMemory()
	n.registerObject()
	n.registerLatency()
	n.registerPubSub()
	n.registerMonitor()
	n.registerRename()
	n.registerBits()
	n.registerDump()
	n.registerDatabases()
	return n
}

// Table returns the command table, so other packages can register their commands.
func (n *Node) Table() *Table { return n.table }

// Store returns the store the node's commands use.
func (n *Node) Store() store.Store { return n.store }

// Stats returns the node's counters.
func (n *Node) Stats() *stats.Stats { return n.stats }

// NetStats returns the bytes read and written on every connection since the start, and the
// connections refused for the client limit (zeros before SetClients); CONFIG RESETSTAT does not
// move them.
func (n *Node) NetStats() (in, out, rejected uint64) {
	if n.clients == nil {
		return 0, 0, 0
	}
	return n.clients.NetStats()
}

// ClientCount returns the number of open client connections (0 before SetClients).
func (n *Node) ClientCount() int {
	if n.clients == nil {
		return 0
	}
	return n.clients.ClientCount()
}

// SetClients tells the node which listener serves it (the listener is built after the node).
func (n *Node) SetClients(c Clients) { n.clients = c }

// Ctx is the command layer's state for one connection, passed to every handler.
type Ctx struct {
	// Conn is the client connection; nil when a handler is called directly (tests, internal use).
	Conn *resp.Conn
	// Node is the node executing the command.
	Node *Node
	// Peer marks a connection from another cluster member (authenticated with the cluster
	// secret): its commands run on this node and are never routed again.
	Peer bool
	// RouterState is the Router's own state for this connection, nil until the Router sets it.
	// Only the connection's commands use it, one at a time.
	RouterState any

	// loop is the event loop running the current command in-line (TryServeRESP), else nil.
	loop *resp.Loop
	// cmd is the command running, for the accounting of a reply computed later.
	cmd *Command
	// started is set when a store call begun with start may still be pending: a command that
	// uses Do must let it complete first (do).
	started bool
	// tx is the connection's MULTI and WATCH state (txn.go), nil until it uses them; inExec is
	// set while EXEC runs the queued commands, whose replies execReplies collects.
	tx       *txState
	inScript bool // running a command a script called (the slow log names no client)
	// quiet is set while a command that accounts for itself (RENAME, COPY) calls the store:
	// no hit or miss is counted and no keyspace event published for the call (quietDo).
	quiet bool
	// inMove is set while RENAME or COPY, isolated, goes through the router (routeMove).
	inMove bool
	// errsCounted is set by a handler that has counted its reply's errors itself (EVAL: the
	// errors its script passes on from the commands it called are counted already).
	errsCounted bool
	inExec      bool
	execReplies []resp.Reply
	execSettled int             // execReplies[:execSettled] hold no Later (settle)
	inGate      bool            // ExecLocal holds the gate's read lock for this connection (routed nodes)
	readLocked  bool            // ReadLock holds the gate's read lock
	execCtx     context.Context // Context while EXEC runs: the connection's, without its cancellation
	blockCtx    context.Context // Context while a blocking command waits: CLIENT UNBLOCK ends it (unblock.go)
	execNow     int64           // unix ms at which EXEC started, while it runs: when its keys expire
	afterExec   []func()        // run once EXEC has let other commands in again (AfterExec)
	// stripe is the gate stripe whose read lock the connection's commands take.
	stripe uint8
	// trk is the connection's client tracking (CLIENT TRACKING), nil until it first uses it.
	trk *trackState
	// sub is the connection's Pub/Sub subscriptions, nil until it first subscribes; remoteSub
	// holds them in the store's Pub/Sub, when the node has one (Node.remotePS).
	sub       *pubsub.Subscriber
	remoteSub [2]store.Subscription // channels and patterns; shard channels (remoteSlot)
}

// Context returns the connection's context (cancelled when it closes), or Background. Inside
// EXEC it is never cancelled: a transaction is not cut short halfway.
func (c *Ctx) Context() context.Context {
	if c.blockCtx != nil {
		return c.blockCtx
	}
	if c.execCtx != nil {
		return c.execCtx
	}
	if c.Conn == nil {
		return context.Background()
	}
	return c.Conn.Context()
}

// Blocking runs fn, a wait for another client or member (a FETCHLOCK), with the client's socket
// watched meanwhile, so that a client that disconnects cancels Context at once (resp.Conn's
// Blocking). Without a connection it just runs fn.
func (c *Ctx) Blocking(fn func()) {
	if c.Conn == nil {
		fn()
		return
	}
	c.Conn.Blocking(fn)
}

// InExec reports whether the current command runs inside EXEC, with every other command of
// the node held back.
func (c *Ctx) InExec() bool { return c.inExec }

// AfterExec makes fn run once the EXEC running the current command has let other commands in
// again, before EXEC replies: work that waits for other members (copies to replicas) must not
// hold every command of this node back meanwhile. Called outside EXEC it runs fn at once.
func (c *Ctx) AfterExec(fn func()) {
	if !c.inExec {
		fn()
		return
	}
	c.afterExec = append(c.afterExec, fn)
}

// Loop returns the event loop running the current command in-line, or nil when the command runs
// on a goroutine (or without a connection).
func (c *Ctx) Loop() *resp.Loop { return c.loop }

// Proto returns the connection's protocol version (2 without a connection).
func (c *Ctx) Proto() int {
	if c.Conn == nil {
		return 2
	}
	return c.Conn.Proto()
}

// ServeRESP checks a request the way Redis's processCommand does — unknown command, unknown
// subcommand, arity, then authentication — runs its handler and maps an error to its reply.
func (n *Node) ServeRESP(conn *resp.Conn, args [][]byte) resp.Reply {
	return n.Exec(n.session(conn), args)
}

// TryServeRESP implements resp.Inliner: it runs the command unless the command may wait or take
// long — FETCHLOCK, administrative and cluster-wide commands (KEYS, SCAN, FLUSHALL…) — or the
// router would do more than run it here or forward it with a reply that notifies (see
// InlineRouter). While the connection's earlier replies are still being computed, only a
// pipelined command (GET, SET) may run (anything else would wait for them); the loop asks again
// once they are written. Over a store whose calls cross the network (redis), only the calls the
// loop can drive itself run here (GET, and SET without TAGS: see store.LoopPipeliner); every
// other command would block the loop and is declined.
func (n *Node) TryServeRESP(conn *resp.Conn, args [][]byte) (resp.Reply, bool) {
	if len(args) == 0 {
		return resp.Reply{}, false
	}
	top := n.table.Lookup(args[0])
	cmd := top
	if top != nil && top.Subcommands != nil && len(args) >= 2 {
		cmd = n.Lookup(args) // the subcommand, or top when it is unknown
	}
	if cmd != nil && cmd.Flags&(FlagBlocking|FlagAdmin|FlagClusterWide|flagExclusive) != 0 {
		return resp.Reply{}, false
	}
	if cmd != nil && cmd.Flags&flagFanout != 0 {
		if _, ok := n.router.(Publisher); ok {
			return resp.Reply{}, false // it waits for the other members
		}
	}
	if cmd != nil && n.pause.until.Load() != 0 && n.heldByPause(n.session(conn), cmd) {
		return resp.Reply{}, false // it waits for the pause's end on a goroutine
	}
	if cmd != nil && cmd.Flags&flagScript != 0 && !n.inlineScripts() {
		return resp.Reply{}, false
	}
	if n.txr != nil && cmd != nil && cmd.Flags&flagTxControl != 0 && cmd.FirstKey > 0 {
		return resp.Reply{}, false // WATCH may wait for the member owning its keys (txn_routed.go)
	}
	if conn.Pending() && (cmd == nil || cmd.Flags&FlagPipelined == 0) {
		return resp.Reply{}, false
	}
	if n.pipe != nil && (n.loopPipe == nil || cmd == nil || cmd.Flags&FlagPipelined == 0 || hasTagsOption(args)) {
		return resp.Reply{}, false
	}
	ctx := n.session(conn)
	if ctx.trk != nil && ctx.trk.on {
		if _, ok := n.router.(ReadWatcher); ok {
			return resp.Reply{}, false // its reads may wait for other members (WatchReads)
		}
	}
	if n.router != nil && cmd != nil && cmd.FirstKey > 0 && cmd.Flags&flagTxControl == 0 { // what Exec routes
		if ir, ok := n.router.(InlineRouter); !ok || !ir.Inline(ctx, cmd, args) {
			return resp.Reply{}, false
		}
	}
	ctx.loop = conn.Loop()
	reply := n.exec(ctx, top, args)
	ctx.loop = nil
	if ctx.trk != nil || n.clientCache.bcastDue.Load() {
		n.afterCommand(ctx, top)
	}
	return reply, true
}

// hasTagsOption reports whether a SET's options (args[3:]) may include TAGS, which a pipelined
// store cannot take on its pipelined path. A false alarm only sends the command to a goroutine.
func hasTagsOption(args [][]byte) bool {
	for _, a := range args[min(3, len(args)):] {
		if equalFold(a, "tags") {
			return true
		}
	}
	return false
}

// session returns the command layer's state for conn, creating it on first use.
func (n *Node) session(conn *resp.Conn) *Ctx {
	ctx, _ := conn.Session.(*Ctx)
	if ctx == nil {
		ctx = &Ctx{Conn: conn, Node: n, stripe: uint8(n.nextStripe.Add(1) % gateStripes)}
		conn.Session = ctx
	}
	return ctx
}

// Exec runs one command for ctx.
func (n *Node) Exec(ctx *Ctx, args [][]byte) resp.Reply {
	if len(args) == 0 {
		return resp.Error(string(ErrSyntax))
	}
	cmd := n.table.Lookup(args[0])
	reply := n.exec(ctx, cmd, args)
	if ctx.trk != nil || n.clientCache.bcastDue.Load() {
		n.afterCommand(ctx, cmd)
	}
	return reply
}

// exec is Exec with the command named by args[0] already looked up (nil: unknown). Between
// MULTI and EXEC it queues the command instead of running it (txn.go).
func (n *Node) exec(ctx *Ctx, cmd *Command, args [][]byte) resp.Reply {
	if cmd == nil {
		return ctx.refused(errorReply(unknownCommand(args)))
	}
	if cmd.Subcommands != nil && (len(args) >= 2 || cmd.Handler == nil) {
		if len(args) < 2 {
			cmd.rejected.Add(1)
			return ctx.refused(errorReply(WrongArity(cmd.Name)))
		}
		var buf [32]byte
		sub := cmd.Subcommands[string(lowerInto(buf[:0], args[1][:min(len(args[1]), 32)]))]
		if sub == nil || len(args[1]) > 32 {
			return ctx.refused(errorReply(unknownSubcommand(cmd.Name, args[1]))) // against no command, as Redis
		}
		cmd = sub
	}
	if (cmd.Arity > 0 && len(args) != cmd.Arity) || len(args) < -cmd.Arity {
		cmd.rejected.Add(1)
		return n.refuse(ctx, cmd, WrongArity(cmd.Name))
	}
	if ctx.Conn != nil {
		if !ctx.Conn.Authenticated() && cmd.Flags&FlagNoAuth == 0 {
			cmd.rejected.Add(1)
			return n.refuse(ctx, cmd, ErrNoAuth)
		}
		if ctx.sub != nil && cmd.Flags&flagPubSubContext == 0 && !ctx.inExec && ctx.sub.Active() && ctx.Conn.Proto() < 3 {
			cmd.rejected.Add(1)
			return n.refuse(ctx, cmd, pubsubContextError(cmd))
		}
		if n.monitorRefuses(ctx, cmd) {
			cmd.rejected.Add(1)
			return n.refuse(ctx, cmd, errMonitorKeyspace)
		}
		if !ctx.inExec { // CLIENT LIST shows EXEC, not the commands it ran
			ctx.Conn.SetLastCommand(&cmd.Name)
		}
		// CLIENT PAUSE holds the command back, even one MULTI would queue, as Redis does. A
		// command already on an event loop when a pause starts runs: it arrived before it
		// (TryServeRESP hands a command the pause holds to a goroutine, which waits).
		if ctx.loop == nil && n.heldByPause(ctx, cmd) && !n.waitPause(ctx, cmd) {
			return errorReply(errClientGone)
		}
	}
	if ctx.tx != nil && ctx.tx.multi && !ctx.inExec && cmd.Flags&flagTxControl == 0 {
		return n.queue(ctx, cmd, args)
	}
	if cmd.Flags&FlagBlocking != 0 && ctx.Conn != nil && ctx.blockCtx == nil && !ctx.Peer {
		return n.execUnblockable(ctx, cmd, args) // runs it, through exec again
	}
	if cmd.Flags&flagScript != 0 {
		n.monitored(ctx, cmd, args) // before the commands it calls, as Redis shows a script
	}
	if ctx.Conn != nil && cmd.Flags&FlagPipelined == 0 {
		ctx.settle() // pipelined calls before this command complete first
	}
	// A command on the keyspace holds the gate's read lock, which EXEC takes for writing, so
	// that it never runs in the middle of a transaction. A blocking command (FETCHLOCK) does
	// not: it would hold the lock while it waits, and keep every EXEC waiting too. On a routed
	// node the lock is taken only around what runs here (ExecLocal), never while a command
	// waits for another member: that member's EXEC may be waiting for this one.
	if n.txr == nil && n.gated(ctx, cmd) {
		n.gate.rlock(ctx.stripe)
		defer n.gate.runlock(ctx.stripe)
	}
	// A tracking client's read remembers its keys before and after it runs (clienttracking.go).
	if ctx.trk != nil && ctx.trk.on && cmd.Flags&(FlagReadOnly|flagScript) != 0 {
		if keys := n.trackedKeys(ctx, cmd, args); len(keys) > 0 {
			n.clientCache.rememberBefore(ctx.trk, keys)
			var unwatched [][]byte
			if rw, ok := n.router.(ReadWatcher); ok {
				unwatched = rw.WatchReads(ctx, keys)
			}
			defer n.trackedRead(ctx.trk, keys, unwatched)
		}
	}
	// WATCH names keys but is about the connection's transaction: txn.go places it itself.
	// RENAME and COPY (flagExclusive) place themselves, as a transaction is placed (rename.go).
	if n.router != nil && (cmd.FirstKey > 0 || cmd.Flags&FlagClusterWide != 0) && cmd.Flags&(flagTxControl|flagExclusive) == 0 {
		if st := ctx.trk; st != nil && st.on && st.noloop && !st.bcast && cmd.Flags&FlagWrite != 0 {
			if _, ok := n.router.(ReadWatcher); ok { // its owner may be another member
				n.clientCache.forgetOwn(st, cmd.Keys(args))
			}
		}
		var start time.Duration
		slowOn, latOn, trackOn := n.slowlog.On(), n.latency.On(), n.track.On()
		if slowOn || latOn || trackOn {
			start = time.Since(n.started)
		}
		if reply, handled := n.router.Route(ctx, cmd, args); handled {
			n.ran(cmd)
			if n.monitors.list.Load() != nil && cmd.Flags&flagScript == 0 {
				n.monitored(ctx, cmd, args)
			}
			if ctx.blockCtx != nil {
				reply = unblockedReply(ctx, cmd, reply)
			}
			if reply.Kind == resp.KindError {
				cmd.failed.Add(1)
				n.errs.add(reply.Str)
			}
			if slowOn || latOn || trackOn {
				n.noteRun(ctx, cmd, args, time.Since(n.started)-start, slowOn, latOn, trackOn)
			}
			return reply
		}
	}
	reply := n.execLocal(ctx, cmd, args, true)
	n.ran(cmd)
	if n.monitors.list.Load() != nil && cmd.Flags&flagScript == 0 {
		n.monitored(ctx, cmd, args)
	}
	return reply
}

// noteRun records a command's run time where it is watched: the slow log (slow), the latency
// monitor (lat) and the command's latency histogram (track).
func (n *Node) noteRun(ctx *Ctx, cmd *Command, args [][]byte, took time.Duration, slow, lat, track bool) {
	if slow {
		n.noteSlow(ctx, cmd, args, took)
	}
	if lat {
		n.noteLatency(cmd, took)
	}
	if track {
		cmd.recordRun(took)
	}
}

// ran counts a command that has run, as Redis counts it once it has: INFO read by a command
// does not include that command, and CONFIG RESETSTAT counts itself.
func (n *Node) ran(cmd *Command) {
	cmd.calls.Add(1)
	if n.stats.On() {
		n.stats.Commands.Inc()
	}
}

// refuse answers err to cmd, refused before it ran. A refused EXEC discards the transaction,
// in or out of MULTI, with Redis's EXECABORT text; another refused command marks it (refused).
func (n *Node) refuse(ctx *Ctx, cmd *Command, err Error) resp.Reply {
	if cmd.Name == "exec" {
		n.endTx(ctx)
		reply := errorReply(Error("EXECABORT Transaction discarded because of: " + strings.TrimPrefix(string(err), "ERR ")))
		n.errs.add(reply.Str)
		return reply
	}
	return ctx.refused(errorReply(err))
}

// refused returns reply, the error for a command refused before it ran, counted as an error
// reply, and between MULTI and EXEC marks the transaction so that EXEC runs nothing, as Redis's
// flagTransaction does.
func (c *Ctx) refused(reply resp.Reply) resp.Reply {
	if c.Node != nil {
		c.Node.errs.add(reply.Str)
	}
	if c.tx != nil && c.tx.multi && !c.inExec {
		c.tx.aborted = true
	}
	return reply
}

// gated reports whether cmd, run for ctx, takes the gate's read lock (see exec).
func (n *Node) gated(ctx *Ctx, cmd *Command) bool {
	return n.gate != nil && !ctx.inExec && !ctx.inGate && !ctx.readLocked && cmd.Flags&(FlagBlocking|flagExclusive) == 0 &&
		(cmd.FirstKey > 0 || cmd.Flags&(FlagWrite|FlagReadOnly|FlagClusterWide) != 0)
}

// ReadLock takes, for a blocking command's read of the keyspace, the gate's read lock every
// other command holds while it runs, so that the read never sees a transaction half applied. A
// blocking command (FETCHLOCK) does not hold the lock for its whole run, only while it reads,
// so that its wait keeps no EXEC waiting. ReadUnlock releases it. A router that locks keys of
// its own around a command it runs here (ExecLocal) takes the gate first with ReadLock: EXEC
// waiting for the gate holds back new readers, so a command holding a key's lock while it waits
// for the gate, and another holding the gate while it waits for that key's lock, would wait
// for each other. ExecLocal takes nothing more while the read lock is held.
func (c *Ctx) ReadLock() {
	if n := c.Node; n != nil && n.gate != nil && !c.inExec && !c.inGate && !c.readLocked {
		n.gate.rlock(c.stripe)
		c.readLocked = true
	}
}

// ReadUnlock releases what ReadLock took.
func (c *Ctx) ReadUnlock() {
	if c.readLocked {
		c.readLocked = false
		c.Node.gate.runlock(c.stripe)
	}
}

// ExecLocal runs cmd's handler on this node, without routing, and maps an error to its reply.
// Routers call it for the part of a command that belongs here. On a routed node it holds the
// gate's read lock meanwhile (exec), except for WATCH, which takes it itself when its keys are
// here.
func (n *Node) ExecLocal(ctx *Ctx, cmd *Command, args [][]byte) resp.Reply {
	return n.execLocal(ctx, cmd, args, false)
}

// execLocal is ExecLocal; whole tells that args are the whole command a client sent (not a
// router's part of one), which the slow log then takes if it was slow.
func (n *Node) execLocal(ctx *Ctx, cmd *Command, args [][]byte, whole bool) resp.Reply {
	if n.txr != nil && cmd.Flags&flagTxControl == 0 && n.gated(ctx, cmd) {
		n.gate.rlock(ctx.stripe)
		ctx.inGate = true
		defer func() {
			ctx.inGate = false
			n.gate.runlock(ctx.stripe)
		}()
	}
	var reply resp.Reply
	var err error
	ctx.cmd = cmd
	latOn := n.latency.On()
	// A router's part of a command (not whole) is not a run of its own: the router's caller
	// records the whole command's run time.
	trackOn := whole && n.track.On()
	if slowOn := whole && n.slowlog.On(); cmd.observer != nil || n.stats.On() || slowOn || latOn || trackOn {
		// Durations from the node's start time read only the monotonic clock, where
		// time.Now would also read the wall clock.
		start := time.Since(n.started)
		reply, err = cmd.Handler(ctx, args)
		took := time.Since(n.started) - start
		if !ctx.inMove { // RENAME or COPY run again through the router: timed once, outside
			cmd.nsec.Add(uint64(took))
			if cmd.observer != nil {
				cmd.observer.Observe(took.Seconds())
			}
		}
		n.noteRun(ctx, cmd, args, took, slowOn, latOn, trackOn)
	} else {
		reply, err = cmd.Handler(ctx, args)
	}
	counted := ctx.errsCounted
	ctx.errsCounted = false
	if err != nil {
		reply, counted = errorReply(err), false
	}
	if ctx.blockCtx != nil {
		reply = unblockedReply(ctx, cmd, reply)
	}
	switch {
	case counted:
		// the handler counted its reply's errors itself (EVAL)
	case !whole:
		// A router's part of a command: the router's caller counts the whole command's reply.
	case reply.Kind == resp.KindError:
		cmd.failed.Add(1)
		n.errs.add(reply.Str)
	}
	return reply
}

// Lookup returns the command (or subcommand) args names, or nil.
func (n *Node) Lookup(args [][]byte) *Command {
	if len(args) == 0 {
		return nil
	}
	cmd := n.table.Lookup(args[0])
	if cmd != nil && cmd.Subcommands != nil && len(args) >= 2 {
		var buf [32]byte
		if sub := cmd.Subcommands[string(lowerInto(buf[:0], args[1][:min(len(args[1]), 32)]))]; sub != nil {
			return sub
		}
	}
	return cmd
}

// ErrorReply maps an error to the reply a client sees, with Redis's texts for the sentinels.
func ErrorReply(err error) resp.Reply { return errorReply(err) }

// now returns the current unix milliseconds.
func now() int64 { return time.Now().UnixMilli() }

// defaultExpireAt is the expiry a write that gives none gets: now + default_ttl, or 0.
func (n *Node) defaultExpireAt() int64 {
	if n.cfg.DefaultTTL <= 0 {
		return 0
	}
	return now() + n.cfg.DefaultTTL.Milliseconds()
}

// do runs op on key, counting hits, misses and writes.
func (n *Node) do(c *Ctx, key []byte, op store.Op) (store.Result, error) {
	// A command using Do must not overtake the store calls started before it, which may be on
	// the same key. Without any, the only pending replies are forwards of other members' keys,
	// which a local key cannot conflict with: they keep overlapping.
	if c.Conn != nil && c.started {
		c.settle()
		c.started = false
	}
	op.Now = c.execNow
	if n.near != nil || c.tx != nil {
		return n.doNear(c, key, op)
	}
	res, err := n.store.Do(c.Context(), key, op)
	n.account(key, &op, res, err, originOf(c), c.quiet)
	return res, err
}

// doNear is do for a node with a near cache, or a client in a transaction: a GET may be
// answered by the near cache, or must join no read in flight (watchingRemote).
func (n *Node) doNear(c *Ctx, key []byte, op store.Op) (store.Result, error) {
	if op.Kind == store.Get && c.watchingRemote() {
		op.NoShare = true
	}
	if n.near != nil {
		if op.Kind == store.Get && !c.quiet && n.nearServes(c) {
			if v, ok := n.nearGet(key); ok {
				return store.Result{Found: true, Value: v}, nil
			}
			t := n.near.Begin(key)
			op.WithExpiry = true
			res, err := n.doStore(c, key, op)
			if res.Value != nil || op.Peek == nil { // a peeked value was not answered
				n.nearFill(key, t, res, err)
			}
			return res, err
		}
		n.nearBeforeWrite(key, &op)
	}
	return n.doStore(c, key, op)
}

// doStore is do without the near cache: op goes to the store.
func (n *Node) doStore(c *Ctx, key []byte, op store.Op) (store.Result, error) {
	res, err := n.store.Do(c.Context(), key, op)
	n.account(key, &op, res, err, originOf(c), c.quiet)
	return res, err
}

// start begins op on key on the store's pipelined path, or returns nil when there is none (the
// handler then uses do). Only commands flagged FlagPipelined may use it.
func (n *Node) start(c *Ctx, key []byte, op store.Op) store.Call {
	if n.pipe == nil || c.Conn == nil || (c.trk != nil && c.trk.on) {
		return nil // a tracking client's reads remember their keys once done (exec)
	}
	if op.Cond != store.CondNone && n.watches.active() {
		return nil // whether it writes is known only once done: Do, which marks watches exactly
	}
	if n.near != nil {
		n.nearBeforeWrite(key, &op)
	}
	if op.Kind == store.Get && c.watchingRemote() {
		op.NoShare = true
	}
	var call store.Call
	if c.loop != nil {
		call = n.loopPipe.StartOn(c.loop, key, op)
	} else {
		call = n.pipe.Start(c.Context(), key, op)
	}
	if call == nil {
		return nil
	}
	c.started = true
	// The write may land after an EXEC that watches key has checked its marks, so mark now:
	// the call is queued in the store already, and WATCH waits for queued calls (Drainer).
	if op.Kind != store.Get && n.watches.active() {
		n.watches.touch(key)
	}
	return call
}

// laterReply is the reply of a call begun with start: a Later that notifies the event loop when
// the call does (store.NotifyingCall), or one that a goroutine waits for.
func (n *Node) laterReply(c *Ctx, key []byte, op store.Op, call store.Call, build func(store.Result, error) (resp.Reply, error)) resp.Reply {
	l := later{n: n, cmd: c.cmd, key: key, op: op, call: call, build: build, origin: originOf(c)}
	if nc, ok := call.(store.NotifyingCall); ok {
		return resp.Reply{Later: &notifyingLater{later: l, nc: nc}}
	}
	return resp.Reply{Later: &l}
}

// notifyingLater is a later whose call notifies: the event loop parks the connection instead of
// blocking in Reply.
type notifyingLater struct {
	later
	nc store.NotifyingCall
}

// Notify implements resp.Notifier.
func (l *notifyingLater) Notify(fn func()) bool { return l.nc.Notify(fn) }

// Flush implements resp.Flusher.
func (l *notifyingLater) Flush() { l.nc.Flush() }

// NotifiesOnLoop implements resp.LoopNotifier: a NotifyingCall notifies on the loop's goroutine.
func (l *notifyingLater) NotifiesOnLoop() bool { return true }

// later is the reply of a pipelined call: it waits for the call, accounts for it as do does and
// shapes the reply with build.
type later struct {
	n      *Node
	cmd    *Command // whose failed_calls an error counts in (nil: none)
	key    []byte   // aliases the read buffer, valid until the connection settles
	origin int64    // the client whose command it is (NOLOOP)
	op     store.Op
	call   store.Call
	build  func(store.Result, error) (resp.Reply, error)
}

// Reply implements resp.Later.
func (l *later) Reply() resp.Reply {
	res, err := l.call.Wait()
	l.n.account(l.key, &l.op, res, err, l.origin, false)
	l.n.clientCache.sendBroadcasts() // its command has ended already (afterCommand)
	reply, err := l.build(res, err)
	if err != nil {
		reply = errorReply(err)
		if l.cmd != nil {
			l.cmd.failed.Add(1)
			l.n.errs.add(reply.Str)
		}
	}
	return reply
}

// readsKey reports whether op reads its key for its reply, as Redis's lookupKeyRead does.
func readsKey(op *store.Op) bool {
	return op.Kind == store.Get || op.Kind == store.GetEx || op.Kind == store.Inspect ||
		op.Kind == store.Touch || op.ReturnOld
}

// account tells the watchers about a change, made by the client whose ID is origin, and counts
// hits, misses and writes. quiet leaves out the hits, misses and keyspace events (quietDo).
func (n *Node) account(key []byte, op *store.Op, res store.Result, err error, origin int64, quiet bool) {
	if err != nil {
		// Redis finds a key of another type (a list another client made) before it refuses it:
		// a hit.
		if errors.Is(err, store.ErrWrongType) && n.stats.On() && readsKey(op) {
			n.stats.Hits.Inc()
		}
		return
	}
	if (len(n.watchers) > 0 || n.watches.active() || n.clientCache.active()) && changes(op, &res) {
		n.notifyKey(key, origin)
	}
	if ev := pubsub.Events(n.events.Load()); ev != 0 && n.remotePS == nil && !quiet {
		n.opEvents(ev, key, op, &res)
	}
	if !n.stats.On() {
		return
	}
	// A hit or a miss is any command that reads the key, as Redis's lookupKeyRead counts them:
	// GET, MGET, GETEX, GETDEL, GETSET, SET … GET, STRLEN, EXISTS, TOUCH, TYPE and the TTL family.
	if readsKey(op) && !quiet {
		if res.Found {
			n.stats.Hits.Inc()
		} else {
			n.stats.Misses.Inc()
		}
	}
	switch op.Kind {
	case store.Get, store.GetEx, store.Inspect, store.Touch:
	case store.Delete:
		if res.Done {
			n.stats.Deletes.Inc()
		}
	case store.Set, store.Expire, store.Persist, store.SetRange, store.SetBit, store.BitField:
		if res.Done {
			n.stats.Writes.Inc()
		}
	default:
		n.stats.Writes.Inc()
	}
}
