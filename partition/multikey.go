package partition

// Commands with several keys: split by owner, run on each (remote parts first, so they overlap
// the local one) and gathered in the request's order.

import (
	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/resp"
)

// mergeKind says how the per-owner replies of a split command combine.
type mergeKind uint8

const (
	mergePositional mergeKind = iota + 1 // MGET: one element per key, in the request's order
	mergeSum                             // DEL, EXISTS…: integers add up
	mergeOK                              // MSET: OK when every part is
)

// splittable are the multi-key commands Vela splits by owner.
var splittable = map[string]mergeKind{
	"mget": mergePositional, "del": mergeSum, "unlink": mergeSum, "exists": mergeSum,
	"touch": mergeSum, "mset": mergeOK, "msetnx": mergeOK,
}

// group is the part of a multi-key command for one owner.
type group struct {
	owner string
	idx   []int    // positions of the keys in the original request, in order
	args  [][]byte // the command name and this owner's keys (with their values)
	reply resp.Reply
	call  *peer.Call
}

// multi routes a command with several keys.
func (cl *Cluster) multi(c *commands.Ctx, v *view, cmd *commands.Command, args [][]byte, first, last, step int) (resp.Reply, bool) {
	if (len(args)-first)%step != 0 { // a key without its value: refused whole, before the split
		return resp.Error(string(commands.WrongArity(cmd.Name))), true
	}
	var groups []*group
	var buf [8]string
	nkeys := 0
	for i := first; i <= last; i += step {
		owners := v.ring.Owners(args[i], 1, buf[:0])
		owner := cl.self
		if len(owners) > 0 {
			owner = owners[0]
		}
		var g *group
		for _, x := range groups {
			if x.owner == owner {
				g = x
				break
			}
		}
		if g == nil {
			g = &group{owner: owner, args: [][]byte{args[0]}}
			groups = append(groups, g)
		}
		g.idx = append(g.idx, nkeys)
		g.args = append(g.args, args[i:min(i+step, len(args))]...)
		nkeys++
	}
	if v.fence != nil {
		cl.multiInWindow(c, v, cmd, args, first, last, step)
	}
	write := cmd.Flags&commands.FlagWrite != 0 && cl.cfg.Replicas > 1
	_, canSplit := splittable[cmd.Name]
	if len(groups) == 1 {
		switch {
		case groups[0].owner != cl.self && cl.readFallback(cmd) && canSplit:
			// Through runGroups below, which falls back to the other holders.
		case groups[0].owner != cl.self:
			return cl.forward(c, v, groups[0].owner, args, cmd.Flags), true
		case write:
			return cl.writeLocal(c, v, cmd, args), true
		default:
			return resp.Reply{}, false
		}
	}
	kind, ok := splittable[cmd.Name]
	if !ok {
		if len(groups) == 1 {
			return resp.Reply{}, false
		}
		return resp.Error(errCrossSlot), true
	}
	if cmd.Name == "msetnx" {
		return cl.msetnx(c, v, groups), true
	}
	cl.runGroups(c, v, cmd, groups)
	return merge(kind, groups, nkeys), true
}

// runGroups runs every group: the remote ones are sent first so they overlap the local one.
func (cl *Cluster) runGroups(c *commands.Ctx, v *view, cmd *commands.Command, groups []*group) {
	for _, g := range groups {
		if g.owner != cl.self {
			g.call = cl.send(c, v, g.owner, g.args)
		}
	}
	for _, g := range groups {
		if g.owner == cl.self {
			if cmd.Flags&commands.FlagWrite != 0 && cl.cfg.Replicas > 1 {
				g.reply = settled(cl.writeLocal(c, v, cmd, g.args))
			} else {
				g.reply = settled(cl.node.ExecLocal(c, cmd, g.args))
			}
		}
	}
	for _, g := range groups {
		if g.call == nil {
			continue
		}
		r, err := g.call.Result()
		switch {
		case err == nil:
			g.reply = r
		case cl.readFallback(cmd):
			g.reply = cl.groupFallback(c, v, cmd, g)
		default:
			g.reply = peer.ErrorReply(err)
		}
	}
}

// readFallback reports whether cmd's keys may be read from their other holders when the owner
// does not answer.
func (cl *Cluster) readFallback(cmd *commands.Command) bool {
	return cl.cfg.Replicas > 1 && cmd.Flags&commands.FlagReadOnly != 0
}

// groupFallback runs a read-only group whose owner did not answer key by key on each key's other
// holders (they differ from key to key). Only MGET, EXISTS and TOUCH get here.
func (cl *Cluster) groupFallback(c *commands.Ctx, v *view, cmd *commands.Command, g *group) resp.Reply {
	var elems []resp.Reply
	var sum int64
	var buf [8]string
	for _, key := range g.args[1:] {
		args := [][]byte{g.args[0], key}
		var r resp.Reply
		var err error = peer.ErrUnreachable
		for _, o := range v.ring.Owners(key, cl.cfg.Replicas, buf[:0])[1:] {
			if o == cl.self {
				r, err = settled(cl.node.ExecLocal(c, cmd, args)), nil
			} else {
				r, err = cl.send(c, v, o, args).Result()
			}
			if err == nil {
				break
			}
		}
		switch {
		case err != nil:
			return peer.ErrorReply(err)
		case r.IsError():
			return r
		case r.Kind == resp.KindArray && len(r.Elems) == 1:
			elems = append(elems, r.Elems[0])
		default:
			sum += r.Int
		}
	}
	if cmd.Name == "mget" {
		return resp.Array(elems)
	}
	return resp.Int(sum)
}

func merge(kind mergeKind, groups []*group, nkeys int) resp.Reply {
	for _, g := range groups {
		if g.reply.IsError() {
			return g.reply
		}
	}
	switch kind {
	case mergePositional:
		out := make([]resp.Reply, nkeys)
		for _, g := range groups {
			if len(g.reply.Elems) != len(g.idx) {
				return resp.Error("ERR cluster: member " + g.owner + " sent a reply of the wrong length")
			}
			for j, pos := range g.idx {
				out[pos] = g.reply.Elems[j]
			}
		}
		return resp.Array(out)
	case mergeSum:
		var n int64
		for _, g := range groups {
			n += g.reply.Int
		}
		return resp.Int(n)
	}
	return resp.OK
}

// msetnx sets the keys only if none exists: it asks every owner with EXISTS, then runs MSETNX
// on each owner's part (atomic there). See the package's caveats.
func (cl *Cluster) msetnx(c *commands.Ctx, v *view, groups []*group) resp.Reply {
	exists := cl.node.Lookup([][]byte{[]byte("exists")})
	msetnx := cl.node.Lookup([][]byte{[]byte("msetnx")})
	checks := make([]*group, len(groups))
	for i, g := range groups {
		chk := &group{owner: g.owner, idx: g.idx, args: [][]byte{[]byte("EXISTS")}}
		for j := 1; j < len(g.args); j += 2 {
			chk.args = append(chk.args, g.args[j])
		}
		checks[i] = chk
	}
	cl.runGroups(c, v, exists, checks)
	if r := merge(mergeSum, checks, 0); r.IsError() || r.Int > 0 {
		if r.IsError() {
			return r
		}
		return resp.Zero
	}
	cl.runGroups(c, v, msetnx, groups)
	for _, g := range groups {
		if g.reply.IsError() {
			return g.reply
		}
		if g.reply.Int != 1 {
			return resp.Zero
		}
	}
	return resp.One
}
