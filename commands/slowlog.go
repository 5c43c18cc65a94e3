package commands

import (
	"time"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/slowlog"
)

// The slow log (SLOWLOG GET, LEN, RESET): commands that ran on this node for at least
// slowlog_log_slower_than microseconds, as Redis logs them. What is logged matches Redis 7:
//
//   - every command that ran, after it ran (so SLOWLOG RESET is the first entry after a reset);
//     not a command queued in MULTI, nor EXEC itself, but each command EXEC ran, and each
//     command a script called (with client "?:0" and no name), then the script;
//   - AUTH's arguments and HELLO's AUTH username and password as "(redacted)".
//
// The time is the command's on this node: for a command served here, what its handler took;
// on a cluster member, for a command on keys another member owns, the whole round trip there.
// Each node keeps its own log, as each Redis Cluster node does.

// errSlowlogCount is SLOWLOG GET's reply to a count that is not an integer of at least -1.
const errSlowlogCount = Error("ERR count should be greater than or equal to -1")

func (n *Node) registerSlowlog() {
	const g = "server"
	sub := func(name string, arity int, h Handler) *Command {
		return &Command{Name: "slowlog|" + name, Arity: arity, Flags: FlagAdmin | FlagLoading, Handler: h, Group: g}
	}
	n.table.Register(&Command{Name: "slowlog", Arity: -2, Group: g,
		Subcommands: map[string]*Command{
			"get":   sub("get", -2, n.slowlogGet),
			"len":   sub("len", 2, n.slowlogLen),
			"reset": sub("reset", 2, n.slowlogReset),
			"help":  sub("help", 2, n.slowlogHelp),
		}})
}

func (n *Node) slowlogGet(_ *Ctx, args [][]byte) (resp.Reply, error) {
	if len(args) > 3 {
		return resp.Reply{}, subcommandSyntaxError("slowlog", args[1])
	}
	count := 10
	if len(args) == 3 {
		v, err := intArg(args[2]) // Redis's integer syntax: no "+5", no spaces
		if err != nil || v < -1 {
			return resp.Reply{}, errSlowlogCount
		}
		count = int(min(v, int64(n.slowlog.Len())))
	}
	entries := n.slowlog.Get(count)
	out := make([]resp.Reply, len(entries))
	for i, e := range entries {
		args := make([]resp.Reply, len(e.Args))
		for j, a := range e.Args {
			args[j] = resp.Bulk(a)
		}
		out[i] = resp.Array([]resp.Reply{resp.Int(e.ID), resp.Int(e.Time), resp.Int(e.Micros),
			resp.Array(args), resp.BulkString(e.Client), resp.BulkString(e.ClientID)})
	}
	return resp.Array(out), nil
}

func (n *Node) slowlogLen(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return resp.Int(int64(n.slowlog.Len())), nil
}

func (n *Node) slowlogReset(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	n.slowlog.Reset()
	return resp.OK, nil
}

func (n *Node) slowlogHelp(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return HelpReply("SLOWLOG",
		"GET [<count>]",
		"    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
		"    Entries are made of:",
		"    id, timestamp, time in microseconds, arguments array, client IP and port,",
		"    client name",
		"LEN",
		"    Return the length of the slowlog.",
		"RESET",
		"    Reset the slowlog.",
	), nil
}

// noteSlow logs cmd, run for ctx with args, if it took long enough (the caller times commands
// only while the log is on).
func (n *Node) noteSlow(ctx *Ctx, cmd *Command, args [][]byte, took time.Duration) {
	if !n.slowlog.Slow(took) || cmd.Name == "exec" {
		return
	}
	addr, name := "?:0", ""
	if ctx.Conn != nil && !ctx.inScript {
		addr, name = ctx.Conn.RemoteAddr(), ctx.Conn.Name()
	}
	n.slowlog.Add(args, took, addr, name, redactor(cmd.Name, args))
}

// redactor returns which arguments of a command the slow log hides, as Redis redacts them: every
// argument of AUTH, the username and password after HELLO's AUTH, and the value CONFIG SET gives
// requirepass; nil for other commands.
func redactor(name string, args [][]byte) func(i int) bool {
	switch name {
	case "auth":
		return func(i int) bool { return i > 0 }
	case "config|set":
		return func(i int) bool { return i >= 3 && i%2 == 1 && equalFold(args[i-1], "requirepass") }
	case "hello":
		for i := 2; i+2 < len(args); i++ {
			if equalFold(args[i], "auth") {
				at := i
				return func(j int) bool { return j == at+1 || j == at+2 }
			}
		}
	}
	return nil
}

// newSlowlog is the node's slow log from its configuration: nil there means none is kept (a
// threshold of -1, as slowlog-log-slower-than -1 in Redis).
func newSlowlog(l *slowlog.Log) *slowlog.Log {
	if l == nil {
		return slowlog.New(-1, 0)
	}
	return l
}
