package commands

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/script"
	"github.com/vela-cache/vela/store"
)

// Scripts: EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT, as Redis 7 runs them (the Lua side is
// package script). A script runs where a transaction would (txn.go), and as one:
//
//   - on a node that alone changes its keys, here, with every other command held back (the
//     gate), its commands judging expiry at one instant and, on the disk store, committing as
//     one unit;
//   - in a cluster, on the member owning the keys it declares (KEYS), which must all live on
//     one member (else CROSSSLOT), as in Redis Cluster; a script declaring none runs on the node
//     it was sent to. Another member receives the script's body (EVALSHA is resolved here)
//     and runs it as its own. A command of the script naming a key that lives elsewhere gets
//     Redis Cluster's "non local key" error, and one acting on every member is refused;
//   - on the redis store over one Redis, in Redis itself, which the node's gate cannot
//     isolate: EVAL goes there as it is, EVALSHA as EVAL.
//
// Each node keeps its own script cache, whatever its store: a script loaded through one member
// or sidecar is unknown to the others until they run it once, and EVALSHA of it answers
// NOSCRIPT there (clients then fall back to EVAL, as with Redis Cluster).

// Script errors, with Redis's texts.
const (
	errNoScript          = Error("NOSCRIPT No matching script. Please use EVAL.")
	errNegativeKeys      = Error("ERR Number of keys can't be negative")
	errTooManyKeys       = Error("ERR Number of keys can't be greater than number of args")
	errScriptUnknown     = "ERR Unknown Redis command called from script"
	errScriptArity       = "ERR Wrong number of args calling Redis command from script"
	errScriptForbidden   = "ERR This Redis command is not allowed from script"
	errScriptReadOnly    = "ERR Write commands are not allowed from read-only scripts."
	errScriptNonLocal    = "ERR Script attempted to access a non local key in a cluster node"
	errScriptClusterDown = "ERR Script attempted to execute a command while the cluster is down"
	errNotBusy           = Error("NOTBUSY No scripts in execution right now.")
	errUnkillable        = Error("UNKILLABLE Sorry the script already executed write commands against the dataset. " +
		"You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.")
	errFlushOption = Error("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
)

// noScriptNames are the commands Redis refuses inside a script (its noscript flag), besides
// the transaction commands, the scripting commands and every CLIENT subcommand, and Vela's own
// that make no sense there (VELA; FETCHLOCK, which waits, is refused as a blocking command).
var noScriptNames = map[string]bool{
	"quit": true, "auth": true, "hello": true, "reset": true, "config|get": true, "unwatch": true,
	"eval": true, "evalsha": true, "eval_ro": true, "evalsha_ro": true, "role": true, "shutdown": true,
	"subscribe": true, "psubscribe": true, "unsubscribe": true, "punsubscribe": true,
	"ssubscribe": true, "sunsubscribe": true, "monitor": true,
}

// noScript reports whether a script may not call cmd.
func noScript(cmd *Command) bool {
	parent, _, _ := strings.Cut(cmd.Name, "|")
	return noScriptNames[cmd.Name] || cmd.Flags&(flagTxControl|FlagBlocking) != 0 ||
		parent == "client" || parent == "script" || parent == "vela"
}

// scripting is the node's script state.
type scripting struct {
	cache  *script.Cache
	runner script.Runner
	mu     sync.Mutex
	run    *runningScript // the script running here, for SCRIPT KILL

	// calls is the running script's Caller, reused from run to run: scripts on a node run
	// one at a time (the gate isolates each), so one serves them all.
	calls scriptCalls
}

// runningScript is a script running on this node.
type runningScript struct {
	wrote atomic.Bool // it has run a write command: SCRIPT KILL refuses to stop it
	// killed is set by SCRIPT KILL before it stops the runner's scripts, for a run the runner
	// has not started yet (script.Runner.Run checks it once it has).
	killed atomic.Bool
}

func (n *Node) registerScripts() {
	const g = "scripting"
	n.scripts.cache = script.NewCache()
	n.scripts.runner.Log = n.log
	n.scripts.runner.SetLimit(n.cfg.ScriptLimit)
	keys := func(args [][]byte) [][]byte { _, keys, _, _ := scriptArgs(args); return keys }
	for _, c := range []*Command{
		{Name: "eval", Arity: -3, Flags: flagScript, MovableKeys: keys, Handler: n.eval(false, false)},
		{Name: "evalsha", Arity: -3, Flags: flagScript, MovableKeys: keys, Handler: n.eval(true, false)},
		{Name: "eval_ro", Arity: -3, Flags: flagScript, MovableKeys: keys, Handler: n.eval(false, true)},
		{Name: "evalsha_ro", Arity: -3, Flags: flagScript, MovableKeys: keys, Handler: n.eval(true, true)},
		{Name: "script", Arity: -2, Subcommands: map[string]*Command{
			"load":   {Name: "script|load", Arity: 3, Flags: FlagLoading, Handler: n.scriptLoad},
			"exists": {Name: "script|exists", Arity: -3, Flags: FlagLoading, Handler: n.scriptExists},
			"flush":  {Name: "script|flush", Arity: -2, Flags: FlagLoading, Handler: n.scriptFlush},
			"kill":   {Name: "script|kill", Arity: 2, Flags: FlagLoading, Handler: n.scriptKill},
			"help":   {Name: "script|help", Arity: 2, Flags: FlagLoading, Handler: n.scriptHelp},
		}},
	} {
		c.Group = g
		for _, sub := range c.Subcommands {
			sub.Group = g
		}
		n.table.Register(c)
	}
}

// scriptArgs splits EVAL's arguments after the script: numkeys, then the keys, then the
// arguments.
func scriptArgs(args [][]byte) (body []byte, keys, argv [][]byte, err error) {
	if len(args) < 3 {
		return nil, nil, nil, WrongArity(string(args[0]))
	}
	num, perr := strconv.ParseInt(string(args[2]), 10, 64)
	switch {
	case perr != nil:
		return nil, nil, nil, ErrNotInteger
	case num < 0:
		return nil, nil, nil, errNegativeKeys
	case num > int64(len(args)-3):
		return nil, nil, nil, errTooManyKeys
	}
	return args[1], args[3 : 3+num], args[3+num:], nil
}

// eval returns the handler of EVAL (bySHA: EVALSHA) and of their read-only forms.
func (n *Node) eval(bySHA, readOnly bool) Handler {
	return func(c *Ctx, args [][]byte) (resp.Reply, error) {
		body, keys, argv, err := scriptArgs(args)
		if err != nil {
			return resp.Reply{}, err
		}
		var s *script.Script
		if bySHA {
			s = n.scripts.cache.Get(string(body))
		} else if s, err = n.scripts.cache.Load(body); err != nil {
			return resp.Reply{}, Error(err.Error())
		}
		if c.inExec { // queued in MULTI: EXEC isolates it already
			return n.runScript(c, s, keys, argv, readOnly), nil
		}
		if err := n.isolationUnsupported("scripts (EVAL, EVALSHA)"); err != nil {
			return resp.Reply{}, err
		}
		if n.gate == nil {
			return n.evalRemote(c, args, s, keys, readOnly, "")
		}
		if n.txr != nil && len(keys) > 0 {
			place, err := n.txr.TxPlace(keys)
			switch {
			case err != nil:
				return resp.Reply{}, err
			case place != "" && c.Peer: // the sender's members changed before this node's
				return resp.Reply{}, errMoved
			case place != "":
				return n.evalRemote(c, args, s, keys, readOnly, place)
			}
		}
		if s == nil {
			return resp.Reply{}, errNoScript
		}
		var reply resp.Reply
		err = n.isolated(c, keys, func() error {
			_, err := n.asOneUnit(c, 0, func() { reply = n.runScript(c, s, keys, argv, readOnly) })
			return err
		})
		return reply, err
	}
}

// inlineScripts reports whether scripts may run on an event loop: on a node whose commands all
// run here, from memory (no router, no store that crosses the network or the disk), a script
// never waits for anything but the gate, which the loop's own clients do not hold while it
// runs. The loop's other clients then wait for the script, as Redis's do.
func (n *Node) inlineScripts() bool { return n.router == nil && n.gate != nil && n.pipe == nil }

// runScript runs s here, isolated already.
func (n *Node) runScript(c *Ctx, s *script.Script, keys, argv [][]byte, readOnly bool) resp.Reply {
	if s == nil {
		return errorReply(errNoScript)
	}
	n.scripts.mu.Lock()
	sc := &n.scripts.calls
	if n.scripts.run != nil { // not expected: the gate runs one script at a time
		sc = &scriptCalls{run: &runningScript{}}
	} else if sc.run == nil {
		sc.run = &runningScript{}
	}
	sc.n, sc.c, sc.readOnly = n, c, readOnly
	sc.run.wrote.Store(false)
	sc.run.killed.Store(false)
	prev := n.scripts.run
	n.scripts.run = sc.run
	n.scripts.mu.Unlock()
	defer func() {
		n.scripts.mu.Lock()
		n.scripts.run = prev
		sc.c = nil
		n.scripts.mu.Unlock()
	}()
	eval := c.cmd // the commands the script calls set c.cmd to theirs
	reply, fresh := n.scripts.runner.Run(s, keys, argv, sc)
	// As Redis counts them: the errors the script made itself are counted now; those it passes
	// on from the commands it called were counted when they answered. Either makes the call a
	// failed one.
	for _, text := range fresh {
		n.errs.add(text)
	}
	if eval != nil && hasError(reply) {
		eval.failed.Add(1)
	}
	c.errsCounted = true
	return reply
}

// hasError reports whether r is or holds an error reply.
func hasError(r resp.Reply) bool {
	if r.Kind == resp.KindError {
		return true
	}
	for _, e := range r.Elems {
		if hasError(e) {
			return true
		}
	}
	return false
}

// evalRemote has a script run by the store's server (place "") or by the cluster member at
// place: the body goes there, as EVAL, when this node knows it.
func (n *Node) evalRemote(c *Ctx, args [][]byte, s *script.Script, keys [][]byte, readOnly bool, place string) (resp.Reply, error) {
	send := args
	switch {
	case !equalFold(args[0], "evalsha") && !equalFold(args[0], "evalsha_ro"):
	case s == nil:
		return resp.Reply{}, errNoScript
	default:
		name := "EVAL"
		if readOnly {
			name = "EVAL_RO"
		}
		send = append([][]byte{[]byte(name), []byte(s.Body())}, args[2:]...)
	}
	var writes [][]byte
	if !readOnly {
		writes = keys
	}
	return n.runElsewhere(c, place, send, writes)
}

// runElsewhere has the command args run by the store's server (place "") or by the cluster
// member at place, on a connection of its own, as a transaction sent there runs; writes are the
// keys it may change, whose near-cache copies are dropped and whose watchers are told.
func (n *Node) runElsewhere(c *Ctx, place string, args, writes [][]byte) (resp.Reply, error) {
	var tc store.TxConn
	var err error
	if place != "" {
		tc, err = n.txr.TxConn(c.Context(), place)
	} else {
		tc, err = n.remote.TxConn(c.Context())
	}
	if err != nil {
		return resp.Reply{}, err
	}
	for _, k := range writes {
		if n.near != nil {
			n.near.Invalidate(k)
		}
	}
	replies, err := tc.Do(c.Context(), [][][]byte{args}, writes)
	tc.Release(err == nil)
	for _, k := range writes {
		n.NotifyKey(k)
	}
	if err != nil {
		return resp.Reply{}, err
	}
	return replies[0], nil
}

// scriptCalls runs a script's commands (script.Caller) on this node, as EXEC runs its queued
// commands, after Redis's checks for scripts.
type scriptCalls struct {
	n        *Node
	c        *Ctx
	readOnly bool
	run      *runningScript
}

// Call implements script.Caller.
func (sc *scriptCalls) Call(args [][]byte) resp.Reply {
	n, c := sc.n, sc.c
	top := n.table.Lookup(args[0])
	if top == nil {
		return sc.refuse(nil, errScriptUnknown)
	}
	cmd := top
	if top.Subcommands != nil && (len(args) >= 2 || top.Handler == nil) {
		if cmd = n.Lookup(args); cmd == top {
			return sc.refuse(nil, errScriptUnknown)
		}
	}
	switch {
	case (cmd.Arity > 0 && len(args) != cmd.Arity) || len(args) < -cmd.Arity:
		return sc.refuse(cmd, errScriptArity)
	case noScript(cmd):
		return sc.refuse(cmd, errScriptForbidden)
	case sc.readOnly && cmd.Flags&FlagWrite != 0:
		return sc.refuse(cmd, errScriptReadOnly)
	}
	if n.txr != nil {
		if cmd.Flags&FlagClusterWide != 0 {
			return sc.refuse(cmd, "ERR "+strings.ToUpper(strings.ReplaceAll(cmd.Name, "|", " "))+
				" is not supported in scripts with topology.type = "+n.cfg.Topology+" (it acts on every member)")
		}
		if keys := commandKeys(cmd, args); len(keys) > 0 {
			if place, err := n.txr.TxPlace(keys); errors.Is(err, ErrClusterDown) {
				return sc.refuse(cmd, errScriptClusterDown)
			} else if err != nil || place != "" {
				return sc.refuse(cmd, errScriptNonLocal)
			}
		}
	}
	if cmd.Flags&FlagWrite != 0 {
		sc.run.wrote.Store(true)
	}
	was := c.inScript
	c.inScript = true
	reply := n.exec(c, top, args)
	c.inScript = was
	if reply.Later != nil {
		reply = reply.Later.Reply()
	}
	return reply
}

// Killed implements the runner's check for a SCRIPT KILL that came before the run started.
func (sc *scriptCalls) Killed() script.Error {
	if sc.run.killed.Load() {
		return script.ErrKilled
	}
	return ""
}

// refuse answers a command the script may not call (cmd; nil when there is no such command),
// counted where it is made as an error reply and as the command's rejected call, as Redis's
// scriptCall counts it.
func (sc *scriptCalls) refuse(cmd *Command, text string) resp.Reply {
	if cmd != nil {
		cmd.rejected.Add(1)
	}
	sc.n.errs.add(text)
	return resp.Error(text)
}

func (n *Node) scriptLoad(_ *Ctx, args [][]byte) (resp.Reply, error) {
	s, err := n.scripts.cache.Load(args[2])
	if err != nil {
		return resp.Reply{}, Error(err.Error())
	}
	return resp.BulkString(s.SHA), nil
}

func (n *Node) scriptExists(_ *Ctx, args [][]byte) (resp.Reply, error) {
	out := make([]resp.Reply, len(args)-2)
	for i, sha := range args[2:] {
		out[i] = resp.Bool(n.scripts.cache.Exists(string(sha)))
	}
	return resp.Array(out), nil
}

func (n *Node) scriptFlush(_ *Ctx, args [][]byte) (resp.Reply, error) {
	if len(args) > 3 || (len(args) == 3 && !equalFold(args[2], "sync") && !equalFold(args[2], "async")) {
		return resp.Reply{}, errFlushOption
	}
	n.scripts.cache.Flush()
	return resp.OK, nil
}

// scriptKill stops the script running on this node, unless it has written (as Redis, which
// would otherwise leave it half done). On the redis store scripts run in Redis: SCRIPT KILL
// goes there.
func (n *Node) scriptKill(c *Ctx, args [][]byte) (resp.Reply, error) {
	if n.gate == nil && n.remote != nil {
		return n.evalRemote(c, args, nil, nil, true, "")
	}
	n.scripts.mu.Lock()
	defer n.scripts.mu.Unlock()
	switch run := n.scripts.run; {
	case run == nil:
		return resp.Reply{}, errNotBusy
	case run.wrote.Load():
		return resp.Reply{}, errUnkillable
	default:
		run.killed.Store(true) // first: the run may not have started yet (scriptCalls.Killed)
		n.scripts.runner.Kill(script.ErrKilled)
	}
	return resp.OK, nil
}

func (n *Node) scriptHelp(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	return HelpReply("SCRIPT",
		"EXISTS <sha1> [<sha1> ...]",
		"    Return information about the existence of the scripts in the script cache.",
		"FLUSH [ASYNC|SYNC]",
		"    Flush the Lua scripts cache.",
		"KILL",
		"    Kill the currently executing Lua script.",
		"LOAD <script>",
		"    Load a script into the scripts cache without executing it."), nil
}
