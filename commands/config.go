package commands

import (
	"bytes"
	"sort"
	"strconv"
	"strings"

	"github.com/vela-cache/vela/glob"
	"github.com/vela-cache/vela/latency"
	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/resp"
)

// CONFIG GET, SET and RESETSTAT. GET and SET work on the node's settings: its configuration under Redis's parameter
// names (Config.Settings). Vela reads its configuration at start-up; CONFIG SET changes what
// can change while it serves (the slow log's threshold and length, the latency monitor's
// threshold, latency tracking and its percentiles, the client limit), accepts setting any other
// parameter to the value it already has (so deployment scripts that pin Redis's defaults run
// unchanged), and refuses the rest with Redis's error shape.

// settable are the parameters CONFIG SET changes, with the range Redis accepts for each.
var settable = map[string]struct{ min, max int64 }{
	"slowlog-log-slower-than":   {-1, 1<<63 - 1},
	"slowlog-max-len":           {0, 1<<63 - 1},
	"maxclients":                {1, 4294967295},
	"latency-monitor-threshold": {0, 1<<63 - 1},
}

// clientLimiter is the server's connection limit, which CONFIG SET maxclients changes.
type clientLimiter interface{ SetMaxClients(n int) }

// immutable are the parameters Redis itself never changes at run time.
var immutable = map[string]bool{"databases": true, "cluster-enabled": true}

// setting returns the value CONFIG GET reports for a parameter, or def when the node has none.
func (n *Node) setting(name, def string) string {
	n.settingsMu.RLock()
	defer n.settingsMu.RUnlock()
	if v, ok := n.cfg.Settings[name]; ok {
		return v
	}
	return def
}

// configGet serves CONFIG GET parameter [parameter …] from the settings the node was given,
// with Redis 7's rules: a name without glob characters is looked up ignoring case and reported
// as the client spelled it; a pattern reports the canonical names it matches; each parameter is
// reported once.
func (n *Node) configGet(c *Ctx, args [][]byte) (resp.Reply, error) {
	n.settingsMu.RLock()
	defer n.settingsMu.RUnlock()
	names := make([]string, 0, len(n.cfg.Settings))
	for name := range n.cfg.Settings {
		names = append(names, name)
	}
	sort.Strings(names)
	seen := map[string]bool{}
	var kv []resp.Reply
	for _, arg := range args[2:] {
		if !bytes.ContainsAny(cstr(arg), "[*?") {
			name := strings.ToLower(string(arg))
			if v, ok := n.cfg.Settings[name]; ok && !seen[name] {
				seen[name] = true
				kv = append(kv, resp.BulkString(string(arg)), resp.BulkString(v))
			}
			continue
		}
		for _, name := range names {
			if !seen[name] && glob.MatchFold(cstr(arg), []byte(name)) {
				seen[name] = true
				kv = append(kv, resp.BulkString(name), resp.BulkString(n.cfg.Settings[name]))
			}
		}
	}
	if kv == nil {
		kv = []resp.Reply{}
	}
	return resp.Map(kv), nil
}

// configSet serves CONFIG SET parameter value [parameter value …]: every pair is checked first,
// in Redis's order (an unknown name, an immutable one, a name given twice, then each value),
// and only then are they applied, so a refused command changes nothing.
func (n *Node) configSet(_ *Ctx, args [][]byte) (resp.Reply, error) {
	if len(args)%2 != 0 {
		return resp.Reply{}, ErrSyntax
	}
	type change struct {
		name, shown string // the parameter and the value CONFIG GET reports after
		apply       func()
	}
	var changes []change
	seen := map[string]bool{}
	n.settingsMu.Lock()
	defer n.settingsMu.Unlock()
	for i := 2; i < len(args); i += 2 {
		name := strings.ToLower(string(args[i]))
		if _, known := n.cfg.Settings[name]; !known {
			return resp.Reply{}, Error("ERR Unknown option or number of arguments for CONFIG SET - '" + string(args[i]) + "'")
		}
		if immutable[name] {
			return resp.Reply{}, configSetFailed(string(args[i]), "can't set immutable config")
		}
		if seen[name] {
			return resp.Reply{}, configSetFailed(string(args[i]), "duplicate parameter")
		}
		seen[name] = true
	}
	for i := 2; i < len(args); i += 2 {
		name, value := strings.ToLower(string(args[i])), args[i+1]
		switch name {
		case "latency-tracking":
			on, ok := parseYesNo(value)
			if !ok {
				return resp.Reply{}, configSetFailed(name, "argument must be 'yes' or 'no'")
			}
			changes = append(changes, change{name, map[bool]string{true: "yes", false: "no"}[on],
				func() { n.track.SetOn(on) }})
			continue
		case "notify-keyspace-events":
			ev, ok := pubsub.ParseEvents(string(value))
			if !ok {
				return resp.Reply{}, configSetFailed(name, pubsub.BadEventClass)
			}
			changes = append(changes, change{name, ev.String(), func() { n.events.Store(uint32(ev)) }})
			continue
		case "latency-tracking-info-percentiles":
			ps, err := latency.ParsePercentiles(string(value))
			if err != nil {
				return resp.Reply{}, configSetFailed(name, err.Error())
			}
			changes = append(changes, change{name, latency.FormatPercentiles(ps),
				func() { n.track.SetPercentiles(ps) }})
			continue
		}
		r, ok := settable[name]
		if !ok {
			if string(value) == n.cfg.Settings[name] {
				continue // already so: nothing to change
			}
			return resp.Reply{}, configSetFailed(name, "Vela reads it at start-up only: change its configuration and restart")
		}
		v, ok := redisnum.ParseInt(value)
		switch {
		case !ok:
			return resp.Reply{}, configSetFailed(name, "argument couldn't be parsed into an integer")
		case v < r.min || v > r.max:
			return resp.Reply{}, configSetFailed(name, "argument must be between "+strconv.FormatInt(r.min, 10)+
				" and "+strconv.FormatInt(r.max, 10)+" inclusive")
		}
		changes = append(changes, change{name, strconv.FormatInt(v, 10), func() { n.setInt(name, v) }})
	}
	for _, ch := range changes {
		ch.apply()
		n.cfg.Settings[ch.name] = ch.shown
	}
	return resp.OK, nil
}

