package commands

import (
	"math"
	"strconv"

	"github.com/vela-cache/vela/glob"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

func (n *Node) registerKeys() {
	const g = "generic"
	for _, c := range []*Command{
		{Name: "del", Arity: -2, Flags: FlagWrite, FirstKey: 1, LastKey: -1, KeyStep: 1, Handler: n.del},
		{Name: "unlink", Arity: -2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: -1, KeyStep: 1, Handler: n.del},
		{Name: "exists", Arity: -2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: -1, KeyStep: 1, Handler: n.exists},
		{Name: "touch", Arity: -2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: -1, KeyStep: 1, Handler: n.exists},
		{Name: "type", Arity: 2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.typ},
		{Name: "expire", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.expire},
		{Name: "pexpire", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.expire},
		{Name: "expireat", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.expire},
		{Name: "pexpireat", Arity: -3, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.expire},
		{Name: "ttl", Arity: 2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.ttl},
		{Name: "pttl", Arity: 2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.ttl},
		{Name: "expiretime", Arity: 2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.ttl},
		{Name: "pexpiretime", Arity: 2, Flags: FlagReadOnly | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.ttl},
		{Name: "persist", Arity: 2, Flags: FlagWrite | FlagFast, FirstKey: 1, LastKey: 1, Handler: n.persist},
		{Name: "keys", Arity: 2, Flags: FlagReadOnly | FlagClusterWide, Handler: n.keys},
		{Name: "scan", Arity: -2, Flags: FlagReadOnly | FlagClusterWide, Handler: n.scan},
		{Name: "randomkey", Arity: 1, Flags: FlagReadOnly | FlagClusterWide, Handler: n.randomKey},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

// randomKey serves RANDOMKEY: a live key chosen at random (store.Sampler), or a null when
// there is none. In a partitioned cluster each member offers one of its own and one of those is
// chosen (partition's clusterWide).
func (n *Node) randomKey(c *Ctx, _ [][]byte) (resp.Reply, error) {
	sm, ok := n.store.(store.Sampler)
	if !ok {
		return resp.Reply{}, Error("ERR RANDOMKEY is not supported by store.type = " + n.cfg.StoreType)
	}
	k, found, err := sm.RandomKey(c.Context())
	if err != nil || !found {
		return resp.Nil, err
	}
	return resp.Bulk(k), nil
}

// del serves DEL and UNLINK; on a store.Batcher (the disk store) several keys go in one batch.
func (n *Node) del(c *Ctx, args [][]byte) (resp.Reply, error) {
	var count int64
	op := store.Op{Kind: store.Delete}
	if b, ok := n.store.(store.Batcher); ok && len(args) > 2 {
		results, err := b.DoBatch(c.Context(), args[1:], op)
		for i, res := range results {
			n.account(args[1+i], &op, res, nil, originOf(c), false)
			if res.Done {
				count++
			}
		}
		if err != nil {
			return resp.Reply{}, err
		}
		return resp.Int(count), nil
	}
	for _, key := range args[1:] {
		res, err := n.do(c, key, op)
		if err != nil {
			return resp.Reply{}, err
		}
		if res.Done {
			count++
		}
	}
	return resp.Int(count), nil
}

// exists serves EXISTS and TOUCH; a key named twice counts twice, as in Redis.
func (n *Node) exists(c *Ctx, args [][]byte) (resp.Reply, error) {
	kind := store.Inspect
	if equalFold(args[0], "touch") {
		kind = store.Touch
	}
	var count int64
	for _, key := range args[1:] {
		res, err := n.do(c, key, store.Op{Kind: kind})
		if err != nil {
			return resp.Reply{}, err
		}
		if res.Found {
			count++
		}
	}
	return resp.Int(count), nil
}

func (n *Node) typ(c *Ctx, args [][]byte) (resp.Reply, error) {
	res, err := n.do(c, args[1], store.Op{Kind: store.Inspect})
	if err != nil {
		return resp.Reply{}, err
	}
	switch {
	case !res.Found:
		return resp.Status("none"), nil
	case res.Type != "":
		return resp.Status(res.Type), nil
	}
	return resp.Status("string"), nil
}

// expire serves EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT with NX, XX, GT and LT.
func (n *Node) expire(c *Ctx, args [][]byte) (resp.Reply, error) {
	name := string(lowerInto(make([]byte, 0, 9), args[0]))
	var cond store.Cond
	for _, a := range args[3:] {
		switch {
		case equalFold(a, "nx"):
			cond |= store.CondNX
		case equalFold(a, "xx"):
			cond |= store.CondXX
		case equalFold(a, "gt"):
			cond |= store.CondGT
		case equalFold(a, "lt"):
			cond |= store.CondLT
		default:
			return resp.Reply{}, formatError("Unsupported option %s", cstr(a))
		}
	}
	if cond&store.CondNX != 0 && cond&(store.CondXX|store.CondGT|store.CondLT) != 0 {
		return resp.Reply{}, ErrNXExpire
	}
	if cond&store.CondGT != 0 && cond&store.CondLT != 0 {
		return resp.Reply{}, ErrGTLT
	}
	when, err := intArg(args[2])
	if err != nil {
		return resp.Reply{}, err
	}
	if name == "expire" || name == "expireat" {
		if when > math.MaxInt64/1000 || when < math.MinInt64/1000 {
			return resp.Reply{}, invalidExpire(name)
		}
		when *= 1000
	}
	if name == "expire" || name == "pexpire" {
		base := now()
		if when > math.MaxInt64-base {
			return resp.Reply{}, invalidExpire(name)
		}
		when += base
	}
	if when <= 0 {
		// Any time at or before the epoch is in the past; 1 keeps "no expiry" (0) unambiguous.
		when = 1
	}
	res, err := n.do(c, args[1], store.Op{Kind: store.Expire, ExpireAt: when, Cond: cond})
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Bool(res.Done), nil
}

// ttl serves TTL, PTTL, EXPIRETIME and PEXPIRETIME.
func (n *Node) ttl(c *Ctx, args [][]byte) (resp.Reply, error) {
	res, err := n.do(c, args[1], store.Op{Kind: store.Inspect})
	if err != nil {
		return resp.Reply{}, err
	}
	if !res.Found {
		return resp.Int(-2), nil
	}
	if res.ExpireAt == 0 {
		return resp.Int(-1), nil
	}
	name := args[0]
	abs := len(name) > 4 // expiretime, pexpiretime
	ms := name[0] == 'p' || name[0] == 'P'
	t := res.ExpireAt
	if !abs {
		t = max(t-now(), 0)
	}
	if !ms {
		t = t/1000 + (t%1000+500)/1000 // rounded, as Redis does for EXPIRETIME too; no overflow
	}
	return resp.Int(t), nil
}

func (n *Node) persist(c *Ctx, args [][]byte) (resp.Reply, error) {
	res, err := n.do(c, args[1], store.Op{Kind: store.Persist})
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Bool(res.Done), nil
}

// keyspace returns the store's whole-keyspace abilities, or an error for stores without them.
func (n *Node) keyspace() (store.Keyspace, error) {
	ks, ok := n.store.(store.Keyspace)
	if !ok {
		return nil, Error("ERR this store cannot enumerate its keys")
	}
	return ks, nil
}

func (n *Node) keys(c *Ctx, args [][]byte) (resp.Reply, error) {
	ks, err := n.keyspace()
	if err != nil {
		return resp.Reply{}, err
	}
	var out []resp.Reply
	pattern, filter := scanPattern(args[1])
	var cursor uint64
	for {
		keys, next, err := ks.Scan(c.Context(), cursor, pattern, 1024)
		if err != nil {
			return resp.Reply{}, err
		}
		for _, k := range keys {
			if filter == nil || glob.Match(filter, k) {
				out = append(out, resp.Bulk(k))
			}
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if out == nil {
		out = []resp.Reply{}
	}
	return resp.Array(out), nil
}

func (n *Node) scan(c *Ctx, args [][]byte) (resp.Reply, error) {
	cursor, ok := ParseCursor(args[1])
	if !ok {
		return resp.Reply{}, ErrInvalidCur
	}
	o, err := ParseScanOptions(args[2:])
	if err != nil {
		return resp.Reply{}, err
	}
	pattern, filter, count, wantStrings := o.pattern, o.filter, o.count, o.wantStrings
	ks, err := n.keyspace()
	if err != nil {
		return resp.Reply{}, err
	}
	keys, next, err := ks.Scan(c.Context(), cursor, pattern, count)
	if err != nil {
		return resp.Reply{}, err
	}
	elems := make([]resp.Reply, 0, len(keys))
	if wantStrings {
		for _, k := range keys {
			if filter == nil || glob.Match(filter, k) {
				elems = append(elems, resp.Bulk(k))
			}
		}
	}
	return resp.Array([]resp.Reply{
		resp.BulkString(strconv.FormatUint(next, 10)),
		resp.Array(elems),
	}), nil
}

// scanPattern turns a KEYS or SCAN MATCH pattern into the one for Keyspace.Scan, where "" means
// every key, and a filter the command applies itself: the empty pattern, which matches only the
// empty key.
func scanPattern(p []byte) (pattern, filter []byte) {
	switch {
	case len(p) == 0:
		return nil, p
	case len(p) == 1 && p[0] == '*':
		return nil, nil
	}
	return p, nil
}

// ScanOptions are SCAN's options after the cursor.
type ScanOptions struct {
	pattern, filter []byte
	count           int
	wantStrings     bool // TYPE names a type Vela's values have (every value is a string)
}

// ParseScanOptions checks SCAN's options (MATCH, COUNT, TYPE) as Redis does, with its errors,
// so that a cluster refuses what one node would before it asks any member.
func ParseScanOptions(opts [][]byte) (ScanOptions, error) {
	o := ScanOptions{count: 10, wantStrings: true}
	for i := 0; i < len(opts); i += 2 {
		if i+1 >= len(opts) {
			return o, ErrSyntax
		}
		switch {
		case equalFold(opts[i], "count"):
			v, err := intArg(opts[i+1])
			if err != nil {
				return o, err
			}
			if v < 1 {
				return o, ErrSyntax
			}
			o.count = int(min(v, 1<<20))
		case equalFold(opts[i], "match"):
			o.pattern, o.filter = scanPattern(opts[i+1])
		case equalFold(opts[i], "type"):
			o.wantStrings = equalFold(opts[i+1], "string")
		default:
			return o, ErrSyntax
		}
	}
	return o, nil
}

// ParseCursor reads a SCAN cursor as Redis does, with strtoul on the argument as a C string: an
// empty string is 0, one leading '+' or '-' is allowed ("-1" wraps to 2^64-1), overflow and
// trailing characters are errors, and so is a leading space (Redis checks that itself).
func ParseCursor(b []byte) (uint64, bool) {
	s := cstr(b)
	if len(s) == 0 {
		return 0, true
	}
	neg := false
	digits := s
	switch s[0] {
	case '+', '-':
		neg = s[0] == '-'
		digits = s[1:]
	}
	if len(digits) == 0 {
		return 0, false // no digits: strtoul leaves the end pointer at the sign
	}
	var n uint64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return 0, false // ERANGE
		}
		n = n*10 + d
	}
	if neg {
		n = -n
	}
	return n, true
}
