package commands

import (
	"context"
	"sync/atomic"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// Transactions: MULTI, EXEC, DISCARD, WATCH and UNWATCH, as Redis 7 runs them.
//
// Between MULTI and EXEC a client's commands are checked (name, arity, authentication) and
// queued, each answered QUEUED; a command refused there makes EXEC answer EXECABORT and run
// nothing. EXEC takes the node's gate (gate.go) for writing, so no other command runs while the
// queued ones do, and answers their replies in one array, errors included. WATCH makes the next
// EXEC answer a null array, running nothing, if a watched key changed in between (watchkeys.go).
//
// Only a node that alone changes its keys can isolate a transaction with its gate: on the redis
// store other clients of the backing Redis write without passing through it, so there Redis
// runs the transaction itself (txn_remote.go; one Redis only); in a partitioned cluster the
// member holding the transaction's keys runs it (txn_routed.go); in a replicated cluster, where
// every member writes every key, MULTI and WATCH are refused (txUnsupported).

// Transaction errors, with Redis's texts.
var (
	errExecAbort      = Error("EXECABORT Transaction discarded because of previous errors.")
	errExecNoMulti    = Error("ERR EXEC without MULTI")
	errDiscardNoMulti = Error("ERR DISCARD without MULTI")
	errMultiNested    = Error("ERR MULTI calls can not be nested")
	errWatchInMulti   = Error("ERR WATCH inside MULTI is not allowed")
	errNotInMulti     = Error("ERR Command not allowed inside a transaction")
	errTxTooLarge     = Error("ERR transaction too large: its queued arguments exceed proto-max-bulk-len")
)

// txState is a connection's transaction: the commands queued since MULTI and the keys it
// watches. Only the connection's goroutine touches it, except dirty.
type txState struct {
	multi   bool     // between MULTI and EXEC or DISCARD
	aborted bool     // a command was refused while queueing: EXEC answers EXECABORT
	queue   []queued // the commands to run at EXEC
	size    int64    // bytes of queued arguments, bounded by the node's MaxBulkLen

	remote        store.TxConn // the connection to the store's server, or the keys' member, holding WATCH (txn_remote.go)
	remoteWatched []string     // the keys watched over remote, for a cluster's placement checks
	placed        bool         // a key has placed the transaction on a member (txn_routed.go)
	place         string       // that member: "" for this node, else its address
	watching      []watchedKey // WATCH's keys, each once
	dirty         atomic.Bool  // set when a watched key changed (by any connection): markDirty
	hooked        bool         // the connection's close hook that unwatches is registered
	conn          *resp.Conn   // the connection, for CLIENT LIST's d flag (nil without one)
}

// markDirty records that a watched key changed. Any goroutine may call it.
func (tx *txState) markDirty() {
	tx.dirty.Store(true)
	if tx.conn != nil {
		tx.conn.SetWatchDirty(true)
	}
}

// queued is one command waiting for EXEC; args are its own copy of the request.
type queued struct {
	cmd  *Command // the command, or the subcommand, that args name
	args [][]byte
}

// watchedKey is one key a connection watches and what it was when watched: expireAt is its
// expiry (0: none), or -1 when it did not exist. EXEC compares it with the key's state then, to
// catch the changes no command reports: expiry, and eviction.
type watchedKey struct {
	key      string
	expireAt int64
}

func (n *Node) registerTransactions() {
	const g = "transactions"
	for _, c := range []*Command{
		{Name: "multi", Arity: 1, Flags: FlagFast | FlagLoading | flagTxControl, Handler: n.multi},
		{Name: "exec", Arity: 1, Flags: FlagLoading | flagTxControl | flagExclusive, Handler: n.execTx},
		{Name: "discard", Arity: 1, Flags: FlagFast | FlagLoading | flagTxControl, Handler: n.discard},
		{Name: "watch", Arity: -2, Flags: FlagFast | FlagLoading | flagTxControl, FirstKey: 1, LastKey: -1, KeyStep: 1, Handler: n.watch},
		{Name: "unwatch", Arity: 1, Flags: FlagFast | FlagLoading, Handler: n.unwatch},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

// txUnsupported says why this node cannot run transactions, or returns nil when it can.
func (n *Node) txUnsupported() error { return n.isolationUnsupported("transactions (MULTI, WATCH)") }

// isolationUnsupported says why this node cannot run what (transactions, scripts) in isolation
// from every other command, or returns nil when it can.
func (n *Node) isolationUnsupported(what string) error {
	switch {
	case n.router != nil && n.txr == nil:
		if tr, ok := n.router.(TxRouter); ok && tr.TxUnsupported() != nil {
			return tr.TxUnsupported()
		}
		return Error("ERR " + what + " are not supported with topology.type = " + n.cfg.Topology)
	case n.gate == nil && n.remote == nil:
		return Error("ERR " + what + " are not supported with store.type = " + n.cfg.StoreType +
			" on Redis Cluster or Sentinel: other clients of the backing Redis change its keys")
	case n.gate == nil && n.cfg.DefaultTTL > 0:
		return Error("ERR " + what + " are not supported with store.type = " + n.cfg.StoreType +
			" and default_ttl set: they run in Redis, which would not apply it")
	}
	return nil
}

// inMulti reports whether the connection is between MULTI and EXEC.
func (c *Ctx) inMulti() bool { return c.tx != nil && c.tx.multi }

// txn returns the connection's transaction state, creating it on first use.
func (c *Ctx) txn() *txState {
	if c.tx == nil {
		c.tx = &txState{conn: c.Conn}
	}
	return c.tx
}

func (n *Node) multi(c *Ctx, _ [][]byte) (resp.Reply, error) {
	if c.inMulti() {
		return resp.Reply{}, errMultiNested
	}
	if err := n.txUnsupported(); err != nil {
		return resp.Reply{}, err
	}
	c.txn().multi = true
	if c.Conn != nil {
		c.Conn.SetMulti(0)
	}
	return resp.OK, nil
}

func (n *Node) discard(c *Ctx, _ [][]byte) (resp.Reply, error) {
	if !c.inMulti() {
		return resp.Reply{}, errDiscardNoMulti
	}
	n.endTx(c)
	return resp.OK, nil
}

// queue records cmd for EXEC and answers QUEUED, or refuses it (and dooms the transaction) when
// it may not run inside one.
func (n *Node) queue(c *Ctx, cmd *Command, args [][]byte) resp.Reply {
	tx := c.tx
	if (cmd.Flags&FlagBlocking != 0 && cmd.Name != "wait") || cmd.Name == "shutdown" || cmd.Name == "client|reply" {
		// A command that waits for another client (FETCHLOCK) would wait forever inside EXEC,
		// which keeps every other client out (WAIT answers at once there, as in Redis). SHUTDOWN
		// is Redis's no_multi too. CLIENT REPLY
		// OFF or SKIP inside EXEC makes Redis write an EXEC reply missing elements its header
		// counts: Vela refuses it there instead.
		return n.refuseQueued(c, cmd, errNotInMulti)
	}
	if n.placing(c) {
		if err := n.placeQueued(c, cmd, args); err != nil {
			return n.refuseQueued(c, cmd, err)
		}
	}
	if tx.aborted || tx.dirty.Load() {
		// EXEC will run nothing: like Redis, answer QUEUED without keeping the command.
		return resp.Status("QUEUED")
	}
	if n.gate == nil { // the store's server runs the transaction (txn_remote.go)
		if err := remoteQueueable(cmd, args); err != nil {
			return n.refuseQueued(c, cmd, err)
		}
	}
	size := int64(0)
	for _, a := range args {
		size += int64(len(a))
	}
	if tx.size+size > n.cfg.MaxBulkLen {
		return n.refuseQueued(c, cmd, errTxTooLarge)
	}
	tx.size += size
	buf := make([]byte, 0, size)
	own := make([][]byte, len(args))
	for i, a := range args {
		buf = append(buf, a...)
		own[i] = buf[len(buf)-len(a) : len(buf) : len(buf)]
	}
	tx.queue = append(tx.queue, queued{cmd: cmd, args: own})
	if c.Conn != nil {
		c.Conn.SetMulti(len(tx.queue))
	}
	return resp.Status("QUEUED")
}

// refuseQueued answers err to a command refused inside MULTI, counts it as Redis's
// rejected_calls, and makes EXEC answer EXECABORT.
func (n *Node) refuseQueued(c *Ctx, cmd *Command, err error) resp.Reply {
	if cmd != nil {
		cmd.rejected.Add(1)
	}
	c.tx.aborted = true
	reply := errorReply(err)
	n.errs.add(reply.Str)
	return reply
}

// execTx serves EXEC: it runs the queued commands with every other command of the node held
// back, unless a watched key changed, and answers their replies.
func (n *Node) execTx(c *Ctx, _ [][]byte) (resp.Reply, error) {
	if !c.inMulti() {
		return resp.Reply{}, errExecNoMulti
	}
	tx := c.tx
	defer n.endTx(c)
	if tx.aborted {
		return resp.Reply{}, errExecAbort
	}
	if n.txr != nil {
		if err := n.stillPlaced(c, tx); err != nil {
			return resp.Reply{}, err
		}
		if !c.Peer && tx.place != "" {
			if keys := n.txTrackedKeys(c, tx); len(keys) > 0 { // its reads run elsewhere (exec)
				n.clientCache.rememberBefore(c.trk, keys)
				var unwatched [][]byte
				if rw, ok := n.router.(ReadWatcher); ok {
					unwatched = rw.WatchReads(c, keys)
				}
				defer n.trackedRead(c.trk, keys, unwatched)
			}
			return n.execRemote(c, tx)
		}
	}
	if n.gate == nil {
		return n.execRemote(c, tx)
	}
	var replies []resp.Reply
	err := n.isolated(c, n.txKeys(tx), func() error {
		if n.watchBroken(c) {
			return nil
		}
		n.unwatchAll(c) // the transaction's own writes must not mark it
		var err error
		replies, err = n.asOneUnit(c, len(tx.queue), func() {
			for _, q := range tx.queue {
				c.execReplies = append(c.execReplies, n.exec(c, q.cmd, q.args))
			}
		})
		return err
	})
	switch {
	case err != nil:
		return resp.Reply{}, err
	case replies == nil: // a watched key changed
		return resp.Reply{Kind: resp.KindNilArray}, nil
	}
	return resp.Array(replies), nil
}

// isolated runs fn with every other command of the node held back (the gate), as EXEC and
// scripts run, once the store has landed the writes started before; keys are those fn will
// name, which a cluster may first fetch from other members.
func (n *Node) isolated(c *Ctx, keys [][]byte, fn func() error) error {
	if n.txr != nil {
		n.txr.TxPrepare(c, keys)
	}
	defer c.runAfterExec() // deferred before the unlock below: runs after it
	n.gate.lock()
	defer n.gate.unlock()
	// Writes other clients started on the pipelined path (disk store) have left the gate but
	// may still be landing: let them land first, so that what runs reads one state.
	if d, ok := n.store.(store.Drainer); ok {
		if err := d.Drain(c.Context()); err != nil {
			return err
		}
	}
	return fn()
}

// asOneUnit runs body, whose commands (n.exec) append their replies to c.execReplies, as EXEC
// runs its queued commands, and returns their replies once every one is settled (a non-nil
// slice). It must run isolated.
//
// SETs may start on the store's pipelined path (the disk store then commits them together
// instead of one fsync each while every other client waits); a command that needs them done
// first settles them (Ctx.settle), and the rest are waited for at the end. On a store that can
// (the disk store), the commands commit as one unit: a crash keeps all of them or none, as
// Redis's AOF does. They judge expiry at one instant, as Redis 7 does: a key live when the unit
// starts does not expire halfway through it (TTLs and relative expiries still read the clock).
func (n *Node) asOneUnit(c *Ctx, size int, body func()) ([]resp.Reply, error) {
	c.execCtx = context.WithoutCancel(c.Context())
	end := func() error { return nil }
	if g, ok := n.store.(store.Grouper); ok {
		c.execCtx, end = g.Group(c.execCtx)
	}
	c.execNow = now()
	c.inExec, c.execReplies, c.execSettled = true, make([]resp.Reply, 0, size), 0
	defer func() { c.inExec, c.execReplies, c.execCtx, c.execNow = false, nil, nil, 0 }()
	body()
	c.settle()
	replies := c.execReplies
	if err := end(); err != nil {
		return nil, err
	}
	return replies, nil
}

// runAfterExec runs what the commands of the EXEC that has just ended left for after it
// (AfterExec).
func (c *Ctx) runAfterExec() {
	fns := c.afterExec
	c.afterExec = nil
	for _, fn := range fns {
		fn()
	}
}

// settle waits for the store calls the connection has started (pipelined GETs and SETs): for
// those whose replies wait on the connection, or, inside EXEC, for those among its replies.
func (c *Ctx) settle() {
	if !c.inExec {
		c.Conn.Settle()
		return
	}
	// From where the last call stopped: every command of the transaction that is not pipelined
	// settles, and looking at every reply each time made a large EXEC quadratic.
	for i := c.execSettled; i < len(c.execReplies); i++ {
		if l := c.execReplies[i].Later; l != nil {
			c.execReplies[i] = l.Reply()
		}
	}
	c.execSettled = len(c.execReplies)
}

// endTx ends the connection's MULTI, if any, and drops its watches, as EXEC and DISCARD do.
func (n *Node) endTx(c *Ctx) {
	if c.tx == nil {
		return
	}
	n.unwatchAll(c)
	c.tx.multi, c.tx.aborted, c.tx.queue, c.tx.size, c.tx.placed = false, false, nil, 0, false
	if c.Conn != nil {
		c.Conn.SetMulti(-1)
	}
}

func (n *Node) watch(c *Ctx, args [][]byte) (resp.Reply, error) {
	if c.inMulti() {
		return resp.Reply{}, errWatchInMulti
	}
	if err := n.txUnsupported(); err != nil {
		return resp.Reply{}, err
	}
	if n.placing(c) {
		if err := n.place(c, args[1:]); err != nil {
			return resp.Reply{}, err
		}
		if c.tx.place != "" {
			return n.watchRemote(c, args)
		}
	}
	if n.gate == nil {
		return n.watchRemote(c, args)
	}
	if n.txr != nil {
		// exec leaves WATCH out of the gate on a routed node (a remote WATCH must not hold it
		// while it waits for the member owning its keys); a local one takes it here.
		n.gate.rlock(c.stripe)
		defer n.gate.runlock(c.stripe)
	}
	tx := c.txn()
	if !tx.hooked && c.Conn != nil {
		tx.hooked = true
		c.Conn.OnClose(func() { n.unwatchAll(c) })
	}
	first := len(tx.watching)
	for _, key := range args[1:] {
		if !tx.watches(key) {
			n.watches.add(string(key), tx)
			tx.watching = append(tx.watching, watchedKey{key: string(key), expireAt: -1})
		}
	}
	added := tx.watching[first:]
	// A write started on the pipelined path before the keys were registered did not mark them:
	// wait until it is in the store, so that what this client reads next already includes it.
	if d, ok := n.store.(store.Drainer); ok && len(added) > 0 {
		if err := d.Drain(c.Context()); err != nil {
			return resp.Reply{}, err
		}
	}
	for i := range added {
		res, err := n.peek(c, added[i].key)
		if err != nil {
			return resp.Reply{}, err
		}
		if res.Found {
			added[i].expireAt = res.ExpireAt
		}
	}
	return resp.OK, nil
}

// watches reports whether the transaction watches key already.
func (tx *txState) watches(key []byte) bool {
	for _, w := range tx.watching {
		if w.key == string(key) {
			return true
		}
	}
	return false
}

func (n *Node) unwatch(c *Ctx, _ [][]byte) (resp.Reply, error) {
	n.unwatchAll(c)
	return resp.OK, nil
}

// unwatchAll drops every watch of the connection and clears its dirty mark.
func (n *Node) unwatchAll(c *Ctx) {
	tx := c.tx
	if tx == nil {
		return
	}
	tx.dropRemote(false) // closing the connection ends its WATCH in Redis
	for _, w := range tx.watching {
		n.watches.remove(w.key, tx)
	}
	tx.watching = tx.watching[:0]
	if !tx.multi {
		tx.placed = false // nothing holds the transaction to its member any more
	}
	tx.dirty.Store(false)
	if tx.conn != nil {
		tx.conn.SetWatchDirty(false)
	}
}

// watchBroken reports whether a key the connection watches has changed since WATCH: a command
// changed it (the dirty mark), or it expired or was evicted, which no command reports. Called
// with the gate held for writing, so no command is changing keys meanwhile.
func (n *Node) watchBroken(c *Ctx) bool {
	tx := c.tx
	if tx.dirty.Load() {
		return true
	}
	now := now()
	for _, w := range tx.watching {
		if w.expireAt < 0 {
			continue // it did not exist: its creation marks the transaction
		}
		if w.expireAt > 0 && w.expireAt <= now {
			return true
		}
		res, err := n.peek(c, w.key)
		if err != nil || !res.Found {
			return true
		}
	}
	return false
}

// sharedStore is implemented by stores whose keys other processes change too (the redis store):
// the node's gate cannot keep those writers out of a transaction.
type sharedStore interface {
	Shared() bool
}

// touchWatchedThatExist marks the transactions watching a key that exists, before FLUSHALL
// deletes every key: as in Redis, flushing a watched key that did not exist changes nothing.
func (n *Node) touchWatchedThatExist(c *Ctx) {
	for _, key := range n.watches.keys() {
		res, err := n.peek(c, key)
		if err != nil || res.Found {
			n.watches.touch([]byte(key))
		}
	}
}

// peek reads key's metadata for the transaction bookkeeping itself: as Redis's WATCH, it counts
// no hit or miss and tells no watcher.
func (n *Node) peek(c *Ctx, key string) (store.Result, error) {
	return n.store.Do(c.Context(), []byte(key), store.Op{Kind: store.Inspect})
}
