package partition

import (
	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/resp"
)

// errPeerOnly answers a client that calls a command meant for cluster peers.
var errPeerOnly = commands.ErrPeerOnly

// registerCommands adds VELA and its subcommands: NODES, RING and OWNER for people; PEER,
// RESTORE, DROP, TAKE, OWNED, LEAVING, FENCED, FINAL, LAST and the near cache's L1WATCH,
// L1INVALIDATE, L1FLUSH and L1BEAT for peers.
func (cl *Cluster) registerCommands() {
	sub := commands.VelaSubcommand
	owner := sub("owner", 3, commands.FlagReadOnly, cl.owner, "Returns the members holding a key, owner first.")
	owner.Args = []commands.Arg{{Name: "key", Type: "key"}}
	cl.node.Table().Register(&commands.Command{Name: "vela", Arity: -2, Group: "vela",
		Summary: "Vela cluster introspection and peer commands.",
		Subcommands: map[string]*commands.Command{
			"help":    sub("help", 2, commands.FlagLoading, commands.VelaHelp, "Shows the VELA subcommands."),
			"nodes":   sub("nodes", 2, commands.FlagLoading, cl.nodes, "Lists the cluster members: name, RESP address, gossip address, state."),
			"ring":    sub("ring", 2, commands.FlagLoading, cl.ringInfo, "Describes the hash ring: version, checksum, virtual nodes per member."),
			"owner":   owner,
			"peer":    sub("peer", 3, commands.FlagNoAuth|commands.FlagLoading, commands.PeerAuth(cl.token, cl.cfg.Secret != ""), "Marks the connection as a cluster peer's (internal)."),
			"restore": sub("restore", -5, commands.FlagWrite, cl.restore, "Writes an entry handed over by a peer (internal)."),
			"drop":    sub("drop", 3, commands.FlagWrite, cl.drop, "Deletes a replica's copy of a key (internal)."),
			"take":    sub("take", -3, commands.FlagWrite|commands.FlagBlocking, cl.take, "Hands a key to its new owner before the handoff pass does (internal)."),
			"peek":    sub("peek", 3, commands.FlagReadOnly|commands.FlagBlocking, cl.peek, "Shows a key's state to its new owner, which lacks it, keeping this copy (internal)."),
			"owned":   sub("owned", -3, commands.FlagReadOnly, cl.ownedCmd, "Runs DBSIZE, KEYS or SCAN on this member's own keys (internal)."),
			"leaving": sub("leaving", 3, commands.FlagAdmin|commands.FlagLoading, cl.leavingCmd, "Announces that a member is about to hand its keys over and leave (internal)."),
			// TAKE and PEEK may wait for this node's ring to catch up (replica.go): off the event loop.
			// FENCED, FINAL and LAST wrap a peer's command: they may wait as long as it does.
			"fenced": sub("fenced", -3, commands.FlagWrite|commands.FlagBlocking, cl.fenced, "Runs a write forwarded by a member whose ring just changed (internal)."),
			"final":  sub("final", -3, commands.FlagWrite|commands.FlagBlocking, cl.final, "Runs a command passed on by a member that no longer holds its keys (internal)."),
			"last":   sub("last", -3, commands.FlagWrite|commands.FlagBlocking, cl.final, "Runs a command a leaving member passed on, never passed on again (internal)."),
			// The near cache (near.go).
			"l1watch":      sub("l1watch", 5, commands.FlagReadOnly, cl.l1Watch, "Registers a member's copy of a key and answers the time the key has left (internal)."),
			"l1invalidate": sub("l1invalidate", -5, commands.FlagLoading, cl.l1Message, "Drops this member's copies of keys another member changed (internal)."),
			"l1flush":      sub("l1flush", 4, commands.FlagLoading, cl.l1Message, "Drops every copy this member keeps of another member's keys (internal)."),
			"l1beat":       sub("l1beat", 4, commands.FlagLoading, cl.l1Message, "Tells this member that another member still sends it what changes (internal)."),
		}})
}

func (cl *Cluster) nodes(_ *commands.Ctx, _ [][]byte) (resp.Reply, error) {
	var out []resp.Reply
	for _, m := range cl.Members() {
		out = append(out, resp.BulkStrings(m.Name, m.RESP, m.Gossip, m.State))
	}
	if out == nil {
		out = []resp.Reply{}
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
		resp.BulkString("replicas"), resp.Int(int64(cl.cfg.Replicas)),
		resp.BulkString("vnodes"), resp.Int(int64(r.VNodes())),
		resp.BulkString("members"), resp.Map(members),
	}), nil
}

func (cl *Cluster) owner(_ *commands.Ctx, args [][]byte) (resp.Reply, error) {
	return resp.BulkStrings(cl.Holders(args[2])...), nil
}

// ownedCmd serves VELA OWNED DBSIZE|KEYS|SCAN|TAGINVALIDATE|RANDOMKEY … for peers running a
// cluster-wide command.
func (cl *Cluster) ownedCmd(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	inner := args[2:]
	cmd := cl.node.Lookup(inner)
	if cmd == nil || (cmd.Name != "dbsize" && cmd.Name != "keys" && cmd.Name != "scan" && cmd.Name != "taginvalidate" && cmd.Name != "randomkey") {
		return resp.Reply{}, commands.ErrSyntax
	}
	if (cmd.Arity > 0 && len(inner) != cmd.Arity) || len(inner) < -cmd.Arity {
		return resp.Reply{}, commands.WrongArity(cmd.Name)
	}
	if cmd.Flags&commands.FlagWrite != 0 && cl.view.Load().fence != nil {
		cl.noteWide(cmd, inner) // in a handoff window, noted before it runs, as Route does
	}
	return cl.owned(c, cmd, inner), nil
}