// setInt applies an integer parameter CONFIG SET changes (settable).
func (n *Node) setInt(name string, v int64) {
	switch name {
	case "slowlog-log-slower-than":
		n.slowlog.SetThreshold(v)
	case "slowlog-max-len":
		n.slowlog.SetMax(int(min(v, 1<<31-1)))
	case "latency-monitor-threshold":
		n.latency.SetThreshold(v)
	case "maxclients":
		if l, ok := n.clients.(clientLimiter); ok {
			l.SetMaxClients(int(v))
		}
	}
}

// parseYesNo reads a boolean parameter as Redis does: "yes" or "no", in any case.
func parseYesNo(b []byte) (on, ok bool) {
	switch strings.ToLower(string(b)) {
	case "yes":
		return true, true
	case "no":
		return false, true
	}
	return false, false
}

// configResetStat serves CONFIG RESETSTAT: INFO's counters (stats, commandstats, errors) and
// STATS count from now, as Redis resets its own. /metrics keeps counting from the start: its
// counters never fall, as Prometheus expects.
func (n *Node) configResetStat(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	n.stats.Reset()
	if n.clients != nil {
		in, out, rejected := n.clients.NetStats()
		n.netBase.Store(&[3]uint64{in, out, rejected})
	}
	n.errs.reset()
	for _, cmd := range n.table.All() {
		cmd.resetStats()
		for _, sub := range cmd.Subcommands {
			sub.resetStats()
		}
	}
	return resp.OK, nil
}

// runtimeSettings are the parameters CONFIG SET changes while the node serves, which CONFIG
// REWRITE writes back to its file.
var runtimeSettings = []string{"slowlog-log-slower-than", "slowlog-max-len", "latency-monitor-threshold",
	"latency-tracking", "latency-tracking-info-percentiles", "maxclients", "notify-keyspace-events"}

// configRewrite serves CONFIG REWRITE: the settings CONFIG SET changes are written to the file
// the node was started from, as they are now, so that a restart keeps them (Config.Rewrite);
// the rest of the file stays as it was.
func (n *Node) configRewrite(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	if n.cfg.Rewrite == nil {
		return resp.Reply{}, Error("ERR The server is running without a config file")
	}
	settings := map[string]string{}
	for _, name := range runtimeSettings {
		settings[name] = n.setting(name, "")
	}
	if err := n.cfg.Rewrite(settings); err != nil {
		n.log.Warn("CONFIG REWRITE failed", "err", err)
		return resp.Reply{}, Error("ERR Rewriting config file: " + err.Error())
	}
	n.log.Info("CONFIG REWRITE executed with success")
	return resp.OK, nil
}

func configSetFailed(arg, why string) error {
	return Error("ERR CONFIG SET failed (possibly related to argument '" + arg + "') - " + why)
}

func (n *Node) configHelp(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return HelpReply("CONFIG",
		"GET <pattern>", "    Return parameters matching the glob-like <pattern> and their values.",
		"SET <directive> <value>", "    Set the configuration <directive> to <value>.",
		"    Vela changes slowlog-log-slower-than, slowlog-max-len, latency-monitor-threshold,",
		"    latency-tracking, latency-tracking-info-percentiles, maxclients and",
		"    notify-keyspace-events while it serves;",
		"    other parameters only to the value they have.",
		"RESETSTAT", "    Reset statistics reported by the INFO command.",
		"REWRITE", "    Rewrite the configuration file."), nil
}
