// Package commands is Vela's command table: every command's name, arity, flags, key positions and
// handler, and the dispatch that checks a request against them the way Redis does (unknown
// command, wrong arity, authentication) before calling the handler.
//
// Handlers return a reply value and an error; dispatch turns errors into Redis's exact error
// texts in one place (errors.go) and the resp package writes the reply. Handlers never know which
// store or topology holds the keys: they talk to a store.Store.
package commands

import (
	"bytes"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vela-cache/vela/latency"
	"github.com/vela-cache/vela/resp"
)

// Flags describe a command, as in Redis's COMMAND INFO.
type Flags uint32

// Command flags.
const (
	FlagWrite       Flags = 1 << iota // may modify the keyspace
	FlagReadOnly                      // only reads the keyspace
	FlagFast                          // O(1) or O(log N)
	FlagNoAuth                        // allowed before AUTH
	FlagAdmin                         // server administration
	FlagClusterWide                   // acts on the whole keyspace (KEYS, SCAN, DBSIZE, FLUSHALL…)
	FlagBlocking                      // may wait (FETCHLOCK)
	FlagLoading                       // allowed while the node is not ready
	FlagPipelined                     // may overlap the commands pipelined before it (GET, SET)

	flagTxControl     // runs at once between MULTI and EXEC instead of being queued (MULTI, EXEC…)
	flagExclusive     // keeps every other command out while it runs (EXEC): never on an event loop
	flagScript        // runs a script: keeps every other command out, on an event loop only on a lone node (Node.inlineScripts)
	flagPubSubContext // runs in the RESP2 Pub/Sub context: (P|S)(UN)SUBSCRIBE, PING, QUIT, RESET
	flagFanout        // reaches every member of a cluster and waits for them (PUBLISH): never on an event loop there
)

var flagNames = []struct {
	f    Flags
	name string
}{
	{FlagWrite, "write"}, {FlagReadOnly, "readonly"}, {FlagFast, "fast"}, {FlagNoAuth, "no_auth"},
	{FlagAdmin, "admin"}, {FlagBlocking, "blocking"}, {FlagLoading, "loading"},
}

// Handler executes one command. args[0] is the command name; args alias the read buffer and must
// be copied to be kept after the handler returns.
type Handler func(c *Ctx, args [][]byte) (resp.Reply, error)

// Command is one entry of the table.
type Command struct {
	// Name is the lower-case name; a subcommand's is "parent|sub", as Redis reports it.
	Name string
	// Arity is the number of arguments including the name; negative means "at least -Arity".
	Arity int
	Flags Flags
	// FirstKey, LastKey and KeyStep give the key positions (LastKey -1: the last argument).
	FirstKey, LastKey, KeyStep int
	// ChannelKeys are the key positions COMMAND INFO reports for a command whose arguments
	// Redis declares as keys flagged not_key (the shard-channel commands' channels): FirstKey
	// stays 0, so that no router, tracking or keyspace code takes them for keys.
	ChannelKeys [3]int
	// MovableKeys, when set, finds the keys of a command whose arguments say where they are
	// (EVAL's numkeys), as Redis's movablekeys; FirstKey is then 0, so that no router routes the
	// command by its keys: its handler places it.
	MovableKeys func(args [][]byte) [][]byte
	// Group, Summary and Args document the command for COMMAND DOCS; a command Redis has takes
	// Redis's own documentation instead (docs.go), and needs only its Group.
	Group, Summary string
	Args           []Arg
	// Since is the version that brought the command, for COMMAND DOCS; default: Vela's version.
	Since string
	// TimeoutReply, for a blocking command, is its reply when its wait times out: what it answers
	// when CLIENT UNBLOCK … TIMEOUT ends the wait (a null array when nil).
	TimeoutReply *resp.Reply
	// Handler runs the command. A command with subcommands has a handler only when it may also
	// be called bare (COMMAND).
	Handler Handler
	// Subcommands, by lower-case name.
	Subcommands map[string]*Command

	calls    atomic.Uint64 // times executed, for INFO commandstats and metrics
	nsec     atomic.Uint64 // nanoseconds spent in the handler, while stats or metrics are on
	rejected atomic.Uint64 // refused before running: wrong arity, not authenticated
	failed   atomic.Uint64 // ran and answered an error
	observer Observer      // receives each run's duration; set before serving (Table.Observe)
	// runs is the distribution of run times (INFO latencystats, LATENCY HISTOGRAM), made on
	// the first run recorded and dropped by CONFIG RESETSTAT, as Redis does.
	runs atomic.Pointer[latency.Histogram]
	// base holds calls, nsec, rejected and failed as CONFIG RESETSTAT last read them: INFO
	// counts from there, metrics from the start.
	base [4]atomic.Uint64
}

// Observer receives the duration in seconds of every run of one command; a
// prometheus.Observer satisfies it. Observe is called on the connection goroutine, so it must
// not block, and on the hot path, so it should not allocate.
type Observer interface {
	Observe(seconds float64)
}

// Calls returns how many times the command has run.
func (c *Command) Calls() uint64 { return c.calls.Load() }

// sinceReset returns the command's calls, nanoseconds, refusals and failures since CONFIG
// RESETSTAT.
func (c *Command) sinceReset() (calls, nsec, rejected, failed uint64) {
	return c.calls.Load() - c.base[0].Load(), c.nsec.Load() - c.base[1].Load(),
		c.rejected.Load() - c.base[2].Load(), c.failed.Load() - c.base[3].Load()
}

