package partition_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// oneWayCuts drops the peer (RESP) traffic one member sends another, silently, while gossip and
// the other direction go on: a fault a loopback network cannot make by itself.
type oneWayCuts struct {
	mu     sync.Mutex
	member map[string]string // RESP address → member name
	cut    map[[2]string]bool
}

func (p *oneWayCuts) set(from, to string, on bool) {
	p.mu.Lock()
	p.cut[[2]string{from, to}] = on
	p.mu.Unlock()
}

func (p *oneWayCuts) isCut(from, addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut[[2]string{from, p.member[addr]}]
}

// cutConn is a peer connection whose writes vanish while its direction is cut.
type cutConn struct {
	net.Conn
	p        *oneWayCuts
	from, to string
}

func (c *cutConn) Write(b []byte) (int, error) {
	if c.p.isCut(c.from, c.to) {
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// nearClusterCuts starts three members with near caches, keeping replicas copies of each key,
// whose peer traffic p can cut.
func nearClusterCuts(t *testing.T, replicas int) (*oneWayCuts, []*server.Server) {
	t.Helper()
	p := &oneWayCuts{member: map[string]string{}, cut: map[[2]string]bool{}}
	var nodes []*server.Server
	for i := range 3 {
		name := fmt.Sprintf("node-%d", i+1)
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &cutConn{Conn: c, p: p, from: name, to: addr}, nil
		}
		var seeds []string
		if i > 0 {
			seeds = []string{nodes[0].Cluster().GossipAddr()}
		}
		cfg := testnode.ClusterConfig(name, seeds...)
		cfg.NearCache.Enabled = true
		cfg.Cluster.Replicas = replicas
		srv := testnode.Start(t, cfg, server.WithPeerDialer(dial))
		p.mu.Lock()
		p.member[srv.Addr()] = name
		p.mu.Unlock()
		nodes = append(nodes, srv)
	}
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	return p, nodes
}

// ownedBy returns a key whose owner is owner.
func ownedBy(node *server.Server, owner, prefix string) string {
	for i := 0; ; i++ {
		k := fmt.Sprintf("%s:%d", prefix, i)
		if node.Cluster().Owner([]byte(k)) == owner {
			return k
		}
	}
}

// staleFor writes k = v through w and returns how long r goes on reading something else.
func staleFor(ctx context.Context, w, r *redis.Client, k, v string, limit time.Duration) time.Duration {
	start := time.Now()
	w.Set(ctx, k, v, 0)
	for time.Since(start) < limit {
		if got, _ := r.Get(ctx, k).Result(); got == v {
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return limit
}

// An owner whose messages no longer reach a reader: the reader must stop serving its copies
// within about beatLost, even while its clients keep reading other keys of that owner (their
// answers come back on the reader's own connections and prove nothing).
func TestNearCacheQuietOwnerUnderTraffic(t *testing.T) {
	p, nodes := nearClusterCuts(t, 1)
	ctx := context.Background()
	owner, reader, other := client(t, nodes[0]), client(t, nodes[1]), client(t, nodes[1])
	k := ownedBy(nodes[1], "node-1", "oneway")
	var fresh []string
	for i := 0; len(fresh) < 200; i++ {
		if f := fmt.Sprint("fresh:", i); nodes[1].Cluster().Owner([]byte(f)) == "node-1" {
			fresh = append(fresh, f)
			owner.Set(ctx, f, "x", 0)
		}
	}
	owner.Set(ctx, k, "v1", 0)
	reader.Get(ctx, k)
	p.set("node-1", "node-2", true)
	defer p.set("node-1", "node-2", false)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				other.Get(ctx, fresh[i%len(fresh)])
			}
		}
	}()
	d := staleFor(ctx, owner, reader, k, "v2", 8*time.Second)
	close(stop)
	<-done
	t.Logf("the reader served the old value for %v after the write", d)
	if d > 3*time.Second {
		t.Fatalf("stale for %v: the reader did not notice that the owner went quiet", d)
	}
}

