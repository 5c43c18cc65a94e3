package commands

import (
	"context"
	"strings"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// Transactions on a store that runs them itself (store.Transactor: the redis store on one
// Redis). Other clients of the backing Redis write without passing through this node, so the
// node's gate cannot isolate a transaction; Redis can. The commands are still checked and queued
// here, as on any store; then:
//
//   - WATCH goes to Redis at once, on a connection the transaction keeps (store.TxConn), so
//     Redis watches the keys for it as for any client of its own: a change by anyone, this
//     node's other clients included, makes EXEC answer a null array.
//   - EXEC sends MULTI, the queued data commands as they are, and EXEC on that connection, and
//     answers Redis's replies. Commands about the connection or the server (PING, ECHO, CLIENT,
//     INFO, TIME…) run here, after Redis's EXEC and only if it ran, their replies put in their
//     places. Commands with no Redis equivalent (TAGINVALIDATE, SET … TAGS, FETCHLOCK, STATS,
//     VELA), and those whose meaning here differs (FLUSHALL, FLUSHDB: Vela's also drops its tag
//     bookkeeping) are refused when queued, and EXEC then answers EXECABORT.
//   - The keys the transaction writes are reported to the node's watchers (near cache, leases)
//     before EXEC is sent and once it has run.

// remoteData are the commands sent to Redis as they are inside a transaction: their meaning on
// the redis store is Redis's own (SET only without TAGS).
var remoteData = map[string]bool{
	"get": true, "set": true, "setnx": true, "setex": true, "psetex": true, "getset": true,
	"getdel": true, "getex": true, "mget": true, "mset": true, "msetnx": true, "incr": true,
	"decr": true, "incrby": true, "decrby": true, "incrbyfloat": true, "append": true,
	"strlen": true, "getrange": true, "substr": true, "setrange": true, "del": true,
	"unlink": true, "exists": true, "touch": true, "type": true, "expire": true, "pexpire": true,
	"expireat": true, "pexpireat": true, "ttl": true, "pttl": true, "expiretime": true,
	"pexpiretime": true, "persist": true, "dbsize": true, "unwatch": true, "eval": true, "eval_ro": true,
	"evalsha": true, "evalsha_ro": true, // sent as EVAL (remoteArgs)
	"memory|usage": true, "object|encoding": true, "object|refcount": true, "object|idletime": true,
	"object|freq": true,
	// Redis's own inside a transaction there: the key's Vela tags do not follow it (outside one,
	// store.Mover moves them too).
	"rename": true, "renamenx": true, "copy": true,
	"dump": true, "restore": true, "lcs": true, "randomkey": true,
	// Redis's own too: a value they change in place keeps its Vela tags only outside one.
	"getbit": true, "setbit": true, "bitcount": true, "bitpos": true, "bitfield": true,
	"bitfield_ro": true, "bitop": true,
}

// runsHere reports whether cmd, queued in a transaction another server runs, runs on this node
// instead. On the redis store those are the commands about the connection or the server
// (remoteLocal). In a cluster, every command without keys does (UNWATCH aside): the member
// holding the keys runs what it is sent as a peer's request, which must never include a
// peer-only command (VELA DROP, VELA RESTORE…) nor ask for its counters (STATS) instead of this
// node's.
func (n *Node) runsHere(cmd *Command) bool {
	if n.txr != nil {
		return cmd.FirstKey == 0 && cmd.MovableKeys == nil && cmd.Name != "unwatch"
	}
	return remoteLocal(cmd)
}

// remoteLocal reports whether cmd runs on this node inside a remote transaction: it is about
// the connection, the server (a container's HELP included, and WAIT) or this node's Pub/Sub,
// not the keys. MOVE and SWAPDB are answered here too, from Vela's one database: in the
// store's Redis they would move keys between its databases, Vela's bookkeeping one among them.
func remoteLocal(cmd *Command) bool {
	if cmd.Name == "move" || cmd.Name == "swapdb" {
		return true
	}
	if cmd.FirstKey > 0 || cmd.Flags&FlagClusterWide != 0 {
		return false
	}
	return cmd.Group == "connection" || cmd.Group == "server" || cmd.Group == "pubsub" || strings.HasSuffix(cmd.Name, "|help") ||
		cmd.Name == "wait" // inside EXEC it answers this node's count at once
}

// remoteQueueable reports whether a transaction run by the store may contain cmd with args,
// or the error that refuses it.
func remoteQueueable(cmd *Command, args [][]byte) error {
	name := cmd.Name
	switch {
	case remoteData[name] && !(name == "set" && hasTagsOption(args)):
		return nil
	case remoteLocal(cmd):
		return nil
	}
	return Error("ERR " + strings.ToUpper(strings.ReplaceAll(name, "|", " ")) +
		" is not supported inside MULTI with store.type = redis (the transaction runs in Redis)")
}

// watchingRemote reports whether the client watches keys in the store's server: its reads
// must then see every write made before its WATCH, so they join no read already in flight and
// skip the near cache.
func (c *Ctx) watchingRemote() bool { return c.tx != nil && c.tx.remote != nil }

// remoteTxConn returns the transaction's connection to the store's server, opening one.
func (n *Node) remoteTxConn(c *Ctx) (store.TxConn, error) {
	tx := c.txn()
	if tx.remote == nil {
		var tc store.TxConn
		var err error
		if n.txr != nil {
			tc, err = n.txr.TxConn(c.Context(), tx.place)
		} else {
			tc, err = n.remote.TxConn(c.Context())
		}
		if err != nil {
			return nil, err
		}
		tx.remote = tc
	}
	return tx.remote, nil
}

// dropRemote gives the transaction's connection back: kept for another transaction when clean,
// else closed (which ends its WATCH in Redis).
func (tx *txState) dropRemote(clean bool) {
	if tx.remote != nil {
		tx.remote.Release(clean)
		tx.remote = nil
	}
	tx.remoteWatched = tx.remoteWatched[:0]
}

// watchRemote serves WATCH by sending it to Redis on the transaction's connection.
func (n *Node) watchRemote(c *Ctx, args [][]byte) (resp.Reply, error) {
	tx := c.txn()
	if !tx.hooked && c.Conn != nil {
		tx.hooked = true
		c.Conn.OnClose(func() { n.unwatchAll(c) })
	}
	tc, err := n.remoteTxConn(c)
	if err != nil {
		return resp.Reply{}, err
	}
	replies, err := tc.Do(c.Context(), [][][]byte{args}, nil)
	if err != nil {
		tx.dropRemote(false)
		return resp.Reply{}, err
	}
	if !replies[0].IsError() {
		for _, k := range args[1:] {
			tx.remoteWatched = append(tx.remoteWatched, string(k))
		}
	}
	return replies[0], nil
}

// execRemote serves EXEC on a store that runs the transaction itself.
func (n *Node) execRemote(c *Ctx, tx *txState) (resp.Reply, error) {
	tc, err := n.remoteTxConn(c)
	if err != nil {
		return resp.Reply{}, err
	}
	cmds := [][][]byte{{[]byte("MULTI")}}
	var writes [][]byte
	// answered[i] is set when this node answers queued command i itself, with local[i].
	answered := make([]bool, len(tx.queue))
	local := make([]resp.Reply, len(tx.queue))
	for i, q := range tx.queue {
		if n.runsHere(q.cmd) {
			continue
		}
		args, reply, ok := n.remoteArgs(q)
		if !ok {
			answered[i], local[i] = true, reply
			continue
		}
		cmds = append(cmds, args)
		if q.cmd.Flags&FlagWrite != 0 || q.cmd.Name == "eval" || q.cmd.Name == "evalsha" { // a script writes what it declares
			writes = append(writes, commandKeys(q.cmd, q.args)...)
		}
	}
	cmds = append(cmds, [][]byte{[]byte("EXEC")})
	for _, k := range writes {
		if n.near != nil {
			n.near.Invalidate(k)
		}
	}
	replies, err := tc.Do(c.Context(), cmds, writes)
	if err != nil {
		tx.dropRemote(false)
		return resp.Reply{}, err
	}
	execReply := replies[len(replies)-1]
	// EXEC ended the WATCH; MULTI is over whatever it answered.
	tx.dropRemote(true)
	for _, k := range writes {
		n.NotifyKey(k)
	}
	switch {
	case execReply.Kind == resp.KindNilArray || execReply.Kind == resp.KindNil:
		return resp.Reply{Kind: resp.KindNilArray}, nil // a watched key changed
	case execReply.Kind != resp.KindArray:
		return execReply, nil // EXECABORT: Redis refused a command (its reply says which)
	}
	c.execCtx = context.WithoutCancel(c.Context())
	defer c.runAfterExec()
	c.inExec, c.execReplies, c.execSettled = true, make([]resp.Reply, 0, len(tx.queue)), 0
	defer func() { c.inExec, c.execReplies, c.execCtx = false, nil, nil }()
	next := 0
	for i, q := range tx.queue {
		if n.runsHere(q.cmd) {
			c.execReplies = append(c.execReplies, n.exec(c, q.cmd, q.args))
			continue
		}
		r := local[i]
		if !answered[i] {
			r = resp.Error("ERR Redis answered fewer replies than commands")
			if next < len(execReply.Elems) {
				r = remoteReply(q.cmd, execReply.Elems[next])
			}
			next++
		}
		c.execReplies = append(c.execReplies, r)
		// Counted as run here (INFO commandstats, total_commands_processed); their time was
		// spent by the server that ran them.
		q.cmd.calls.Add(1)
		if r.Kind == resp.KindError {
			q.cmd.failed.Add(1)
			n.errs.add(r.Str)
		}
		if n.stats.On() {
			n.stats.Commands.Inc()
		}
	}
	c.settle()
	return resp.Array(c.execReplies), nil
}

// remoteReply is the reply of the queued cmd that the store's server answered r: as it is,
// but for LCS … IDX, a map that the connection to the server, which speaks RESP2, received
// flat (a RESP3 client must get the map).
func remoteReply(cmd *Command, r resp.Reply) resp.Reply {
	if cmd.Name == "lcs" && r.Kind == resp.KindArray && len(r.Elems) == 4 && r.Elems[0].Kind == resp.KindBulk {
		return resp.Map(r.Elems)
	}
	return r
}

// remoteArgs returns what EXEC sends the store's server for the queued q, or ok false with
// the reply this node answers instead. Scripts are this node's: the server's script cache is not
// (SCRIPT LOAD, EXISTS and FLUSH act here), so EVAL adds its body to this node's cache, as it
// does outside MULTI, and EVALSHA is sent as EVAL with the body this node knows, or answered
// NOSCRIPT when it knows none, as outside MULTI.
func (n *Node) remoteArgs(q queued) (args [][]byte, reply resp.Reply, ok bool) {
	switch q.cmd.Name {
	case "eval", "eval_ro":
		_, _ = n.scripts.cache.Load(q.args[1]) // a body that does not compile fails in Redis too
	case "evalsha", "evalsha_ro":
		s := n.scripts.cache.Get(string(q.args[1]))
		if s == nil {
			return nil, errorReply(errNoScript), false
		}
		name := "EVAL"
		if q.cmd.Name == "evalsha_ro" {
			name = "EVAL_RO"
		}
		return append([][]byte{[]byte(name), []byte(s.Body())}, q.args[2:]...), resp.Reply{}, true
	}
	return q.args, resp.Reply{}, true
}

// commandKeys returns the keys cmd names in args.
func commandKeys(cmd *Command, args [][]byte) [][]byte {
	if cmd.MovableKeys != nil {
		return cmd.MovableKeys(args)
	}
	first, last, step := cmd.KeyPositions(len(args))
	if first == 0 {
		return nil
	}
	var keys [][]byte
	for i := first; i <= last; i += step {
		keys = append(keys, args[i])
	}
	return keys
}
