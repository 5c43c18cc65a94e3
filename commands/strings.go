package commands

import (
	"errors"
	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

func (n *Node) registerStrings() {
	const g = "string"
	for _, c := range []*Command{
		{Name: "get", Arity: 2, Flags: FlagReadOnly | FlagFast | FlagPipelined, FirstKey: 1, LastKey: 1, Handler: n.get},
		{Name: "set", Arity: -3, Flags: FlagWrite | FlagPipelined, FirstKey: 1, LastKey: 1, Handler: n.set},
		{Name: "setnx", Arity: 3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.setnx},
		{Name: "setex", Arity: 4, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Handler: n.setex},
		{Name: "psetex", Arity: 4, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Handler: n.setex},
		{Name: "getset", Arity: 3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.getset},
		{Name: "getdel", Arity: 2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.getdel},
		{Name: "getex", Arity: -2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.getex},
		{Name: "mget", Arity: -2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: -1, KeyStep: 1, Handler: n.mget},
		{Name: "mset", Arity: -3, Flags: FlagWrite, FirstKey: 1, LastKey: -1, KeyStep: 2, Handler: n.mset},
		{Name: "msetnx", Arity: -3, Flags: FlagWrite, FirstKey: 1, LastKey: -1, KeyStep: 2, Handler: n.mset},
		{Name: "incr", Arity: 2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.incr},
		{Name: "decr", Arity: 2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.incr},
		{Name: "incrby", Arity: 3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.incr},
		{Name: "decrby", Arity: 3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.incr},
		{Name: "incrbyfloat", Arity: 3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.incrbyfloat},
		{Name: "append", Arity: 3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.append},
		{Name: "strlen", Arity: 2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.strlen},
		{Name: "getrange", Arity: 4, Flags: FlagReadOnly, FirstKey: 1, LastKey: 1, Handler: n.getrange},
		{Name: "setrange", Arity: 4, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Handler: n.setrange},
		{Name: "substr", Arity: 4, Flags: FlagReadOnly, FirstKey: 1, LastKey: 1, Handler: n.getrange},
		{Name: "lcs", Arity: -3, Flags: FlagReadOnly, FirstKey: 1, LastKey: 2, KeyStep: 1, Handler: n.lcs},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

func (n *Node) get(c *Ctx, args [][]byte) (resp.Reply, error) {
	op := store.Op{Kind: store.Get}
	if n.near != nil {
		return n.getNear(c, args[1])
	}
	if call := n.start(c, args[1], op); call != nil {
		return n.laterReply(c, args[1], op, call, getReply), nil
	}
	return getReply(n.do(c, args[1], op))
}

// getNear is GET through the near cache: a copy when it has one, else the store's value, which
// it then keeps.
func (n *Node) getNear(c *Ctx, key []byte) (resp.Reply, error) {
	if n.nearServes(c) {
		if v, ok := n.nearGet(key); ok {
			return resp.Bulk(v), nil
		}
	} else if n.stats.On() {
		n.stats.L1Misses.Inc()
	}
	t := n.near.Begin(key)
	op := store.Op{Kind: store.Get, WithExpiry: true}
	build := func(res store.Result, err error) (resp.Reply, error) {
		n.nearFill(key, t, res, err)
		return getReply(res, err)
	}
	if call := n.start(c, key, op); call != nil {
		return n.laterReply(c, key, op, call, build), nil
	}
	if c.Conn != nil && c.started {
		c.settle()
		c.started = false
	}
	return build(n.doStore(c, key, op))
}

func getReply(res store.Result, err error) (resp.Reply, error) {
	if err != nil || !res.Found {
		return resp.Nil, err
	}
	return resp.Bulk(res.Value), nil
}

func (n *Node) set(c *Ctx, args [][]byte) (resp.Reply, error) {
	o, err := parseWriteOpts(args[3:], true)
	if err != nil {
		return resp.Reply{}, err
	}
	op := store.Op{Kind: store.Set, Value: args[2], Cond: o.cond, ReturnOld: o.get}
	if o.hasTags {
		op.Tags = o.tags
	}
	switch {
	case o.keepTTL:
		op.TTL = store.TTLKeep
	case o.unit != unitNone:
		op.TTL = store.TTLSet
		if op.ExpireAt, err = o.expireAt("set"); err != nil {
			return resp.Reply{}, err
		}
	default:
		op.ExpireAt = n.defaultExpireAt()
	}
	build := setReply
	if o.get {
		build = setGetReply
	}
	if len(op.Tags) == 0 {
		if call := n.start(c, args[1], op); call != nil {
			return n.laterReply(c, args[1], op, call, build), nil
		}
	}
	return build(n.do(c, args[1], op))
}

// setReply is SET's reply: OK, or nil when NX or XX stopped it.
func setReply(res store.Result, err error) (resp.Reply, error) {
	switch {
	case err != nil:
		return resp.Reply{}, err
	case !res.Done:
		return resp.Nil, nil
	}
	return resp.OK, nil
}

// setGetReply is SET … GET's reply: the old value, or nil.
func setGetReply(res store.Result, err error) (resp.Reply, error) {
	switch {
	case err != nil:
		return resp.Reply{}, err
	case res.Found:
		return resp.Bulk(res.Value), nil
	}
	return resp.Nil, nil
}

func (n *Node) setnx(c *Ctx, args [][]byte) (resp.Reply, error) {
	res, err := n.do(c, args[1], store.Op{Kind: store.Set, Value: args[2], Cond: store.CondNX,
		ExpireAt: n.defaultExpireAt()})
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Bool(res.Done), nil
}

// setex serves SETEX and PSETEX.
func (n *Node) setex(c *Ctx, args [][]byte) (resp.Reply, error) {
	name := "setex"
	o := writeOpts{unit: unitEX, expire: args[2]}
	if equalFold(args[0], "psetex") {
		name, o.unit = "psetex", unitPX
	}
	at, err := o.expireAt(name)
	if err != nil {
		return resp.Reply{}, err
	}
	if _, err := n.do(c, args[1], store.Op{Kind: store.Set, Value: args[3], TTL: store.TTLSet, ExpireAt: at}); err != nil {
		return resp.Reply{}, err
	}
	return resp.OK, nil
}

func (n *Node) getset(c *Ctx, args [][]byte) (resp.Reply, error) {
	res, err := n.do(c, args[1], store.Op{Kind: store.Set, Value: args[2], ReturnOld: true,
		ExpireAt: n.defaultExpireAt()})
	if err != nil || !res.Found {
		return resp.Nil, err
	}
	return resp.Bulk(res.Value), nil
}

func (n *Node) getdel(c *Ctx, args [][]byte) (resp.Reply, error) {
	res, err := n.do(c, args[1], store.Op{Kind: store.Delete, ReturnOld: true})
	if err != nil || !res.Found {
		return resp.Nil, err
	}
	return resp.Bulk(res.Value), nil
}

func (n *Node) getex(c *Ctx, args [][]byte) (resp.Reply, error) {
	o, err := parseWriteOpts(args[2:], false)
	if err != nil {
		return resp.Reply{}, err
	}
	op := store.Op{Kind: store.GetEx, TTL: store.TTLKeep}
	switch {
	case o.persist:
		op.TTL = store.TTLClear
	case o.unit != unitNone:
		op.TTL = store.TTLSet
		if op.ExpireAt, err = o.expireAt("getex"); err != nil {
			// Redis answers a missing key before it validates the time.
			if res, ierr := n.store.Do(c.Context(), args[1], store.Op{Kind: store.Inspect, Now: c.execNow}); ierr == nil && !res.Found {
				return resp.Nil, nil
			}
			return resp.Reply{}, err
		}
	}
	res, err := n.do(c, args[1], op)
	if err != nil || !res.Found {
		return resp.Nil, err
	}
	return resp.Bulk(res.Value), nil
}

func (n *Node) mget(c *Ctx, args [][]byte) (resp.Reply, error) {
	elems := make([]resp.Reply, len(args)-1)
	for i, key := range args[1:] {
		res, err := n.do(c, key, store.Op{Kind: store.Get})
		if err != nil && !errors.Is(err, store.ErrWrongType) { // Redis's MGET gives nil for those
			return resp.Reply{}, err
		}
		elems[i] = resp.Nil
		if res.Found {
			elems[i] = resp.Bulk(res.Value)
		}
	}
	return resp.Array(elems), nil
}

// mset serves MSET and MSETNX; both are atomic when the store can write several keys at once.
func (n *Node) mset(c *Ctx, args [][]byte) (resp.Reply, error) {
	nx := equalFold(args[0], "msetnx")
	if len(args)%2 == 0 {
		return resp.Reply{}, WrongArity(map[bool]string{false: "mset", true: "msetnx"}[nx])
	}
	pairs := make([]store.KV, 0, (len(args)-1)/2)
	for i := 1; i < len(args); i += 2 {
		pairs = append(pairs, store.KV{Key: args[i], Value: args[i+1]})
	}
	ok, err := n.setMulti(c, pairs, nx)
	if err != nil {
		return resp.Reply{}, err
	}
	if nx {
		return resp.Bool(ok), nil
	}
	return resp.OK, nil
}

func (n *Node) setMulti(c *Ctx, pairs []store.KV, nx bool) (bool, error) {
	at := n.defaultExpireAt()
	if ms, ok := n.store.(store.MultiSetter); ok {
		done, err := ms.SetMulti(c.Context(), pairs, at, nx)
		if done {
			for _, kv := range pairs {
				n.NotifyKeyBy(c, kv.Key)
				if kv.Created {
					n.keyspaceEvent(pubsub.New, "new", kv.Key)
				}
				n.keyspaceEvent(pubsub.String, "set", kv.Key)
			}
			if n.stats.On() {
				n.stats.Writes.Add(uint64(len(pairs)))
			}
		}
		return done, err
	}
	// A store without multi-key atomicity: check, then write. MSETNX is then only as atomic as
	// the store allows; every built-in store implements MultiSetter.
	if nx {
		for _, kv := range pairs {
			res, err := n.store.Do(c.Context(), kv.Key, store.Op{Kind: store.Inspect, Now: c.execNow})
			if err != nil {
				return false, err
			}
			if res.Found {
				return false, nil
			}
		}
	}
	for _, kv := range pairs {
		if _, err := n.do(c, kv.Key, store.Op{Kind: store.Set, Value: kv.Value, ExpireAt: at}); err != nil {
			return false, err
		}
	}
	return true, nil
}

// incr serves INCR, DECR, INCRBY and DECRBY.
func (n *Node) incr(c *Ctx, args [][]byte) (resp.Reply, error) {
	delta := int64(1)
	if len(args) == 3 {
		d, err := intArg(args[2])
		if err != nil {
			return resp.Reply{}, err
		}
		delta = d
	}
	if args[0][0] == 'd' || args[0][0] == 'D' {
		if delta == -1<<63 {
			return resp.Reply{}, ErrDecrOverflow
		}
		delta = -delta
	}
	res, err := n.do(c, args[1], store.Op{Kind: store.IncrBy, Delta: delta, ExpireAt: n.defaultExpireAt()})
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Int(res.Int), nil
}

func (n *Node) incrbyfloat(c *Ctx, args [][]byte) (resp.Reply, error) {
	res, err := n.do(c, args[1], store.Op{Kind: store.IncrByFloat, Value: args[2], ExpireAt: n.defaultExpireAt()})
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Bulk(res.Value), nil
}

func (n *Node) append(c *Ctx, args [][]byte) (resp.Reply, error) {
	res, err := n.do(c, args[1], store.Op{Kind: store.Append, Value: args[2], ExpireAt: n.defaultExpireAt()})
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Int(res.Int), nil
}

// getrange serves GETRANGE and its old name SUBSTR: the bytes from start to end, both included,
// counting from the end when negative, clamped to the value as Redis does.
func (n *Node) getrange(c *Ctx, args [][]byte) (resp.Reply, error) {
	start, err := intArg(args[2])
	if err != nil {
		return resp.Reply{}, err
	}
	end, err := intArg(args[3])
	if err != nil {
		return resp.Reply{}, err
	}
	res, err := n.do(c, args[1], store.Op{Kind: store.Get})
	if err != nil {
		return resp.Reply{}, err
	}
	v := res.Value
	size := int64(len(v))
	if start < 0 && end < 0 && start > end {
		return resp.Bulk(nil), nil
	}
	if start < 0 {
		start = max(size+start, 0)
	}
	if end < 0 {
		end = max(size+end, 0)
	}
	end = min(end, size-1)
	if start > end || size == 0 {
		return resp.Bulk([]byte{}), nil
	}
	return resp.Bulk(v[start : end+1]), nil
}

// setrange serves SETRANGE: the value overwritten from offset, zero-padded, and its new length.
func (n *Node) setrange(c *Ctx, args [][]byte) (resp.Reply, error) {
	offset, err := intArg(args[2])
	if err != nil {
		return resp.Reply{}, err
	}
	if offset < 0 {
		return resp.Reply{}, errOffsetRange
	}
	res, err := n.do(c, args[1], store.Op{Kind: store.SetRange, Delta: offset, Value: args[3], ExpireAt: n.defaultExpireAt()})
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Int(res.Int), nil
}

func (n *Node) strlen(c *Ctx, args [][]byte) (resp.Reply, error) {
	res, err := n.do(c, args[1], store.Op{Kind: store.Inspect})
	if err != nil {
		return resp.Reply{}, err
	}
	if res.Type != "" {
		return resp.Reply{}, ErrWrongType
	}
	return resp.Int(res.Int), nil
}
