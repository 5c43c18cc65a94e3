package commands

import (
	"cmp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vela-cache/vela/glob"
	"github.com/vela-cache/vela/resp"
)

func (n *Node) registerServer() {
	const g = "server"
	csub := func(parent, name string, arity int, h Handler) *Command {
		return &Command{Name: parent + "|" + name, Arity: arity, Flags: FlagLoading, Handler: h, Group: g}
	}
	for _, c := range []*Command{
		{Name: "command", Arity: -1, Flags: FlagLoading, Handler: n.commandAll,
			Subcommands: map[string]*Command{
				"count":           csub("command", "count", 2, n.commandCount),
				"info":            csub("command", "info", -2, n.commandInfo),
				"docs":            csub("command", "docs", -2, n.commandDocs),
				"list":            csub("command", "list", -2, n.commandList),
				"help":            csub("command", "help", 2, n.commandHelp),
				"getkeys":         csub("command", "getkeys", -4, n.commandGetKeys(false)),
				"getkeysandflags": csub("command", "getkeysandflags", -4, n.commandGetKeys(true)),
			}},
		{Name: "config", Arity: -2,
			Subcommands: map[string]*Command{
				"get":     {Name: "config|get", Arity: -3, Flags: FlagAdmin | FlagLoading, Handler: n.configGet, Group: g},
				"set":     {Name: "config|set", Arity: -4, Flags: FlagAdmin | FlagLoading, Handler: n.configSet, Group: g},
				"rewrite": {Name: "config|rewrite", Arity: 2, Flags: FlagAdmin, Handler: n.configRewrite, Group: g},
				"resetstat": {Name: "config|resetstat", Arity: 2, Flags: FlagAdmin | FlagLoading, Handler: n.configResetStat,
					Group: g},
				"help": csub("config", "help", 2, n.configHelp),
			}},
		{Name: "info", Arity: -1, Flags: FlagLoading, Handler: n.info},
		{Name: "role", Arity: 1, Flags: FlagAdmin | FlagFast | FlagLoading, Handler: n.role},
		{Name: "shutdown", Arity: -1, Flags: FlagAdmin | FlagLoading, Handler: n.shutdownCommand},
		{Name: "time", Arity: 1, Flags: FlagFast | FlagLoading, Handler: n.time},
		{Name: "dbsize", Arity: 1, Flags: FlagReadOnly | FlagFast | FlagClusterWide, Handler: n.dbsize},
		{Name: "flushdb", Arity: -1, Flags: FlagWrite | FlagClusterWide, Handler: n.flush},
		{Name: "flushall", Arity: -1, Flags: FlagWrite | FlagClusterWide, Handler: n.flush},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

// role serves ROLE as a Redis primary without replicas answers it, as INFO replication says:
// every node takes writes, and a cluster's copies are Vela's own, not Redis replication.
// Clients that check a node's role before writing (Sentinel-aware ones) see a primary.
func (n *Node) role(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return resp.Array([]resp.Reply{resp.BulkString("master"), resp.Int(0), resp.Array([]resp.Reply{})}), nil
}

func (n *Node) time(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	t := time.Now()
	return resp.BulkStrings(strconv.FormatInt(t.Unix(), 10), strconv.Itoa(t.Nanosecond()/1000)), nil
}

func (n *Node) dbsize(c *Ctx, _ [][]byte) (resp.Reply, error) {
	ks, err := n.keyspace()
	if err != nil {
		return resp.Reply{}, err
	}
	size, err := ks.Len(c.Context())
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Int(size), nil
}

// flush serves FLUSHDB and FLUSHALL [ASYNC|SYNC]; Vela has one database, so they are the same.
func (n *Node) flush(c *Ctx, args [][]byte) (resp.Reply, error) {
	if len(args) > 2 || (len(args) == 2 && !equalFold(args[1], "sync") && !equalFold(args[1], "async")) {
		return resp.Reply{}, ErrSyntax
	}
	ks, err := n.keyspace()
	if err != nil {
		return resp.Reply{}, err
	}
	n.touchWatchedThatExist(c)
	if err := ks.Flush(c.Context()); err != nil {
		return resp.Reply{}, err
	}
	n.NotifyAll()
	return resp.OK, nil
}

func (n *Node) commandHelp(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return HelpReply("COMMAND",
		"(no subcommand)", "    Return details about all commands.",
		"COUNT", "    Return the total number of commands in this server.",
		"LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
		"    Return a list of all commands in this server, or of those the filter selects.",
		"INFO [<command-name> ...]", "    Return details about the given commands, or about all of them.",
		"DOCS [<command-name> ...]", "    Return documentation details about the given commands, or about all of them.",
		"GETKEYS <full-command>", "    Return the keys from a full command.",
		"GETKEYSANDFLAGS <full-command>", "    Return the keys and the access flags from a full command."), nil
}

func (n *Node) commandAll(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	all := n.table.All()
	out := make([]resp.Reply, len(all))
	for i, cmd := range all {
		out[i] = commandInfoReply(cmd)
	}
	return resp.Array(out), nil
}

func (n *Node) commandCount(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return resp.Int(int64(n.table.Len())), nil
}

// commandList serves COMMAND LIST [FILTERBY MODULE name|ACLCAT category|PATTERN pattern]: the
// names of every command and subcommand ("parent|sub"), as Redis 7 lists them. Vela has no
// modules; a category is named without its "@", in any case; the pattern is a glob matched
// without regard to case.
func (n *Node) commandList(_ *Ctx, args [][]byte) (resp.Reply, error) {
	var keep func(cmd *Command) bool
	switch {
	case len(args) == 2:
	case len(args) == 5 && equalFold(args[2], "filterby"):
		arg := args[4]
		switch {
		case equalFold(args[3], "module"):
			keep = func(*Command) bool { return false }
		case equalFold(args[3], "aclcat"):
			cat := "@" + string(arg)
			keep = func(cmd *Command) bool {
				return slices.ContainsFunc(aclCategoriesOf(cmd), func(r resp.Reply) bool { return strings.EqualFold(r.Text(), cat) })
			}
		case equalFold(args[3], "pattern"):
			keep = func(cmd *Command) bool { return glob.MatchFold(arg, []byte(cmd.Name)) }
		default:
			return resp.Reply{}, ErrSyntax
		}
	default:
		return resp.Reply{}, ErrSyntax
	}
	out := []resp.Reply{}
	add := func(cmd *Command) {
		if keep == nil || keep(cmd) {
			out = append(out, resp.BulkString(cmd.Name))
		}
	}
	for _, cmd := range n.table.All() {
		add(cmd)
		for _, name := range sortedSubcommands(cmd) {
			add(cmd.Subcommands[name])
		}
	}
	return resp.Array(out), nil
}

func (n *Node) commandInfo(c *Ctx, args [][]byte) (resp.Reply, error) {
	if len(args) == 2 {
		return n.commandAll(c, args)
	}
	out := make([]resp.Reply, 0, len(args)-2)
	for _, name := range args[2:] {
		if cmd := n.table.Describe(name); cmd != nil {
			out = append(out, commandInfoReply(cmd))
		} else {
			out = append(out, resp.Nil) // Redis answers an unknown name with a null bulk
		}
	}
	return resp.Array(out), nil
}

// commandDocs serves COMMAND DOCS, which redis-cli asks for at start-up for its hints.
func (n *Node) commandDocs(_ *Ctx, args [][]byte) (resp.Reply, error) {
	var cmds []*Command
	if len(args) == 2 {
		cmds = n.table.All()
	} else {
		for _, name := range args[2:] {
			if cmd := n.table.Describe(name); cmd != nil {
				cmds = append(cmds, cmd)
			}
		}
	}
	out := make([]resp.Reply, 0, 2*len(cmds))
	for _, cmd := range cmds {
		out = append(out, resp.BulkString(cmd.Name), docReply(cmd))
	}
	return resp.Map(out), nil
}

// docReply is cmd's COMMAND DOCS map: Redis's own for a command Redis has, else built from the
// table (Vela's commands, and subcommands newer than the Redis the docs came from). A container
// lists only the subcommands Vela serves.
func docReply(cmd *Command) resp.Reply {
	var doc []resp.Reply
	if d, ok := redisDocs()[cmd.Name]; ok {
		doc = slices.Clone(d.docs.Elems)
	} else {
		doc = []resp.Reply{
			resp.BulkString("summary"), resp.BulkString(cmd.Summary),
			resp.BulkString("since"), resp.BulkString(cmp.Or(cmd.Since, VelaVersion)),
			resp.BulkString("group"), resp.BulkString(cmd.Group),
		}
		if cmd.Args != nil {
			doc = append(doc, resp.BulkString("arguments"), argsReply(cmd.Args))
		}
	}
	if len(cmd.Subcommands) > 0 {
		subs := make([]resp.Reply, 0, 2*len(cmd.Subcommands))
		for _, name := range sortedSubcommands(cmd) {
			sub := cmd.Subcommands[name]
			subs = append(subs, resp.BulkString(sub.Name), docReply(sub))
		}
		doc = append(doc, resp.BulkString("subcommands"), resp.Map(subs))
	}
	return resp.Map(doc)
}

// commandInfoReply is cmd's COMMAND INFO entry: for a command Redis has, Redis's own flags, key
// positions, ACL categories, tips and key specifications; for Vela's, those its table gives.
func commandInfoReply(cmd *Command) resp.Reply {
	subs := resp.Set([]resp.Reply{}) // as Redis answers for a command without subcommands
	if len(cmd.Subcommands) > 0 {
		subs = resp.Array(nil)
		for _, name := range sortedSubcommands(cmd) {
			subs.Elems = append(subs.Elems, commandInfoReply(cmd.Subcommands[name]))
		}
	}
	entry := []resp.Reply{resp.BulkString(cmd.Name), resp.Int(int64(cmd.Arity))}
	if d, ok := redisDocs()[cmd.Name]; ok {
		entry = append(entry, d.info...)
		return resp.Array(append(entry, subs))
	}
	var flags []resp.Reply
	for _, f := range flagNames {
		if cmd.Flags&f.f != 0 {
			flags = append(flags, resp.Status(f.name))
		}
	}
	if flags == nil {
		flags = []resp.Reply{}
	}
	keys := cmd.infoKeys()
	return resp.Array(append(entry,
		resp.Set(flags),
		resp.Int(int64(keys[0])),
		resp.Int(int64(keys[1])),
		resp.Int(int64(keys[2])),
		resp.Set(aclCategories(cmd)),
		resp.Set([]resp.Reply{}), // tips
		keySpecsReply(keySpecsOf(cmd)),
		subs,
	))
}

// infoKeys returns the first key, last key and step COMMAND INFO reports for cmd.
func (cmd *Command) infoKeys() [3]int {
	if cmd.FirstKey == 0 {
		return cmd.ChannelKeys
	}
	return [3]int{cmd.FirstKey, cmd.LastKey, max(cmd.KeyStep, 1)}
}

// aclCategoriesOf is cmd's ACL categories as COMMAND INFO lists them: Redis's for a command
// Redis has, else derived (aclCategories).
func aclCategoriesOf(cmd *Command) []resp.Reply {
	if d, ok := redisDocs()[cmd.Name]; ok {
		return d.info[4].Elems
	}
	return aclCategories(cmd)
}

// dangerous are the commands Redis puts in @dangerous besides the administrative ones.
var dangerous = map[string]bool{"keys": true, "flushall": true, "flushdb": true, "info": true}

// aclCategories are the ACL categories COMMAND INFO lists for cmd, derived as Redis derives
// them (from the command's group and flags) and in Redis's order.
func aclCategories(cmd *Command) []resp.Reply {
	if cmd.Handler == nil && len(cmd.Subcommands) > 0 {
		return []resp.Reply{resp.Status("@slow")} // a container: its subcommands have their own
	}
	var out []resp.Reply
	add := func(on bool, name string) {
		if on {
			out = append(out, resp.Status(name))
		}
	}
	add(cmd.Group == "generic" || (cmd.Group == "server" && cmd.Flags&FlagClusterWide != 0), "@keyspace")
	add(cmd.Flags&FlagReadOnly != 0, "@read")
	add(cmd.Flags&FlagWrite != 0, "@write")
	add(cmd.Group == "string", "@string")
	add(cmd.Flags&FlagAdmin != 0, "@admin")
	add(cmd.Flags&FlagFast != 0, "@fast")
	add(cmd.Flags&FlagFast == 0, "@slow")
	add(cmd.Flags&FlagBlocking != 0, "@blocking")
	add(cmd.Flags&FlagAdmin != 0 || dangerous[cmd.Name], "@dangerous")
	add(cmd.Group == "connection" || cmd.Name == "command" || strings.HasPrefix(cmd.Name, "command|"), "@connection")
	return out
}

func sortedSubcommands(cmd *Command) []string {
	names := make([]string, 0, len(cmd.Subcommands))
	for name := range cmd.Subcommands {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
