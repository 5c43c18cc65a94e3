package commands_test

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store/memory"
)

// encodeArgs packs arguments as the fuzz input: each is a length byte then its bytes.
func encodeArgs(args ...string) []byte {
	var b []byte
	for _, a := range args {
		b = append(b, byte(len(a)))
		b = append(b, a...)
	}
	return b
}

func decodeArgs(data []byte) [][]byte {
	var args [][]byte
	for len(data) > 0 {
		n := int(data[0])
		data = data[1:]
		n = min(n, len(data))
		args = append(args, data[:n:n])
		data = data[n:]
	}
	return args
}

// checkReply fails t unless r encodes, in RESP2 and RESP3, to exactly one well-formed reply
// whose error text (if any) is a single line.
func checkReply(t *testing.T, args [][]byte, r resp.Reply) {
	t.Helper()
	for _, proto := range []int{2, 3} {
		raw := resp.Append(nil, r, proto)
		rd := bufio.NewReader(bytes.NewReader(raw))
		v, _, err := respclient.ReadValue(rd)
		if err != nil || rd.Buffered() != 0 {
			t.Fatalf("%q: RESP%d reply %q does not parse as one reply: %v", args, proto, raw, err)
		}
		if v.IsError() && strings.ContainsAny(v.Str, "\r\n") {
			t.Fatalf("%q: error reply %q spans lines", args, v.Str)
		}
	}
}

var fuzzSeeds = [][]string{
	{"SET", "k", "v", "EX", "10", "NX", "GET"}, {"SET", "k", "v", "KEEPTTL", "PXAT", "1"},
	{"RENAME", "k", "k2"}, {"RENAMENX", "k2", "k"}, {"COPY", "k", "c", "DB", "0", "REPLACE"}, {"MONITOR"},
	{"GETEX", "k", "PERSIST"}, {"GETEX", "k", "EXAT", "0"}, {"INCRBYFLOAT", "k", "1e308"},
	{"SETBIT", "k", "7", "1"}, {"GETBIT", "k", "7"}, {"BITCOUNT", "k", "-1", "0", "BIT"},
	{"BITPOS", "k", "0", "2", "-1", "BYTE"}, {"BITOP", "XOR", "d", "k", "a"},
	{"BITFIELD", "k", "OVERFLOW", "SAT", "INCRBY", "i64", "#3", "-9223372036854775808", "GET", "u63", "1"},
	{"INCRBY", "k", "-9223372036854775808"}, {"DECRBY", "k", "-9223372036854775808"},
	{"APPEND", "k", "\r\n\x00"}, {"MSET", "a", "1", "b"}, {"MSETNX", "a", "1", "b", "2"},
	{"EXPIRE", "k", "100", "GT", "LT"}, {"PEXPIREAT", "k", "-1", "XX"}, {"EXPIRETIME", "k"},
	{"SCAN", "-1", "MATCH", "*[", "COUNT", "0"}, {"KEYS", "\\"}, {"CLIENT", "LIST", "ID", "x"},
	{"CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", "a", "PREFIX", "ab", "REDIRECT", "1"},
	{"CLIENT", "TRACKING", "OFF", "REDIRECT", "x", "OPTIN", "OPTOUT", "NOLOOP"}, {"CLIENT", "CACHING", "YES"},
	{"WAIT", "0", "9223372036854775807"}, {"WAIT", "-1", "-1"},
	{"CLIENT", "SETNAME", "a b"}, {"HELLO", "3", "AUTH", "default", "x", "SETNAME", "n"},
	{"COMMAND", "INFO", "get", "nosuch"}, {"COMMAND", "DOCS"}, {"CONFIG", "GET", "*"},
	{"INFO", "everything"}, {"FLUSHALL", "ASYNC"}, {"SELECT", "2147483648"}, {"AUTH", "a", "b", "c"},
	{"nosuch\r\n", "a\x00b", "c\n"}, {"CLIENT", "bad\r\nsub"}, {"ECHO"}, {"PING", "a", "b"},
	{"TIME"}, {"DBSIZE"}, {"TYPE", "k"}, {"TOUCH", "k", "k"}, {"SET", "k", "v", "TAGS", "t1", "t2"},
	// The fuzz context persists between inputs, so a transaction spans them.
	{"WATCH", "k", "k"}, {"MULTI"}, {"INCR", "k"}, {"EXEC"}, {"MULTI"}, {"GET"}, {"EXEC", "x"},
	{"MULTI"}, {"DISCARD"}, {"UNWATCH"}, {"MULTI"}, {"WATCH", "a"}, {"RESET"},
	{"SETRANGE", "k", "5", "x"}, {"SETRANGE", "k", "-1", ""}, {"GETRANGE", "k", "-9223372036854775808", "-1"},
	{"SUBSTR", "k", "1", "9223372036854775807"},
	{"OBJECT", "ENCODING", "k"}, {"OBJECT", "FREQ", "k"}, {"OBJECT", "IDLETIME", "k"},
	{"OBJECT", "REFCOUNT", "k", "x"}, {"OBJECT", "HELP"}, {"CONFIG", "SET", "slowlog-max-len", "5", "a"},
	{"CONFIG", "SET", "maxclients", "0"}, {"CONFIG", "RESETSTAT"}, {"CLIENT", "KILL", "ID", "1", "SKIPME", "no"},
	{"CLIENT", "KILL", "1.2.3.4:5"}, {"CLIENT", "KILL", "TYPE", "normal", "LADDR"},
	{"LATENCY", "LATEST"}, {"LATENCY", "HISTORY", "command"}, {"LATENCY", "RESET", "a", "a"},
}