// A reader the owner cannot reach does not hold up the owner's messages to the others.
func TestNearCacheStuckReaderHoldsUpNoOther(t *testing.T) {
	p, nodes := nearClusterCuts(t, 1)
	ctx := context.Background()
	owner, reader, stuck := client(t, nodes[0]), client(t, nodes[1]), client(t, nodes[2])
	var keys []string
	for i := range 20 {
		k := ownedBy(nodes[1], "node-1", fmt.Sprint("stuck", i))
		owner.Set(ctx, k, "v0", 0)
		reader.Get(ctx, k)
		stuck.Get(ctx, k) // node-3 keeps a copy too
		keys = append(keys, k)
	}
	p.set("node-1", "node-3", true)
	defer p.set("node-1", "node-3", false)
	var worst time.Duration
	for i, k := range keys {
		worst = max(worst, staleFor(ctx, owner, reader, k, "v1", 3*time.Second))
		time.Sleep(time.Duration(20+i*10) * time.Millisecond)
	}
	t.Logf("with node-3 unreachable from the owner, node-2 saw writes within %v", worst)
	// Held up behind the unreachable reader, the invalidations would wait for its delivery to
	// time out (the forward timeout, 1 s); on a loaded machine they take up to a few hundred ms.
	if worst > 800*time.Millisecond {
		t.Fatalf("an unreachable reader held up another reader's invalidations by %v", worst)
	}
}

// TAGINVALIDATE through the reader names no keys, so the reader cannot drop their copies one by
// one; it drops every copy before the reply, and the client reads its own invalidation.
func TestNearCacheTagInvalidateThroughReader(t *testing.T) {
	eachReplicas(t, testNearCacheTagInvalidateThroughReader)
}

func testNearCacheTagInvalidateThroughReader(t *testing.T, nodes []*server.Server) {
	ctx := context.Background()
	c := client(t, nodes[0])
	k := remoteKey(t, nodes[0], "tagged")
	defer busyReaders(nodes[0].Addr(), k, 3)()
	for round := range 300 {
		if err := c.Do(ctx, "SET", k, "v", "TAGS", "t").Err(); err != nil {
			t.Fatal(err)
		}
		c.Get(ctx, k)
		c.Get(ctx, k)
		if n, err := c.Do(ctx, "TAGINVALIDATE", "t").Int(); err != nil || n != 1 {
			t.Fatalf("round %d: TAGINVALIDATE = %d, %v", round, n, err)
		}
		if v, err := c.Get(ctx, k).Result(); err != redis.Nil {
			t.Fatalf("round %d: GET after TAGINVALIDATE = %q, %v; want nil", round, v, err)
		}
	}
}

// With two copies of each key, a GET the owner does not answer is read from the other holder,
// and that value is not kept: nobody would tell the reader of a change to it. Once the owner
// answers again, its values are kept again.
func TestNearCacheReplicasFallBack(t *testing.T) {
	p, nodes := nearClusterCuts(t, 2)
	ctx := context.Background()
	owner, reader := client(t, nodes[0]), client(t, nodes[1])
	k := ownedBy(nodes[1], "node-1", "fallback")
	if err := owner.Set(ctx, k, "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	p.set("node-2", "node-1", true) // the reader's requests to the owner vanish
	for i := range 2 {
		start := time.Now()
		if v, err := reader.Get(ctx, k).Result(); err != nil || v != "v1" {
			t.Fatalf("GET %d with the owner silent = %q, %v; want the other holder's v1", i, v, err)
		}
		t.Logf("GET %d answered by the other holder in %v", i, time.Since(start))
	}
	if h := l1Hits(nodes[1]); h != 0 {
		t.Fatalf("l1_hits = %d: a value read from a holder other than the owner was kept", h)
	}
	p.set("node-2", "node-1", false)
	deadline := time.Now().Add(5 * time.Second)
	for l1Hits(nodes[1]) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the owner answers again, but its values are not kept")
		}
		if v, err := reader.Get(ctx, k).Result(); err != nil || v != "v1" {
			t.Fatalf("GET with the owner back = %q, %v", v, err)
		}
	}
	if d := staleFor(ctx, owner, reader, k, "v2", 3*time.Second); d > time.Second {
		t.Fatalf("a write on the owner reached the reader after %v", d)
	}
}
