package partition

// Cluster-wide commands (DBSIZE, KEYS, SCAN, FLUSHALL, TAGINVALIDATE): run on every member and
// merged.

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// fanoutTimeout bounds a cluster-wide command on one peer.
func (cl *Cluster) fanoutTimeout() time.Duration { return 4 * cl.cfg.ForwardTimeout }

// clusterWide runs a cluster-wide command on every member and merges the replies.
func (cl *Cluster) clusterWide(c *commands.Ctx, cmd *commands.Command, args [][]byte) resp.Reply {
	v := cl.view.Load()
	if cmd.Name == "scan" {
		return cl.scan(c, v, cmd, args)
	}
	// DBSIZE and KEYS count only the keys each member holds as owner (copies and keys still
	// being handed over would count twice), and so does TAGINVALIDATE's reply when there are
	// copies (each member still deletes all of its own); the rest run as they are.
	wire := args
	if cmd.Name == "dbsize" || cmd.Name == "keys" || cmd.Name == "randomkey" || (cmd.Name == "taginvalidate" && cl.cfg.Replicas > 1) {
		wire = append([][]byte{[]byte("VELA"), []byte("OWNED")}, args...)
	}
	peerArgs := outbound(v, wire, cmd.Flags)
	if v.fence != nil && cmd.Flags&commands.FlagWrite != 0 {
		cl.noteWide(cmd, args) // before it runs here (window.go)
	}
	members := v.ring.Members()
	calls := make([]*peer.Call, len(members))
	for i, m := range members {
		if m != cl.self {
			if cl.stats.On() {
				cl.stats.Forwards.Inc()
			}
			calls[i] = cl.pool.Send(v.addrs[m], peerArgs, pick(c), cl.fanoutTimeout())
		}
	}
	replies := make([]resp.Reply, 0, len(members))
	for i, m := range members {
		if m == cl.self {
			replies = append(replies, cl.owned(c, cmd, args))
		} else {
			replies = append(replies, calls[i].Wait())
		}
	}
	if len(members) == 0 { // leaving and alone: nothing holds keys
		return cl.owned(c, cmd, args)
	}
	if cmd.Name == "randomkey" {
		return pickRandom(replies)
	}
	return mergeAll(replies)
}

// pickRandom answers RANDOMKEY from the members' answers: the first error, else one of the keys
// they offered, at random (a null when none had one).
func pickRandom(replies []resp.Reply) resp.Reply {
	var keys []resp.Reply
	for _, r := range replies {
		switch {
		case r.IsError():
			return r
		case r.Kind == resp.KindBulk:
			keys = append(keys, r)
		}
	}
	if len(keys) == 0 {
		return resp.Nil
	}
	return keys[rand.IntN(len(keys))]
}

// mergeAll combines the replies of a cluster-wide command: the first error wins; integers add
// up (DBSIZE, TAGINVALIDATE); arrays concatenate (KEYS); anything else (OK) is taken once.
func mergeAll(replies []resp.Reply) resp.Reply {
	for _, r := range replies {
		if r.IsError() {
			return r
		}
	}
	if len(replies) == 0 {
		return resp.OK
	}
	switch replies[0].Kind {
	case resp.KindInt:
		var n int64
		for _, r := range replies {
			n += r.Int
		}
		return resp.Int(n)
	case resp.KindArray, resp.KindSet:
		var out []resp.Reply
		for _, r := range replies {
			out = append(out, r.Elems...)
		}
		if out == nil {
			out = []resp.Reply{}
		}
		return resp.Reply{Kind: replies[0].Kind, Elems: out}
	}
	return replies[0]
}

// Scan cursors encode the member (its index in the sorted member list) above that member's own
// cursor, which is below 2^store.CursorBits: with up to 1,024 members the whole cursor stays
// below 2^53, exact in clients that parse cursors as floating-point numbers (node-redis). A
// larger cluster still works, but such clients may then skip keys.
const (
	scanNodeShift = store.CursorBits
	scanLocalMask = 1<<scanNodeShift - 1
)