// FuzzExec runs arbitrary arguments through the command table on a memory store: no input may
// panic, and every reply must be valid RESP with single-line errors.
func FuzzExec(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(encodeArgs(s...))
	}
	st := memory.New(memory.Config{MaxValueLen: 1 << 20})
	node := commands.NewNode(st, commands.Config{MaxBulkLen: 1 << 20}, nil, nil)
	ctx := &commands.Ctx{Node: node}
	f.Fuzz(func(t *testing.T, data []byte) {
		if keys, _ := st.Usage(); keys > 10000 {
			node.Exec(ctx, [][]byte{[]byte("FLUSHALL")})
		}
		args := decodeArgs(data)
		checkReply(t, args, node.Exec(ctx, args))
	})
}

// TestExecSeeds runs the fuzz seeds as a plain test, so that a regression shows up in go test
// even without -fuzz.
func TestExecSeeds(t *testing.T) {
	node := commands.NewNode(memory.New(memory.Config{}), commands.Config{}, nil, nil)
	ctx := &commands.Ctx{Node: node}
	for _, s := range fuzzSeeds {
		args := decodeArgs(encodeArgs(s...))
		checkReply(t, args, node.Exec(ctx, args))
	}
}

var scriptSeeds = []string{
	"return 1", "return {1,2,{3,'x'},nil,5}", "return redis.call('set', KEYS[1], ARGV[1])",
	"return redis.pcall('incr', KEYS[1])", "error('x')", "error({err='E x'})", "return {err='a\\r\\nb'}",
	"return redis.error_reply('-')", "return redis.status_reply('a\\nb')", "local t = {} t[1] = t return t",
	"while true do end", "return string.rep('x', 100)", "return loadstring('return 1')()",
	"return pcall(redis.call)", "return redis.call('eval', 'return 1', '0')", "return #KEYS + #ARGV",
	"return redis.sha1hex(ARGV[1])", "redis.log(redis.LOG_WARNING, 'x')", "x = ", "return 1.5e308 * 10",
	"return cjson.encode(cjson.decode(KEYS[1]))", "return bit.tohex(tonumber(ARGV[1]) or 0, -3)",
}

// FuzzEval runs arbitrary scripts with arbitrary keys and arguments: no script may panic the
// node or leave it unable to answer, every reply must be valid RESP with single-line errors,
// and a script that never ends is stopped at the limit.
func FuzzEval(f *testing.F) {
	for _, s := range scriptSeeds {
		f.Add(s, encodeArgs("k", "v"))
	}
	f.Add("return cjson.encode(cjson.decode(KEYS[1]))", encodeArgs(`{"a":[1,2,{"b":null}],"c":"\u00e9"}`, "x"))
	st := memory.New(memory.Config{MaxValueLen: 1 << 20})
	node := commands.NewNode(st, commands.Config{MaxBulkLen: 1 << 20, ScriptLimit: 20 * time.Millisecond}, nil, nil)
	ctx := &commands.Ctx{Node: node}
	f.Fuzz(func(t *testing.T, body string, data []byte) {
		if keys, _ := st.Usage(); keys > 10000 {
			node.Exec(ctx, [][]byte{[]byte("FLUSHALL")})
		}
		extra := decodeArgs(data)
		args := append([][]byte{[]byte("EVAL"), []byte(body), []byte(strconv.Itoa(len(extra) / 2))}, extra...)
		checkReply(t, args, node.Exec(ctx, args))
		if r := node.Exec(ctx, [][]byte{[]byte("EVAL"), []byte("return 1"), []byte("0")}); r.Kind != resp.KindInt || r.Int != 1 {
			t.Fatalf("after %q, a plain script answers %+v", body, r)
		}
	})
}
