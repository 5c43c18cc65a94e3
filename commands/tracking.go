package commands

import (
	"github.com/vela-cache/vela/resp"
)

// The CLIENT subcommands of client-side caching (clienttracking.go has the table):
// TRACKING, CACHING, GETREDIR and TRACKINGINFO, with Redis's checks, errors and replies.
// CLIENT NO-EVICT is accepted and shown in CLIENT LIST ("e"): Vela evicts no client (it has no
// maxmemory-clients), so it changes nothing else.

const (
	errCachingNotTracking = Error("ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled")
	errNoRedirectClient   = Error("ERR The client ID you want redirect to does not exist")
	errTrackingHere       = Error("ERR CLIENT TRACKING is not served by Vela on the redis store: it would miss changes made directly in Redis")
)

// clientConn returns the connected client with this ID, or nil.
func (n *Node) clientConn(id int64) *resp.Conn {
	var found *resp.Conn
	if n.clients != nil {
		n.clients.Clients(func(c *resp.Conn) {
			if c.ID == id {
				found = c
			}
		})
	}
	return found
}

// trackingServed reports whether this node hears of every change of the keys it serves, which
// client tracking needs: not a node over an external Redis (other clients write to it
// directly); a partitioned member hears from the owners of the keys it reads (ReadWatcher).
func (n *Node) trackingServed() bool {
	if _, ok := n.router.(ReadWatcher); !ok && n.cfg.Topology == "partitioned" {
		return false
	}
	return n.cfg.StoreType != "redis"
}

// trackingOf returns c's tracking state, creating it (and its clean-up when the connection
// closes) on first use.
func (n *Node) trackingOf(c *Ctx) *trackState {
	if c.trk == nil {
		st := &trackState{conn: c.Conn}
		c.trk = st
		c.Conn.OnClose(func() { n.clientCache.disable(st) })
	}
	return c.trk
}

func (n *Node) clientGetRedir(c *Ctx, _ [][]byte) (resp.Reply, error) {
	if st := c.trk; st != nil && st.on {
		return resp.Int(st.redirect), nil
	}
	return resp.Int(-1), nil
}

func (n *Node) clientTrackingInfo(c *Ctx, _ [][]byte) (resp.Reply, error) {
	st := c.trk
	if st == nil || !st.on {
		return resp.Map([]resp.Reply{
			resp.BulkString("flags"), resp.Set([]resp.Reply{resp.BulkString("off")}),
			resp.BulkString("redirect"), resp.Int(-1),
			resp.BulkString("prefixes"), resp.Array([]resp.Reply{}),
		}), nil
	}
	flags := []resp.Reply{resp.BulkString("on")}
	add := func(on bool, name string) {
		if on {
			flags = append(flags, resp.BulkString(name))
		}
	}
	add(st.bcast, "bcast")
	add(st.optin, "optin")
	add(st.optin && st.caching, "caching-yes")
	add(st.optout, "optout")
	add(st.optout && st.caching, "caching-no")
	add(st.noloop, "noloop")
	n.clientCache.mu.Lock()
	add(st.brokenRedirect, "broken_redirect")
	prefixes := make([]resp.Reply, len(st.prefixes))
	for i, p := range st.prefixes {
		prefixes[i] = resp.BulkString(p)
	}
	n.clientCache.mu.Unlock()
	return resp.Map([]resp.Reply{
		resp.BulkString("flags"), resp.Set(flags),
		resp.BulkString("redirect"), resp.Int(st.redirect),
		resp.BulkString("prefixes"), resp.Array(prefixes),
	}), nil
}

// clientCaching serves CLIENT CACHING YES|NO: the next command's reads are remembered (OPTIN)
// or not (OPTOUT).
func (n *Node) clientCaching(c *Ctx, args [][]byte) (resp.Reply, error) {
	st := c.trk
	if st == nil || !st.on {
		return resp.Reply{}, errCachingNotTracking
	}
	switch {
	case equalFold(args[2], "yes"):
		if !st.optin {
			return resp.Reply{}, Error("ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.")
		}
	case equalFold(args[2], "no"):
		if !st.optout {
			return resp.Reply{}, Error("ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.")
		}
	default:
		return resp.Reply{}, ErrSyntax
	}
	st.caching = true
	return resp.OK, nil
}

// clientTracking serves CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX p …] [OPTIN]
// [OPTOUT] [NOLOOP], its options checked in Redis's order and with Redis's errors.
func (n *Node) clientTracking(c *Ctx, args [][]byte) (resp.Reply, error) {
	var redirect int64
	var redirConn *resp.Conn
	var bcast, optin, optout, noloop bool
	var prefixes [][]byte
	for i := 3; i < len(args); i++ {
		more := i+1 < len(args)
		switch a := args[i]; {
		case equalFold(a, "redirect") && more:
			i++
			if redirect != 0 {
				return resp.Reply{}, Error("ERR A client can only redirect to a single other client")
			}
			id, err := intArg(args[i])
			if err != nil {
				return resp.Reply{}, err
			}
			if redirConn = n.clientConn(id); redirConn == nil {
				return resp.Reply{}, errNoRedirectClient
			}
			redirect = id
		case equalFold(a, "bcast"):
			bcast = true
		case equalFold(a, "optin"):
			optin = true
		case equalFold(a, "optout"):
			optout = true
		case equalFold(a, "noloop"):
			noloop = true
		case equalFold(a, "prefix") && more:
			i++
			prefixes = append(prefixes, args[i])
		default:
			return resp.Reply{}, ErrSyntax
		}
	}
	switch {
	case equalFold(args[2], "off"):
		if c.trk != nil {
			n.clientCache.disable(c.trk)
		}
		return resp.OK, nil
	case !equalFold(args[2], "on"):
		return resp.Reply{}, ErrSyntax
	case c.Conn == nil:
		return resp.OK, nil // no connection to send anything to (an internal call)
	}
	st := n.trackingOf(c)
	switch {
	case !bcast && len(prefixes) > 0:
		return resp.Reply{}, Error("ERR PREFIX option requires BCAST mode to be enabled")
	case st.on && st.bcast != bcast:
		return resp.Reply{}, Error("ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.")
	case bcast && (optin || optout):
		return resp.Reply{}, Error("ERR OPTIN and OPTOUT are not compatible with BCAST")
	case optin && optout:
		return resp.Reply{}, Error("ERR You can't specify both OPTIN mode and OPTOUT mode")
	case (optin && st.optout) || (optout && st.optin):
		return resp.Reply{}, Error("ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.")
	}
	if bcast {
		if err := n.clientCache.overlap(st, prefixes); err != nil {
			return resp.Reply{}, err
		}
	}
	if !n.trackingServed() {
		return resp.Reply{}, errTrackingHere
	}
	ps := make([]string, len(prefixes))
	for i, p := range prefixes {
		ps[i] = string(p)
	}
	n.clientCache.enable(st, redirect, redirConn, bcast, optin, optout, noloop, ps)
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
