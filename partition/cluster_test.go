package partition_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
	"github.com/vela-cache/vela/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// memberlist's transport leaves a packet-listener goroutine parked on a closed channel
		// for a moment after Shutdown.
		goleak.IgnoreTopFunction("github.com/hashicorp/memberlist.(*Memberlist).packetHandler"),
	)
}

func client(t testing.TB, srv *server.Server) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 5 * time.Second, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// writeKeys sets key:0…key:n-1 to val:i through c, pipelined.
func writeKeys(t testing.TB, c *redis.Client, n int) {
	t.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += 1000 {
		p := c.Pipeline()
		for i := start; i < min(start+1000, n); i++ {
			p.Set(ctx, "key:"+strconv.Itoa(i), "val:"+strconv.Itoa(i), 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("writing keys: %v", err)
		}
	}
}

// checkKeys reads key:0…key:n-1 through c with MGET and fails on any missing or wrong value.
func checkKeys(t testing.TB, c *redis.Client, n int) {
	t.Helper()
	ctx := context.Background()
	missing := 0
	for start := 0; start < n; start += 500 {
		var keys []string
		for i := start; i < min(start+500, n); i++ {
			keys = append(keys, "key:"+strconv.Itoa(i))
		}
		vals, err := c.MGet(ctx, keys...).Result()
		if err != nil {
			t.Fatalf("MGET through %s: %v", c.Options().Addr, err)
		}
		for j, v := range vals {
			if want := "val:" + strconv.Itoa(start+j); v != want {
				if missing < 5 {
					t.Errorf("%s = %v through %s, want %s", keys[j], v, c.Options().Addr, want)
				}
				missing++
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d keys missing or wrong through %s", missing, n, c.Options().Addr)
	}
}

func localLen(t testing.TB, srv *server.Server) int64 {
	n, err := srv.Node().Store().(store.Keyspace).Len(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func dbsize(t testing.TB, c *redis.Client) int64 {
	t.Helper()
	n, err := c.DBSize(context.Background()).Result()
	if err != nil {
		t.Fatalf("DBSIZE: %v", err)
	}
	return n
}

// scanAll runs a full cluster-wide SCAN through c and returns the distinct keys.
func scanAll(t testing.TB, c *redis.Client) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	var cursor uint64
	for i := 0; ; i++ {
		keys, next, err := c.Scan(context.Background(), cursor, "key:*", 500).Result()
		if err != nil {
			t.Fatalf("SCAN: %v", err)
		}
		for _, k := range keys {
			seen[k] = true
		}
		if next == 0 {
			return seen
		}
		if uint64(float64(next)) != next {
			t.Fatalf("SCAN cursor %d is not exact as a float64 (node-redis parses it with Number)", next)
		}
		cursor = next
		if i > 100000 {
			t.Fatal("SCAN does not end")
		}
	}
}

const numKeys = 10000

func TestPartitionedCluster(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	c1 := client(t, nodes[0])
	writeKeys(t, c1, numKeys)

	t.Run("forwards leave from the event loop", func(t *testing.T) {
		// The 10,000 writes above, two thirds of them forwarded, ran on node 1's event loop,
		// which opened a connection of its own to each of the two other members.
		info := c1.Info(ctx, "vela").Val()
		if !strings.Contains(info, "cluster_loop_peer_connections:2\r\n") {
			t.Errorf("INFO vela: want cluster_loop_peer_connections:2, got\n%s", info)
		}
	})

	t.Run("keys spread and readable everywhere", func(t *testing.T) {
		for _, n := range nodes {
			if l := localLen(t, n); l < numKeys/5 || l > numKeys/2 {
				t.Errorf("%s holds %d of %d keys", n.Cluster().Name(), l, numKeys)
			}
			c := client(t, n)
			checkKeys(t, c, numKeys)
			if got := dbsize(t, c); got != numKeys {
				t.Errorf("DBSIZE through %s = %d, want %d", n.Cluster().Name(), got, numKeys)
			}
		}
		if f := nodes[0].Node().Stats().Forwards.Load(); f < numKeys/2 {
			t.Errorf("forwards = %d, want most of %d writes forwarded", f, numKeys)
		}
	})

	t.Run("single-key commands through any node", func(t *testing.T) {
		c2, c3 := client(t, nodes[1]), client(t, nodes[2])
		for i := 0; i < 50; i++ {
			k := "counter:" + strconv.Itoa(i)
			if n, err := c2.Incr(ctx, k).Result(); err != nil || n != 1 {
				t.Fatalf("INCR %s = %d, %v", k, n, err)
			}
			if n, err := c3.IncrBy(ctx, k, 5).Result(); err != nil || n != 6 {
				t.Fatalf("INCRBY %s = %d, %v", k, n, err)
			}
			if ttl, err := c1.Expire(ctx, k, time.Hour).Result(); err != nil || !ttl {
				t.Fatalf("EXPIRE %s = %v, %v", k, ttl, err)
			}
			if d, err := c2.TTL(ctx, k).Result(); err != nil || d < 59*time.Minute {
				t.Fatalf("TTL %s = %v, %v", k, d, err)
			}
		}
		if _, err := c2.Get(ctx, "missing-key").Result(); err != redis.Nil {
			t.Fatalf("GET missing: %v", err)
		}
		if err := c2.Do(ctx, "INCR", "key:1").Err(); err == nil || err.Error() != "ERR value is not an integer or out of range" {
			t.Fatalf("INCR on a string through a peer: %v", err)
		}
		if _, err := c3.Del(ctx, "counter:0", "counter:1").Result(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("hashtags keep keys together", func(t *testing.T) {
		var owner string
		for i := 0; i < 20; i++ {
			o, err := c1.Do(ctx, "VELA", "OWNER", fmt.Sprintf("{user:7}:%d", i)).StringSlice()
			if err != nil || len(o) != 1 {
				t.Fatalf("VELA OWNER = %v, %v", o, err)
			}
			if owner == "" {
				owner = o[0]
			} else if o[0] != owner {
				t.Fatalf("{user:7} keys on %s and %s", owner, o[0])
			}
		}
		if ok, err := c1.MSetNX(ctx, "{user:7}:a", "1", "{user:7}:b", "2").Result(); err != nil || !ok {
			t.Fatalf("MSETNX same tag = %v, %v", ok, err)
		}
		if ok, err := c1.MSetNX(ctx, "{user:7}:b", "x", "{user:7}:c", "3").Result(); err != nil || ok {
			t.Fatalf("MSETNX with an existing key = %v, %v", ok, err)
		}
	})

	t.Run("multi-key commands across owners", func(t *testing.T) {
		c2 := client(t, nodes[1])
		var keys []string
		owners := map[string]bool{}
		for i := 0; i < 30; i++ {
			k := "multi:" + strconv.Itoa(i)
			keys = append(keys, k)
			o, _ := c2.Do(ctx, "VELA", "OWNER", k).StringSlice()
			owners[o[0]] = true
		}
		if len(owners) != 3 {
			t.Fatalf("30 keys on %d owners", len(owners))
		}
		var pairs []any
		for i, k := range keys {
			pairs = append(pairs, k, "v"+strconv.Itoa(i))
		}
		if err := c2.MSet(ctx, pairs...).Err(); err != nil {
			t.Fatalf("MSET: %v", err)
		}
		vals, err := c2.MGet(ctx, append(keys, "multi:none")...).Result()
		if err != nil || len(vals) != 31 || vals[30] != nil {
			t.Fatalf("MGET = %v, %v", vals, err)
		}
		for i := range keys {
			if vals[i] != "v"+strconv.Itoa(i) {
				t.Fatalf("MGET[%d] = %v", i, vals[i])
			}
		}
		if n, err := c2.Exists(ctx, keys[0], keys[1], keys[0], "multi:none").Result(); err != nil || n != 3 {
			t.Fatalf("EXISTS = %d, %v", n, err)
		}
		if n, err := c2.Touch(ctx, keys...).Result(); err != nil || n != 30 {
			t.Fatalf("TOUCH = %d, %v", n, err)
		}
		if ok, err := c2.MSetNX(ctx, "multi:new1", "a", keys[5], "b").Result(); err != nil || ok {
			t.Fatalf("MSETNX over an existing key = %v, %v", ok, err)
		}
		if n, _ := c2.Exists(ctx, "multi:new1").Result(); n != 0 {
			t.Fatal("MSETNX wrote although a key existed")
		}
		if ok, err := c2.MSetNX(ctx, "multi:new1", "a", "multi:new2", "b", "multi:new3", "c").Result(); err != nil || !ok {
			t.Fatalf("MSETNX of new keys = %v, %v", ok, err)
		}
		if n, err := c2.Del(ctx, append(slices.Clone(keys[:10]), "multi:none")...).Result(); err != nil || n != 10 {
			t.Fatalf("DEL = %d, %v", n, err)
		}
		if n, err := c2.Unlink(ctx, keys[10:]...).Result(); err != nil || n != 20 {
			t.Fatalf("UNLINK = %d, %v", n, err)
		}
		if n, err := c2.Del(ctx, "multi:new1", "multi:new2", "multi:new3").Result(); err != nil || n != 3 {
			t.Fatalf("DEL new = %d, %v", n, err)
		}
	})

	t.Run("cluster-wide SCAN and KEYS", func(t *testing.T) {
		for _, n := range nodes {
			seen := scanAll(t, client(t, n))
			if len(seen) != numKeys {
				t.Fatalf("SCAN through %s saw %d keys, want %d", n.Cluster().Name(), len(seen), numKeys)
			}
		}
		keys, err := c1.Keys(ctx, "key:99*").Result()
		sort.Strings(keys)
		if err != nil || len(keys) != 111 { // key:99, key:990-999, key:9900-9999
			t.Fatalf("KEYS key:99* = %d keys, %v", len(keys), err)
		}
		if _, _, err := c1.Scan(ctx, 1<<62, "", 10).Result(); err != nil {
			t.Fatalf("SCAN with a cursor past the last member: %v", err)
		}
	})

	t.Run("introspection", func(t *testing.T) {
		nodesReply, err := c1.Do(ctx, "VELA", "NODES").Slice()
		if err != nil || len(nodesReply) != 3 {
			t.Fatalf("VELA NODES = %v, %v", nodesReply, err)
		}
		sums := map[string]bool{}
		for _, n := range nodes {
			r, err := client(t, n).Do(ctx, "VELA", "RING").Result()
			if err != nil {
				t.Fatalf("VELA RING: %v", err)
			}
			m, ok := r.(map[any]any)
			if !ok {
				t.Fatalf("VELA RING = %#v, want a map", r)
			}
			sums[m["checksum"].(string)] = true
			if m["vnodes"].(int64) <= 0 {
				t.Fatalf("VELA RING = %v", r)
			}
		}
		if len(sums) != 1 {
			t.Fatalf("rings differ between nodes: %v", sums)
		}
		if err := c1.Do(ctx, "VELA", "RESTORE", "k", "v", "0").Err(); err == nil {
			t.Fatal("a client ran a peer-only command")
		}
		if err := c1.Do(ctx, "VELA", "PEER", "wrong").Err(); err == nil {
			t.Fatal("a wrong peer token was accepted")
		}
	})

	t.Run("a mixed pipeline across owners keeps its order", func(t *testing.T) {
		// GET/SET of local and forwarded keys overlap on the event loop; INCR (not pipelined)
		// waits for the replies before it; every reply must still match its command.
		p := c1.Pipeline()
		const n = 300
		sets := make([]*redis.StatusCmd, n)
		gets := make([]*redis.StringCmd, n)
		incrs := make([]*redis.IntCmd, n)
		for i := range n {
			sets[i] = p.Set(ctx, "mix:"+strconv.Itoa(i), "v"+strconv.Itoa(i), 0)
			gets[i] = p.Get(ctx, "mix:"+strconv.Itoa(i))
			incrs[i] = p.Incr(ctx, "mixctr:"+strconv.Itoa(i%7))
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("pipeline: %v", err)
		}
		seen := map[int]int64{}
		for i := range n {
			if err := sets[i].Err(); err != nil {
				t.Fatalf("SET %d: %v", i, err)
			}
			if v, err := gets[i].Result(); err != nil || v != "v"+strconv.Itoa(i) {
				t.Fatalf("GET %d = %q, %v", i, v, err)
			}
			seen[i%7]++
			if v, err := incrs[i].Result(); err != nil || v != seen[i%7] {
				t.Fatalf("INCR %d = %d, %v; want %d", i, v, err, seen[i%7])
			}
		}
		keys := make([]string, n)
		for i := range keys {
			keys[i] = "mix:" + strconv.Itoa(i)
		}
		if removed, err := c1.Del(ctx, keys...).Result(); err != nil || removed != n {
			t.Fatalf("DEL = %d, %v", removed, err)
		}
		if removed, err := c1.Del(ctx, "mixctr:0", "mixctr:1", "mixctr:2", "mixctr:3", "mixctr:4", "mixctr:5", "mixctr:6").Result(); err != nil || removed != 7 {
			t.Fatalf("DEL counters = %d, %v", removed, err)
		}
	})

	const tagged = 200
	t.Run("tagged keys across owners", func(t *testing.T) {
		p := c1.Pipeline()
		for i := 0; i < tagged; i++ {
			p.Do(ctx, "SET", "tagged:"+strconv.Itoa(i), "v", "TAGS", "grp", "other")
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatalf("SET … TAGS: %v", err)
		}
		if n, err := c1.Do(ctx, "TAGINVALIDATE", "nothing-has-this").Int64(); err != nil || n != 0 {
			t.Fatalf("TAGINVALIDATE of an unused tag = %d, %v", n, err)
		}
	})

	parent := t
	t.Run("a fourth node joins without losing a key", func(t *testing.T) {
		total := dbsize(t, c1)
		cfg := testnode.ClusterConfig("node-4", nodes[1].Cluster().GossipAddr())
		n4 := testnode.Start(parent, cfg)
		nodes = append(nodes, n4)
		testnode.WaitConverged(t, 10*time.Second, nodes...)
		waitHandoff(t, nodes, total)
		if l := localLen(t, n4); l < numKeys/8 {
			t.Fatalf("node-4 received %d keys", l)
		}
		for _, n := range nodes {
			checkKeys(t, client(t, n), numKeys)
		}
	})

	t.Run("a node shut down gracefully loses nothing", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := nodes[1].Shutdown(sctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		rest := []*server.Server{nodes[0], nodes[2], nodes[3]}
		testnode.WaitConverged(t, 10*time.Second, rest...)
		for _, n := range rest {
			checkKeys(t, client(t, n), numKeys)
		}
		if got := dbsize(t, client(t, rest[0])); got < numKeys {
			t.Fatalf("DBSIZE after leave = %d", got)
		}
	})

	t.Run("TAGINVALIDATE is cluster-wide and tags survived the handoffs", func(t *testing.T) {
		c := client(t, nodes[3])
		n, err := c.Do(ctx, "TAGINVALIDATE", "grp").Int64()
		if err != nil || n != tagged {
			t.Fatalf("TAGINVALIDATE grp = %d, %v; want %d", n, err, tagged)
		}
		var keys []string
		for i := 0; i < tagged; i++ {
			keys = append(keys, "tagged:"+strconv.Itoa(i))
		}
		if n, err := c.Exists(ctx, keys...).Result(); err != nil || n != 0 {
			t.Fatalf("%d tagged keys left, %v", n, err)
		}
	})

	t.Run("FLUSHALL is cluster-wide", func(t *testing.T) {
		if err := client(t, nodes[2]).FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for _, n := range []*server.Server{nodes[0], nodes[2], nodes[3]} {
			if l := localLen(t, n); l != 0 {
				t.Fatalf("%s holds %d keys after FLUSHALL", n.Cluster().Name(), l)
			}
		}
	})
}

// waitHandoff polls until the nodes together hold exactly want keys (each once), which is what a
// finished handoff leaves with one copy per key.
func waitHandoff(t testing.TB, nodes []*server.Server, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var total int64
		for _, n := range nodes {
			total += localLen(t, n)
		}
		if total == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes hold %d keys in total after the handoff, want %d", total, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadsDuringJoin reads every key through a node while it joins: keys it now owns but has
// not received yet are pulled from their previous owner, so no read misses.
func TestReadsDuringJoin(t *testing.T) {
	nodes := testnode.StartCluster(t, 2, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	const n = 5000
	writeKeys(t, client(t, nodes[0]), n)
	n3 := testnode.Start(t, testnode.ClusterConfig("node-3", nodes[0].Cluster().GossipAddr()))
	waitFor(t, 10*time.Second, "node-3 to see the cluster", func() bool { return len(n3.Cluster().RingMembers()) == 3 })
	checkKeys(t, client(t, n3), n)
	testnode.WaitConverged(t, 10*time.Second, append(nodes, n3)...)
	checkKeys(t, client(t, n3), n)
	if got := nodes[0].Node().Stats().Forwards.Load() + nodes[1].Node().Stats().Forwards.Load(); got == 0 {
		t.Fatal("no handoff traffic")
	}
}

// TestIncrementsDuringJoin measures how many of 300 counters, incremented through two members
// while a fourth joins, lose acknowledged increments, with replicas = 1 and 2. Forwarded
// read-modify-writes on keys that moved to the joiner now read the key first (pulled from its
// previous owner, or read from its other holders): before, 61 counters (replicas = 1) and 43
// (replicas = 2) restarted from 0 in a run. Members whose rings lag the join still lose an
// increment now and then (README "Cluster"), so this is a measurement, run only with
// VELA_MEASURE_JOIN=1; the deterministic checks of the fix are TestJoinWindowPeerReadsFirst and
// TestJoinWindowReplicasReadFirst.
func TestIncrementsDuringJoin(t *testing.T) {
	if os.Getenv("VELA_MEASURE_JOIN") == "" {
		t.Skip("a measurement: set VELA_MEASURE_JOIN=1")
	}
	t.Run("replicas=1", func(t *testing.T) { testIncrementsDuringJoin(t, 1) })
	t.Run("replicas=2", func(t *testing.T) { testIncrementsDuringJoin(t, 2) })
}

func testIncrementsDuringJoin(t *testing.T, replicas int) {
	adjust := func(_ int, cfg *config.Config) { cfg.Cluster.Replicas = replicas }
	nodes := testnode.StartCluster(t, 3, adjust)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	w := startCounters(t, client(t, nodes[0]), client(t, nodes[1]))
	time.Sleep(200 * time.Millisecond)
	cfg4 := testnode.ClusterConfig("node-4", nodes[0].Cluster().GossipAddr())
	adjust(3, &cfg4)
	n4 := testnode.Start(t, cfg4)
	all := append(append([]*server.Server(nil), nodes...), n4)
	testnode.WaitConverged(t, 10*time.Second, all...)
	time.Sleep(200 * time.Millisecond)
	w.stop()
	if l := localLen(t, n4); l == 0 {
		t.Fatal("node-4 received no counter")
	}
	bad := w.check(t)
	t.Logf("RESULT replicas=%d: %d of %d counters lost increments", replicas, bad, numCounters)
}

// TestIncrementsDuringLeave measures, as TestIncrementsDuringJoin does, counters incremented
// through two members while a third of four leaves gracefully (run with VELA_MEASURE_JOIN=1).
func TestIncrementsDuringLeave(t *testing.T) {
	if os.Getenv("VELA_MEASURE_JOIN") == "" {
		t.Skip("a measurement: set VELA_MEASURE_JOIN=1")
	}
	nodes := testnode.StartCluster(t, 4, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	w := startCounters(t, client(t, nodes[0]), client(t, nodes[1]))
	time.Sleep(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[3].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	testnode.WaitConverged(t, 10*time.Second, nodes[:3]...)
	time.Sleep(200 * time.Millisecond)
	w.stop()
	t.Logf("RESULT leave: %d of %d counters lost increments", w.check(t), numCounters)
}

// numCounters is how many counters startCounters increments.
const numCounters = 300

// counters is a workload of INCRs on numCounters counters, each set to 1000 first, by two
// goroutines per client, that counts the acknowledged INCRs of each counter (and those that
// failed, which may or may not have run).
type counters struct {
	c             *redis.Client
	acked, unsure [numCounters]atomic.Int64
	done          chan struct{}
	wg            sync.WaitGroup
}

// startCounters sets the counters through cs[0] and starts incrementing them through cs.
func startCounters(t *testing.T, cs ...*redis.Client) *counters {
	t.Helper()
	ctx := context.Background()
	w := &counters{c: cs[0], done: make(chan struct{})}
	for i := range numCounters {
		if err := w.c.Set(ctx, "ctr:"+strconv.Itoa(i), 1000, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for g := range 2 * len(cs) {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := g; ; i++ {
				select {
				case <-w.done:
					return
				default:
				}
				k := i % numCounters
				if err := cs[g%len(cs)].Incr(ctx, "ctr:"+strconv.Itoa(k)).Err(); err != nil {
					w.unsure[k].Add(1)
				} else {
					w.acked[k].Add(1)
				}
			}
		}()
	}
	return w
}

// stop ends the INCRs and waits for them.
func (w *counters) stop() {
	close(w.done)
	w.wg.Wait()
}

// check reads every counter and fails the test for each that lost an acknowledged INCR (or
// gained one that was never sent); it returns how many did.
func (w *counters) check(t *testing.T) int {
	t.Helper()
	bad := 0
	for i := range numCounters {
		got, err := w.c.Get(context.Background(), "ctr:"+strconv.Itoa(i)).Int64()
		lo := 1000 + w.acked[i].Load()
		hi := lo + w.unsure[i].Load()
		if err != nil || got < lo || got > hi {
			if bad++; bad <= 5 {
				t.Errorf("ctr:%d = %d, %v; want %d (acknowledged INCRs) to %d", i, got, err, lo, hi)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d counters lost increments", bad, numCounters)
	}
	return bad
}

// TestPeerConnectionsSurviveIdleTimeout: with timeout set, client connections idle that long are
// closed, but a peer's pooled connection is not, so forwards after a quiet spell do not fail.
func TestPeerConnectionsSurviveIdleTimeout(t *testing.T) {
	nodes := testnode.StartCluster(t, 2, func(_ int, cfg *config.Config) { cfg.Timeout = 200 * time.Millisecond })
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	var key string
	for i := 0; ; i++ {
		if key = "idle:" + strconv.Itoa(i); nodes[0].Cluster().Owner([]byte(key)) == "node-2" {
			break
		}
	}
	c1 := client(t, nodes[0])
	if err := c1.Set(ctx, key, "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Wait until node-2 shows a connection idle for well past the timeout: the peer's.
	c2 := client(t, nodes[1])
	waitFor(t, 10*time.Second, "an idle peer connection on node-2", func() bool {
		list, err := c2.ClientList(ctx).Result()
		return err == nil && (strings.Contains(list, "idle=1 ") || strings.Contains(list, "idle=2 "))
	})
	for i := 0; i < 5; i++ {
		if v, err := c1.Get(ctx, key).Result(); err != nil || v != "v" {
			t.Fatalf("GET after an idle spell = %q, %v", v, err)
		}
	}
}

// TestJoinThenLeaveWithinWindow: a member that joins, receives keys, and leaves gracefully while
// the others' handoff windows are still open hands them back, and they are installed: the
// previous owners noted the keys as changed when they were written (during the window of the
// cluster's own formation), and a note must not outlive the handoff that sent the key away.
// Found by a review (5 keys of 40 were lost).
func TestJoinThenLeaveWithinWindow(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	c := client(t, nodes[0])
	const n = 400
	writeKeys(t, c, n) // inside the window the members' joins opened
	n4 := testnode.Start(t, testnode.ClusterConfig("node-4", nodes[0].Cluster().GossipAddr()))
	all := append(append([]*server.Server(nil), nodes...), n4)
	testnode.WaitConverged(t, 10*time.Second, all...)
	waitHandoff(t, all, n)
	if l := localLen(t, n4); l == 0 {
		t.Fatal("node-4 received no key")
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n4.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	for _, node := range nodes {
		checkKeys(t, client(t, node), n)
	}
}