// recordRun adds a run of d to the command's latency histogram.
func (c *Command) recordRun(d time.Duration) {
	h := c.runs.Load()
	if h == nil {
		h = new(latency.Histogram)
		if !c.runs.CompareAndSwap(nil, h) {
			h = c.runs.Load()
		}
	}
	h.Record(int64(d))
}

// runTimes returns the command's run times recorded since CONFIG RESETSTAT, or nil when none
// are.
func (c *Command) runTimes() *latency.Snapshot {
	if h := c.runs.Load(); h != nil {
		if s := h.Snapshot(); s.Total() > 0 {
			return s
		}
	}
	return nil
}

// resetStats makes sinceReset count from now, and drops the run times.
func (c *Command) resetStats() {
	c.runs.Store(nil)
	c.base[0].Store(c.calls.Load())
	c.base[1].Store(c.nsec.Load())
	c.base[2].Store(c.rejected.Load())
	c.base[3].Store(c.failed.Load())
}

// Keys returns the key arguments of args according to the key positions.
func (c *Command) Keys(args [][]byte) [][]byte {
	if c.MovableKeys != nil {
		return c.MovableKeys(args)
	}
	if c.FirstKey == 0 || len(args) <= c.FirstKey {
		return nil
	}
	last := c.LastKey
	if last < 0 {
		last = len(args) + last
	}
	step := max(c.KeyStep, 1)
	if step == 1 { // a run of keys: args' own, capped so that an append copies
		if last = min(last, len(args)-1); last < c.FirstKey {
			return nil
		}
		return args[c.FirstKey : last+1 : last+1]
	}
	var keys [][]byte
	for i := c.FirstKey; i <= last && i < len(args); i += step {
		keys = append(keys, args[i])
	}
	return keys
}

// Table maps command names to commands.
type Table struct {
	cmds    map[string]*Command
	observe func(cmd *Command) Observer // see Observe
}

// Observe makes every command, registered already or later, report its durations to the
// Observer that fn returns for it (nil: none); fn runs once per command and subcommand, so the
// hot path only calls a pre-resolved Observer. Call it during start-up, before serving.
func (t *Table) Observe(fn func(cmd *Command) Observer) {
	t.observe = fn
	for _, cmd := range t.cmds {
		t.attach(cmd)
	}
}

func (t *Table) attach(cmd *Command) {
	if t.observe == nil {
		return
	}
	if cmd.Handler != nil {
		cmd.observer = t.observe(cmd)
	}
	for _, sub := range cmd.Subcommands {
		sub.observer = t.observe(sub)
	}
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{cmds: make(map[string]*Command)} }

// Register adds cmd. It panics on a duplicate name, a nil handler or a zero arity: these are
// programming errors that must stop start-up, as redcon's ServeMux does.
func (t *Table) Register(cmd *Command) {
	if cmd.Name == "" || cmd.Name != strings.ToLower(cmd.Name) {
		panic(fmt.Sprintf("commands: bad command name %q", cmd.Name))
	}
	if _, dup := t.cmds[cmd.Name]; dup {
		panic("commands: duplicate command " + cmd.Name)
	}
	if cmd.Arity == 0 {
		panic("commands: zero arity for " + cmd.Name)
	}
	if cmd.Handler == nil && len(cmd.Subcommands) == 0 {
		panic("commands: nil handler for " + cmd.Name)
	}
	for name, sub := range cmd.Subcommands {
		if sub.Handler == nil || sub.Arity == 0 || sub.Name != cmd.Name+"|"+name {
			panic("commands: bad subcommand " + cmd.Name + " " + name)
		}
	}
	t.cmds[cmd.Name] = cmd
	t.attach(cmd)
}

// Lookup finds a command by name, ignoring case, without allocating.
func (t *Table) Lookup(name []byte) *Command {
	var buf [32]byte
	if len(name) > len(buf) {
		return t.cmds[strings.ToLower(string(name))]
	}
	return t.cmds[string(lowerInto(buf[:0], name))]
}

// Describe finds a command or, named "parent|sub" as COMMAND INFO and DOCS accept it, a
// subcommand, ignoring case.
func (t *Table) Describe(name []byte) *Command {
	parent, sub, ok := bytes.Cut(name, []byte("|"))
	cmd := t.Lookup(parent)
	if !ok || cmd == nil {
		return cmd
	}
	return cmd.Subcommands[strings.ToLower(string(sub))]
}

// All returns every command sorted by name.
func (t *Table) All() []*Command {
	list := make([]*Command, 0, len(t.cmds))
	for _, c := range t.cmds {
		list = append(list, c)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return list
}

// Len is the number of top-level commands.
func (t *Table) Len() int { return len(t.cmds) }

func lowerInto(dst, s []byte) []byte {
	for _, c := range s {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// ArgIs reports whether the option argument arg is the lower-case word w, ignoring ASCII case.
// Like Redis's strcasecmp on an argument it reads arg as a C string: "nx\x00junk" is "nx".
// Packages that register commands use it for their options, so every option parses alike.
func ArgIs(arg []byte, w string) bool { return equalFold(arg, w) }

func equalFold(arg []byte, w string) bool {
	if len(arg) < len(w) || (len(arg) > len(w) && arg[len(w)] != 0) {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := arg[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

// KeyPositions returns the positions of the command's keys in args of length n: from first to
// last, every step (first 0: it names no key there).
func (c *Command) KeyPositions(n int) (first, last, step int) {
	first, last, step = c.FirstKey, c.LastKey, max(c.KeyStep, 1)
	if first <= 0 || first >= n {
		return 0, 0, 0
	}
	if last < 0 {
		last += n
	}
	last = min(last, n-1)
	return first, last, step
}
