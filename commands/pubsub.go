package commands

import (
	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/resp"
)

// Pub/Sub, as Redis 7.0 serves it on one server: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
// PUNSUBSCRIBE, PUBLISH and PUBSUB's introspection, and Redis 7's shard channels (SSUBSCRIBE,
// SUNSUBSCRIBE, SPUBLISH, PUBSUB SHARDCHANNELS and SHARDNUMSUB), a namespace of their own. The
// subscriptions live in the node's hub (package pubsub); a message reaches a subscriber as a
// push between its replies.
//
// On the redis store, Pub/Sub is Redis's own (store.PubSub): PUBLISH and PUBSUB go to Redis, and
// each subscribed client also holds its subscriptions there, on a connection of its own, whose
// messages it is pushed; the hub then only keeps its subscriptions' count and context. So every
// Vela node in front of one Redis, and Redis's own clients, share its channels.
//
// A RESP2 connection with a subscription is in the Pub/Sub context: only the commands that
// change subscriptions, PING (answered as an array), QUIT and RESET run, as in Redis; in RESP3
// every command runs. RESET and the connection's end drop its subscriptions.
//
// In a cluster, PUBLISH and SPUBLISH reach the subscribers of every member (Publisher) and
// answer the deliveries of them all; subscriptions and PUBSUB's answers are each member's own.
// (Redis Cluster delivers a shard channel's messages on the nodes of the channel's slot only,
// where its clients must subscribe; a Vela client subscribes through any member.)
//
// On the redis store, shard channels are Redis's too: SPUBLISH and PUBSUB SHARD… go to Redis,
// and a client's shard subscriptions are held there on a connection of their own, so that their
// messages are told apart from a channel's of the same name.

// Publisher is implemented by a Router whose node is one member of several: Publish delivers
// a PUBLISH or SPUBLISH (args, as the client sent them) to the other members' subscribers and
// returns how many deliveries they made. Members that do not answer in time are left out.
type Publisher interface {
	Publish(c *Ctx, args [][]byte) int64
}

