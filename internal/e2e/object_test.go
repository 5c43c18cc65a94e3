package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// objectStep is one command of objectSession; idle marks OBJECT IDLETIME, whose answer is a
// small integer that a second boundary between two commands may move, so only its kind is
// compared (and a store that keeps no access times skips it).
type objectStep struct {
	args []any
	idle bool
}

// objectSession writes keys with every command that decides how Redis holds a value, then asks
// OBJECT about each, with its argument errors and HELP.
func objectSession() []objectStep {
	var steps []objectStep
	add := func(args ...any) { steps = append(steps, objectStep{args: args}) }
	writes := [][]any{
		{"SET", "o:small", "123"}, {"SET", "o:large", "99999"}, {"SET", "o:neg", "-7"},
		{"SET", "o:overflow", "12345678901234567890"}, {"SET", "o:zero", "0123"},
		{"SET", "o:emb", strings.Repeat("e", 44)}, {"SET", "o:raw", strings.Repeat("r", 45)},
		{"MSET", "o:m1", "5", "o:m2", "five"}, {"MSETNX", "o:{m}3", "6", "o:{m}4", "six"},
		{"SETNX", "o:nx", "77"}, {"SETEX", "o:ex", "100", "88"}, {"PSETEX", "o:px", "100000", "x"},
		{"GETSET", "o:gs", "9"}, {"SET", "o:get", "10", "GET"}, {"SET", "o:keep", "11", "EX", "100"},
		{"SET", "o:keep", "12", "KEEPTTL"}, {"INCR", "o:incr"}, {"INCRBY", "o:incrby", "20000"},
		{"DECRBY", "o:incrby", "19999"}, {"INCRBYFLOAT", "o:float", "1.5"},
		{"INCRBYFLOAT", "o:float", "1.5"}, {"INCRBYFLOAT", "o:bigfloat", "1e50"},
		{"APPEND", "o:newappend", "42"}, {"SET", "o:append", "4"}, {"APPEND", "o:append", "2"},
		{"SET", "o:emptyappend", ""}, {"APPEND", "o:emptyappend", ""},
		{"SETRANGE", "o:newrange", "3", "ab"}, {"SET", "o:range", "5"}, {"SETRANGE", "o:range", "0", ""},
		{"SET", "o:range2", "5"}, {"SETRANGE", "o:range2", "0", "6"},
		{"EXPIRE", "o:range2", "100"}, {"PERSIST", "o:range2"}, {"GETEX", "o:append", "EX", "100"},
		{"SET", "o:tagged", "13", "TAGS", "t1"},
	}
	keys := map[string]bool{}
	var order []string
	for _, w := range writes {
		if w[0] == "SET" && len(w) > 3 && w[3] == "TAGS" {
			continue // Vela's own option; Redis would refuse it
		}
		add(w...)
		for i, a := range w {
			if s, ok := a.(string); ok && strings.HasPrefix(s, "o:") && (i == 1 || w[0] == "MSET" || w[0] == "MSETNX") && !keys[s] {
				keys[s] = true
				order = append(order, s)
			}
		}
	}
	for _, k := range append(order, "o:missing") {
		add("OBJECT", "ENCODING", k)
		add("OBJECT", "refcount", k)
		add("OBJECT", "FREQ", k)
		steps = append(steps, objectStep{args: []any{"OBJECT", "IDLETIME", k}, idle: true})
	}
	for _, form := range [][]any{
		{"OBJECT"}, {"OBJECT", "ENCODING"}, {"OBJECT", "ENCODING", "a", "b"}, {"OBJECT", "HELP"},
		{"OBJECT", "help", "x"}, {"OBJECT", "NOSUCH", "o:small"}, {"OBJECT", "Freq"},
	} {
		add(form...)
	}
	return steps
}

// TestObjectLikeRedis sends objectSession to Redis and to Vela on every store and through a
// member of a partitioned and of a replicated cluster (where OBJECT runs on the key's owner, or
// reads this member's copy), and requires the same replies. The disk store keeps no access
// times: there IDLETIME is refused, and left out.
func TestObjectLikeRedis(t *testing.T) {
	want := respclient.Dial(t, redistest.Start(t).Addr)
	session := objectSession()
	var wantReplies []respclient.Value
	for _, st := range session {
		wantReplies = append(wantReplies, want.Do(st.args...).Value)
	}
	run := func(t *testing.T, addr string, skipIdle bool) {
		c := respclient.Dial(t, addr)
		defer c.Close()
		c.Do("SET", "o:tagged", "13", "TAGS", "t1").OK()
		for i, st := range session {
			got := c.Do(st.args...).Value
			w := wantReplies[i]
			switch {
			case st.idle && skipIdle:
			case st.idle:
				if w.Type != got.Type || w.Null != got.Null || (got.Type == ':' && got.Int > 1) {
					t.Errorf("%v:\n redis: %v\n  vela: %v", st.args, w, got)
				}
			case fmt.Sprint(w) != fmt.Sprint(got):
				t.Errorf("%v:\n redis: %v\n  vela: %v", st.args, w, got)
			}
		}
		c.Do("OBJECT", "ENCODING", "o:tagged").Bulk("int")
		c.Do("OBJECT", "REFCOUNT", "o:tagged").Int(2147483647)
	}
	for _, store := range []string{"memory", "memory-goroutines", "disk", "redis"} {
		t.Run(store, func(t *testing.T) {
			run(t, testnode.Start(t, scriptStoreConfig(t, store)).Addr(), store == "disk")
		})
	}
	t.Run("partitioned", func(t *testing.T) {
		nodes := testnode.StartCluster(t, 3, nil)
		testnode.WaitConverged(t, 10*time.Second, nodes...)
		run(t, nodes[0].Addr(), false)
	})
	t.Run("replicated", func(t *testing.T) {
		nodes := testnode.StartReplicated(t, 3, nil)
		testnode.WaitReplicated(t, 10*time.Second, nodes...)
		run(t, nodes[1].Addr(), false)
	})
}

