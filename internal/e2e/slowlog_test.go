package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// slowlogSession is what TestSlowlogLikeRedis sends on one connection, with every command
// slow enough to log (a threshold of 0): the logged commands, then SLOWLOG's own replies,
// errors included. Every key starts with p, a hash tag, so that in a cluster all of them live
// on the member asked.
func slowlogSession(p string) [][]any {
	mset := []any{"MSET"}
	for i := range 20 {
		mset = append(mset, fmt.Sprintf("%sk%d", p, i), "v")
	}
	return [][]any{
		{"SLOWLOG", "RESET"},
		{"CLIENT", "SETNAME", "logged"},
		{"SET", p + "a", "1"},
		{"GET", p + "a"},
		{"GET", p + "missing"},
		{"INCR", p + "a"},
		{"SET", p + "big", strings.Repeat("v", 300)},
		{"SET", p + "bin", "\x00\xff\r\n"},
		mset, // 41 arguments: the entry keeps 31 and says how many more there were
		{"MULTI"}, {"SET", p + "b", "2"}, {"INCR", p + "b"}, {"EXEC"},
		{"EVAL", "redis.call('SET', KEYS[2], '1') return redis.call('GET', KEYS[1])", "2", p + "a", p + "x"},
		{"AUTH", "secret"},
		{"AUTH", "user", "secret"},
		{"HELLO", "2", "AUTH", "default", "secret"},
		{"HELLO", "2", "SETNAME", "renamed"},
		{"NOSUCHCOMMAND"}, // refused before it ran: not logged
		{"GET"},           // likewise
		{"SLOWLOG", "LEN"},
		{"SLOWLOG", "GET", "2"},
		{"SLOWLOG", "GET", "-2"},
		{"SLOWLOG", "GET", "x"},
		{"SLOWLOG", "GET", "+5"},
		{"SLOWLOG", "GET", " 5"},
		{"SLOWLOG", "GET", "1", "2"},
		{"SLOWLOG", "foo"},
		{"SLOWLOG"},
		{"SLOWLOG", "LEN", "x"},
		{"SLOWLOG", "HELP"},
	}
}

// TestSlowlogLikeRedis sends the same session to a real redis-server and to Vela, both logging
// every command, and compares the replies and then the whole log entry by entry: which commands
// are logged (each one EXEC and a script ran, not EXEC itself nor a command refused before it
// ran), their arguments as Redis shortens and redacts them (the 128-byte cut of a long value,
// the "more arguments" of a command of over 32, AUTH's and HELLO's secrets), the client's
// address and name, ids one apart. The times are only checked to be recent and the durations
// to be non-negative. Run on the memory store and on a member of a partitioned cluster, on
// keys it owns (commands routed there are timed whole, through the router).
func TestSlowlogLikeRedis(t *testing.T) {
	run := func(t *testing.T, addr, prefix string) (session [][]any, replies, log []respclient.Value, local string) {
		c := respclient.Dial(t, addr)
		defer c.Close()
		session = slowlogSession(prefix)
		for _, cmd := range session {
			replies = append(replies, c.Do(cmd...).Value)
		}
		all := c.Do("SLOWLOG", "GET", "-1").Value
		return session, replies, all.Elems, c.NetConn().LocalAddr().String()
	}
	redis := redistest.Start(t, "--slowlog-log-slower-than", "0", "--slowlog-max-len", "1000")

	for _, setup := range []string{"memory", "partitioned"} {
		t.Run(setup, func(t *testing.T) {
			prefix := "{t}"
			var addr string
			if setup == "memory" {
				cfg := testnode.Config()
				cfg.SlowlogLogSlowerThan, cfg.SlowlogMaxLen = 0, 1000
				addr = testnode.Start(t, cfg).Addr()
			} else {
				nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) {
					cfg.SlowlogLogSlowerThan, cfg.SlowlogMaxLen = 0, 1000
				})
				testnode.WaitConverged(t, 10*time.Second, nodes...)
				addr = nodes[0].Addr()
				c := respclient.Dial(t, addr)
				for i := 0; ; i++ {
					prefix = fmt.Sprintf("{t%d}", i)
					if owners := c.Do("VELA", "OWNER", prefix).Value; len(owners.Elems) > 0 && owners.Elems[0].Str == "node-1" {
						break
					}
				}
				c.Close()
			}
			session, wantReplies, wantLog, wantLocal := run(t, redis.Addr, prefix)
			_, gotReplies, gotLog, gotLocal := run(t, addr, prefix)
			for i, cmd := range session {
				w, g := wantReplies[i], gotReplies[i]
				switch {
				case cmd[0] == "SLOWLOG" && len(cmd) == 3 && cmd[1] == "GET" && cmd[2] == "2":
					w, g = respclient.Value{}, respclient.Value{} // times and ids: compared below
				case cmd[0] == "HELLO" && !w.IsError() && !g.IsError():
					w.Elems[7].Int, g.Elems[7].Int = 0, 0 // the client's id
				}
				if fmt.Sprint(w) != fmt.Sprint(g) {
					t.Errorf("%v:\n redis: %v\n  vela: %v", cmd, w, g)
				}
			}
			if len(gotLog) != len(wantLog) {
				t.Fatalf("the log has %d entries, Redis's %d:\n redis: %v\n  vela: %v",
					len(gotLog), len(wantLog), entriesText(wantLog), entriesText(gotLog))
			}
			now := time.Now().Unix()
			for i := range wantLog {
				w, g := wantLog[i].Elems, gotLog[i].Elems
				if len(g) != 6 {
					t.Fatalf("entry %d has %d fields: %v", i, len(g), g)
				}
				if i > 0 && g[0].Int != gotLog[i-1].Elems[0].Int-1 {
					t.Errorf("entry %d: id %d after %d", i, g[0].Int, gotLog[i-1].Elems[0].Int)
				}
				if g[1].Int < now-5 || g[1].Int > now+1 || g[2].Int < 0 {
					t.Errorf("entry %d: time %d (now %d), duration %d µs", i, g[1].Int, now, g[2].Int)
				}
				wClient, gClient := w[4].Str, g[4].Str
				if wClient == wantLocal {
					wClient = "this client"
				}
				if gClient == gotLocal {
					gClient = "this client"
				}
				if fmt.Sprint(w[3]) != fmt.Sprint(g[3]) || wClient != gClient || w[5].Str != g[5].Str {
					t.Errorf("entry %d:\n redis: %v %s %q\n  vela: %v %s %q", i, w[3], wClient, w[5].Str, g[3], gClient, g[5].Str)
				}
			}
		})
	}
}

// entriesText lists a slow log's commands, one per line, for a failure message.
func entriesText(entries []respclient.Value) string {
	var b strings.Builder
	for _, e := range entries {
		if len(e.Elems) > 3 {
			b.WriteString("\n    ")
			b.WriteString(fmt.Sprint(e.Elems[3]))
		}
	}
	return b.String()
}
