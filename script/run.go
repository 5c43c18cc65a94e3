package script

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/vela-cache/vela/resp"
)

// Caller runs the commands a script calls with redis.call and redis.pcall.
type Caller interface {
	// Call runs args, the command's name first, and returns its reply: a command refused or
	// failed answers an error reply with Redis's text.
	Call(args [][]byte) resp.Reply
}

// killedCaller is a Caller that may be told to stop its script before the runner has started
// it: Kill reaches only runs already started, and a caller that announced its run (SCRIPT KILL
// then finds a script busy) before Run started it says here that the run is to stop at once.
// Killed returns the cause, or "".
type killedCaller interface {
	Killed() Error
}

// Runner runs scripts. Its Lua states are reused from run to run (a new one costs about 100 µs);
// a script cannot change what the next one finds, since every global and library table is
// read-only, as in Redis 7. It is safe for concurrent use.
type Runner struct {
	// Log receives redis.log's messages; nil drops them.
	Log *slog.Logger

	limit  atomic.Int64 // nanoseconds; see SetLimit
	mu     sync.Mutex
	free   []*state        // the states not running a script, to reuse
	states map[*state]bool // every state made and not closed, for Kill (which stops those armed)
}

// SetLimit makes the runner stop a script that runs longer than d (0: never). Redis has no such
// stop: past its busy-reply-threshold it answers BUSY to every other client until SCRIPT KILL.
func (r *Runner) SetLimit(d time.Duration) { r.limit.Store(int64(d)) }

// ErrStopped is the reply to a script that ran longer than the runner's limit (SetLimit).
const ErrStopped = Error("ERR Script stopped after running longer than Vela's limit on a script (the writes it made are kept)")

// ErrKilled is the reply to a script stopped by SCRIPT KILL (Kill's usual cause), in Redis's
// words.
const ErrKilled = Error("ERR Script killed by user with SCRIPT KILL...")

// Run runs s with KEYS and ARGV set from keys and argv, sending its commands to c, and returns
// its reply converted as Redis converts it. No error of the script, nor a panic of the Lua
// implementation, escapes: each becomes an error reply. A script stopped (the limit, Kill) ends
// at its next instruction with the cause as its reply.
//
// fresh are the texts of the errors in the reply (the reply itself, or elements of it) that the
// script made rather than a command it called answered: redis.error_reply, {err=…}, error(),
// a stop. As in Redis, a command's error is counted once, where the command answered it, even
// when the script passes it on.
func (r *Runner) Run(s *Script, keys, argv [][]byte, c Caller) (reply resp.Reply, fresh []string) {
	st := r.get()
	broken := true
	st.arm(time.Duration(r.limit.Load()))
	if k, ok := c.(killedCaller); ok {
		if cause := k.Killed(); cause != "" {
			st.stop(cause) // a Kill that came before the run was armed
		}
	}
	defer func() {
		st.disarm()
		if p := recover(); p != nil {
			reply = resp.Error("ERR script: internal error: " + panicText(p))
			fresh = []string{reply.Str}
		}
		clear(st.called)
		st.caller = nil
		if broken {
			r.mu.Lock()
			delete(r.states, st)
			r.mu.Unlock()
			st.L.Close() // a run that did not end cleanly may have left the state in any shape
			return
		}
		r.mu.Lock()
		r.free = append(r.free, st)
		r.mu.Unlock()
	}()
	reply, fresh = st.run(s, keys, argv, c)
	broken = false
	return reply, fresh
}

// get returns a state to run a script on: a free one, or a new one. The states live as long as
// the runner: as many as scripts ever ran at once, one per node when a gate isolates them.
func (r *Runner) get() *state {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.free); n > 0 {
		st := r.free[n-1]
		r.free = r.free[:n-1]
		return st
	}
	st := newState(r.Log)
	if r.states == nil {
		r.states = map[*state]bool{}
	}
	r.states[st] = true
	return st
}

// Kill stops every script the runner is running, with cause as its reply.
func (r *Runner) Kill(cause Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for st := range r.states {
		st.stop(cause)
	}
}

// arm prepares the state's stop context for a run that may last limit (0: no limit): a context
// and a timer made once per state and reused, so that a run allocates neither.
func (st *state) arm(limit time.Duration) {
	st.stopMu.Lock()
	defer st.stopMu.Unlock()
	if st.stopCtx == nil || st.stopCtx.Err() != nil {
		st.stopCtx, st.cancel = context.WithCancelCause(context.Background())
	}
	st.armed = true
	if limit > 0 {
		if st.timer == nil {
			st.timer = time.AfterFunc(limit, func() { st.stop(ErrStopped) })
		} else {
			st.timer.Reset(limit)
		}
	}
}

// disarm ends a run: a stop arriving later (a timer that fired as the run ended) is ignored.
func (st *state) disarm() {
	st.stopMu.Lock()
	st.armed = false
	st.stopMu.Unlock()
	if st.timer != nil {
		st.timer.Stop()
	}
}

