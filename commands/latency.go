package commands

import (
	"time"

	"github.com/vela-cache/vela/latency"
	"github.com/vela-cache/vela/resp"
)

// LATENCY LATEST|HISTORY|RESET|HELP: Redis's latency monitor, fed with the events Vela has in
// common with Redis: "command" (a command that ran at least latency-monitor-threshold
// milliseconds), "fast-command" (one of those flagged fast: GET, SET…) and "expire-cycle" (a
// pass of the expiry sweep). Off while the threshold is 0, Redis's default.
//
// LATENCY HISTOGRAM: every command's distribution of run times, recorded while latency-tracking
// is on (Redis's default), in Redis's buckets (latency.Histogram).
//
// LATENCY GRAPH and DOCTOR: latencydoctor.go.

func (n *Node) registerLatency() {
	const g = "server"
	sub := func(name string, arity int, h Handler) *Command {
		return &Command{Name: "latency|" + name, Arity: arity, Flags: FlagAdmin | FlagLoading, Handler: h, Group: g}
	}
	n.table.Register(&Command{Name: "latency", Arity: -2, Group: g,
		Subcommands: map[string]*Command{
			"latest":    sub("latest", 2, n.latencyLatest),
			"history":   sub("history", 3, n.latencyHistory),
			"reset":     sub("reset", -2, n.latencyReset),
			"histogram": sub("histogram", -2, n.latencyHistogram),
			"graph":     sub("graph", 3, n.latencyGraph),
			"doctor":    sub("doctor", 2, n.latencyDoctor),
			"help":      sub("help", 2, n.latencyHelp),
		}})
}

// Latency returns the node's latency monitor, which other parts (the expiry sweep) feed.
func (n *Node) Latency() *latency.Monitor { return n.latency }

// noteLatency records a command that ran for took, as Redis's call() does.
func (n *Node) noteLatency(cmd *Command, took time.Duration) {
	event := "command"
	if cmd.Flags&FlagFast != 0 {
		event = "fast-command"
	}
	n.latency.Note(event, took)
}

func (n *Node) latencyLatest(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	all := n.latency.Latest()
	out := make([]resp.Reply, len(all))
	for i, l := range all {
		out[i] = resp.Array([]resp.Reply{resp.BulkString(l.Event), resp.Int(l.Last.Time),
			resp.Int(l.Last.Latency), resp.Int(l.Max)})
	}
	return resp.Array(out), nil
}

func (n *Node) latencyHistory(_ *Ctx, args [][]byte) (resp.Reply, error) {
	samples := n.latency.History(string(args[2]))
	out := make([]resp.Reply, len(samples))
	for i, s := range samples {
		out[i] = resp.Array([]resp.Reply{resp.Int(s.Time), resp.Int(s.Latency)})
	}
	return resp.Array(out), nil
}

func (n *Node) latencyReset(_ *Ctx, args [][]byte) (resp.Reply, error) {
	events := make([]string, len(args)-2)
	for i, a := range args[2:] {
		events[i] = string(a)
	}
	return resp.Int(int64(n.latency.Reset(events...))), nil
}

// latencyHistogram serves LATENCY HISTOGRAM [command …]: for each command named (a container
// such as CONFIG with each of its subcommands; unknown names skipped), or for every command, that
// has run since CONFIG RESETSTAT, its runs and their cumulative distribution.
func (n *Node) latencyHistogram(_ *Ctx, args [][]byte) (resp.Reply, error) {
	var out []resp.Reply
	add := func(cmd *Command) {
		s := cmd.runTimes()
		if s == nil {
			return
		}
		var cdf []resp.Reply
		s.CDF(func(usec, n int64) { cdf = append(cdf, resp.Int(usec), resp.Int(n)) })
		out = append(out, resp.BulkString(cmd.Name), resp.Map([]resp.Reply{
			resp.BulkString("calls"), resp.Int(s.Total()),
			resp.BulkString("histogram_usec"), resp.Map(cdf)}))
	}
	addWithSubs := func(cmd *Command) {
		add(cmd)
		for _, name := range sortedSubcommands(cmd) {
			add(cmd.Subcommands[name])
		}
	}
	if len(args) == 2 {
		for _, cmd := range n.table.All() {
			addWithSubs(cmd)
		}
	}
	for _, name := range args[2:] {
		if cmd := n.table.Describe(name); cmd != nil {
			addWithSubs(cmd)
		}
	}
	if out == nil {
		out = []resp.Reply{}
	}
	return resp.Map(out), nil
}

func (n *Node) latencyHelp(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return HelpReply("LATENCY",
		"DOCTOR", "    Return a human readable latency analysis report.",
		"GRAPH <event>", "    Return an ASCII latency graph for the <event> class.",
		"HISTORY <event>", "    Return time-latency samples for the <event> class.",
		"LATEST", "    Return the latest latency samples for all events.",
		"RESET [<event> ...]", "    Reset latency data of one or more <event> classes.",
		"    (default: reset all data for all event classes)",
		"HISTOGRAM [COMMAND ...]", "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
		"    If no commands are specified then all histograms are replied."), nil
}
