package partition_test

import (
	"context"
	"fmt"
	"math/rand"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// nearCluster starts three members, each with a near cache, keeping replicas copies of each key,
// and waits until they agree.
func nearCluster(t *testing.T, replicas int) []*server.Server {
	t.Helper()
	nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) {
		cfg.NearCache.Enabled = true
		cfg.Cluster.Replicas = replicas
	})
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	return nodes
}

// eachReplicas runs test on a nearCluster with one copy of each key, then with two.
func eachReplicas(t *testing.T, test func(t *testing.T, nodes []*server.Server)) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("replicas=%d", n), func(t *testing.T) { test(t, nearCluster(t, n)) })
	}
}

// remoteKey returns a key that node does not own.
func remoteKey(t *testing.T, node *server.Server, prefix string) string {
	t.Helper()
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s:%d", prefix, i)
		if node.Cluster().Owner([]byte(k)) != node.Cluster().Name() {
			return k
		}
	}
}

func l1Hits(node *server.Server) uint64 { return node.Node().Stats().L1Hits.Load() }

// A member answers repeated GETs of another member's key from its near cache, and a write
// through any member reaches its readers promptly.
func TestNearCacheInCluster(t *testing.T) { eachReplicas(t, testNearCacheInCluster) }

func testNearCacheInCluster(t *testing.T, nodes []*server.Server) {
	ctx := context.Background()
	reader := client(t, nodes[0])
	var worst time.Duration
	for i := range 20 {
		k := remoteKey(t, nodes[0], fmt.Sprint("near", i))
		if err := reader.Set(ctx, k, "v1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		reader.Get(ctx, k) // fills
		before := l1Hits(nodes[0])
		if v := reader.Get(ctx, k).Val(); v != "v1" || l1Hits(nodes[0]) != before+1 {
			t.Fatalf("%s: %q, l1_hits %d -> %d: not answered from the near cache", k, v, before, l1Hits(nodes[0]))
		}
		writer := client(t, nodes[1+i%2]) // the owner, or the third member forwarding to it
		start := time.Now()
		if err := writer.Set(ctx, k, "v2", 0).Err(); err != nil {
			t.Fatal(err)
		}
		redistest.WaitFor(t, k+"'s write to reach the reader", func() bool { return reader.Get(ctx, k).Val() == "v2" })
		worst = max(worst, time.Since(start))
	}
	t.Logf("a write through another member reached the reader within %v (worst of 20)", worst)
}

// A client reads its own writes through its member's near cache, pipelined.
func TestNearCacheInClusterReadYourWrites(t *testing.T) {
	eachReplicas(t, testNearCacheInClusterReadYourWrites)
}

func testNearCacheInClusterReadYourWrites(t *testing.T, nodes []*server.Server) {
	ctx := context.Background()
	c := client(t, nodes[0])
	k := remoteKey(t, nodes[0], "ryw")
	for round := range 200 {
		c.Get(ctx, k)
		v := fmt.Sprint(round)
		cmds, err := c.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Get(ctx, k)
			if round%2 == 0 {
				p.Set(ctx, k, v, 0)
			} else {
				p.MSet(ctx, k, v)
			}
			p.Get(ctx, k)
			return nil
		})
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
		if got := cmds[2].(*redis.StringCmd).Val(); got != v {
			t.Fatalf("round %d: wrote %q, read %q", round, v, got)
		}
	}
}

// A copy never outlives its key's expiry, and FLUSHALL through any member drops every copy.
func TestNearCacheInClusterExpiryAndFlush(t *testing.T) {
	eachReplicas(t, testNearCacheInClusterExpiryAndFlush)
}

func testNearCacheInClusterExpiryAndFlush(t *testing.T, nodes []*server.Server) {
	ctx := context.Background()
	reader, owner := client(t, nodes[0]), client(t, nodes[1])
	for i := range 10 {
		k := remoteKey(t, nodes[0], fmt.Sprint("ttl", i))
		if err := owner.Set(ctx, k, "v", 80*time.Millisecond).Err(); err != nil {
			t.Fatal(err)
		}
		set := time.Now()
		reader.Get(ctx, k)
		for time.Since(set) < 150*time.Millisecond {
			asked := time.Since(set)
			if v, err := reader.Get(ctx, k).Result(); err == nil && asked >= 80*time.Millisecond {
				t.Fatalf("%s (PX 80) read %q %v after it was set", k, v, asked)
			}
			time.Sleep(time.Millisecond)
		}
	}
	k := remoteKey(t, nodes[0], "flush")
	owner.Set(ctx, k, "v", 0)
	reader.Get(ctx, k)
	if err := client(t, nodes[2]).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := reader.Get(ctx, k).Err(); err != redis.Nil {
		t.Fatalf("after FLUSHALL: %v, want nil", err)
	}
}

