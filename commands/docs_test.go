package commands

import (
	"strings"
	"testing"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store/memory"
)

// TestEveryCommandDocumented checks that COMMAND DOCS has something to say of every command and
// subcommand, and that the documentation captured from Redis agrees with the table on what
// dispatch uses: every entry names a command Vela serves, with the key positions the table has.
func TestEveryCommandDocumented(t *testing.T) {
	n := NewNode(memory.New(memory.Config{}), Config{}, nil, nil)
	docs := redisDocs()
	seen := map[string]bool{}
	var check func(cmd *Command)
	check = func(cmd *Command) {
		seen[cmd.Name] = true
		d, fromRedis := docs[cmd.Name]
		if !fromRedis && cmd.Summary == "" {
			t.Errorf("%s has neither Redis's documentation nor a summary", cmd.Name)
		}
		if fromRedis {
			k := cmd.infoKeys()
			keys := [3]int64{int64(k[0]), int64(k[1]), int64(k[2])}
			if got := [3]int64{d.info[1].Int, d.info[2].Int, d.info[3].Int}; got != keys {
				t.Errorf("%s: Redis gives key positions %v, the table %v", cmd.Name, got, keys)
			}
		}
		if reply := docReply(cmd); reply.Kind != resp.KindMap || len(reply.Elems) < 6 {
			t.Errorf("%s: COMMAND DOCS gives %+v", cmd.Name, reply)
		}
		for _, sub := range cmd.Subcommands {
			check(sub)
		}
	}
	for _, cmd := range n.Table().All() {
		check(cmd)
	}
	for name := range docs {
		if !seen[name] {
			t.Errorf("redisdocs.json documents %s, which Vela does not serve", name)
		}
	}
}

// TestArgReply checks the shape of a documented argument against Redis's (the order of its
// fields, flags as a set of statuses, members as an array).
func TestArgReply(t *testing.T) {
	a := Arg{Name: "tags", Type: "block", Token: "TAGS", Optional: true, Args: []Arg{{Name: "tag", Type: "string", Multiple: true}}}
	got := string(resp.Append(nil, a.reply(), 3))
	want := "%5\r\n$4\r\nname\r\n$4\r\ntags\r\n$4\r\ntype\r\n$5\r\nblock\r\n$5\r\ntoken\r\n$4\r\nTAGS\r\n" +
		"$5\r\nflags\r\n~1\r\n+optional\r\n$9\r\narguments\r\n*1\r\n" +
		"%3\r\n$4\r\nname\r\n$3\r\ntag\r\n$4\r\ntype\r\n$6\r\nstring\r\n$5\r\nflags\r\n~1\r\n+multiple\r\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// TestHelpSubcommands checks the HELP of each container command: Redis's shape (a heading, then
// statuses, HELP last) and a line for every subcommand Vela serves, so the text cannot drift
// from the table.
func TestHelpSubcommands(t *testing.T) {
	n := NewNode(memory.New(memory.Config{}), Config{}, nil, nil)
	ctx := &Ctx{Node: n}
	for _, parent := range []string{"client", "command", "config"} {
		r := n.Exec(ctx, [][]byte{[]byte(parent), []byte("help")})
		if r.Kind != resp.KindArray || len(r.Elems) < 4 {
			t.Fatalf("%s HELP = %+v", parent, r)
		}
		lines := map[string]bool{}
		for _, e := range r.Elems {
			if e.Kind != resp.KindStatus {
				t.Fatalf("%s HELP has a %v line", parent, e.Kind)
			}
			lines[strings.Fields(e.Str + " x")[0]] = true
		}
		want := strings.ToUpper(parent) + " <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
		if r.Elems[0].Str != want || r.Elems[len(r.Elems)-2].Str != "HELP" || r.Elems[len(r.Elems)-1].Str != "    Prints this help." {
			t.Errorf("%s HELP is not shaped as Redis's: %+v", parent, r.Elems)
		}
		for name := range n.Table().Lookup([]byte(parent)).Subcommands {
			if !lines[strings.ToUpper(name)] {
				t.Errorf("%s HELP does not describe %s", parent, name)
			}
		}
	}
}
