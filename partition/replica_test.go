package partition_test

import (
	"context"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// TestPipelinedWritesOverlapTheirCopies: with replicas = 2, a client's pipelined writes on keys
// this member owns do not wait, one by one, for their copies to reach the other holder. The
// copies are held back; the second SET of the pipeline has run on the owner all the same,
// while neither reply has been sent (each waits for its copy). Once the copies go, both
// replies arrive and the other holder has both values. When each write waited for its copies
// before the next ran, the second SET ran only once the first's copy had timed out.
func TestPipelinedWritesOverlapTheirCopies(t *testing.T) {
	hold := newHoldback("RESTORE")
	start := func(name string, h *holdback, seeds ...string) *server.Server {
		cfg := testnode.ClusterConfig(name, seeds...)
		cfg.Cluster.Replicas = 2
		cfg.Cluster.ForwardTimeout = 3 * time.Second
		return testnode.Start(t, cfg, server.WithPeerDialer(h.dial))
	}
	n1 := start("node-1", hold)
	n2 := start("node-2", newHoldback("never"), n1.Cluster().GossipAddr())
	testnode.WaitConverged(t, 10*time.Second, n1, n2)
	nodes := []*server.Server{n1, n2}
	tag := tagOwnedBy(t, nodes, 0)
	k1, k2 := tag+"first", tag+"second"
	ctx := context.Background()

	hold.arm()
	done := make(chan []redis.Cmder, 1)
	go func() {
		p := client(t, n1).Pipeline()
		p.Set(ctx, k1, "v1", 0)
		p.Set(ctx, k2, "v2", 0)
		cmds, _ := p.Exec(ctx)
		done <- cmds
	}()
	waitFor(t, 2*time.Second, "the first SET's copy to be held", func() bool { return hold.holds(k1) })
	c1 := client(t, n1)
	waitFor(t, time.Second, "the second SET to run on the owner while the first's copy is held", func() bool {
		v, err := c1.Get(ctx, k2).Result()
		return err == nil && v == "v2"
	})
	select {
	case <-done:
		t.Fatal("the pipeline was answered before its copies landed")
	default:
	}
	hold.release(t)
	select {
	case cmds := <-done:
		for _, cmd := range cmds {
			if err := cmd.Err(); err != nil {
				t.Errorf("%v: %v", cmd.Args(), err)
			}
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no reply to the pipeline once its copies were released")
	}
	for k, want := range map[string]string{k1: "v1", k2: "v2"} {
		if got := testnode.LocalValue(t, n2, k); got != want {
			t.Errorf("node-2 holds %s = %q, want %q", k, got, want)
		}
	}
}

// TestReplicaWritesOnEventLoops: with replicas = 2, once the handoff windows of the cluster's
// forming have closed, writes run on the event loops (their forwards and copies on the loops'
// own connections) and reads of a member's own keys too. Several clients write through every
// member at once: pipelined SETs, INCRs and DELs on shared keys. Every key then has its
// expected value on both of its holders and on no other member, and the members did send from
// their loops.
func TestReplicaWritesOnEventLoops(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) { cfg.Cluster.Replicas = 2 })
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	clients := make([]*redis.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = client(t, n)
	}
	waitFor(t, 45*time.Second, "the handoff windows to close", func() bool {
		for _, c := range clients {
			if info, err := c.Info(ctx, "vela").Result(); err != nil || !strings.Contains(info, "cluster_handoff_window:0") {
				return false
			}
		}
		return true
	})

	const keys, rounds = 200, 20
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				p := c.Pipeline()
				for k := 0; k < keys; k++ {
					p.Incr(ctx, "count:"+strconv.Itoa(k))
					p.Set(ctx, "own:"+strconv.Itoa(i)+":"+strconv.Itoa(k), strconv.Itoa(r), 0)
					p.Set(ctx, "gone:"+strconv.Itoa(i)+":"+strconv.Itoa(k), "x", 0)
					p.Del(ctx, "gone:"+strconv.Itoa(i)+":"+strconv.Itoa(k))
				}
				if _, err := p.Exec(ctx); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()

	want := map[string]string{}
	for k := 0; k < keys; k++ {
		want["count:"+strconv.Itoa(k)] = strconv.Itoa(len(nodes) * rounds)
		for i := range nodes {
			want["own:"+strconv.Itoa(i)+":"+strconv.Itoa(k)] = strconv.Itoa(rounds - 1)
			want["gone:"+strconv.Itoa(i)+":"+strconv.Itoa(k)] = ""
		}
	}
	for key, v := range want {
		holders := nodes[0].Cluster().Holders([]byte(key))
		for _, n := range nodes {
			w := ""
			if slices.Contains(holders, n.Cluster().Name()) {
				w = v
			}
			if got := testnode.LocalValue(t, n, key); got != w {
				t.Fatalf("%s holds %s = %q, want %q (holders %v)", n.Cluster().Name(), key, got, w, holders)
			}
		}
	}
	if runtime.GOOS != "linux" {
		return // no event loops elsewhere
	}
	for i, c := range clients {
		info, err := c.Info(ctx, "vela").Result()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(info, "cluster_loop_peer_connections:0") {
			t.Errorf("node %d sent nothing from an event loop; INFO vela:\n%s", i+1, info)
		}
	}
}
