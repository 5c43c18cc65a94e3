package script

import (
	"context"
	"log/slog"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Version is what redis.REDIS_VERSION says: the Redis whose behaviour Vela matches.
const (
	Version    = "7.0.15"
	versionNum = 7<<16 | 0<<8 | 15
)

// Log levels and replication flags, with Redis's values.
const (
	logDebug = iota
	logVerbose
	logNotice
	logWarning
)

const (
	replNone    = 0
	replAOF     = 1
	replReplica = 2
	replAll     = replAOF | replReplica
)

// redisLib builds the redis table scripts call.
func (st *state) redisLib() *lua.LTable {
	L := st.L
	t := L.NewTable()
	fns := map[string]lua.LGFunction{
		"call":               func(L *lua.LState) int { return st.call(L, true) },
		"pcall":              func(L *lua.LState) int { return st.call(L, false) },
		"sha1hex":            sha1hexLua,
		"error_reply":        func(L *lua.LState) int { return replyTable(L, "err") },
		"status_reply":       func(L *lua.LState) int { return replyTable(L, "ok") },
		"log":                st.logLua,
		"setresp":            setresp,
		"set_repl":           setRepl,
		"replicate_commands": func(L *lua.LState) int { L.Push(lua.LTrue); return 1 },
		"breakpoint":         func(L *lua.LState) int { L.Push(lua.LFalse); return 1 },
		"debug":              func(L *lua.LState) int { return 0 },
	}
	for name, fn := range fns {
		t.RawSetString(name, L.NewFunction(fn))
	}
	for name, v := range map[string]int{
		"LOG_DEBUG": logDebug, "LOG_VERBOSE": logVerbose, "LOG_NOTICE": logNotice, "LOG_WARNING": logWarning,
		"REPL_NONE": replNone, "REPL_AOF": replAOF, "REPL_SLAVE": replReplica, "REPL_REPLICA": replReplica, "REPL_ALL": replAll,
		"REDIS_VERSION_NUM": versionNum,
	} {
		t.RawSetString(name, lua.LNumber(v))
	}
	t.RawSetString("REDIS_VERSION", lua.LString(Version))
	return t
}

// raise raises Redis's error table for msg (an "ERR …" text): the script's error handler adds
// where it happened.
func raise(L *lua.LState, msg string) {
	t := L.NewTable()
	t.RawSetString("err", lua.LString(msg))
	L.Error(t, 0)
}

// maxKeptCallBuf is the largest argument buffer a state keeps for its next redis.call: one that
// grew past it for a large value is let go.
const maxKeptCallBuf = 64 << 10

// call is redis.call (raising errors) and redis.pcall (returning them as {err=…} tables).
func (st *state) call(L *lua.LState, raising bool) int {
	fail := func(msg string) int {
		if raising {
			raise(L, msg)
		}
		t := L.NewTable()
		t.RawSetString("err", lua.LString(msg))
		L.Push(t)
		return 1
	}
	n := L.GetTop()
	if n == 0 {
		return fail("ERR Please specify at least one argument for this redis lib call")
	}
	// The arguments are copied into one buffer the state reuses (commands copy what they
	// keep, as they do from a connection's read buffer), and sliced once it has stopped
	// growing.
	buf, ends := st.callBuf[:0], st.callEnds[:0]
	if buf == nil {
		buf = make([]byte, 0, 256) // never nil: an empty argument is an empty string, not none
	}
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case lua.LString:
			buf = append(buf, v...)
		case lua.LNumber:
			buf = strconv.AppendFloat(buf, float64(v), 'g', 17, 64)
		default:
			return fail("ERR Lua redis lib command arguments must be strings or integers")
		}
		ends = append(ends, len(buf))
	}
	args, start := st.callArgs[:0], 0
	for _, end := range ends {
		args = append(args, buf[start:end:end])
		start = end
	}
	if cap(buf) <= maxKeptCallBuf {
		st.callBuf, st.callEnds, st.callArgs = buf[:0], ends[:0], args[:0]
	}
	if st.caller == nil {
		return fail("ERR redis.call is not available outside a script's run")
	}
	if err := L.Context(); err != nil && err.Err() != nil {
		L.RaiseError("%s", err.Err().Error()) // stopped: do not start another command
	}
	reply := st.caller.Call(args)
	if reply.IsError() {
		// The command's error, counted where it was answered: the table is remembered so that
		// the script's reply, if it is this error, is not counted again.
		t := L.NewTable()
		t.RawSetString("err", lua.LString(reply.Str))
		st.called[t] = struct{}{}
		if raising {
			L.Error(t, 0)
		}
		L.Push(t)
		return 1
	}
	L.Push(toLua(L, reply))
	return 1
}