// stop stops the state's current run, if any, with cause.
func (st *state) stop(cause Error) {
	st.stopMu.Lock()
	defer st.stopMu.Unlock()
	if st.armed {
		st.cancel(cause)
	}
}

func panicText(p any) string {
	if err, ok := p.(error); ok {
		return err.Error()
	}
	if s, ok := p.(string); ok {
		return s
	}
	return "panic"
}

// run runs s on the state (Run).
func (st *state) run(s *Script, keys, argv [][]byte, c Caller) (resp.Reply, []string) {
	L, ctx := st.L, st.stopCtx
	st.caller, st.errLine = c, 0
	st.keys.set(L, st.globals, "KEYS", keys)
	st.argv.set(L, st.globals, "ARGV", argv)
	fn := L.NewFunctionFromProto(s.proto)
	fn.Env = st.env
	L.SetContext(ctx)
	defer L.RemoveContext()
	L.Push(fn)
	err := L.PCall(0, 1, st.onError)
	if err != nil {
		L.SetTop(0)
		var msg string
		var ae *lua.ApiError
		switch {
		case ctx.Err() != nil:
			msg = ctx.Err().Error()
			var reason Error
			if errors.As(context.Cause(ctx), &reason) {
				msg = string(reason) // the limit or Kill
			}
		case errors.As(err, &ae):
			msg = errorText(ae.Object)
		default:
			msg = "ERR " + err.Error()
		}
		if st.errLine > 0 {
			msg += " script: " + s.SHA + ", on @user_script:" + strconv.Itoa(st.errLine) + "."
		}
		reply := resp.Error(sanitize(msg))
		if t, ok := errObject(err).(*lua.LTable); ok && ctx.Err() == nil {
			if _, called := st.called[t]; called {
				return reply, nil
			}
		}
		return reply, []string{reply.Str}
	}
	v := L.Get(-1)
	L.SetTop(0)
	var fresh []string
	reply := st.toReply(v, 0, &fresh)
	return reply, fresh
}

// errObject is the value a script raised, or nil.
func errObject(err error) lua.LValue {
	var ae *lua.ApiError
	if errors.As(err, &ae) {
		return ae.Object
	}
	return nil
}

// errorText is the reply text of a value a script raised: a table's err field (redis.call's
// errors, error({err=…})), else "ERR " and the value as a string, as Redis's error handler
// makes it.
func errorText(v lua.LValue) string {
	if t, ok := v.(*lua.LTable); ok {
		if e, ok := t.RawGetString("err").(lua.LString); ok {
			return string(e)
		}
		return "ERR unknown error"
	}
	if v == nil || v == lua.LNil {
		return "ERR nil"
	}
	return "ERR " + lua.LVAsString(v)
}

// errorFrame is the error handler's work: it records the line of the script where the error
// was raised (the first frame of the script's own code, under the Go functions such as error
// and redis.call and the Lua of the sandbox, such as the pcall wrapper), which Redis names
// after the script's SHA.
func (st *state) errorFrame(L *lua.LState) int {
	for level := 0; level < 64; level++ {
		d, ok := L.GetStack(level)
		if !ok {
			break
		}
		if _, err := L.GetInfo("Sl", d, lua.LNil); err != nil {
			break
		}
		if d.What != "G" && d.Source == chunkName && d.CurrentLine > 0 {
			st.errLine = d.CurrentLine
			break
		}
	}
	L.Push(L.Get(1))
	return 1
}

// argTable is a state's KEYS or ARGV: one table reused from run to run, as long as each run
// leaves it as it was given (a script may change it: Redis's are ordinary tables). Reusing it
// saves a run two allocations and a write of the globals per table.
type argTable struct {
	t *lua.LTable
	n int // the entries the last run was given
}

// boxedIndex holds the Lua numbers 1…63 already boxed as values (index 0: nil, where Next
// starts), so that checking a table allocates nothing.
var boxedIndex = func() []lua.LValue {
	v := make([]lua.LValue, 64)
	v[0] = lua.LNil
	for i := 1; i < len(v); i++ {
		v[i] = lua.LNumber(i)
	}
	return v
}()

// set gives the global name of globals the strings of list, 1…len(list).
func (a *argTable) set(L *lua.LState, globals *lua.LTable, name string, list [][]byte) {
	if a.t == nil || !a.untouched() || len(list) >= len(boxedIndex) {
		a.t, a.n = L.CreateTable(len(list), 0), 0
		globals.RawSetString(name, a.t)
	}
	for i, b := range list {
		a.t.RawSetInt(i+1, lua.LString(b))
	}
	for i := len(list) + 1; i <= a.n; i++ {
		a.t.RawSetInt(i, lua.LNil)
	}
	a.n = len(list)
}

// untouched reports whether the last run left the table as it was given: no metatable and no
// entry past its n (the entries up to n are overwritten anyway).
func (a *argTable) untouched() bool {
	if a.t.Metatable != lua.LNil || a.n >= len(boxedIndex) {
		return false
	}
	k, _ := a.t.Next(boxedIndex[a.n])
	return k == lua.LNil
}
