package replicate_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/faultnet"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

func startFaulty(t *testing.T, f *faultnet.Net, name string, seeds ...string) *server.Server {
	t.Helper()
	cfg := testnode.ClusterConfig(name, seeds...)
	cfg.Topology.Type = "replicated"
	srv := testnode.Start(t, cfg, f.Options(t, name)...)
	f.Register(srv.Addr(), name)
	return srv
}

func membersAre(srv *server.Server, members ...string) bool {
	return strings.Join(srv.Replicated().RingMembers(), ",") == strings.Join(members, ",")
}

// TestPartitionHeals writes on both sides of a network partition, then heals it: every member
// ends with the same keys, the later write of each key winning, deletes included.
func TestPartitionHeals(t *testing.T) {
	f := faultnet.New()
	n1 := startFaulty(t, f, "node-1")
	n2 := startFaulty(t, f, "node-2", n1.Replicated().GossipAddr())
	n3 := startFaulty(t, f, "node-3", n1.Replicated().GossipAddr())
	nodes := []*server.Server{n1, n2, n3}
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	ctx := context.Background()
	cs := []*redis.Client{client(t, n1), client(t, n2), client(t, n3)}
	var all []string
	for i := 0; i < 100; i++ {
		k := "base:" + strconv.Itoa(i)
		all = append(all, k)
		if err := cs[0].Set(ctx, k, "base", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}

	f.Split([]string{"node-1", "node-2"}, []string{"node-3"})
	// Until each side declares the other dead, commands answer or fail clearly, within two
	// forward timeouts (a copy waits for one; a forwarded INCR for the owner's copies).
	for i := 0; i < 10; i++ {
		for ci, c := range cs {
			start := time.Now()
			err := c.Set(ctx, "during:"+strconv.Itoa(i), "x", 0).Err()
			if err == nil {
				err = c.Incr(ctx, "counter:"+strconv.Itoa(ci)).Err()
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("node %d took %v while partitioned (err %v)", ci+1, d, err)
			}
			if err != nil && !strings.Contains(err.Error(), "ERR") {
				t.Fatalf("node %d: unclear error %v", ci+1, err)
			}
		}
	}
	eventually(t, 15*time.Second, func() string {
		if membersAre(n1, "node-1", "node-2") && membersAre(n2, "node-1", "node-2") && membersAre(n3, "node-3") {
			return ""
		}
		return "the sides did not drop each other"
	})

	// Side one writes first, side two later: the later write wins everywhere after the heal.
	for i := 0; i < 50; i++ {
		a, b, both := "a:"+strconv.Itoa(i), "b:"+strconv.Itoa(i), "both:"+strconv.Itoa(i)
		all = append(all, a, b, both)
		must(t, cs[0].Set(ctx, a, "A", 0).Err())
		must(t, cs[1].Set(ctx, both, "A", 0).Err())
	}
	must(t, cs[0].Del(ctx, all[:10]...).Err()) // base:0…base:9
	must(t, cs[1].Do(ctx, "SET", "tagged", "A", "TAGS", "t").Err())
	all = append(all, "tagged", "tagged-late")
	time.Sleep(5 * time.Millisecond)
	for i := 0; i < 50; i++ {
		must(t, cs[2].Set(ctx, "b:"+strconv.Itoa(i), "B", 0).Err())
		must(t, cs[2].Set(ctx, "both:"+strconv.Itoa(i), "B", 0).Err())
	}
	must(t, cs[2].Set(ctx, "base:5", "B5", 0).Err()) // after side one deleted it
	must(t, cs[2].Do(ctx, "TAGINVALIDATE", "t").Err())
	must(t, cs[2].Do(ctx, "SET", "tagged-late", "B", "TAGS", "t").Err())

	f.Heal()
	testnode.WaitReplicated(t, 30*time.Second, nodes...)
	eventually(t, 15*time.Second, func() string { return sameEverywhere(ctx, cs, all) })
	for ci, c := range cs {
		want := map[string]string{"a:7": "A", "b:7": "B", "both:7": "B", "base:5": "B5", "base:50": "base", "tagged-late": "B"}
		for k, v := range want {
			if got, err := c.Get(ctx, k).Result(); err != nil || got != v {
				t.Errorf("node %d: %s = %q, %v; want %q", ci+1, k, got, err, v)
			}
		}
		for _, k := range []string{"base:0", "base:9", "tagged"} {
			if err := c.Get(ctx, k).Err(); !errors.Is(err, redis.Nil) {
				t.Errorf("node %d: %s should be gone, got %v", ci+1, k, err)
			}
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestUnreachableMemberDelaysWritesOnce: once a member stops answering, writes pay for it once
// (one forward timeout, or a dial), not once per key or per write, and the members that answer
// are not treated as behind.
func TestUnreachableMemberDelaysWritesOnce(t *testing.T) {
	f := faultnet.New()
	n1 := startFaulty(t, f, "node-1")
	n2 := startFaulty(t, f, "node-2", n1.Replicated().GossipAddr())
	n3 := startFaulty(t, f, "node-3", n1.Replicated().GossipAddr())
	testnode.WaitReplicated(t, 10*time.Second, n1, n2, n3)
	ctx := context.Background()
	c1 := client(t, n1)
	received := func() string {
		info := client(t, n2).Info(ctx, "vela").Val()
		i := strings.Index(info, "cluster_state_transfers_received:")
		return strings.Fields(info[i:])[0]
	}
	// A member that joined may be sent the whole state twice, when its own request for it
	// reaches a member that has just sent it: wait until no more arrive.
	before := received()
	for settle := time.Now().Add(10 * time.Second); ; {
		time.Sleep(500 * time.Millisecond)
		now := received()
		if now == before {
			break
		}
		if time.Now().After(settle) {
			t.Fatalf("state transfers to node-2 still arriving after 10s: %s", now)
		}
		before = now
	}

	f.Split([]string{"node-1", "node-2"}, []string{"node-3"})
	pairs := make([]any, 0, 20)
	for i := 0; i < 10; i++ {
		pairs = append(pairs, "m:"+strconv.Itoa(i), "v")
	}
	start := time.Now()
	must(t, c1.MSet(ctx, pairs...).Err())
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("an MSET of 10 keys took %v with one member unreachable", d)
	}
	start = time.Now()
	for i := 0; i < 50; i++ {
		must(t, c1.Set(ctx, "after:"+strconv.Itoa(i), "v", 0).Err())
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("50 SETs after the member was found unreachable took %v", d)
	}
	if got, err := client(t, n2).Get(ctx, "after:49").Result(); err != nil || got != "v" {
		t.Fatalf("the reachable member missed a write: %q, %v\n%s", got, err, c1.Info(ctx, "vela").Val())
	}
	if after := received(); after != before {
		t.Fatalf("the reachable member was sent the whole state (%s → %s)", before, after)
	}
	f.Heal()
	testnode.WaitReplicated(t, 30*time.Second, n1, n2, n3)
	eventually(t, 15*time.Second, func() string {
		return sameEverywhere(ctx, []*redis.Client{c1, client(t, n2), client(t, n3)}, []string{"m:0", "m:9", "after:0", "after:49"})
	})
}
