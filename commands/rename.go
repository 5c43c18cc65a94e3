package commands

import (
	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// RENAME, RENAMENX and COPY, as Redis 7.0 serves them. Each changes two keys as one step, so
// each runs as a one-command transaction runs (txn.go):
//
//   - on a node that alone changes its keys, with every other command held back (the gate), its
//     store calls judging expiry at one instant and, on the disk store, committing as one unit;
//   - in a cluster, on the member owning both keys (else CROSSSLOT, as in Redis Cluster), which
//     copies both keys' new state to their other holders, as for any write;
//   - on the redis store over one Redis, in Redis itself (store.Mover), tags following the key.
//
// The entry moves or is copied whole: value, expiry and tags (COPY's copy carries the source's
// tags, so that TAGINVALIDATE reaches it too). The keyspace events are Redis's: "new" for the
// destination, then "rename_from" and "rename_to", or "copy_to". As in Redis, RENAME counts no
// hit or miss, and COPY counts its read of the source.

// Errors of RENAME and COPY, with Redis's texts.
const (
	errNoSuchKey   = Error("ERR no such key")
	errSameObject  = Error("ERR source and destination objects are the same")
	errKeysMovedTo = Error("TRYAGAIN the command's keys moved to another member before it ran; nothing ran")
)

func (n *Node) registerRename() {
	const g = "generic"
	for _, c := range []*Command{
		{Name: "rename", Arity: 3, Flags: FlagWrite | flagExclusive, FirstKey: 1, LastKey: 2, KeyStep: 1, Handler: n.rename},
		{Name: "renamenx", Arity: 3, Flags: FlagWrite | FlagFast | flagExclusive, FirstKey: 1, LastKey: 2, KeyStep: 1, Handler: n.rename},
		{Name: "copy", Arity: -3, Flags: FlagWrite | flagExclusive, FirstKey: 1, LastKey: 2, KeyStep: 1, Handler: n.copyKey},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

// rename serves RENAME and RENAMENX.
func (n *Node) rename(c *Ctx, args [][]byte) (resp.Reply, error) {
	nx := equalFold(args[0], "renamenx")
	how := store.MoveRename
	if nx {
		how = store.MoveRenameNX
	}
	return n.moveKeys(c, args, args[1:3], func() (resp.Reply, error) { return n.moveInStore(c, args[1:3], how) },
		func() (resp.Reply, error) { return n.renameHere(c, args[1], args[2], nx) })
}

// copyKey serves COPY source destination [DB 0] [REPLACE]. Only database 0 exists: another
// gets Redis's out-of-range error, as SELECT does.
func (n *Node) copyKey(c *Ctx, args [][]byte) (resp.Reply, error) {
	replace := false
	for i := 3; i < len(args); i++ {
		switch {
		case equalFold(args[i], "replace"):
			replace = true
		case equalFold(args[i], "db") && i+1 < len(args):
			db, err := intArg(args[i+1])
			switch {
			case err != nil:
				return resp.Reply{}, err
			case db < -1<<31 || db > 1<<31-1:
				return resp.Reply{}, ErrIntRange
			case db != 0:
				return resp.Reply{}, ErrDBIndex
			}
			i++
		default:
			return resp.Reply{}, ErrSyntax
		}
	}
	if string(args[1]) == string(args[2]) {
		return resp.Reply{}, errSameObject
	}
	how := store.MoveCopy
	if replace {
		how = store.MoveCopyReplace
	}
	return n.moveKeys(c, args, args[1:3], func() (resp.Reply, error) { return n.moveInStore(c, args[1:3], how) },
		func() (resp.Reply, error) { return n.copyHere(c, args[1], args[2], replace) })
}

// moveKeys runs a command that reads and changes its keys as one step (args is the command):
// body runs it here, isolated; inStore runs it on the redis store, whose other clients this
// node cannot hold back. It places the command as a one-command transaction is placed.
func (n *Node) moveKeys(c *Ctx, args, keys [][]byte, inStore, body func() (resp.Reply, error)) (resp.Reply, error) {
	if c.inMove { // the router runs it here (routeMove → Route → ExecLocal)
		return body()
	}
	if c.inExec { // EXEC or a script isolates it already, on the member owning its keys
		return n.routeMove(c, args, body)
	}
	if n.gate == nil { // the redis store
		return inStore()
	}
	if n.router != nil && n.txr == nil {
		return resp.Reply{}, n.isolationUnsupported(string(args[0]))
	}
	if n.txr != nil {
		place, err := n.txr.TxPlace(keys)
		switch {
		case err != nil:
			return resp.Reply{}, err
		case place != "" && c.Peer: // the sender's members changed before this node's
			return resp.Reply{}, errKeysMovedTo
		case place != "":
			return n.runElsewhere(c, place, args, keys)
		}
	}
	var reply resp.Reply
	var berr error
	err := n.isolated(c, keys, func() error {
		_, err := n.asOneUnit(c, 0, func() { reply, berr = n.routeMove(c, args, body) })
		return err
	})
	if err == nil {
		err = berr
	}
	return reply, err
}

// routeMove runs the command isolated here: through the router, when there is one, so that the
// keys' new state reaches their other holders (it runs body through ExecLocal), else body.
func (n *Node) routeMove(c *Ctx, args [][]byte, body func() (resp.Reply, error)) (resp.Reply, error) {
	if n.router != nil {
		c.inMove = true
		reply, handled := n.router.Route(c, c.cmd, args)
		c.inMove = false
		if handled {
			return reply, nil
		}
	}
	return body()
}

// moveInStore has the store's server move or copy the key (store.Mover).
func (n *Node) moveInStore(c *Ctx, keys [][]byte, how store.MoveKind) (resp.Reply, error) {
	mv, ok := n.store.(store.Mover)
	if !ok {
		return resp.Reply{}, n.isolationUnsupported(how.String())
	}
	for _, k := range keys {
		if n.near != nil {
			n.near.Invalidate(k)
		}
	}
	r, err := mv.Move(c.Context(), keys[0], keys[1], how)
	for _, k := range keys {
		if n.near != nil {
			n.near.Invalidate(k)
		}
		n.NotifyKey(k)
	}
	if err != nil {
		return resp.Reply{}, err
	}
	switch {
	case r < 0:
		return resp.Reply{}, errNoSuchKey
	case how == store.MoveRename:
		return resp.OK, nil
	}
	return resp.Int(r), nil
}

// renameHere moves src to dst on this node's store: value, expiry and tags. It runs isolated.
func (n *Node) renameHere(c *Ctx, src, dst []byte, nx bool) (resp.Reply, error) {
	res, err := n.quietDo(c, src, store.Op{Kind: store.Get, WithExpiry: true})
	switch {
	case err != nil:
		return resp.Reply{}, err
	case !res.Found:
		return resp.Reply{}, errNoSuchKey
	case string(src) == string(dst):
		if nx {
			return resp.Int(0), nil
		}
		return resp.OK, nil
	}
	if nx {
		if taken, err := n.quietExists(c, dst); err != nil || taken {
			return resp.Int(0), err
		}
	}
	if err := n.installCopy(c, src, dst, res, false); err != nil {
		return resp.Reply{}, err
	}
	if _, err := n.quietDo(c, src, store.Op{Kind: store.Delete}); err != nil {
		return resp.Reply{}, err
	}
	if ev := pubsub.Events(n.events.Load()); ev != 0 && n.remotePS == nil {
		n.hub.Notify(ev, pubsub.New, "new", dst, nil)
		n.hub.Notify(ev, pubsub.Generic, "rename_from", src, nil)
		n.hub.Notify(ev, pubsub.Generic, "rename_to", dst, nil)
	}
	if nx {
		return resp.Int(1), nil
	}
	return resp.OK, nil
}

// copyHere copies src to dst on this node's store: value, expiry and tags. It runs isolated.
func (n *Node) copyHere(c *Ctx, src, dst []byte, replace bool) (resp.Reply, error) {
	res, err := n.quietDo(c, src, store.Op{Kind: store.Get, WithExpiry: true})
	if err != nil {
		return resp.Reply{}, err
	}
	n.countRead(src, res.Found) // COPY reads its source as GET does
	if !res.Found {
		return resp.Int(0), nil
	}
	if !replace {
		if taken, err := n.quietExists(c, dst); err != nil || taken {
			return resp.Int(0), err
		}
	}
	if err := n.installCopy(c, src, dst, res, true); err != nil {
		return resp.Reply{}, err
	}
	if ev := pubsub.Events(n.events.Load()); ev != 0 && n.remotePS == nil {
		n.hub.Notify(ev, pubsub.New, "new", dst, nil)
		n.hub.Notify(ev, pubsub.Generic, "copy_to", dst, nil)
	}
	return resp.Int(1), nil
}

// installCopy writes src's entry, read as res (a Get with its expiry), to dst, with src's tags;
// copied says that src stays (COPY), so that dst is an object of its own.
func (n *Node) installCopy(c *Ctx, src, dst []byte, res store.Result, copied bool) error {
	expireAt := res.ExpireAt
	if expireAt < 0 { // the store cannot tell with the value: ask for the metadata
		in, err := n.quietDo(c, src, store.Op{Kind: store.Inspect})
		if err != nil {
			return err
		}
		expireAt = in.ExpireAt
	}
	var tags [][]byte
	if tr, ok := n.store.(store.TagReader); ok {
		var err error
		if tags, err = tr.KeyTags(c.Context(), src); err != nil {
			return err
		}
	}
	set := store.Op{Kind: store.Set, Value: res.Value, Tags: tags, Enc: res.Enc}
	if copied && res.Enc == store.EncodeByValue && res.Enc.SharedInt(res.Value) {
		set.Enc = store.EncodeCopiedInt // Redis's copy of a shared integer is an object of its own
	}
	if expireAt > 0 {
		set.TTL, set.ExpireAt = store.TTLSet, expireAt
	}
	_, err := n.quietDo(c, dst, set)
	return err
}

// quietDo is do for a command that accounts for its own reads and publishes its own keyspace
// events (RENAME, COPY): the call counts no hit or miss and publishes nothing, and a GET is
// never answered by the near cache (it must see the key's expiry). Watches, client tracking and
// leases still hear of every change.
func (n *Node) quietDo(c *Ctx, key []byte, op store.Op) (store.Result, error) {
	c.quiet = true
	defer func() { c.quiet = false }()
	return n.do(c, key, op)
}

// quietExists reports whether key exists, as quietDo reads it.
func (n *Node) quietExists(c *Ctx, key []byte) (bool, error) {
	res, err := n.quietDo(c, key, store.Op{Kind: store.Inspect})
	return res.Found, err
}

// countRead counts a read of key as a hit or a miss, and publishes keymiss for a miss, as a
// command reading the key through do would.
func (n *Node) countRead(key []byte, found bool) {
	if !found {
		n.keyspaceEvent(pubsub.KeyMiss, "keymiss", key)
	}
	if !n.stats.On() {
		return
	}
	if found {
		n.stats.Hits.Inc()
	} else {
		n.stats.Misses.Inc()
	}
}
