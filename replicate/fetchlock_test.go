package replicate_test

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

// keyOwnedBy returns a key with prefix that member owns.
func keyOwnedBy(nodes []*server.Server, prefix, member string) string {
	for i := 0; ; i++ {
		k := prefix + strconv.Itoa(i)
		if nodes[0].Replicated().Owner([]byte(k)) == member {
			return k
		}
	}
}

// TestFetchLockOneHolder: callers on every member FETCHLOCK one missing key. Its lease lives on
// the key's owner, so exactly one of them in the cluster gets LOCKED; the others wait and are
// woken with HIT by a plain SET through a third member, which the owner learns of from its
// copy.
func TestFetchLockOneHolder(t *testing.T) {
	nodes := testnode.StartReplicated(t, 3, nil)
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	ctx := context.Background()
	key := keyOwnedBy(nodes, "lease:", "node-3")
	const perNode = 3
	statuses := make(chan string, 3*perNode)
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
					t.Errorf("FETCHLOCK through %s = %v, %v", c.Options().Addr, v, err)
					statuses <- "error"
					return
				}
				status, _ := v[0].(string)
				if second, _ := v[1].(string); status == "HIT" && second != "written" {
					t.Errorf("HIT with %q", second)
				}
				statuses <- status
			}()
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for nodes[2].Node().Stats().FetchWaits.Load() < 3*perNode-1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := client(t, nodes[0]).Set(ctx, key, "written", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(statuses)
	count := map[string]int{}
	for s := range statuses {
		count[s]++
	}
	if count["LOCKED"] != 1 || count["HIT"] != 3*perNode-1 {
		t.Fatalf("replies %v, want 1 LOCKED and %d HIT", count, 3*perNode-1)
	}
}

// TestForwardedLeaseEndsOnDisconnect: a client holding a lease through a member that is not the
// key's owner disconnects; the lease goes at once to a caller waiting through another member.
func TestForwardedLeaseEndsOnDisconnect(t *testing.T) {
	nodes := testnode.StartReplicated(t, 3, nil)
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	ctx := context.Background()
	key := keyOwnedBy(nodes, "gone:", "node-2")
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
	for nodes[1].Node().Stats().FetchWaits.Load() < 1 {
		time.Sleep(10 * time.Millisecond)
	}
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
}

// TestForwardedFetchLockWaiterDisconnects: clients of one member wait in FETCHLOCK for a key
// another member owns (its lease is held there), then disconnect; their waits end at once.
func TestForwardedFetchLockWaiterDisconnects(t *testing.T) {
	nodes := testnode.StartReplicated(t, 3, nil)
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	testnode.CheckForwardedWaitersLeave(t, nodes[0], nodes[2], keyOwnedBy(nodes, "lease:", "node-3"))
}
