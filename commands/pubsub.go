package commands

import (
	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/resp"
)

// Pub/Sub, as Redis 7.0 serves it on one server: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE,
// PUNSUBSCRIBE, PUBLISH and PUBSUB's introspection (Redis 7's shard channels, SSUBSCRIBE and
// SPUBLISH, are not served: Redis names their channels as keys, which a Vela cluster would
// route to one member while subscribers are every member's clients). The subscriptions live in
// the node's hub (package pubsub); a message reaches a subscriber as a push between its replies.
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
// In a cluster, PUBLISH reaches the subscribers of every member (Publisher) and
// answer the deliveries of them all; subscriptions and PUBSUB's answers are each member's own.

// Publisher is implemented by a Router whose node is one member of several: Publish delivers
// a PUBLISH (args, as the client sent them) to the other members' subscribers and
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
		{Name: "publish", Arity: 3, Flags: FlagLoading | FlagFast | flagFanout, Handler: n.publish},
		{Name: "pubsub", Arity: -2, Subcommands: map[string]*Command{
			"channels": sub("channels", -2, n.pubsubChannels),
			"numsub":   sub("numsub", -2, n.pubsubNumSub),
			"numpat":   sub("numpat", 2, n.pubsubNumPat),
			"help":     sub("help", 2, n.pubsubHelp),
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
	subscribeVerb   = [...]string{pubsub.Channel: "subscribe", pubsub.Pattern: "psubscribe"}
	unsubscribeVerb = [...]string{pubsub.Channel: "unsubscribe", pubsub.Pattern: "punsubscribe"}
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

// remoteChange runs verb on names in the store's Pub/Sub for c (want: confirmations expected),
// opening c's subscription there first.
func (n *Node) remoteChange(c *Ctx, verb string, names [][]byte, want int) error {
	if c.remoteSub == nil {
		conn := c.Conn
		sub := n.remotePS.Subscribe(func(pattern, channel string, payload []byte) {
			var p []byte
			if pattern != "" {
				p = []byte(pattern)
			}
			conn.Push(pubsub.Message(conn.SpeaksRESP3(), p, []byte(channel), payload))
		})
		c.remoteSub = sub
		conn.OnClose(sub.Close)
	}
	list := make([]string, len(names))
	for i, name := range names {
		list[i] = string(name)
	}
	if err := c.remoteSub.Change(c.Context(), verb, list, want); err != nil {
		return Error("ERR " + err.Error())
	}
	return nil
}

func (n *Node) subscribe(k pubsub.Kind) Handler {
	return func(c *Ctx, args [][]byte) (resp.Reply, error) {
		if c.Conn == nil {
			return resp.Reply{}, Error("ERR " + subscribeVerb[k] + " needs a client connection")
		}
		if n.remotePS != nil {
			if err := n.remoteChange(c, subscribeVerb[k], args[1:], len(args)-1); err != nil {
				return resp.Reply{}, err
			}
		}
		s := n.subscriberOf(c)
		out := make([]resp.Reply, 0, len(args)-1)
		for _, name := range args[1:] {
			n.hub.Subscribe(s, k, string(name))
			out = append(out, subscribed(subscribeVerb[k], name, s.Count()))
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
		if c.remoteSub != nil {
			want := len(args) - 1
			if want == 0 {
				want = s.Len(k)
			}
			if err := n.remoteChange(c, unsubscribeVerb[k], args[1:], want); err != nil {
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
				out[i].Elems[2] = resp.Int(int64(s.Count() + len(out) - 1 - i))
			}
			if len(out) == 0 {
				out = append(out, subscribed(unsubscribeVerb[k], nil, s.Count()))
			}
		} else {
			for _, name := range args[1:] {
				n.hub.Unsubscribe(s, k, string(name))
				out = append(out, subscribed(unsubscribeVerb[k], name, s.Count()))
			}
		}
		n.showSubscriptions(c)
		return resp.Seq(out), nil
	}
}

// showSubscriptions publishes c's subscription counts for CLIENT LIST.
func (n *Node) showSubscriptions(c *Ctx) {
	if c.Conn != nil && c.sub != nil {
		c.Conn.SetSubscriptions(c.sub.Len(pubsub.Channel), c.sub.Len(pubsub.Pattern))
	}
}

// dropSubscriptions ends all of c's subscriptions (RESET).
func (n *Node) dropSubscriptions(c *Ctx) {
	if c.sub != nil {
		n.hub.Drop(c.sub)
		n.showSubscriptions(c)
	}
	if c.remoteSub != nil {
		c.remoteSub.Close() // its OnClose hook closes it again: Close is idempotent
		c.remoteSub = nil
	}
}

func (n *Node) publish(c *Ctx, args [][]byte) (resp.Reply, error) {
	if n.remotePS != nil {
		delivered, err := n.remotePS.Publish(c.Context(), args[1], args[2])
		if err != nil {
			return resp.Reply{}, err
		}
		return resp.Int(delivered), nil
	}
	delivered := int64(n.hub.Publish(args[1], args[2], c.loop))
	if p, ok := n.router.(Publisher); ok && !c.Peer {
		delivered += p.Publish(c, args)
	}
	return resp.Int(delivered), nil
}

func (n *Node) pubsubChannels(c *Ctx, args [][]byte) (resp.Reply, error) {
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
		names, err := n.remotePS.PubSubChannels(c.Context(), p)
		if err != nil {
			return resp.Reply{}, err
		}
		return resp.BulkStrings(names...), nil
	}
	names := n.hub.Channels(pattern)
	out := make([]resp.Reply, len(names))
	for i, name := range names {
		out[i] = resp.BulkString(name)
	}
	return resp.Array(out), nil
}

func (n *Node) pubsubNumSub(c *Ctx, args [][]byte) (resp.Reply, error) {
	counts := make([]int64, len(args)-2)
	if n.remotePS != nil && len(counts) > 0 {
		names := make([]string, len(counts))
		for i, name := range args[2:] {
			names[i] = string(name)
		}
		var err error
		if counts, err = n.remotePS.PubSubNumSub(c.Context(), names); err != nil {
			return resp.Reply{}, err
		}
	} else {
		for i, name := range args[2:] {
			counts[i] = int64(n.hub.NumSub(name))
		}
	}
	out := make([]resp.Reply, 0, 2*len(counts))
	for i, name := range args[2:] {
		out = append(out, resp.Bulk(name), resp.Int(counts[i]))
	}
	return resp.Array(out), nil // an array in RESP3 too, as Redis 7.0 answers
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
	), nil
}

// PubSubFigures returns the channels with subscribers and the patterns subscribed to on this
// node, for the metrics.
func (n *Node) PubSubFigures() (channels, patterns int) {
	return n.hub.NumChannels(), n.hub.NumPat()
}

// pubsubContextError is Redis's refusal of a command in the RESP2 Pub/Sub context.
func pubsubContextError(cmd *Command) Error {
	return Error("ERR Can't execute '" + cmd.Name + "': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context")
}