// TestObjectIdleTime checks that the idle time counts whole seconds since the key was last read
// or written, under ttl_only (the node's idle clock) and lru (the store's clock): commands that
// only look at a key (EXISTS, TTL, TYPE, OBJECT) leave it, a GET resets it.
func TestObjectIdleTime(t *testing.T) {
	for _, policy := range []string{"ttl_only", "lru"} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			cfg := testnode.Config()
			cfg.EvictionPolicy = policy
			if policy == "lru" {
				cfg.MaxSize = 1000
			}
			c := respclient.Dial(t, testnode.Start(t, cfg).Addr())
			c.Do("SET", "k", "value").OK()
			c.Do("OBJECT", "IDLETIME", "k").IntBetween(0, 1)
			time.Sleep(2200 * time.Millisecond)
			c.Do("EXISTS", "k").Int(1)
			c.Do("TTL", "k").Int(-1)
			c.Do("TYPE", "k").Status("string")
			c.Do("OBJECT", "ENCODING", "k").Bulk("embstr")
			c.Do("OBJECT", "IDLETIME", "k").IntBetween(2, 3)
			c.Do("GET", "k").Bulk("value")
			c.Do("OBJECT", "IDLETIME", "k").IntBetween(0, 1)
		})
	}
}

// TestObjectFreqLikeRedis runs Vela under lfu with a memory bound beside Redis under
// allkeys-lfu with one, and compares: a new key's counter, its rise on the first reads, IDLETIME
// refused, and small integers no longer shared.
func TestObjectFreqLikeRedis(t *testing.T) {
	want := respclient.Dial(t, redistest.Start(t, "--maxmemory-policy", "allkeys-lfu", "--maxmemory", "100mb").Addr)
	cfg := testnode.Config()
	cfg.EvictionPolicy, cfg.MaxMemory = "lfu", 100<<20
	got := respclient.Dial(t, testnode.Start(t, cfg).Addr())
	sameReplies(t, want, got, [][]any{
		{"SET", "k", "value"}, {"OBJECT", "FREQ", "k"}, {"GET", "k"}, {"OBJECT", "FREQ", "k"},
		{"EXISTS", "k"}, {"OBJECT", "FREQ", "k"}, {"OBJECT", "IDLETIME", "k"}, {"OBJECT", "IDLETIME", "nokey"},
		{"OBJECT", "FREQ", "nokey"}, {"SET", "n", "5"}, {"OBJECT", "REFCOUNT", "n"}, {"OBJECT", "ENCODING", "n"},
		{"INCR", "n"}, {"OBJECT", "REFCOUNT", "n"},
	})
}

// TestRestoreSetsAccessLikeRedis: RESTORE's IDLETIME sets the key's idle time (ttl_only and
// lru, against Redis under noeviction and allkeys-lru) and FREQ its LFU counter (lfu, against
// Redis under allkeys-lfu); under an LFU policy IDLETIME changes nothing, and under the others
// FREQ does not, as in Redis.
func TestRestoreSetsAccessLikeRedis(t *testing.T) {
	for _, tc := range []struct{ vela, redis string }{
		{"ttl_only", "noeviction"}, {"lru", "allkeys-lru"}, {"lfu", "allkeys-lfu"},
	} {
		t.Run(tc.vela, func(t *testing.T) {
			want := respclient.Dial(t, redistest.Start(t, "--maxmemory-policy", tc.redis, "--maxmemory", "100mb").Addr)
			cfg := testnode.Config()
			cfg.EvictionPolicy = tc.vela
			if tc.vela != "ttl_only" {
				cfg.MaxMemory = 100 << 20
			}
			got := respclient.Dial(t, testnode.Start(t, cfg).Addr())
			want.Do("SET", "src", "value").OK()
			payload := want.Do("DUMP", "src").Value
			for _, c := range []*respclient.Conn{want, got} {
				c.Do("RESTORE", "idle", "0", payload.Text(), "IDLETIME", "86400").OK()
				c.Do("RESTORE", "freq", "0", payload.Text(), "FREQ", "100").OK()
				c.Do("RESTORE", "plain", "0", payload.Text()).OK()
			}
			if tc.vela == "lfu" {
				sameReplies(t, want, got, [][]any{{"OBJECT", "FREQ", "freq"}, {"OBJECT", "FREQ", "idle"}, {"OBJECT", "FREQ", "plain"}})
				return
			}
			for _, c := range []*respclient.Conn{want, got} {
				c.Do("OBJECT", "IDLETIME", "idle").IntBetween(86400, 86401)
				c.Do("OBJECT", "IDLETIME", "freq").IntBetween(0, 1)
				c.Do("GET", "idle").Bulk("value")
				c.Do("OBJECT", "IDLETIME", "idle").IntBetween(0, 1)
			}
		})
	}
}
