package commands

import (
	"context"
	"crypto/subtle"

	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// ErrNoTags is the reply when the store underneath keeps no tag index.
var ErrNoTags = Error("ERR this store does not support tags")

// registerVela registers Vela's own cache commands: TAGINVALIDATE and STATS.
func (n *Node) registerVela() {
	const g = "vela"
	for _, c := range []*Command{
		{Name: "taginvalidate", Arity: -2, Flags: FlagWrite | FlagClusterWide, Handler: n.tagInvalidate,
			Summary: "Deletes every live key carrying any of the tags; replies with the number of keys deleted.",
			Args:    []Arg{{Name: "tag", Type: "string", Multiple: true}}},
		{Name: "stats", Arity: 1, Flags: FlagFast | FlagLoading, Handler: n.statsCmd,
			Summary: "Returns Vela's cache counters as a map (a flat name/value array in RESP2)."},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

// tagInvalidate serves TAGINVALIDATE tag [tag …].
func (n *Node) tagInvalidate(c *Ctx, args [][]byte) (resp.Reply, error) {
	deleted, err := n.InvalidateTags(c.Context(), args[1:])
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Int(int64(len(deleted))), nil
}

// InvalidateTags deletes the live keys of this node's store that carry any of tags, reports each
// to the key watchers (leases, near caches), counts them in tag_invalidations and returns them.
// A cluster uses it to count each key once however many copies it has.
func (n *Node) InvalidateTags(ctx context.Context, tags [][]byte) ([][]byte, error) {
	tg, ok := n.store.(store.Tagger)
	if !ok {
		return nil, ErrNoTags
	}
	deleted, err := tg.InvalidateTags(ctx, tags)
	for _, key := range deleted {
		n.NotifyKey(key)
		n.keyspaceEvent(pubsub.Generic, "del", key)
	}
	if n.stats.On() && len(deleted) > 0 {
		n.stats.TagInvalidations.Add(uint64(len(deleted)))
	}
	return deleted, err
}

// statsCmd serves STATS: every counter of stats.Stats.Snapshot, in its documented order.
func (n *Node) statsCmd(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	fields := n.stats.SnapshotSince()
	kv := make([]resp.Reply, 0, 2*len(fields))
	for _, f := range fields {
		kv = append(kv, resp.BulkString(f.Name), resp.Int(int64(f.Value)))
	}
	return resp.Map(kv), nil
}

// VelaHelp serves VELA HELP for the cluster topologies, which register VELA: the subcommands for
// people (the others are for peers).
func VelaHelp(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return HelpReply("VELA",
		"NODES", "    List the cluster members: name, RESP address, gossip address, state.",
		"RING", "    Describe the hash ring: version, checksum, replicas, virtual nodes per member.",
		"OWNER <key>", "    Return the members holding <key>, the one deciding its writes first."), nil
}

// ErrPeerOnly answers a client that calls a VELA subcommand meant for cluster peers.
var ErrPeerOnly = Error("ERR this VELA subcommand is for cluster peers only (VELA PEER first)")

// VelaSubcommand builds a subcommand of the VELA command a cluster topology registers.
func VelaSubcommand(name string, arity int, flags Flags, h Handler, summary string) *Command {
	return &Command{Name: "vela|" + name, Arity: arity, Flags: flags, Handler: h, Group: "vela", Summary: summary}
}

// PeerAuth returns the handler of VELA PEER token: a cluster peer proves it knows the cluster
// secret (token is the proof the secret gives, see peer.Token). With a secret (authenticates
// true) the connection is also authenticated, so peers need no requirepass; without one it is
// marked as a peer's but must AUTH like any client.
func PeerAuth(token string, authenticates bool) Handler {
	return func(c *Ctx, args [][]byte) (resp.Reply, error) {
		if subtle.ConstantTimeCompare(args[2], []byte(token)) != 1 {
			return resp.Reply{}, Error("ERR cluster: bad peer token (is cluster.secret the same on every member?)")
		}
		c.Peer = true
		if c.Conn != nil {
			c.Conn.SetPeer()
			if authenticates {
				c.Conn.SetAuthenticated()
			}
		}
		return resp.OK, nil
	}
}
