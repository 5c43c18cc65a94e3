package script

import (
	"strings"

	lua "github.com/yuin/gopher-lua"

	"github.com/vela-cache/vela/resp"
)

// maxDepth bounds the nesting of a table a script returns: a table that contains itself would
// otherwise never end. Redis stops deeper, where Lua's C stack runs out; clients and tools stop
// parsing much earlier (Vela's test client at 64 levels).
const maxDepth = 60

// toLua converts a command's reply into the Lua value a script sees, as Redis does in RESP2:
// integers become numbers, bulk strings strings, nulls false, a status {ok=…}, an error
// {err=…}, arrays tables (a map is its flat array of keys and values, a double its string).
func toLua(L *lua.LState, r resp.Reply) lua.LValue {
	switch r.Kind {
	case resp.KindInt:
		return lua.LNumber(r.Int)
	case resp.KindBulk, resp.KindVerbatim:
		if r.Bytes != nil {
			return lua.LString(r.Bytes)
		}
		return lua.LString(r.Str)
	case resp.KindNil, resp.KindNilArray:
		return lua.LFalse
	case resp.KindStatus:
		t := L.CreateTable(0, 1)
		t.RawSetString("ok", lua.LString(r.Str))
		return t
	case resp.KindError:
		t := L.CreateTable(0, 1)
		t.RawSetString("err", lua.LString(r.Str))
		return t
	case resp.KindDouble:
		return lua.LString(resp.AppendFloat(nil, r.Float))
	case resp.KindArray, resp.KindSet, resp.KindPush, resp.KindMap:
		t := L.CreateTable(len(r.Elems), 0)
		for _, e := range r.Elems {
			t.Append(toLua(L, e))
		}
		return t
	}
	return lua.LFalse
}

// toReply converts what a script returned into its reply, as Redis does: a string is a bulk
// string, a number an integer (truncated), true 1, false and nil a null, a table with an err or
// ok string an error or a status, any other table an array of its elements up to the first nil.
// The texts of the errors it makes that no called command answered (st.called) are added to
// *fresh: the caller counts them as Redis counts its error replies.
func (st *state) toReply(v lua.LValue, depth int, fresh *[]string) resp.Reply {
	switch v := v.(type) {
	case lua.LString:
		return resp.BulkString(string(v))
	case lua.LNumber:
		return resp.Int(int64(v))
	case lua.LBool:
		if v {
			return resp.One
		}
		return resp.Nil
	case *lua.LTable:
		if depth >= maxDepth {
			*fresh = append(*fresh, errStackLimit)
			return resp.Error(errStackLimit)
		}
		if e, ok := v.RawGetString("err").(lua.LString); ok {
			text := sanitize(string(e))
			if _, called := st.called[v]; !called {
				*fresh = append(*fresh, text)
			}
			return resp.Error(text)
		}
		if s, ok := v.RawGetString("ok").(lua.LString); ok {
			return resp.Status(sanitize(string(s)))
		}
		var elems []resp.Reply
		for i := 1; ; i++ {
			e := v.RawGetInt(i)
			if e == lua.LNil {
				break
			}
			elems = append(elems, st.toReply(e, depth+1, fresh))
		}
		if elems == nil {
			elems = []resp.Reply{}
		}
		return resp.Array(elems)
	}
	return resp.Nil
}

// errStackLimit is the reply to a script's reply nested deeper than maxDepth, Redis's text.
const errStackLimit = "ERR reached lua stack limit"

// sanitize makes s a status or error text as Redis does: it ends at a NUL byte (Redis handles
// them as C strings) and its line breaks become spaces.
func sanitize(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}
