package e2e_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestCommandListLikeRedis: COMMAND LIST names every command and subcommand Vela serves, and
// each filter (MODULE, ACLCAT, PATTERN) selects, among the commands both servers have, exactly
// those Redis selects. Redis lists in its hash table's order and has many more commands, so the
// lists are compared as sets, Redis's cut down to Vela's. Syntax errors are compared as they
// are. (COMMAND GETKEYS and GETKEYSANDFLAGS are in the differential test's generator.)
func TestCommandListLikeRedis(t *testing.T) {
	redis := respclient.Dial(t, redistest.Start(t).Addr)
	vela := respclient.Dial(t, testnode.StartDefault(t).Addr())
	names := func(c *respclient.Conn, args ...any) []string {
		t.Helper()
		r := c.Do(append([]any{"COMMAND", "LIST"}, args...)...).Value
		var out []string
		for _, e := range r.Elems {
			out = append(out, e.Text())
		}
		slices.Sort(out)
		return out
	}
	velaAll, redisAll := names(vela), names(redis)
	// Vela's own commands, and CLIENT SETINFO, which Redis 7.2 brought (the Redis here is 7.0).
	velaOwn := []string{"fetchfill", "fetchlock", "fetchrelease", "stats", "taginvalidate", "vela", "client|setinfo"}
	own := func(name string) bool {
		return slices.Contains(velaOwn, name) || slices.Contains(velaOwn, strings.Split(name, "|")[0])
	}
	for _, name := range velaAll {
		if _, ok := slices.BinarySearch(redisAll, name); !ok && !own(name) {
			t.Errorf("Vela lists %q, which Redis does not have", name)
		}
	}
	for _, want := range []string{"get", "client", "client|id", "command|list", "config|get", "object|encoding", "fetchlock"} {
		if _, ok := slices.BinarySearch(velaAll, want); !ok {
			t.Errorf("COMMAND LIST lacks %q", want)
		}
	}
	inVela := func(list []string) []string {
		return slices.DeleteFunc(list, func(n string) bool { _, ok := slices.BinarySearch(velaAll, n); return !ok })
	}
	for _, filter := range [][]any{
		{"FILTERBY", "MODULE", "x"}, {"filterby", "aclcat", "string"}, {"FILTERBY", "ACLCAT", "STRING"},
		{"FILTERBY", "ACLCAT", "keyspace"}, {"FILTERBY", "ACLCAT", "connection"}, {"FILTERBY", "ACLCAT", "dangerous"},
		{"FILTERBY", "ACLCAT", "nosuch"}, {"FILTERBY", "ACLCAT", "@string"}, {"FILTERBY", "PATTERN", "get*"},
		{"FILTERBY", "PATTERN", "GET*"}, {"FILTERBY", "PATTERN", "client|s*"}, {"FILTERBY", "PATTERN", "*"},
		{"FILTERBY", "PATTERN", "[a-c]*"},
	} {
		want, got := inVela(names(redis, filter...)), names(vela, filter...)
		got = slices.DeleteFunc(got, own)
		if !slices.Equal(want, got) {
			t.Errorf("COMMAND LIST %v:\n redis: %v\n  vela: %v", filter, want, got)
		}
	}
	var errs [][]any
	for _, args := range [][]any{
		{"FILTERBY", "BOGUS", "x"}, {"FILTERBY", "ACLCAT"}, {"foo", "ACLCAT", "x"}, {"FILTERBY", "ACLCAT", "string", "extra"}, {"x"},
	} {
		errs = append(errs, append([]any{"COMMAND", "LIST"}, args...))
	}
	sameReplies(t, redis, vela, errs)

	// Vela's own commands have keys too; TAGINVALIDATE's arguments are tags, not keys.
	for args, want := range map[string]string{
		"FETCHLOCK k TIMEOUT 10":  "[[k [RW access update]]]",
		"FETCHRELEASE k token":    "[[k [RW access update]]]",
		"TAGINVALIDATE t":         "ERR The command has no key arguments",
		"SET k v TAGS get":        "[[k [OW update]]]",
		"SET k v GET TAGS t":      "[[k [RW access update]]]",
		"FETCHFILL k token value": "[[k [RW access update]]]",
	} {
		r := vela.Do(append([]any{"COMMAND", "GETKEYSANDFLAGS"}, toAny(strings.Fields(args))...)...).Value
		if got := replyString(r); got != want {
			t.Errorf("COMMAND GETKEYSANDFLAGS %s = %s, want %s", args, got, want)
		}
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// replyString shows a reply's strings and nesting: "[[k [RW access]]]", or an error's text.
func replyString(r respclient.Value) string {
	switch r.Type {
	case '*', '~', '%':
	default:
		return r.Text()
	}
	parts := make([]string, len(r.Elems))
	for i, e := range r.Elems {
		parts[i] = replyString(e)
	}
	return fmt.Sprintf("[%s]", strings.Join(parts, " "))
}