func (n *Node) registerPubSub() {
	const g = "pubsub"
	sub := func(name string, arity int, h Handler) *Command {
		return &Command{Name: "pubsub|" + name, Arity: arity, Flags: FlagLoading, Handler: h, Group: g}
	}
	// The commands allowed in the Pub/Sub context are marked flagPubSubContext.
	for _, c := range []*Command{
		{Name: "subscribe", Arity: -2, Flags: FlagLoading | flagPubSubContext, Handler: n.subscribe(pubsub.Channel)},
		{Name: "psubscribe", Arity: -2, Flags: FlagLoading | flagPubSubContext, Handler: n.subscribe(pubsub.Pattern)},
		{Name: "unsubscribe", Arity: -1, Flags: FlagLoading | flagPubSubContext, Handler: n.unsubscribe(pubsub.Channel)},
		{Name: "punsubscribe", Arity: -1, Flags: FlagLoading | flagPubSubContext, Handler: n.unsubscribe(pubsub.Pattern)},
		{Name: "ssubscribe", Arity: -2, Flags: FlagLoading | flagPubSubContext, ChannelKeys: [3]int{1, -1, 1},
			Handler: n.subscribe(pubsub.Shard)},
		{Name: "sunsubscribe", Arity: -1, Flags: FlagLoading | flagPubSubContext, ChannelKeys: [3]int{1, -1, 1},
			Handler: n.unsubscribe(pubsub.Shard)},
		{Name: "publish", Arity: 3, Flags: FlagLoading | FlagFast | flagFanout, Handler: n.publish(pubsub.Channel)},
		{Name: "spublish", Arity: 3, Flags: FlagLoading | FlagFast | flagFanout, ChannelKeys: [3]int{1, 1, 1},
			Handler: n.publish(pubsub.Shard)},
		{Name: "pubsub", Arity: -2, Subcommands: map[string]*Command{
			"channels":      sub("channels", -2, n.pubsubChannels(pubsub.Channel)),
			"numsub":        sub("numsub", -2, n.pubsubNumSub(pubsub.Channel)),
			"shardchannels": sub("shardchannels", -2, n.pubsubChannels(pubsub.Shard)),
			"shardnumsub":   sub("shardnumsub", -2, n.pubsubNumSub(pubsub.Shard)),
			"numpat":        sub("numpat", 2, n.pubsubNumPat),
			"help":          sub("help", 2, n.pubsubHelp),
		}},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

// subscriberOf returns c's subscriptions, creating them (and their end with the connection)
// on first use.
func (n *Node) subscriberOf(c *Ctx) *pubsub.Subscriber {
	if c.sub == nil {
		s := n.hub.NewSubscriber(c.Conn)
		c.sub = s
		c.Conn.OnClose(func() { n.hub.Drop(s) })
	}
	return c.sub
}

// verbs are the first element of the replies and messages of each kind.
var (
	subscribeVerb   = [...]string{pubsub.Channel: "subscribe", pubsub.Pattern: "psubscribe", pubsub.Shard: "ssubscribe"}
	unsubscribeVerb = [...]string{pubsub.Channel: "unsubscribe", pubsub.Pattern: "punsubscribe", pubsub.Shard: "sunsubscribe"}
)

// subscribed is one element of a (un)subscribe reply: the verb, the name (nil: a null, when an
// UNSUBSCRIBE without arguments found nothing to drop) and the connection's count after it.
func subscribed(verb string, name []byte, count int) resp.Reply {
	nameReply := resp.Nil
	if name != nil {
		nameReply = resp.Bulk(name)
	}
	return resp.Push([]resp.Reply{resp.BulkString(verb), nameReply, resp.Int(int64(count))})
}

// remoteSlot is the index in Ctx.remoteSub of the store subscription that holds subscriptions
// of kind k: shard channels are held apart, since Redis's messages to a shard channel and to a
// channel of the same name look alike to its client library.
func remoteSlot(k pubsub.Kind) int {
	if k == pubsub.Shard {
		return 1
	}
	return 0
}

// remoteChange runs verb on names in the store's Pub/Sub for c (want: confirmations expected),
// opening c's subscription there for kind k first.
func (n *Node) remoteChange(c *Ctx, k pubsub.Kind, verb string, names [][]byte, want int) error {
	slot := remoteSlot(k)
	if c.remoteSub[slot] == nil {
		conn := c.Conn
		sub := n.remotePS.Subscribe(func(pattern, channel string, payload []byte) {
			var msg []byte
			switch {
			case k == pubsub.Shard:
				msg = pubsub.ShardMessage(conn.SpeaksRESP3(), []byte(channel), payload)
			case pattern != "":
				msg = pubsub.Message(conn.SpeaksRESP3(), []byte(pattern), []byte(channel), payload)
			default:
				msg = pubsub.Message(conn.SpeaksRESP3(), nil, []byte(channel), payload)
			}
			conn.Push(msg)
		})
		c.remoteSub[slot] = sub
		conn.OnClose(sub.Close)
	}
	list := make([]string, len(names))
	for i, name := range names {
		list[i] = string(name)
	}
	if err := c.remoteSub[slot].Change(c.Context(), verb, list, want); err != nil {
		return Error("ERR " + err.Error())
	}
	return nil
}

func (n *Node) subscribe(k pubsub.Kind) Handler {
	return func(c *Ctx, args [][]byte) (resp.Reply, error) {
		if c.Conn == nil {
			return resp.Reply{}, Error("ERR " + subscribeVerb[k] + " needs a client connection")
		}
		if k == pubsub.Shard && c.inExec { // Redis 7.0 makes the exception for SUBSCRIBE only
			return resp.Reply{}, Error("ERR SSUBSCRIBE isn't allowed for a DENY BLOCKING client")
		}
		if n.remotePS != nil {
			if err := n.remoteChange(c, k, subscribeVerb[k], args[1:], len(args)-1); err != nil {
				return resp.Reply{}, err
			}
		}
		s := n.subscriberOf(c)
		out := make([]resp.Reply, 0, len(args)-1)
		for _, name := range args[1:] {
			n.hub.Subscribe(s, k, string(name))
			out = append(out, subscribed(subscribeVerb[k], name, s.CountOf(k)))
		}
		n.showSubscriptions(c)
		return resp.Seq(out), nil
	}
}

func (n *Node) unsubscribe(k pubsub.Kind) Handler {
	return func(c *Ctx, args [][]byte) (resp.Reply, error) {
		s := c.sub
		if s == nil {
			s = n.hub.NewSubscriber(nil) // holds nothing, and is not kept
		}
		if c.remoteSub[remoteSlot(k)] != nil {
			want := len(args) - 1
			if want == 0 {
				want = s.Len(k)
			}
			if err := n.remoteChange(c, k, unsubscribeVerb[k], args[1:], want); err != nil {
				return resp.Reply{}, err
			}
		}
		var out []resp.Reply
		if len(args) == 1 {
			for _, name := range n.hub.UnsubscribeAll(s, k) {
				out = append(out, subscribed(unsubscribeVerb[k], []byte(name), 0))
			}
			// Each element counts what was left after it, as Redis answers them one by one.
			for i := range out {
				out[i].Elems[2] = resp.Int(int64(s.CountOf(k) + len(out) - 1 - i))
			}
			if len(out) == 0 {
				out = append(out, subscribed(unsubscribeVerb[k], nil, s.CountOf(k)))
			}
		} else {
			for _, name := range args[1:] {
				n.hub.Unsubscribe(s, k, string(name))
				out = append(out, subscribed(unsubscribeVerb[k], name, s.CountOf(k)))
			}
		}
		n.showSubscriptions(c)
		return resp.Seq(out), nil
	}
}

// showSubscriptions publishes c's subscription counts for CLIENT LIST.
func (n *Node) showSubscriptions(c *Ctx) {
	if c.Conn != nil && c.sub != nil {
		c.Conn.SetSubscriptions(c.sub.Len(pubsub.Channel), c.sub.Len(pubsub.Pattern), c.sub.Len(pubsub.Shard))
	}
}

// dropSubscriptions ends all of c's subscriptions (RESET).
func (n *Node) dropSubscriptions(c *Ctx) {
	if c.sub != nil {
		n.hub.Drop(c.sub)
		n.showSubscriptions(c)
	}
	for i, sub := range c.remoteSub {
		if sub != nil {
			sub.Close() // its OnClose hook closes it again: Close is idempotent
			c.remoteSub[i] = nil
		}
	}
}

// publish serves PUBLISH (k: Channel) and SPUBLISH (k: Shard).
func (n *Node) publish(k pubsub.Kind) Handler {
	shard := k == pubsub.Shard
	return func(c *Ctx, args [][]byte) (resp.Reply, error) {
		if n.remotePS != nil {
			delivered, err := n.remotePS.Publish(c.Context(), shard, args[1], args[2])
			if err != nil {
				return resp.Reply{}, err
			}
			return resp.Int(delivered), nil
		}
		var delivered int64
		if shard {
			delivered = int64(n.hub.PublishShard(args[1], args[2], c.loop))
		} else {
			delivered = int64(n.hub.Publish(args[1], args[2], c.loop))
		}
		if p, ok := n.router.(Publisher); ok && !c.Peer {
			delivered += p.Publish(c, args)
		}
		return resp.Int(delivered), nil
	}
}

// pubsubChannels serves PUBSUB CHANNELS (k: Channel) and SHARDCHANNELS (k: Shard).
func (n *Node) pubsubChannels(k pubsub.Kind) Handler {
	return func(c *Ctx, args [][]byte) (resp.Reply, error) {
		if len(args) > 3 {
			return resp.Reply{}, subcommandSyntaxError("pubsub", args[1])
		}
		var pattern []byte
		if len(args) == 3 {
			pattern = args[2]
		}
		if n.remotePS != nil {
			p := "*" // no pattern: every channel, as Redis reads it
			if pattern != nil {
				p = string(pattern)
			}
			names, err := n.remotePS.PubSubChannels(c.Context(), k == pubsub.Shard, p)
			if err != nil {
				return resp.Reply{}, err
			}
			return resp.BulkStrings(names...), nil
		}
		return resp.BulkStrings(n.hub.Channels(k, pattern)...), nil
	}
}

// pubsubNumSub serves PUBSUB NUMSUB (k: Channel) and SHARDNUMSUB (k: Shard).
func (n *Node) pubsubNumSub(k pubsub.Kind) Handler {
	return func(c *Ctx, args [][]byte) (resp.Reply, error) {
		counts := make([]int64, len(args)-2)
		if n.remotePS != nil && len(counts) > 0 {
			names := make([]string, len(counts))
			for i, name := range args[2:] {
				names[i] = string(name)
			}
			var err error
			if counts, err = n.remotePS.PubSubNumSub(c.Context(), k == pubsub.Shard, names); err != nil {
				return resp.Reply{}, err
			}
		} else {
			for i, name := range args[2:] {
				counts[i] = int64(n.hub.NumSub(k, name))
			}
		}
		out := make([]resp.Reply, 0, 2*len(counts))
		for i, name := range args[2:] {
			out = append(out, resp.Bulk(name), resp.Int(counts[i]))
		}
		return resp.Array(out), nil // an array in RESP3 too, as Redis 7.0 answers
	}
}

func (n *Node) pubsubNumPat(c *Ctx, _ [][]byte) (resp.Reply, error) {
	if n.remotePS != nil {
		count, err := n.remotePS.PubSubNumPat(c.Context())
		if err != nil {
			return resp.Reply{}, err
		}
		return resp.Int(count), nil
	}
	return resp.Int(int64(n.hub.NumPat())), nil
}

func (n *Node) pubsubHelp(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return HelpReply("PUBSUB",
		"CHANNELS [<pattern>]",
		"    Return the currently active channels matching a <pattern> (default: '*').",
		"NUMPAT",
		"    Return number of subscriptions to patterns.",
		"NUMSUB [<channel> ...]",
		"    Return the number of subscribers for the specified channels, excluding",
		"    pattern subscriptions(default: no channels).",
		"SHARDCHANNELS [<pattern>]",
		"    Return the currently active shard level channels matching a <pattern> (default: '*').",
		"SHARDNUMSUB [<shardchannel> ...]",
		"    Return the number of subscribers for the specified shard level channel(s)",
	), nil
}

// PubSubFigures returns the channels with subscribers and the patterns subscribed to on this
// node, for the metrics.
func (n *Node) PubSubFigures() (channels, patterns int) {
	return n.hub.NumChannels(pubsub.Channel), n.hub.NumPat()
}

// pubsubContextError is Redis's refusal of a command in the RESP2 Pub/Sub context.
func pubsubContextError(cmd *Command) Error {
	return Error("ERR Can't execute '" + cmd.Name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
}