func sha1hexLua(L *lua.LState) int {
	if L.GetTop() != 1 {
		L.RaiseError("wrong number of arguments")
	}
	L.Push(lua.LString(SHA1Hex([]byte(L.ToString(1)))))
	return 1
}

// replyTable is redis.error_reply and redis.status_reply: a table with the string under field.
// An error's text gets an error code as Redis gives it one: its first word when it starts with
// a dash ("-NOPE no"), else ERR.
func replyTable(L *lua.LState, field string) int {
	if L.GetTop() != 1 || L.Get(1).Type() != lua.LTString {
		L.RaiseError("wrong number or type of arguments")
	}
	s := L.ToString(1)
	if field == "err" {
		s = errorCode(s)
	}
	t := L.NewTable()
	t.RawSetString(field, lua.LString(s))
	L.Push(t)
	return 1
}

// errorCode turns an error_reply argument into Redis's "CODE message" form.
func errorCode(s string) string {
	s = "-" + strings.TrimPrefix(s, "-")
	code, msg, found := strings.Cut(s[1:], " ")
	if !found {
		code, msg = "ERR", s[1:]
	}
	return code + " " + strings.Trim(msg, "\r\n")
}

// logLua is redis.log(level, message…): the arguments joined by spaces, at the level.
func (st *state) logLua(L *lua.LState) int {
	n := L.GetTop()
	if n < 2 {
		L.RaiseError("redis.log() requires two arguments or more.")
	}
	level, ok := L.Get(1).(lua.LNumber)
	if !ok {
		L.RaiseError("First argument must be a number (log level).")
	}
	if level < logDebug || level > logWarning {
		L.RaiseError("Invalid debug level.")
	}
	if st.log == nil {
		return 0
	}
	parts := make([]string, 0, n-1)
	for i := 2; i <= n; i++ {
		parts = append(parts, L.ToString(i))
	}
	lv := map[lua.LNumber]slog.Level{logDebug: slog.LevelDebug, logVerbose: slog.LevelDebug, logNotice: slog.LevelInfo, logWarning: slog.LevelWarn}[level]
	st.log.Log(context.Background(), lv, "script", "message", strings.Join(parts, " "))
	return 0
}

// setresp is redis.setresp: scripts here speak RESP2 only.
func setresp(L *lua.LState) int {
	if L.GetTop() != 1 {
		L.RaiseError("redis.setresp() requires one argument.")
	}
	switch L.CheckInt(1) {
	case 2:
		return 0
	case 3:
		L.RaiseError("RESP3 replies inside scripts are not supported by Vela (redis.setresp(3))")
	}
	L.RaiseError("RESP version must be 2 or 3.")
	return 0
}

// setRepl is redis.set_repl: accepted and ignored, since Vela passes on a script's effects,
// never the script.
func setRepl(L *lua.LState) int {
	if L.GetTop() != 1 {
		L.RaiseError("redis.set_repl() requires one argument.")
	}
	if f := L.CheckInt(1); f&^replAll != 0 {
		L.RaiseError("Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.")
	}
	return 0
}