// scan serves the cluster-wide SCAN: one member at a time, in member order.
func (cl *Cluster) scan(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte) resp.Reply {
	cursor, ok := commands.ParseCursor(args[1])
	if !ok {
		return commands.ErrorReply(commands.ErrInvalidCur)
	}
	if _, err := commands.ParseScanOptions(args[2:]); err != nil {
		return commands.ErrorReply(err)
	}
	members := v.ring.Members()
	idx, local := int(cursor>>scanNodeShift), cursor&scanLocalMask
	if idx >= len(members) {
		return scanReply(0, nil)
	}
	sub := slices.Clone(args)
	sub[1] = strconv.AppendUint(nil, local, 10)
	var r resp.Reply
	if members[idx] == cl.self {
		r = cl.owned(c, cmd, sub)
	} else {
		if cl.stats.On() {
			cl.stats.Forwards.Inc()
		}
		sub = append([][]byte{[]byte("VELA"), []byte("OWNED")}, sub...)
		r = cl.pool.Send(v.addrs[members[idx]], sub, pick(c), cl.fanoutTimeout()).Wait()
	}
	if r.IsError() || len(r.Elems) != 2 {
		if r.IsError() {
			return r
		}
		return resp.Error("ERR cluster: bad SCAN reply from " + members[idx])
	}
	next, err := strconv.ParseUint(r.Elems[0].Text(), 10, 64)
	if err != nil || next > scanLocalMask {
		return resp.Error("ERR cluster: bad SCAN cursor from " + members[idx])
	}
	if next == 0 {
		idx++
		if idx >= len(members) {
			return scanReply(0, r.Elems[1].Elems)
		}
	}
	return scanReply(uint64(idx)<<scanNodeShift|next, r.Elems[1].Elems)
}

func scanReply(cursor uint64, keys []resp.Reply) resp.Reply {
	if keys == nil {
		keys = []resp.Reply{}
	}
	return resp.Array([]resp.Reply{resp.BulkString(strconv.FormatUint(cursor, 10)), resp.Array(keys)})
}

// owned runs a cluster-wide command's local part. DBSIZE, KEYS and SCAN report only the keys
// this node holds as owner when keys have copies elsewhere (or, for DBSIZE, while keys are
// being handed over); other commands run as they are.
func (cl *Cluster) owned(c *commands.Ctx, cmd *commands.Command, args [][]byte) resp.Reply {
	filter := cl.cfg.Replicas > 1
	switch cmd.Name {
	case "dbsize":
		if !filter {
			return settled(cl.node.ExecLocal(c, cmd, args))
		}
		return cl.countOwned(c)
	case "keys", "scan":
		r := settled(cl.node.ExecLocal(c, cmd, args))
		if !filter || r.IsError() {
			return r
		}
		v := cl.view.Load()
		keep := func(list []resp.Reply) []resp.Reply {
			out := list[:0]
			for _, k := range list {
				if v.ring.Owner(k.Bytes) == cl.self {
					out = append(out, k)
				}
			}
			return out
		}
		if cmd.Name == "keys" {
			r.Elems = keep(r.Elems)
		} else if len(r.Elems) == 2 {
			r.Elems[1].Elems = keep(r.Elems[1].Elems)
		}
		return r
	case "randomkey":
		// With copies, a key found here may be another member's: look again, a few times.
		for range 8 {
			r := settled(cl.node.ExecLocal(c, cmd, args))
			if !filter || r.Kind != resp.KindBulk || cl.view.Load().ring.Owner(r.Bytes) == cl.self {
				return r
			}
		}
		return resp.Nil
	case "taginvalidate":
		if !filter {
			break
		}
		c.ReadLock() // not in the middle of an EXEC here
		deleted, err := cl.node.InvalidateTags(c.Context(), args[1:])
		c.ReadUnlock()
		if err != nil {
			return commands.ErrorReply(err)
		}
		v := cl.view.Load()
		var n int64
		for _, k := range deleted {
			if v.ring.Owner(k) == cl.self {
				n++
			}
		}
		return resp.Int(n)
	}
	return settled(cl.node.ExecLocal(c, cmd, args))
}

// countOwned counts the live keys this node owns.
func (cl *Cluster) countOwned(c *commands.Ctx) resp.Reply {
	v := cl.view.Load()
	var n int64
	var cursor uint64
	for {
		keys, next, err := cl.ks.Scan(c.Context(), cursor, nil, 1024)
		if err != nil {
			return commands.ErrorReply(err)
		}
		for _, k := range keys {
			if v.ring.Owner(k) == cl.self {
				n++
			}
		}
		if next == 0 {
			return resp.Int(n)
		}
		cursor = next
	}
}
