package script

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// maxString bounds a string string.rep may build, as proto_max_bulk_len bounds a client's:
// the Lua implementation would otherwise try to allocate whatever a script asks for.
const maxString = 512 << 20

// removedGlobals are the base library's functions Redis's scripts do not have (files, the
// environment, modules, output) or that gopher-lua adds.
var removedGlobals = []string{
	"dofile", "loadfile", "print", "getfenv", "setfenv", "module", "require", "newproxy",
	"_printregs", "_GOPHER_LUA_VERSION",
}

// libraries are the standard libraries scripts get, as in Redis; bit (bitlib.go) and cjson
// (cjson.go) are added. Redis also has cmsgpack and struct, which Vela does not.
var libraries = []struct {
	name string
	open lua.LGFunction
}{
	{lua.BaseLibName, lua.OpenBase},
	{lua.TabLibName, lua.OpenTable},
	{lua.StringLibName, lua.OpenString},
	{lua.MathLibName, lua.OpenMath},
	{lua.CoroutineLibName, lua.OpenCoroutine},
}

// pcallWrapper makes pcall answer an error table's err string instead of the table.
const pcallWrapper = `
local rawpcall = pcall
local function unwrap(ok, ...)
	if not ok then
		local e = ...
		if type(e) == 'table' and type(e.err) == 'string' then
			return false, e.err
		end
	end
	return ok, ...
end
pcall = function(...) return unwrap(rawpcall(...)) end
`

// state is one Lua state and what a run needs of it.
type state struct {
	L       *lua.LState
	globals *lua.LTable    // the real globals, which scripts reach only through env
	env     *lua.LTable    // the read-only view of globals that scripts run in
	onError *lua.LFunction // PCall's error handler (errorFrame)
	ro      map[*lua.LTable]bool
	log     *slog.Logger

	caller  Caller // the current run's, nil between runs
	errLine int    // the script line of the current run's error, 0: unknown
	// called are the current run's error tables made from the error replies of the commands it
	// called (redis.call raises them, redis.pcall returns them).
	called map[*lua.LTable]struct{}

	keys, argv argTable // KEYS and ARGV (run.go)
	callArgs   [][]byte // redis.call's arguments, their bytes and where each ends, reused
	callBuf    []byte   // (redislib.go)
	callEnds   []int

	// What stops a run (run.go): a cancellable context reused until it is cancelled, a timer
	// for the limit, and whether a run is in progress, under stopMu.
	stopMu  sync.Mutex
	stopCtx context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	armed   bool
}

// Lua 5.1's compatibility "arg" table, which gopher-lua builds for every call of a function
// taking "..." that does not use it (every script's chunk), costs a table and a map per run;
// Redis's scripts do not use it.
func init() { lua.CompatVarArg = false }

// newState opens a Lua state with Redis's libraries and makes its globals read-only.
func newState(log *slog.Logger) *state {
	L := lua.NewState(lua.Options{SkipOpenLibs: true, CallStackSize: 256, RegistrySize: 1024, RegistryMaxSize: 1 << 20, MinimizeStackMemory: true})
	st := &state{L: L, log: log, ro: map[*lua.LTable]bool{}, called: map[*lua.LTable]struct{}{}}
	for _, lib := range libraries {
		L.Push(L.NewFunction(lib.open))
		L.Push(lua.LString(lib.name))
		L.Call(1, 0)
	}
	st.globals = L.G.Global
	for _, name := range removedGlobals {
		st.globals.RawSetString(name, lua.LNil)
	}
	st.globals.RawSetString("rawset", L.NewFunction(st.rawset))
	if s, ok := st.globals.RawGetString("string").(*lua.LTable); ok {
		s.RawSetString("rep", L.NewFunction(strRep))
		s.RawSetString("upper", L.NewFunction(func(L *lua.LState) int { return mapBytes(L, 'a', 'z', 'A'-'a') }))
		s.RawSetString("lower", L.NewFunction(func(L *lua.LState) int { return mapBytes(L, 'A', 'Z', 'a'-'A') }))
	}
	if tbl, ok := st.globals.RawGetString("table").(*lua.LTable); ok {
		// The functions that change a table in place refuse the read-only ones.
		for _, name := range []string{"insert", "remove", "sort"} {
			if fn, ok := tbl.RawGetString(name).(*lua.LFunction); ok {
				tbl.RawSetString(name, L.NewFunction(st.refuseReadOnly(fn)))
			}
		}
	}
	st.globals.RawSetString("redis", st.redisLib())
	st.globals.RawSetString("bit", openBit(L))
	st.globals.RawSetString("cjson", openCJSON(L))
	// As in Redis, pcall gives a caught error table (redis.call's) as its err string.
	if err := L.DoString(pcallWrapper); err != nil {
		panic("script: " + err.Error()) // fixed code: a build defect
	}
	// Every library table is seen through a read-only view, and so is the string type's
	// metatable (what getmetatable("") answers).
	for _, name := range []string{"string", "table", "math", "coroutine", "redis", "bit", "cjson"} {
		if t, ok := st.globals.RawGetString(name).(*lua.LTable); ok {
			st.globals.RawSetString(name, st.readonly(t, t))
		}
	}
	if mt, ok := L.GetMetatable(lua.LString("")).(*lua.LTable); ok {
		mt.RawSetString("__index", st.globals.RawGetString("string")) // methods ("x"):len() through the view
		mt.RawSetString("__metatable", st.readonly(mt, mt))
	}
	// Reads of globals go to the real table; only a miss reaches the function that raises.
	gmt := L.NewTable()
	gmt.RawSetString("__index", L.NewFunction(st.globalMissing))
	L.SetMetatable(st.globals, gmt)
	st.env = st.readonly(st.globals, st.globals)
	st.globals.RawSetString("_G", st.env)
	st.onError = L.NewFunction(st.errorFrame)
	return st
}

