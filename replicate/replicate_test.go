package replicate_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
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

// localLen is the number of keys node holds in its own store.
func localLen(t testing.TB, srv *server.Server) int64 {
	t.Helper()
	n, err := client(t, srv).DBSize(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually polls check until it returns "" or fails the test with its last message after
// timeout.
func eventually(t testing.TB, timeout time.Duration, check func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := check()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sameEverywhere reports, for each of keys, any node whose value differs from the first node's
// ("" when all agree). A missing key reads as "(nil)".
func sameEverywhere(ctx context.Context, nodes []*redis.Client, keys []string) string {
	var first []any
	for i, c := range nodes {
		vals, err := c.MGet(ctx, keys...).Result()
		if err != nil {
			return err.Error()
		}
		if i == 0 {
			first = vals
			continue
		}
		for j := range keys {
			if fmt.Sprint(vals[j]) != fmt.Sprint(first[j]) {
				return fmt.Sprintf("key %s: node 1 has %v, node %d has %v", keys[j], first[j], i+1, vals[j])
			}
		}
	}
	return ""
}

func TestReplicatedCluster(t *testing.T) {
	nodes := testnode.StartReplicated(t, 3, nil)
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	ctx := context.Background()
	cs := []*redis.Client{client(t, nodes[0]), client(t, nodes[1]), client(t, nodes[2])}

	t.Run("writes through one member are on every member", func(t *testing.T) {
		p := cs[0].Pipeline()
		for i := 0; i < 2000; i++ {
			p.Set(ctx, "key:"+strconv.Itoa(i), "val:"+strconv.Itoa(i), 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		for i, n := range nodes {
			if l := localLen(t, n); l != 2000 {
				t.Errorf("node %d holds %d keys, want 2000", i+1, l)
			}
		}
		if got, err := cs[2].Get(ctx, "key:1999").Result(); err != nil || got != "val:1999" {
			t.Errorf("GET through node 3 = %q, %v", got, err)
		}
		// The SETs ran on node 1's event loops, their copies on the loops' own connections
		// (copiesOnLoop); elsewhere than Linux there are no loops.
		if runtime.GOOS == "linux" {
			info, err := cs[0].Info(ctx, "vela").Result()
			if err != nil {
				t.Fatal(err)
			}
			if !regexp.MustCompile(`cluster_loop_peer_connections:[1-9]`).MatchString(info) {
				t.Errorf("node 1 sent no copy from an event loop; INFO vela:\n%s", info)
			}
		}
	})

	t.Run("read-modify-write commands are decided by one member", func(t *testing.T) {
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					if err := c.Incr(ctx, "counter").Err(); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		for i, c := range cs {
			if n, err := c.Get(ctx, "counter").Int(); err != nil || n != 600 {
				t.Errorf("counter through node %d = %d, %v; want 600", i+1, n, err)
			}
		}
		// MSETNX is decided by one member for all its keys: keys of several owners are
		// refused as Redis Cluster refuses them; a hash tag keeps them together.
		a, b := keyOwnedBy(nodes, "msetnx-a:", "node-1"), keyOwnedBy(nodes, "msetnx-b:", "node-2")
		if err := cs[2].MSetNX(ctx, a, "1", b, "1").Err(); err == nil || !strings.HasPrefix(err.Error(), "CROSSSLOT") {
			t.Errorf("MSETNX over two owners: %v, want CROSSSLOT", err)
		}
		if ok, err := cs[2].MSetNX(ctx, "{m}a", "1", "{m}b", "1").Result(); err != nil || !ok {
			t.Errorf("MSETNX with one hash tag = %v, %v", ok, err)
		}
		ok, err := cs[1].SetNX(ctx, "once", "a", 0).Result()
		ok2, err2 := cs[2].SetNX(ctx, "once", "b", 0).Result()
		if err != nil || err2 != nil || !ok || ok2 {
			t.Errorf("SETNX twice through two members: %v %v, %v %v", ok, err, ok2, err2)
		}
	})

	t.Run("a pipeline's commands keep their order", func(t *testing.T) {
		// Keys owned by node-2, written through node-1: the SETs run on node-1, the INCRs and
		// APPENDs on node-2, the GETs on node-1 again. Each must see the commands before it.
		for r := 0; r < 20; r++ {
			k := keyOwnedBy(nodes, "pipe"+strconv.Itoa(r)+":", "node-2")
			p := cs[0].Pipeline()
			set1 := p.Set(ctx, k, "10", 0)
			incr := p.Incr(ctx, k)
			get1 := p.Get(ctx, k)
			set2 := p.Set(ctx, k, "x", 0)
			app := p.Append(ctx, k, "y")
			get2 := p.Get(ctx, k)
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if set1.Val() != "OK" || incr.Val() != 11 || get1.Val() != "11" || set2.Val() != "OK" || app.Val() != 2 || get2.Val() != "xy" {
				t.Fatalf("pipeline on %s: SET %q, INCR %d, GET %q, SET %q, APPEND %d, GET %q", k,
					set1.Val(), incr.Val(), get1.Val(), set2.Val(), app.Val(), get2.Val())
			}
			// A SET after a forwarded INCR is the later write; a SET … XX or … GET forwarded
			// after a SET sees it.
			p = cs[0].Pipeline()
			p.Del(ctx, k)
			p.Incr(ctx, k)
			p.Set(ctx, k, "100", 0)
			get3 := p.Get(ctx, k)
			p.Set(ctx, k, "1", 0)
			xx := p.SetXX(ctx, k, "2", 0)
			get4 := p.Get(ctx, k)
			p.MSet(ctx, k, "m", "other"+k, "o")
			old := p.SetArgs(ctx, k, "n", redis.SetArgs{Get: true})
			if _, err := p.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if get3.Val() != "100" || !xx.Val() || get4.Val() != "2" || old.Val() != "m" {
				t.Fatalf("pipeline on %s: GET after INCR, SET = %q; SET XX = %v, GET %q; SET GET after MSET = %q",
					k, get3.Val(), xx.Val(), get4.Val(), old.Val())
			}
			for i, c := range cs {
				if v, err := c.Get(ctx, k).Result(); err != nil || v != "n" {
					t.Fatalf("%s through node %d = %q, %v", k, i+1, v, err)
				}
			}
		}
	})

	t.Run("expiry, tags, deletes and flush reach every member", func(t *testing.T) {
		if err := cs[0].Do(ctx, "SET", "tagged", "v", "PX", "60000", "TAGS", "t1", "t2").Err(); err != nil {
			t.Fatal(err)
		}
		if err := cs[1].Set(ctx, "doomed", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		for i, c := range cs {
			if ttl, err := c.PTTL(ctx, "tagged").Result(); err != nil || ttl < 59*time.Second {
				t.Errorf("PTTL through node %d = %v, %v", i+1, ttl, err)
			}
		}
		if n, err := cs[2].Do(ctx, "TAGINVALIDATE", "t2").Int(); err != nil || n != 1 {
			t.Errorf("TAGINVALIDATE = %d, %v", n, err)
		}
		if n, err := cs[0].Del(ctx, "doomed").Result(); err != nil || n != 1 {
			t.Errorf("DEL = %d, %v", n, err)
		}
		for i, c := range cs {
			if n, _ := c.Exists(ctx, "tagged", "doomed").Result(); n != 0 {
				t.Errorf("node %d still has %d of the deleted keys", i+1, n)
			}
		}
		if err := cs[1].FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		for i, n := range nodes {
			if l := localLen(t, n); l != 0 {
				t.Errorf("node %d holds %d keys after FLUSHALL", i+1, l)
			}
		}
	})

	t.Run("concurrent writers converge", func(t *testing.T) {
		keys := make([]string, 20)
		for i := range keys {
			keys[i] = "race:" + strconv.Itoa(i)
		}
		var wg sync.WaitGroup
		for w, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := 0; r < 100; r++ {
					k := keys[(r*7+w)%len(keys)]
					var err error
					if r%5 == 4 {
						err = c.Del(ctx, k).Err()
					} else {
						err = c.Set(ctx, k, fmt.Sprintf("w%d-r%d", w, r), 0).Err()
					}
					if err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		eventually(t, 5*time.Second, func() string { return sameEverywhere(ctx, cs, keys) })
	})
}

func TestJoinerReceivesEverything(t *testing.T) {
	nodes := testnode.StartReplicated(t, 2, nil)
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	ctx := context.Background()
	c1 := client(t, nodes[0])
	p := c1.Pipeline()
	for i := 0; i < 20000; i++ {
		p.Set(ctx, "key:"+strconv.Itoa(i), "val:"+strconv.Itoa(i), time.Hour)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	third := testnode.Start(t, joinConfig(nodes[0], "node-3"))
	testnode.WaitReplicated(t, 20*time.Second, append(nodes, third)...)
	// Ready means the whole state arrived: nothing to wait for.
	if l := localLen(t, third); l != 20000 {
		t.Fatalf("the joiner holds %d keys once ready, want 20000", l)
	}
	if ttl, err := client(t, third).TTL(ctx, "key:7").Result(); err != nil || ttl < 59*time.Minute {
		t.Errorf("TTL on the joiner = %v, %v", ttl, err)
	}
}

// joinConfig is the configuration of a member named name joining seed's replicated cluster.
func joinConfig(seed *server.Server, name string) config.Config {
	cfg := testnode.ClusterConfig(name, seed.Replicated().GossipAddr())
	cfg.Topology.Type = "replicated"
	return cfg
}

// TestJoinerDecidesOnLatestState: read-modify-write commands on keys a joining member owns run
// there as soon as the others see it, before it has received the whole state; it fetches each
// key's state first, so no acknowledged write is lost.
func TestJoinerDecidesOnLatestState(t *testing.T) {
	nodes := testnode.StartReplicated(t, 2, nil)
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	ctx := context.Background()
	c1 := client(t, nodes[0])
	const n = 30000
	p := c1.Pipeline()
	for i := 0; i < n; i++ {
		p.Set(ctx, "key:"+strconv.Itoa(i), "v0", 0)
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	third := testnode.Start(t, joinConfig(nodes[0], "node-3"))
	eventually(t, 10*time.Second, func() string {
		if len(nodes[0].Replicated().RingMembers()) != 3 {
			return "node-1 does not see node-3"
		}
		return ""
	})
	early := 0
	for i := 0; i < n && early+len(nodes) < 400; i++ {
		k := "key:" + strconv.Itoa(i)
		if nodes[0].Replicated().Owner([]byte(k)) != "node-3" {
			continue
		}
		if !third.Replicated().Ready() {
			early++
		}
		if got, err := c1.Append(ctx, k, "Z").Result(); err != nil || got != 3 {
			t.Fatalf("APPEND %s through node-1 = %d, %v; want 3 (v0 + Z)", k, got, err)
		}
	}
	t.Logf("%d APPENDs decided by node-3 before it was ready", early)
	testnode.WaitReplicated(t, 20*time.Second, append(nodes, third)...)
}

func TestVelaHelp(t *testing.T) {
	nodes := testnode.StartReplicated(t, 1, nil)
	lines, err := client(t, nodes[0]).Do(context.Background(), "VELA", "HELP").StringSlice()
	if err != nil || len(lines) != 9 || !strings.HasPrefix(lines[0], "VELA <subcommand>") || lines[7] != "HELP" {
		t.Fatalf("VELA HELP = %q, %v", lines, err)
	}
}

// TestJoinerKeepsKeysTaggedAfterAnInvalidation: the whole state a joiner receives carries an old
// TAGINVALIDATE's stamp; a key of that tag written after it (through the joiner, while it
// receives the state) stays on every member.
func TestJoinerKeepsKeysTaggedAfterAnInvalidation(t *testing.T) {
	nodes := testnode.StartReplicated(t, 2, nil)
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	ctx := context.Background()
	c1 := client(t, nodes[0])
	must(t, c1.Do(ctx, "SET", "old", "1", "TAGS", "t").Err())
	must(t, c1.Do(ctx, "TAGINVALIDATE", "t").Err())
	third := testnode.Start(t, joinConfig(nodes[0], "node-3"))
	c3 := client(t, third)
	eventually(t, 10*time.Second, func() string {
		if len(third.Replicated().RingMembers()) != 3 {
			return "node-3 has not joined"
		}
		if err := c3.Exists(ctx, "new").Err(); err != nil {
			return "node-3 does not serve keys yet: " + err.Error() // CLUSTERDOWN until joined
		}
		return ""
	})
	must(t, c3.Do(ctx, "SET", "new", "v", "TAGS", "t").Err())
	testnode.WaitReplicated(t, 20*time.Second, append(nodes, third)...)
	for i, c := range []*redis.Client{c1, client(t, nodes[1]), c3} {
		if v, err := c.Get(ctx, "new").Result(); err != nil || v != "v" {
			t.Errorf("node %d: new = %q, %v; a key written after the invalidation must stay", i+1, v, err)
		}
		if err := c.Get(ctx, "old").Err(); !errors.Is(err, redis.Nil) {
			t.Errorf("node %d: old came back: %v", i+1, err)
		}
	}
}
