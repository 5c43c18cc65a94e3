package commands

import (
	"crypto/subtle"
	"fmt"
	"math"
	"strings"

	"github.com/vela-cache/vela/resp"
)

func (n *Node) registerConnection() {
	const g = "connection"
	sub := func(name string, arity int, flags Flags, h Handler) *Command {
		return &Command{Name: "client|" + name, Arity: arity, Flags: flags, Handler: h, Group: g}
	}
	// CLIENT SETINFO came in Redis 7.2, after the Redis whose documentation Vela gives (docs.go).
	setinfo := sub("setinfo", 4, FlagLoading, n.clientSetInfo)
	setinfo.Summary, setinfo.Since = "Sets information specific to the client or connection.", "7.2.0"
	setinfo.Args = []Arg{{Name: "attr", Type: "oneof", Args: []Arg{
		{Name: "libname", Type: "string", Token: "LIB-NAME"},
		{Name: "libver", Type: "string", Token: "LIB-VER"},
	}}}
	for _, c := range []*Command{
		{Name: "ping", Arity: -1, Flags: FlagFast | flagPubSubContext, Handler: n.ping},
		{Name: "echo", Arity: 2, Flags: FlagFast, Handler: n.echo},
		{Name: "quit", Arity: -1, Flags: FlagFast | FlagNoAuth | FlagLoading | flagTxControl | flagPubSubContext, Handler: n.quit},
		{Name: "select", Arity: 2, Flags: FlagFast | FlagLoading, Handler: n.selectDB},
		{Name: "auth", Arity: -2, Flags: FlagFast | FlagNoAuth | FlagLoading, Handler: n.auth},
		{Name: "hello", Arity: -1, Flags: FlagFast | FlagNoAuth | FlagLoading, Handler: n.hello},
		{Name: "reset", Arity: 1, Flags: FlagFast | FlagNoAuth | FlagLoading | flagTxControl | flagPubSubContext, Handler: n.reset},
		{Name: "client", Arity: -2, Subcommands: map[string]*Command{
			"setname":      sub("setname", 3, FlagLoading, n.clientSetName),
			"getname":      sub("getname", 2, FlagLoading, n.clientGetName),
			"id":           sub("id", 2, FlagLoading, n.clientID),
			"info":         sub("info", 2, FlagLoading, n.clientInfo),
			"setinfo":      setinfo,
			"list":         sub("list", -2, FlagAdmin|FlagLoading, n.clientList),
			"kill":         sub("kill", -3, FlagAdmin|FlagLoading, n.clientKill),
			"pause":        sub("pause", -3, FlagAdmin|FlagLoading, n.clientPause),
			"unpause":      sub("unpause", 2, FlagAdmin|FlagLoading, n.clientUnpause),
			"unblock":      sub("unblock", -3, FlagAdmin|FlagLoading, n.clientUnblock),
			"getredir":     sub("getredir", 2, FlagLoading, n.clientGetRedir),
			"trackinginfo": sub("trackinginfo", 2, FlagLoading, n.clientTrackingInfo),
			"caching":      sub("caching", 3, FlagLoading, n.clientCaching),
			"tracking":     sub("tracking", -3, FlagLoading, n.clientTracking),
			"no-evict":     sub("no-evict", 3, FlagAdmin|FlagLoading, n.clientNoEvict),
			"reply":        sub("reply", 3, FlagLoading, n.clientReply),
			"help":         sub("help", 2, FlagLoading, n.clientHelp),
		}},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

func (n *Node) ping(c *Ctx, args [][]byte) (resp.Reply, error) {
	if len(args) > 2 {
		return resp.Reply{}, WrongArity("ping")
	}
	if c.sub.Active() && c.Proto() < 3 { // the Pub/Sub context: an array, as Redis answers there
		msg := resp.BulkString("")
		if len(args) == 2 {
			msg = resp.Bulk(args[1])
		}
		return resp.Array([]resp.Reply{resp.BulkString("pong"), msg}), nil
	}
	if len(args) == 2 {
		return resp.Bulk(args[1]), nil
	}
	return resp.Status("PONG"), nil
}

func (n *Node) echo(_ *Ctx, args [][]byte) (resp.Reply, error) { return resp.Bulk(args[1]), nil }

func (n *Node) quit(c *Ctx, _ [][]byte) (resp.Reply, error) {
	if c.Conn != nil {
		c.Conn.Quit()
	}
	return resp.OK, nil
}

// reset serves RESET: the connection returns to the state of a new one, as Redis's
// clearClientConnectionState leaves it — no transaction or watches, RESP2, no name, and not
// authenticated when the server has a password.
func (n *Node) reset(c *Ctx, _ [][]byte) (resp.Reply, error) {
	n.endTx(c)
	n.dropSubscriptions(c)
	n.stopMonitor(c)
	if c.trk != nil {
		n.clientCache.disable(c.trk) // as Redis's clearClientConnectionState
	}
	if c.Conn != nil {
		c.Conn.ResetReplyMode()
		c.Conn.SetProto(2)
		c.Conn.SetName("")
		if n.cfg.RequirePass != "" {
			c.Conn.ClearAuthenticated()
		}
	}
	return resp.Status("RESET"), nil
}

func (n *Node) selectDB(_ *Ctx, args [][]byte) (resp.Reply, error) {
	id, err := intArg(args[1])
	if err != nil {
		return resp.Reply{}, err
	}
	if id < math.MinInt32 || id > math.MaxInt32 {
		return resp.Reply{}, ErrIntRange
	}
	if id != 0 {
		return resp.Reply{}, ErrDBIndex
	}
	return resp.OK, nil
}

// checkPassword authenticates user/pass against requirepass, with Redis's default user rules:
// with no password configured, the default user accepts any password.
func (n *Node) checkPassword(c *Ctx, user, pass []byte) error {
	if string(user) != "default" {
		return ErrWrongPass
	}
	if n.cfg.RequirePass != "" && subtle.ConstantTimeCompare(pass, []byte(n.cfg.RequirePass)) != 1 {
		return ErrWrongPass
	}
	if c.Conn != nil {
		c.Conn.SetAuthenticated()
	}
	return nil
}

func (n *Node) auth(c *Ctx, args [][]byte) (resp.Reply, error) {
	if len(args) > 3 {
		return resp.Reply{}, ErrSyntax
	}
	user, pass := []byte("default"), args[1]
	if len(args) == 2 {
		if n.cfg.RequirePass == "" {
			return resp.Reply{}, ErrNoPassword
		}
	} else {
		user, pass = args[1], args[2]
	}
	if err := n.checkPassword(c, user, pass); err != nil {
		return resp.Reply{}, err
	}
	return resp.OK, nil
}

func (n *Node) hello(c *Ctx, args [][]byte) (resp.Reply, error) {
	ver := int64(0)
	next := 1
	if len(args) >= 2 {
		v, ok := intArgOK(args[1])
		if !ok {
			return resp.Reply{}, Error("ERR Protocol version is not an integer or out of range")
		}
		if v < 2 || v > 3 {
			return resp.Reply{}, ErrNoProto
		}
		ver, next = v, 2
	}
	// Options take effect one by one, as in Redis: an AUTH or SETNAME before a bad option stays
	// applied even though HELLO replies with an error.
	for j := next; j < len(args); j++ {
		more := len(args) - 1 - j
		switch {
		case equalFold(args[j], "auth") && more >= 2:
			if err := n.checkPassword(c, args[j+1], args[j+2]); err != nil {
				return resp.Reply{}, err
			}
			j += 2
		case equalFold(args[j], "setname") && more >= 1:
			if err := validClientName(args[j+1]); err != nil {
				return resp.Reply{}, err
			}
			if c.Conn != nil {
				c.Conn.SetName(string(args[j+1]))
			}
			j++
		default:
			return resp.Reply{}, formatError("Syntax error in HELLO option '%s'", cstr(args[j]))
		}
	}
	if c.Conn != nil && !c.Conn.Authenticated() {
		return resp.Reply{}, Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
	}
	proto := int64(2)
	var id int64
	if c.Conn != nil {
		if ver != 0 {
			c.Conn.SetProto(int(ver))
		}
		proto, id = int64(c.Conn.Proto()), c.Conn.ID
	}
	return resp.Map([]resp.Reply{
		resp.BulkString("server"), resp.BulkString("redis"),
		resp.BulkString("version"), resp.BulkString(Version),
		resp.BulkString("proto"), resp.Int(proto),
		resp.BulkString("id"), resp.Int(id),
		resp.BulkString("mode"), resp.BulkString("standalone"),
		resp.BulkString("role"), resp.BulkString("master"),
		resp.BulkString("modules"), resp.Array([]resp.Reply{}),
	}), nil
}

func intArgOK(b []byte) (int64, bool) {
	n, err := intArg(b)
	return n, err == nil
}

// validClientName applies Redis's rule: printable ASCII without spaces.
func validClientName(name []byte) error {
	for _, ch := range name {
		if ch < '!' || ch > '~' {
			return ErrClientName
		}
	}
	return nil
}

func (n *Node) clientSetName(c *Ctx, args [][]byte) (resp.Reply, error) {
	if err := validClientName(args[2]); err != nil {
		return resp.Reply{}, err
	}
	if c.Conn != nil {
		c.Conn.SetName(string(args[2]))
	}
	return resp.OK, nil
}

func (n *Node) clientGetName(c *Ctx, _ [][]byte) (resp.Reply, error) {
	if c.Conn == nil || c.Conn.Name() == "" {
		return resp.Nil, nil
	}
	return resp.BulkString(c.Conn.Name()), nil
}

func (n *Node) clientID(c *Ctx, _ [][]byte) (resp.Reply, error) {
	if c.Conn == nil {
		return resp.Zero, nil
	}
	return resp.Int(c.Conn.ID), nil
}

// clientSetInfo serves CLIENT SETINFO LIB-NAME|LIB-VER value (Redis 7.2), which go-redis and
// other clients send on connect.
func (n *Node) clientSetInfo(c *Ctx, args [][]byte) (resp.Reply, error) {
	attr, val := args[2], args[3]
	for _, ch := range val {
		if ch < '!' || ch > '~' {
			return resp.Reply{}, formatError("%s cannot contain spaces, newlines or special characters.", upper(string(cstr(attr))))
		}
	}
	switch {
	case equalFold(attr, "lib-name"):
		if c.Conn != nil {
			c.Conn.SetLib(string(val), "")
		}
	case equalFold(attr, "lib-ver"):
		if c.Conn != nil {
			c.Conn.SetLib("", string(val))
		}
	default:
		return resp.Reply{}, formatError("Unrecognized option '%s'", cstr(attr))
	}
	return resp.OK, nil
}

// clientList serves CLIENT LIST [TYPE type | ID id [id …]] with Redis's line format and
// argument rules: TYPE takes exactly one argument, ID lists clients in the order asked.
func (n *Node) clientList(c *Ctx, args [][]byte) (resp.Reply, error) {
	var ids []int64
	var ofType func(*resp.Conn) bool
	switch {
	case len(args) == 4 && equalFold(args[2], "type"):
		switch t := args[3]; {
		case equalFold(t, "normal"):
			ofType = func(conn *resp.Conn) bool { return !subscribing(conn) }
		case equalFold(t, "pubsub"):
			ofType = subscribing
		case equalFold(t, "master"), equalFold(t, "replica"), equalFold(t, "slave"):
			return resp.Verbatim(""), nil // Vela has no such clients
		default:
			return resp.Reply{}, formatError("Unknown client type '%s'", cstr(t))
		}
	case len(args) > 3 && equalFold(args[2], "id"):
		for _, a := range args[3:] {
			id, ok := intArgOK(a)
			if !ok {
				return resp.Reply{}, Error("ERR Invalid client ID")
			}
			ids = append(ids, id)
		}
	case len(args) != 2:
		return resp.Reply{}, ErrSyntax
	}
	var b strings.Builder
	line := func(conn *resp.Conn) {
		if ofType == nil || ofType(conn) {
			writeClientLine(&b, conn)
		}
	}
	if n.clients != nil {
		if ids == nil {
			n.clients.Clients(line)
		} else {
			byID := map[int64]*resp.Conn{}
			n.clients.Clients(func(conn *resp.Conn) { byID[conn.ID] = conn })
			for _, id := range ids {
				if conn := byID[id]; conn != nil {
					line(conn)
				}
			}
		}
	}
	return resp.Verbatim(b.String()), nil
}

// clientKill serves CLIENT KILL, in Redis 7.0's two forms: CLIENT KILL ip:port closes that
// client (the caller included) and answers OK or "No such client"; CLIENT KILL with filters (ID,
// TYPE, USER, ADDR, LADDR, SKIPME) closes every client matching all of them, by default not the
// caller, and answers how many. Cluster members' peer connections are Vela's own and never
// match. A killed client gets the replies it has coming, then its connection closes; the caller,
// if it matched, after this reply.
func (n *Node) clientKill(c *Ctx, args [][]byte) (resp.Reply, error) {
	var id int64
	var addr, laddr []byte
	var ofType func(*resp.Conn) bool
	skipme, oldForm := true, len(args) == 3
	if oldForm {
		addr, skipme = args[2], false
	} else {
		for i := 2; i < len(args); i += 2 {
			if i+1 >= len(args) {
				return resp.Reply{}, ErrSyntax
			}
			v := args[i+1]
			switch opt := args[i]; {
			case equalFold(opt, "id"):
				n, ok := intArgOK(v)
				if !ok || n < 1 {
					return resp.Reply{}, Error("ERR client-id should be greater than 0")
				}
				id = n
			case equalFold(opt, "type"):
				switch {
				case equalFold(v, "normal"):
					ofType = func(conn *resp.Conn) bool { return !subscribing(conn) }
				case equalFold(v, "pubsub"):
					ofType = subscribing
				case equalFold(v, "master"), equalFold(v, "replica"), equalFold(v, "slave"):
					return resp.Int(0), nil // Vela has no such clients
				default:
					return resp.Reply{}, formatError("Unknown client type '%s'", cstr(v))
				}
			case equalFold(opt, "user"):
				if !equalFold(v, "default") { // the only user: AUTH's password is its
					return resp.Reply{}, formatError("No such user '%s'", cstr(v))
				}
			case equalFold(opt, "addr"):
				addr = v
			case equalFold(opt, "laddr"):
				laddr = v
			case equalFold(opt, "skipme"):
				switch {
				case equalFold(v, "yes"):
					skipme = true
				case equalFold(v, "no"):
					skipme = false
				default:
					return resp.Reply{}, ErrSyntax
				}
			default:
				return resp.Reply{}, ErrSyntax
			}
		}
	}
	var killed []*resp.Conn
	self := false
	if n.clients != nil {
		n.clients.Clients(func(conn *resp.Conn) {
			switch {
			case conn.IsPeer(),
				addr != nil && conn.RemoteAddr() != string(addr),
				laddr != nil && conn.LocalAddr() != string(laddr),
				id != 0 && conn.ID != id,
				ofType != nil && !ofType(conn),
				skipme && conn == c.Conn:
				return
			}
			if conn == c.Conn {
				self = true
			}
			killed = append(killed, conn)
		})
	}
	for _, conn := range killed {
		if conn != c.Conn {
			conn.Kill()
		}
	}
	if self {
		c.Conn.Quit() // closed after this reply, its later commands not run, as Redis does
	}
	if !oldForm {
		return resp.Int(int64(len(killed))), nil
	}
	if len(killed) == 0 {
		return resp.Reply{}, Error("ERR No such client")
	}
	return resp.OK, nil
}

// subscribing reports whether conn has a Pub/Sub subscription: its CLIENT LIST and CLIENT KILL
// type is "pubsub" then, as in Redis, and "normal" otherwise.
func subscribing(conn *resp.Conn) bool {
	in := conn.Info()
	return in.Sub+in.PSub+in.SSub > 0
}

// writeClientLine writes conn's line of CLIENT LIST and CLIENT INFO, with Redis's fields.
func writeClientLine(b *strings.Builder, conn *resp.Conn) {
	in := conn.Info()
	flags := ""
	if in.Monitor {
		flags += "O"
	}
	if in.Sub+in.PSub+in.SSub > 0 {
		flags += "P"
	}
	if in.Multi >= 0 {
		flags += "x"
	}
	flags += in.TrackingFlags
	if in.WatchDirty {
		flags += "d"
	}
	if in.NoEvict {
		flags += "e"
	}
	if flags == "" {
		flags = "N"
	}
	// The buffers as of the client's last read: its input (the command being run included, as
	// in Redis), the input buffer's size and peak, and the output buffer's capacity (omem).
	fmt.Fprintf(b, "id=%d addr=%s laddr=%s fd=0 name=%s age=%d idle=%d flags=%s db=0 sub=%d psub=%d ssub=%d multi=%d qbuf=%d qbuf-free=%d argv-mem=0 multi-mem=0 rbs=%d rbp=%d obl=0 oll=0 omem=%d tot-mem=%d events=r cmd=%s user=default redir=%d resp=%d lib-name=%s lib-ver=%s\n",
		in.ID, in.Addr, in.LocalAddr, in.Name, int64(in.Age.Seconds()), int64(in.Idle.Seconds()),
		flags, in.Sub, in.PSub, in.SSub, in.Multi, in.QueryBuf, max(in.QueryBufSize-in.QueryBuf, 0),
		in.QueryBufSize, in.QueryBufPeak, in.OutputBufSize, in.QueryBufSize+in.OutputBufSize,
		in.LastCommand, in.Redirect, in.Proto, in.LibName, in.LibVer)
}

// clientInfo serves CLIENT INFO: the connection's own CLIENT LIST line.
func (n *Node) clientInfo(c *Ctx, _ [][]byte) (resp.Reply, error) {
	var b strings.Builder
	if c.Conn != nil {
		writeClientLine(&b, c.Conn)
	}
	return resp.Verbatim(b.String()), nil
}

func (n *Node) clientHelp(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return HelpReply("CLIENT",
		"GETNAME", "    Return the name of the current connection.",
		"ID", "    Return the ID of the current connection.",
		"INFO", "    Return information about the current client connection.",
		"KILL <ip:port>", "    Kill connection made from <ip:port>.",
		"KILL <option> <value> [<option> <value> [...]]",
		"    Kill connections. Options are:",
		"    * ADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made from the specified address",
		"    * LADDR (<ip:port>|<unixsocket>:0)", "      Kill connections made to specified local address",
		"    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)", "      Kill connections by type.",
		"    * USER <username>", "      Kill connections authenticated by <username>.",
		"    * SKIPME (YES|NO)", "      Skip killing current connection (default: yes).",
		"LIST [TYPE NORMAL] [ID <id> [<id> ...]]", "    Return information about client connections.",
		"UNPAUSE", "    Stop the current client pause, resuming traffic.",
		"PAUSE <timeout> [WRITE|ALL]", "    Suspend all, or just write, clients for <timeout> milliseconds.",
		"SETINFO <option> <value>", "    Set client meta attr. Options are LIB-NAME and LIB-VER.",
		"SETNAME <name>", "    Assign the name <name> to the current connection.",
		"UNBLOCK <clientid> [TIMEOUT|ERROR]", "    Unblock the specified blocked client.",
		"CACHING (YES|NO)", "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
		"GETREDIR", "    Return the client ID we are redirecting to when tracking is enabled.",
		"NO-EVICT (ON|OFF)", "    Protect current client connection from eviction.",
		"REPLY (ON|OFF|SKIP)", "    Control the replies sent to the current connection.",
		"TRACKING (ON|OFF)", "    Vela does not serve client-side caching: ON is refused, OFF is OK.",
		"TRACKINGINFO", "    Report tracking status for the current connection."), nil
}

// HelpReply is a container command's HELP reply as Redis shapes it: a heading, the given lines
// (a usage line, then its description indented by four spaces), and HELP itself last, each a
// status.
func HelpReply(parent string, lines ...string) resp.Reply {
	out := make([]resp.Reply, 0, len(lines)+3)
	out = append(out, resp.Status(parent+" <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"))
	for _, l := range lines {
		out = append(out, resp.Status(l))
	}
	return resp.Array(append(out, resp.Status("HELP"), resp.Status("    Prints this help.")))
}