// readonly returns an empty table whose reads go to index (a table or a function) and whose
// writes raise Redis's "Attempt to modify a readonly table"; its metatable cannot be read or
// replaced.
func (st *state) readonly(t *lua.LTable, index lua.LValue) *lua.LTable {
	L := st.L
	view := L.NewTable()
	mt := L.NewTable()
	mt.RawSetString("__index", index)
	mt.RawSetString("__newindex", L.NewFunction(readonlyWrite))
	mt.RawSetString("__metatable", lua.LFalse)
	L.SetMetatable(view, mt)
	st.ro[view], st.ro[t] = true, true
	return view
}

func readonlyWrite(L *lua.LState) int {
	L.RaiseError("Attempt to modify a readonly table")
	return 0
}

// globalMissing is the real globals' __index, reached when a name is not a global: an error,
// as in Redis 7.
func (st *state) globalMissing(L *lua.LState) int {
	L.RaiseError("Script attempted to access nonexistent global variable '%s'", lua.LVAsString(L.CheckAny(2)))
	return 0
}

// rawset is Lua's rawset, refused on the read-only tables.
func (st *state) rawset(L *lua.LState) int {
	t := L.CheckTable(1)
	if st.ro[t] {
		L.Error(lua.LString("Attempt to modify a readonly table"), 0) // no position, as in Redis
	}
	L.RawSet(t, L.CheckAny(2), L.CheckAny(3))
	L.Push(t)
	return 1
}

// refuseReadOnly wraps a table function that changes its first argument so that it refuses the
// read-only tables.
func (st *state) refuseReadOnly(fn *lua.LFunction) lua.LGFunction {
	return func(L *lua.LState) int {
		if t, ok := L.Get(1).(*lua.LTable); ok && st.ro[t] {
			L.Error(lua.LString("Attempt to modify a readonly table"), 0)
		}
		top := L.GetTop()
		L.Insert(fn, 1)
		L.Call(top, lua.MultRet)
		return L.GetTop()
	}
}

// strRep is string.rep, refusing a result larger than maxString.
func strRep(L *lua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	if n <= 0 || len(s) == 0 {
		L.Push(lua.LString(""))
		return 1
	}
	if n > maxString/len(s) {
		L.RaiseError("string.rep: the result would be larger than %d bytes", maxString)
	}
	L.Push(lua.LString(strings.Repeat(s, n)))
	return 1
}

// mapBytes is string.upper and string.lower as C's toupper and tolower do them in the C locale:
// byte by byte, ASCII letters only (gopher-lua's own treat the string as UTF-8).
func mapBytes(L *lua.LState, lo, hi byte, shift int) int {
	b := []byte(L.CheckString(1))
	for i, c := range b {
		if c >= lo && c <= hi {
			b[i] = byte(int(c) + shift)
		}
	}
	L.Push(lua.LString(b))
	return 1
}
