package e2e_test

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// monitorLineRe matches one line of MONITOR's output: time, client, arguments.
var monitorLineRe = regexp.MustCompile(`^\+(\d+)\.(\d{6}) \[0 ([^\]]+)\] (.*)\r\n$`)

// monitorRecord is what runMonitor saw: each step's replies, and each monitor's stream.
type monitorRecord struct {
	steps   []string
	streams map[byte][]string
}

// runMonitor plays steps against the server at addr on connections m and n (monitors to be:
// m RESP2, n RESP3), a and c (RESP2) and b (RESP3). It records each step's replies (read up to
// the reply of a PING sent after it) and, apart, every MONITOR line each connection received,
// in order, with the time checked and dropped and the client named by its letter. Lines may
// arrive before or after the PING that ends a step (a monitor's lines are queued for it while
// it is idle), so they are gathered per connection, not per step; at the end a sends ECHO
// __end__ and each monitor's stream is read up to its line.
func runMonitor(t *testing.T, addr string, steps []trackingStep) monitorRecord {
	t.Helper()
	names := []byte("mnabc")
	conns := map[byte]*respclient.Conn{}
	who := map[string]string{"lua": "lua"}
	for _, w := range names {
		c := respclient.Dial(t, addr)
		conns[w] = c
		who[c.NetConn().LocalAddr().String()] = string(w)
	}
	conns['b'].Do("HELLO", "3")
	conns['n'].Do("HELLO", "3")
	conns['a'].Do("FLUSHALL").OK()
	rec := monitorRecord{streams: map[byte][]string{}}
	var last time.Time
	// frames reads c's frames up to the reply of PING mark (one frame when until is ""),
	// moving MONITOR lines to w's stream.
	frames := func(w byte, until string) []string {
		c := conns[w]
		if until == pubsubMark {
			c.Send("PING", pubsubMark)
			if err := c.Flush(); err != nil {
				return []string{closedMark}
			}
		}
		var got []string
		for {
			v, raw, err := c.Receive()
			if err != nil {
				return append(got, closedMark)
			}
			s := string(raw)
			if m := monitorLineRe.FindStringSubmatch(s); m != nil {
				sec, _ := strconv.ParseInt(m[1], 10, 64)
				us, _ := strconv.ParseInt(m[2], 10, 64)
				at := time.Unix(sec, us*1000)
				if at.Before(last.Add(-time.Second)) || time.Since(at) > time.Minute {
					t.Errorf("monitor line with a time out of place: %q", s)
				}
				last = at
				if strings.Contains(m[4], `"PING" "`+pubsubMark+`"`) {
					continue
				}
				line := "[" + who[m[3]] + "] " + m[4]
				rec.streams[w] = append(rec.streams[w], line)
				if until != pubsubMark && until != "" && strings.Contains(m[4], until) {
					return got
				}
				continue
			}
			if until == pubsubMark && strings.HasSuffix(s, "$8\r\n"+pubsubMark+"\r\n") {
				return got
			}
			if strings.Contains(s, " flags=") { // CLIENT LIST: the flags only
				var keep []string
				for _, l := range strings.Split(strings.TrimSpace(v.Text()), "\n") {
					for _, f := range strings.Fields(l) {
						if strings.HasPrefix(f, "flags=") {
							keep = append(keep, f)
						}
					}
				}
				slices.Sort(keep)
				s = strings.Join(keep, " ")
			}
			got = append(got, helloID.ReplaceAllString(s, "id\r\n:ID\r\n"))
			if until == "" {
				return got
			}
		}
	}
	inMulti := map[byte]bool{}
	for _, st := range steps {
		sender := conns[st.who]
		sender.Send(st.argsWith(nil)...)
		if err := sender.Flush(); err != nil {
			t.Fatal(err)
		}
		var got []string
		if inMulti[st.who] || strings.EqualFold(st.args[0], "MULTI") { // a PING would be queued
			got = frames(st.who, "")
		} else {
			got = frames(st.who, pubsubMark)
		}
		switch strings.ToUpper(st.args[0]) {
		case "MULTI":
			inMulti[st.who] = !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "-") })
		case "EXEC", "DISCARD":
			inMulti[st.who] = false
		}
		rec.steps = append(rec.steps, fmt.Sprintf("%c %q -> %q", st.who, st.args, got))
	}
	conns['a'].Do("ECHO", "__end__")
	for _, w := range []byte("mn") {
		if info := conns[w].Do("CLIENT", "INFO").Value.Text(); !regexp.MustCompile(` flags=[A-Za-z]*O`).MatchString(info) {
			continue // no longer a monitor
		}
		frames(w, "__end__")
	}
	return rec
}

