package commands

import (
	"github.com/vela-cache/vela/resp"
)

// Client-side caching (CLIENT TRACKING) is not served: Vela sends its clients no invalidation
// messages. Its companions answer truthfully for a client whose tracking is off, as every
// client's is: CLIENT GETREDIR -1, CLIENT TRACKINGINFO flags "off", CLIENT CACHING Redis's error
// for a client not tracking. CLIENT TRACKING OFF is OK (it is off); ON is refused, in words
// that say so. CLIENT NO-EVICT is accepted and shown in CLIENT LIST ("e"): Vela evicts no client
// (it has no maxmemory-clients), so it changes nothing else.

const (
	errCachingNotTracking = Error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled")
	errTrackingNotServed  = Error("ERR CLIENT TRACKING is not supported by Vela: it sends no invalidation messages")
	errNoRedirectClient   = Error("ERR The client ID you want redirect to does not exist")
)

// clientExists reports whether a client with this ID is connected.
func (n *Node) clientExists(id int64) bool {
	found := false
	if n.clients != nil {
		n.clients.Clients(func(c *resp.Conn) { found = found || c.ID == id })
	}
	return found
}

func (n *Node) clientGetRedir(_ *Ctx, _ [][]byte) (resp.Reply, error) { return resp.Int(-1), nil }

func (n *Node) clientTrackingInfo(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return resp.Map([]resp.Reply{
		resp.BulkString("flags"), resp.Set([]resp.Reply{resp.BulkString("off")}),
		resp.BulkString("redirect"), resp.Int(-1),
		resp.BulkString("prefixes"), resp.Array([]resp.Reply{}),
	}), nil
}

func (n *Node) clientCaching(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return resp.Reply{}, errCachingNotTracking
}

// clientTracking serves CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p …] [OPTIN]
// [OPTOUT] [NOLOOP]: its syntax checked as Redis checks it, then OFF is OK and ON refused.
func (n *Node) clientTracking(_ *Ctx, args [][]byte) (resp.Reply, error) {
	on := equalFold(args[2], "on")
	if !on && !equalFold(args[2], "off") {
		return resp.Reply{}, ErrSyntax
	}
	for i := 3; i < len(args); i++ {
		switch a := args[i]; {
		case equalFold(a, "redirect"):
			if i+1 >= len(args) {
				return resp.Reply{}, ErrSyntax
			}
			i++
			id, err := intArg(args[i])
			if err != nil {
				return resp.Reply{}, err
			}
			if !n.clientExists(id) {
				return resp.Reply{}, errNoRedirectClient
			}
		case equalFold(a, "prefix"):
			if i+1 >= len(args) {
				return resp.Reply{}, ErrSyntax
			}
			i++
		case equalFold(a, "bcast"), equalFold(a, "optin"), equalFold(a, "optout"), equalFold(a, "noloop"):
		default:
			return resp.Reply{}, ErrSyntax
		}
	}
	if on {
		return resp.Reply{}, errTrackingNotServed
	}
	return resp.OK, nil
}

// clientReply serves CLIENT REPLY ON|OFF|SKIP (resp.Conn.SetReplyMode): OFF and SKIP answer
// nothing, ON answers OK.
func (n *Node) clientReply(c *Ctx, args [][]byte) (resp.Reply, error) {
	mode := resp.ReplyOn
	switch {
	case equalFold(args[2], "on"):
	case equalFold(args[2], "off"):
		mode = resp.ReplyOff
	case equalFold(args[2], "skip"):
		mode = resp.ReplySkip
	default:
		return resp.Reply{}, ErrSyntax
	}
	if c.Conn != nil {
		c.Conn.SetReplyMode(mode)
	}
	if mode == resp.ReplyOn {
		return resp.OK, nil
	}
	return resp.NoReply, nil
}

func (n *Node) clientNoEvict(c *Ctx, args [][]byte) (resp.Reply, error) {
	on := equalFold(args[2], "on")
	if !on && !equalFold(args[2], "off") {
		return resp.Reply{}, ErrSyntax
	}
	if c.Conn != nil {
		c.Conn.SetNoEvict(on)
	}
	return resp.OK, nil
}
