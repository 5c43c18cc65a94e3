package commands

import (
	"context"

	"github.com/vela-cache/vela/bitmap"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// The bit commands, as Redis 7.0 serves them (bitops.c), on the string values every store holds
// (package bitmap does the bit work). SETBIT and BITFIELD's writes change the value in place, as
// APPEND does: the key keeps its expiry and its tags, and a key they create gets default_ttl.
// BITOP writes its destination whole, as SET does: no tags, and default_ttl. BITOP reads and
// writes its keys as one step, as RENAME does (rename.go): isolated on a node, on the member
// owning every key in a cluster (else CROSSSLOT, as in Redis Cluster).

// Errors of the bit commands, with Redis's texts.
const (
	errBitOffset    = Error("ERR bit offset is not an integer or out of range")
	errBitValue     = Error("ERR bit is not an integer or out of range")
	errBitArg       = Error("ERR The bit argument must be 1 or 0.")
	errBitfieldType = Error("ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.")
	errOverflowType = Error("ERR Invalid OVERFLOW type specified")
	errBitfieldRO   = Error("ERR BITFIELD_RO only supports the GET subcommand")
	errBitopNot     = Error("ERR BITOP NOT must be called with a single source key.")
)

func (n *Node) registerBits() {
	const g = "bitmap"
	for _, c := range []*Command{
		{Name: "getbit", Arity: 3, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.getbit},
		{Name: "setbit", Arity: 4, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Handler: n.setbit},
		{Name: "bitcount", Arity: -2, Flags: FlagReadOnly, FirstKey: 1, LastKey: 1, Handler: n.bitcount},
		{Name: "bitpos", Arity: -3, Flags: FlagReadOnly, FirstKey: 1, LastKey: 1, Handler: n.bitpos},
		{Name: "bitfield", Arity: -2, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Handler: n.bitfield},
		{Name: "bitfield_ro", Arity: -2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.bitfield},
		{Name: "bitop", Arity: -4, Flags: FlagWrite | flagExclusive, FirstKey: 2, LastKey: -1, KeyStep: 1, Handler: n.bitop},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

// bitOffset parses a bit offset as Redis's getBitOffsetFromArgument does: with hash, "#n" means
// n fields of width bits. The offset's byte must lie within proto_max_bulk_len.
func (n *Node) bitOffset(b []byte, hash bool, width uint8) (uint64, error) {
	usehash := hash && len(b) > 0 && b[0] == '#'
	if usehash {
		b = b[1:]
	}
	off, err := intArg(b)
	if err != nil {
		return 0, errBitOffset
	}
	if usehash {
		off *= int64(width) // wraps as Redis's does, to be refused below
	}
	if off < 0 || off>>3 >= n.cfg.MaxBulkLen {
		return 0, errBitOffset
	}
	return uint64(off), nil
}

// readValue reads key's value for a bit command, counting a hit or a miss as Redis's
// lookupKeyRead does: found false for a missing key.
func (n *Node) readValue(c *Ctx, key []byte) ([]byte, bool, error) {
	res, err := n.do(c, key, store.Op{Kind: store.Get})
	return res.Value, res.Found, err
}

// commandReader is a store whose server answers a read-only command on one key itself (the
// redis store): GETBIT, BITCOUNT, BITPOS and BITFIELD_RO on a large value then cost no transfer
// of the value. The reply is an int64, nil for a null, or a []any of those.
type commandReader interface {
	ReadCommand(ctx context.Context, args [][]byte) (any, error)
}

// readInStore has the store's server answer the bit read args, when it can (commandReader):
// ok false otherwise. Its hits and misses are the server's, not counted here.
func (n *Node) readInStore(c *Ctx, args [][]byte) (reply resp.Reply, ok bool, err error) {
	cr, isReader := n.store.(commandReader)
	if !isReader {
		return resp.Reply{}, false, nil
	}
	v, err := cr.ReadCommand(c.Context(), args)
	if err != nil {
		return resp.Reply{}, true, err
	}
	return nativeReply(v), true, nil
}

// nativeReply is a commandReader's reply as a RESP reply.
func nativeReply(v any) resp.Reply {
	switch v := v.(type) {
	case int64:
		return resp.Int(v)
	case []any:
		out := make([]resp.Reply, len(v))
		for i, e := range v {
			out[i] = nativeReply(e)
		}
		return resp.Array(out)
	case string:
		return resp.BulkString(v)
	}
	return resp.Nil
}

// peekValue reads key's value as readValue does, but hands it to fn (store.Op.Peek): a store
// holding it runs fn on the live value, which is then not copied. fn must not call the store
// and must not keep the slice; it is not called for a missing key.
func (n *Node) peekValue(c *Ctx, key []byte, fn func(v []byte)) (bool, error) {
	peeked := false
	res, err := n.do(c, key, store.Op{Kind: store.Get, Peek: func(v []byte) { peeked = true; fn(v) }})
	if err == nil && res.Found && !peeked {
		fn(res.Value)
	}
	return res.Found, err
}

func (n *Node) getbit(c *Ctx, args [][]byte) (resp.Reply, error) {
	off, err := n.bitOffset(args[2], false, 0)
	if err != nil {
		return resp.Reply{}, err
	}
	if r, ok, err := n.readInStore(c, args); ok {
		return r, err
	}
	bit := 0
	if _, err := n.peekValue(c, args[1], func(v []byte) { bit = bitmap.Bit(v, off) }); err != nil {
		return resp.Reply{}, err
	}
	return resp.Int(int64(bit)), nil
}

func (n *Node) setbit(c *Ctx, args [][]byte) (resp.Reply, error) {
	off, err := n.bitOffset(args[2], false, 0)
	if err != nil {
		return resp.Reply{}, err
	}
	if bit, err := intArg(args[3]); err != nil || bit&^1 != 0 {
		return resp.Reply{}, errBitValue
	}
	value := args[3][:1] // "0" or "1": intArg takes no sign nor leading zero
	res, err := n.do(c, args[1], store.Op{Kind: store.SetBit, Delta: int64(off), Value: value, ExpireAt: n.defaultExpireAt()})
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Int(res.Int), nil
}

// bitRange parses BITCOUNT's and BITPOS's start, end and unit (args holds what was given of
// them, in that order) in Redis's order: start, end, unit for BITCOUNT; start, unit, end for
// BITPOS (unitFirst). For BITCOUNT, empty reports a range Redis answers 0 for before it reads
// the unit: both ends negative, the start after the end.
func bitRange(args [][]byte, unitFirst bool) (r *bitmap.Range, empty bool, err error) {
	r = &bitmap.Range{HasEnd: len(args) >= 2}
	if r.Start, err = intArg(args[0]); err != nil {
		return nil, false, err
	}
	if !unitFirst && len(args) >= 2 {
		if r.End, err = intArg(args[1]); err != nil {
			return nil, false, err
		}
		if r.Start < 0 && r.End < 0 && r.Start > r.End {
			return nil, true, nil
		}
	}
	if len(args) == 3 {
		switch {
		case equalFold(args[2], "bit"):
			r.Bits = true
		case equalFold(args[2], "byte"):
		default:
			return nil, false, ErrSyntax
		}
	}
	if unitFirst && len(args) >= 2 {
		if r.End, err = intArg(args[1]); err != nil {
			return nil, false, err
		}
	}
	return r, false, nil
}

// bitcount serves BITCOUNT key [start end [BYTE|BIT]]. As in Redis 7.0, a missing key answers
// 0 before the arguments are looked at.
func (n *Node) bitcount(c *Ctx, args [][]byte) (resp.Reply, error) {
	if r, ok, err := n.readInStore(c, args); ok {
		return r, err
	}
	var r *bitmap.Range
	var empty bool
	var argErr error
	switch len(args) {
	case 2:
	case 4, 5:
		r, empty, argErr = bitRange(args[2:], false)
	default:
		argErr = ErrSyntax
	}
	// The arguments are checked only once the key is found, as in Redis.
	count := int64(0)
	found, err := n.peekValue(c, args[1], func(v []byte) {
		if argErr == nil && !empty {
			count = bitmap.Count(v, r)
		}
	})
	if err != nil || !found {
		return resp.Zero, err
	}
	if argErr != nil {
		return resp.Reply{}, argErr
	}
	return resp.Int(count), nil
}

// bitpos serves BITPOS key bit [start [end [BYTE|BIT]]]. As in Redis 7.0, a missing key answers
// at once, as an endless run of zeros: 0 for bit 0, -1 for bit 1.
func (n *Node) bitpos(c *Ctx, args [][]byte) (resp.Reply, error) {
	bit, err := intArg(args[2])
	if err != nil {
		return resp.Reply{}, err
	}
	if bit != 0 && bit != 1 {
		return resp.Reply{}, errBitArg
	}
	if r, ok, err := n.readInStore(c, args); ok {
		return r, err
	}
	var r *bitmap.Range
	var argErr error
	switch len(args) {
	case 3:
	case 4, 5, 6:
		r, _, argErr = bitRange(args[3:], true)
	default:
		argErr = ErrSyntax
	}
	// The arguments are checked only once the key is found, as in Redis.
	pos := int64(0)
	found, err := n.peekValue(c, args[1], func(v []byte) {
		if argErr == nil {
			pos = bitmap.Pos(v, int(bit), r)
		}
	})
	switch {
	case err != nil:
		return resp.Reply{}, err
	case !found:
		return resp.Int(-bit), nil // 0 for a 0, -1 for a 1
	case argErr != nil:
		return resp.Reply{}, argErr
	}
	return resp.Int(pos), nil
}

// bitfield serves BITFIELD and BITFIELD_RO. Every subcommand is checked before any runs; the
// GETs of a BITFIELD without writes, and BITFIELD_RO, read the value as GET does.
func (n *Node) bitfield(c *Ctx, args [][]byte) (resp.Reply, error) {
	var ops []bitmap.FieldOp
	ow := bitmap.Wrap
	writes := false
	for j := 2; j < len(args); j++ {
		rest := len(args) - j - 1
		var op bitmap.FieldOp
		switch {
		case equalFold(args[j], "get") && rest >= 2:
			op.Kind = bitmap.FieldGet
		case equalFold(args[j], "set") && rest >= 3:
			op.Kind = bitmap.FieldSet
		case equalFold(args[j], "incrby") && rest >= 3:
			op.Kind = bitmap.FieldIncrBy
		case equalFold(args[j], "overflow") && rest >= 1:
			j++
			switch {
			case equalFold(args[j], "wrap"):
				ow = bitmap.Wrap
			case equalFold(args[j], "sat"):
				ow = bitmap.Sat
			case equalFold(args[j], "fail"):
				ow = bitmap.Fail
			default:
				return resp.Reply{}, errOverflowType
			}
			continue
		default:
			return resp.Reply{}, ErrSyntax
		}
		var ok bool
		if op.Signed, op.Width, ok = bitmap.ParseType(args[j+1]); !ok {
			return resp.Reply{}, errBitfieldType
		}
		off, err := n.bitOffset(args[j+2], true, op.Width)
		if err != nil {
			return resp.Reply{}, err
		}
		op.Offset, op.Overflow = off, ow
		if op.Kind != bitmap.FieldGet {
			writes = true
			if op.Arg, err = intArg(args[j+3]); err != nil {
				return resp.Reply{}, err
			}
			j++
		}
		j += 2
		ops = append(ops, op)
	}
	var results []bitmap.FieldResult
	switch {
	case !writes:
		if r, ok, err := n.readInStore(c, args); ok {
			return r, err
		}
		found, err := n.peekValue(c, args[1], func(v []byte) { _, results, _ = bitmap.Exec(v, ops) })
		if err != nil {
			return resp.Reply{}, err
		}
		if !found {
			_, results, _ = bitmap.Exec(nil, ops)
		}
	case equalFold(args[0], "bitfield_ro"):
		return resp.Reply{}, errBitfieldRO
	default:
		res, err := n.do(c, args[1], store.Op{Kind: store.BitField, Value: bitmap.EncodeFields(ops), ExpireAt: n.defaultExpireAt()})
		if err != nil {
			return resp.Reply{}, err
		}
		if results, err = bitmap.DecodeResults(res.Value); err != nil {
			return resp.Reply{}, err
		}
	}
	out := make([]resp.Reply, len(results))
	for i, r := range results {
		if r.Null {
			out[i] = resp.Nil
		} else {
			out[i] = resp.Int(r.Value)
		}
	}
	return resp.Array(out), nil
}

// bitop serves BITOP AND|OR|XOR|NOT destkey key [key …]: the result is written to destkey (a
// new entry, as SET writes one), or destkey is deleted when every source is empty or missing;
// the reply is the result's length.
func (n *Node) bitop(c *Ctx, args [][]byte) (resp.Reply, error) {
	var op bitmap.Operator
	switch {
	case equalFold(args[1], "and"):
		op = bitmap.And
	case equalFold(args[1], "or"):
		op = bitmap.Or
	case equalFold(args[1], "xor"):
		op = bitmap.Xor
	case equalFold(args[1], "not"):
		op = bitmap.Not
	default:
		return resp.Reply{}, ErrSyntax
	}
	if op == bitmap.Not && len(args) != 4 {
		return resp.Reply{}, errBitopNot
	}
	return n.moveKeys(c, args, args[2:], func() (resp.Reply, error) { return n.bitopInStore(c, args[1], args[2], args[3:]) },
		func() (resp.Reply, error) { return n.bitopHere(c, op, args[2], args[3:]) })
}

// bitopInStore has the store's server run BITOP (store.BitOperator).
func (n *Node) bitopInStore(c *Ctx, op, dst []byte, srcs [][]byte) (resp.Reply, error) {
	bo, ok := n.store.(store.BitOperator)
	if !ok {
		return resp.Reply{}, n.isolationUnsupported("BITOP")
	}
	if n.near != nil {
		n.near.Invalidate(dst)
	}
	r, err := bo.BitOp(c.Context(), upper(string(cstr(op))), dst, srcs, n.defaultExpireAt())
	if n.near != nil {
		n.near.Invalidate(dst)
	}
	n.NotifyKey(dst)
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Int(r), nil
}

// bitopHere runs BITOP on this node's store.
func (n *Node) bitopHere(c *Ctx, op bitmap.Operator, dst []byte, keys [][]byte) (resp.Reply, error) {
	srcs := make([][]byte, len(keys))
	for i, k := range keys {
		v, _, err := n.readValue(c, k)
		if err != nil {
			return resp.Reply{}, err
		}
		srcs[i] = v
	}
	out := bitmap.Combine(op, srcs)
	var err error
	if len(out) == 0 {
		_, err = n.do(c, dst, store.Op{Kind: store.Delete})
	} else {
		// A new value, written whole: Redis leaves it "raw" whatever its length.
		_, err = n.do(c, dst, store.Op{Kind: store.Set, Value: out, Enc: store.EncodeRaw, ExpireAt: n.defaultExpireAt()})
	}
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Int(int64(len(out))), nil
}