// TestMonitorLikeRedis plays MONITOR sessions against Redis and Vela and compares every reply
// and each monitor's stream of lines, byte for byte but for the time (checked to be now) and
// the client's address (named by its connection): which commands are shown and in what order
// (EXEC after its commands, a script before its own, as "lua"), which are not (refused ones,
// administrative ones), argument quoting, AUTH and HELLO redaction, RESP2 and RESP3 monitors, a
// monitor's refusal of keyspace commands, MONITOR in MULTI, in scripts, in the Pub/Sub context
// and twice, and RESET ending it.
func TestMonitorLikeRedis(t *testing.T) {
	redisAddr := redistest.Start(t).Addr
	velaAddr := testnode.StartDefault(t).Addr()
	s := func(who byte, args ...string) trackingStep { return trackingStep{who, args} }
	steps := []trackingStep{
		s('a', "SET", "before", "monitor"), s('m', "MONITOR"),
		s('a', "SET", "k", "v\x00\n\"\\\t\r\a\b\x7f\xff é"), s('a', "GET", "k"), s('a', "GET", "nokey"),
		s('a', "NOSUCH", "x"), s('a', "GET"), s('a', "INCR", "k"), s('a', "SET", "n", "-12"), s('a', "INCRBY", "n", "007"),
		s('a', "AUTH", "secret"), s('a', "AUTH", "user", "pw"), s('a', "HELLO", "3", "AUTH", "default", "pw"),
		s('a', "HELLO", "2", "SETNAME", "auth"), s('a', "HELLO", "2", "AUTH", "default"), s('a', "CLIENT", "SETNAME", "x"),
		s('a', "CLIENT", "LIST"), s('a', "CONFIG", "GET", "maxmemory"), s('a', "SLOWLOG", "LEN"), s('a', "PING"),
		s('a', "ECHO", "hi"), s('a', "SELECT", "0"),
		s('a', "MULTI"), s('a', "SET", "t", "1"), s('a', "GET", "t"), s('a', "EXEC"),
		s('a', "MULTI"), s('a', "SET", "q"), s('a', "EXEC"), s('a', "DISCARD"),
		s('a', "EVAL", "redis.call('set',KEYS[1],'x'); return redis.call('GET',KEYS[1])", "1", "lk"),
		s('a', "EVAL", "return redis.pcall('nosuch')", "0"), s('a', "EVAL", "return redis.pcall('get')", "0"),
		s('a', "EVALSHA", "0000000000000000000000000000000000000000", "0"), s('a', "EVAL", "return 1", "-1"),
		s('a', "EVAL_RO", "return redis.call('get','a')", "1", "a"), s('a', "SCRIPT", "LOAD", "return 2"),
		s('a', "EVALSHA", "7f923f79fe76194c868d7e1d0820de36700eb649", "0"),
		s('a', "EVAL", "return redis.call('monitor')", "0"),
		s('a', "MULTI"), s('a', "INCR", "c"), s('a', "EVAL", "return redis.call('ping')", "0"), s('a', "EXEC"),
		s('a', "WATCH", "k"), s('a', "UNWATCH"), s('a', "MSET", "x", "1", "y", "2"), s('a', "DEL", "x", "y", "z"),
		s('b', "SET", "x", "1"), s('b', "SUBSCRIBE", "ch"), s('b', "PING"), s('b', "UNSUBSCRIBE"), s('a', "PUBLISH", "ch", "m"),
		s('n', "MONITOR"), s('b', "SET", "y", "2"),
		s('m', "GET", "k"), s('m', "SET", "k", "v"), s('m', "PUBLISH", "ch", "x"), s('m', "EVAL", "return 1", "0"),
		s('m', "DBSIZE"), s('m', "KEYS", "*"), s('m', "SCAN", "0"), s('m', "FLUSHALL"), s('m', "EXISTS", "k"),
		s('m', "PING"), s('m', "ECHO", "e"), s('m', "CLIENT", "LIST"),
		s('m', "MONITOR"), s('m', "MULTI"), s('m', "MONITOR"), s('m', "PING"), s('m', "EXEC"),
		s('m', "MULTI"), s('m', "GET", "k"), s('m', "EXEC"),
		s('c', "SUBSCRIBE", "z"), s('c', "MONITOR"), s('c', "UNSUBSCRIBE"),
		s('m', "SUBSCRIBE", "z"), s('m', "UNSUBSCRIBE"), s('n', "SUBSCRIBE", "z"), s('n', "GET", "k"),
		s('m', "RESET"), s('a', "SET", "after", "reset"), s('m', "GET", "after"), s('n', "UNSUBSCRIBE"),
	}
	want, got := runMonitor(t, redisAddr, steps), runMonitor(t, velaAddr, steps)
	for i := range want.steps {
		if want.steps[i] != got.steps[i] {
			t.Errorf("step %d:\n redis: %s\n  vela: %s", i, want.steps[i], got.steps[i])
		}
	}
	for _, w := range []byte("mnabc") {
		if !slices.Equal(want.streams[w], got.streams[w]) {
			t.Errorf("%c's MONITOR lines:\n redis: %q\n  vela: %q", w, want.streams[w], got.streams[w])
		}
	}
	if len(want.streams['m']) < 40 || len(want.streams['n']) < 10 {
		t.Errorf("too few MONITOR lines from Redis to compare: %d and %d", len(want.streams['m']), len(want.streams['n']))
	}
}