// Clients of every member write and read a few keys at once. Once they stop, every member
// reads every key as its owner holds it.
func TestNearCacheInClusterConverges(t *testing.T) { eachReplicas(t, testNearCacheInClusterConverges) }

func testNearCacheInClusterConverges(t *testing.T, nodes []*server.Server) {
	ctx := context.Background()
	const keys = 12
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewClient(&redis.Options{Addr: nodes[w%3].Addr()})
			defer c.Close()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := range 600 {
				k := fmt.Sprint("c", rng.Intn(keys))
				if w < 3 {
					c.Set(ctx, k, fmt.Sprint(w, ":", i), 0)
				} else {
					c.Get(ctx, k)
				}
			}
		}()
	}
	wg.Wait()
	// The owners' last invalidations are on their way: every member must come to read what each
	// key's owner holds (how soon is TestNearCacheInCluster's measure).
	clients := make([]*redis.Client, len(nodes))
	for i, n := range nodes {
		clients[i] = client(t, n)
	}
	diverged := func() string {
		for i := range keys {
			k := fmt.Sprint("c", i)
			want := ""
			for j, n := range nodes {
				if n.Cluster().Owner([]byte(k)) == n.Cluster().Name() {
					want = clients[j].Get(ctx, k).Val()
				}
			}
			for j, n := range nodes {
				if got := clients[j].Get(ctx, k).Val(); got != want {
					return fmt.Sprintf("%s: %s reads %q, its owner holds %q", k, n.Cluster().Name(), got, want)
				}
			}
		}
		return ""
	}
	last := ""
	deadline := time.Now().Add(5 * time.Second)
	for last = diverged(); last != "" && time.Now().Before(deadline); last = diverged() {
		time.Sleep(25 * time.Millisecond)
	}
	if last != "" {
		t.Fatal(last)
	}
	t.Logf("l1_hits: %d %d %d", l1Hits(nodes[0]), l1Hits(nodes[1]), l1Hits(nodes[2]))
}

// A member that leaves drops its copies' owners' registrations with it: the others' copies of
// its keys go (their rings changed), and no copy of a key that moved is served stale.
func TestNearCacheInClusterMembershipChange(t *testing.T) {
	eachReplicas(t, testNearCacheInClusterMembershipChange)
}

func testNearCacheInClusterMembershipChange(t *testing.T, nodes []*server.Server) {
	ctx := context.Background()
	reader := client(t, nodes[0])
	k := remoteKey(t, nodes[0], "moving")
	reader.Set(ctx, k, "v1", 0)
	reader.Get(ctx, k)
	flushes := nodes[0].Node().NearCache().Flushes()
	shut, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := nodes[2].Shutdown(shut); err != nil {
		t.Fatal(err)
	}
	testnode.WaitConverged(t, 10*time.Second, nodes[0], nodes[1])
	if nodes[0].Node().NearCache().Flushes() == flushes {
		t.Fatal("a ring change left the copies in place")
	}
	client(t, nodes[1]).Set(ctx, k, "v2", 0)
	redistest.WaitFor(t, "the write after the change to be read", func() bool { return reader.Get(ctx, k).Val() == "v2" })
}

// Other clients of the reader keep filling its copy of a key while one client writes the key and
// reads it back before the write's reply: the read must see the write (it goes to the owner
// behind the write), and so must every read after the reply (the copy is dropped again when
// the write is done).
func TestNearCacheInClusterOwnWriteUnderReaders(t *testing.T) {
	eachReplicas(t, testNearCacheInClusterOwnWriteUnderReaders)
}

func testNearCacheInClusterOwnWriteUnderReaders(t *testing.T, nodes []*server.Server) {
	k := remoteKey(t, nodes[0], "busy")
	defer busyReaders(nodes[0].Addr(), k, 4)()
	w := respclient.Dial(t, nodes[0].Addr())
	for i := range 1000 {
		v := fmt.Sprint("v", i)
		w.Send("SET", k, v)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		w.Send("GET", k)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("$%d\r\n%s\r\n", len(v), v)
		if _, _, err := w.Receive(); err != nil {
			t.Fatal(err)
		}
		if _, got, err := w.Receive(); err != nil || string(got) != want {
			t.Fatalf("round %d: GET sent before SET %s's reply read %q (%v)", i, v, got, err)
		}
		w.Send("GET", k)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, got, err := w.Receive(); err != nil || string(got) != want {
			t.Fatalf("round %d: GET after SET %s's reply read %q (%v)", i, v, got, err)
		}
	}
}

// busyReaders starts n clients of addr that GET key until the returned function stops them (and
// waits for them): they keep filling a member's copy of key.
func busyReaders(addr, key string, n int) (stop func()) {
	ctx := context.Background()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 1})
			defer c.Close()
			for {
				select {
				case <-done:
					return
				default:
					c.Get(ctx, key)
				}
			}
		}()
	}
	return func() { close(done); wg.Wait() }
}
