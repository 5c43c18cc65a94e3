package partition_test

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// TestFetchLockClusterWide: callers on every node FETCHLOCK one missing key; the lease lives on
// the key's owner, so exactly one of them in the whole cluster gets LOCKED, the others wait, and
// the holder's FETCHFILL through its own node wakes them all with HIT.
func TestFetchLockClusterWide(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	// A key owned by node-3, so callers on node-1 and node-2 are forwarded.
	key := leaseKeyOf(nodes[0], "node-3")
	const perNode = 4
	type result struct {
		status, value string
		err           error
	}
	results := make(chan result, 3*perNode)
	var wg sync.WaitGroup
	for _, n := range nodes {
		c := redis.NewClient(&redis.Options{Addr: n.Addr(), PoolSize: perNode + 2, ReadTimeout: 30 * time.Second, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		for w := 0; w < perNode; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := c.Do(ctx, "FETCHLOCK", key, "TIMEOUT", 20000, "LEASE", 30000).Slice()
				if err != nil || len(v) < 2 {
					results <- result{err: err}
					return
				}
				status, _ := v[0].(string)
				second, _ := v[1].(string)
				if status == "LOCKED" {
					// Fill once every other caller is waiting on the owner.
					deadline := time.Now().Add(10 * time.Second)
					for nodes[2].Node().Stats().FetchWaits.Load() < 3*perNode-1 && time.Now().Before(deadline) {
						time.Sleep(10 * time.Millisecond)
					}
					if err := c.Do(ctx, "FETCHFILL", key, second, "filled", "EX", 60).Err(); err != nil {
						t.Errorf("FETCHFILL through %s: %v", c.Options().Addr, err)
					}
				}
				results <- result{status: status, value: second}
			}()
		}
	}
	wg.Wait()
	close(results)
	count := map[string]int{}
	for r := range results {
		if r.err != nil {
			t.Fatalf("FETCHLOCK: %v", r.err)
		}
		count[r.status]++
		if r.status == "HIT" && r.value != "filled" {
			t.Fatalf("HIT with %q", r.value)
		}
	}
	if count["LOCKED"] != 1 || count["HIT"] != 3*perNode-1 {
		t.Fatalf("replies %v, want 1 LOCKED and %d HIT", count, 3*perNode-1)
	}
	if w := nodes[2].Node().Stats().FetchWaits.Load(); w < 3*perNode-1 {
		t.Fatalf("the owner saw %d waits", w)
	}
}

// TestForwardedLeaseEndsOnDisconnect: a client holding, through a node that is not the key's
// owner, a lease with a long LEASE disconnects; the lease ends at once and goes to the caller
// waiting on another node, as it does when the holder is the owner's own client.
func TestForwardedLeaseEndsOnDisconnect(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	var key string
	for i := 0; ; i++ {
		key = "gone:" + strconv.Itoa(i)
		if nodes[0].Cluster().Owner([]byte(key)) == "node-2" {
			break
		}
	}
	holder := redis.NewClient(&redis.Options{Addr: nodes[0].Addr(), PoolSize: 1, MaxRetries: -1})
	r, err := holder.Do(ctx, "FETCHLOCK", key, "LEASE", 60000).Slice()
	if err != nil || len(r) != 2 || r[0] != "LOCKED" {
		t.Fatalf("FETCHLOCK = %v, %v", r, err)
	}
	waiter := redis.NewClient(&redis.Options{Addr: nodes[2].Addr(), PoolSize: 1, MaxRetries: -1, ReadTimeout: 30 * time.Second})
	t.Cleanup(func() { _ = waiter.Close() })
	got := make(chan []any, 1)
	go func() {
		r, err := waiter.Do(ctx, "FETCHLOCK", key, "TIMEOUT", 20000).Slice()
		if err != nil {
			t.Errorf("waiting FETCHLOCK: %v", err)
		}
		got <- r
	}()
	time.Sleep(200 * time.Millisecond) // the waiter queues on node-2
	start := time.Now()
	_ = holder.Close()
	select {
	case r := <-got:
		if len(r) != 2 || r[0] != "LOCKED" {
			t.Fatalf("waiter got %v, want LOCKED", r)
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Fatalf("lease handed over %v after the holder left", waited)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the lease of a disconnected client was not released")
	}

	// A lease the client fills itself is forgotten: its later disconnect releases nothing (a
	// release of a filled lease would be refused anyway) and the value stays.
	filler := redis.NewClient(&redis.Options{Addr: nodes[0].Addr(), PoolSize: 1, MaxRetries: -1})
	key2 := key + ":b"
	for nodes[0].Cluster().Owner([]byte(key2)) == "node-1" {
		key2 += "x"
	}
	r, err = filler.Do(ctx, "FETCHLOCK", key2).Slice()
	if err != nil || len(r) != 2 || r[0] != "LOCKED" {
		t.Fatalf("FETCHLOCK %s = %v, %v", key2, r, err)
	}
	if err := filler.Do(ctx, "FETCHFILL", key2, r[1], "filled").Err(); err != nil {
		t.Fatalf("FETCHFILL: %v", err)
	}
	_ = filler.Close()
	if v, err := waiter.Get(ctx, key2).Result(); err != nil || v != "filled" {
		t.Fatalf("GET %s = %q, %v", key2, v, err)
	}
}

// TestForwardedFetchLockWaiterDisconnects: clients of one member wait in FETCHLOCK for a key
// another member owns (its lease is held), then disconnect. Their waits end at once, as for
// waiters on the owner itself, instead of holding a client and a connection to the owner on
// each member until their TIMEOUT. Found by a review.
func TestForwardedFetchLockWaiterDisconnects(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	testnode.CheckForwardedWaitersLeave(t, nodes[0], nodes[2], leaseKeyOf(nodes[0], "node-3"))
}

// leaseKeyOf returns a key "lease:N" that member owns, as node sees the ring.
func leaseKeyOf(node *server.Server, member string) string {
	for i := 0; ; i++ {
		key := "lease:" + strconv.Itoa(i)
		if node.Cluster().Owner([]byte(key)) == member {
			return key
		}
	}
}