// TestMonitorInCluster: in a partitioned cluster each member's MONITOR shows what that member
// runs: the node a client talks to shows the client's commands, and a key's owner shows the
// commands forwarded to it, once, from its peer's address; the VELA commands members send each
// other are never shown.
func TestMonitorInCluster(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	var mons []*respclient.Conn
	for _, n := range nodes {
		m := respclient.Dial(t, n.Addr())
		m.Do("MONITOR").OK()
		mons = append(mons, m)
	}
	client := respclient.Dial(t, nodes[0].Addr())
	const keys = 30
	for i := range keys {
		client.Send("SET", fmt.Sprint("mk:", i), "v")
	}
	if err := client.Flush(); err != nil {
		t.Fatal(err)
	}
	for range keys {
		if _, _, err := client.Receive(); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{} // key -> lines on members other than the client's
	for i, n := range nodes {
		respclient.Dial(t, n.Addr()).Do("ECHO", "__end__")
		for {
			_, raw, err := mons[i].Receive()
			if err != nil {
				t.Fatalf("member %d's monitor: %v", i, err)
			}
			m := monitorLineRe.FindStringSubmatch(string(raw))
			if m == nil {
				t.Fatalf("member %d's monitor got %q", i, raw)
			}
			if strings.Contains(strings.ToUpper(m[4]), `"VELA"`) {
				t.Errorf("member %d showed a peer command: %q", i, raw)
			}
			if strings.Contains(m[4], "__end__") {
				break
			}
			var key string
			if _, err := fmt.Sscanf(m[4], `"SET" %q "v"`, &key); err != nil {
				continue
			}
			if i == 0 {
				seen["client:"+key]++
			} else {
				seen[key]++
			}
		}
	}
	forwarded := 0
	for i := range keys {
		key := fmt.Sprint("mk:", i)
		if seen["client:"+key] != 1 {
			t.Errorf("the client's member showed SET %s %d times, want 1", key, seen["client:"+key])
		}
		local := nodes[0].Cluster().Owner([]byte(key)) == nodes[0].Cluster().Name()
		switch {
		case local && seen[key] != 0:
			t.Errorf("SET %s, owned by the client's member, shown %d times elsewhere", key, seen[key])
		case !local && seen[key] != 1:
			t.Errorf("SET %s, forwarded to its owner, shown %d times there, want 1", key, seen[key])
		case !local:
			forwarded++
		}
	}
	if forwarded == 0 {
		t.Error("no key was forwarded: the test shows nothing")
	}
}
