package replicate_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// tagOwnedBy returns a hash tag ("{tN}") whose keys nodes[i] decides.
func tagOwnedBy(t *testing.T, nodes []*server.Server, i int) string {
	return testnode.TagOwnedBy(t, nodes[0].Replicated().Owner, nodes[i].Replicated().Name())
}

func replicatedThree(t *testing.T) []*server.Server {
	t.Helper()
	nodes := testnode.StartReplicated(t, 3, nil)
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	return nodes
}

// A transaction runs on the member that decides its keys, whichever member the client asked;
// its replies are Redis's, and every member holds its writes when EXEC answers. Keys decided by
// different members get CROSSSLOT, as in Redis Cluster.
func TestReplicatedTransactions(t *testing.T) {
	nodes := replicatedThree(t)
	ctx := context.Background()
	for i := range nodes {
		tag := tagOwnedBy(t, nodes, i)
		for j, n := range nodes {
			c := client(t, n)
			a, b := tag+"a"+strconv.Itoa(j), tag+"b"+strconv.Itoa(j)
			cmds, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, a, "10", 0)
				p.IncrBy(ctx, a, 5)
				p.Ping(ctx)
				p.Set(ctx, b, "x", 0)
				p.Del(ctx, b)
				p.MGet(ctx, a, b)
				return nil
			})
			if err != nil {
				t.Fatalf("owner %d via %d: %v", i, j, err)
			}
			if got := cmds[1].(*redis.IntCmd).Val(); got != 15 {
				t.Errorf("owner %d via %d: INCRBY = %d", i, j, got)
			}
			if got := cmds[5].(*redis.SliceCmd).Val(); len(got) != 2 || got[0] != "15" || got[1] != nil {
				t.Errorf("owner %d via %d: MGET = %v", i, j, got)
			}
			for _, h := range nodes {
				if got := testnode.LocalValue(t, h, a); got != "15" {
					t.Errorf("owner %d via %d: %s holds %s = %q after EXEC", i, j, h.Replicated().Name(), a, got)
				}
				if got := testnode.LocalValue(t, h, b); got != "" {
					t.Errorf("owner %d via %d: %s still holds the deleted %s", i, j, h.Replicated().Name(), b)
				}
			}
		}
	}
	t0, t1 := tagOwnedBy(t, nodes, 0), tagOwnedBy(t, nodes, 1)
	conn := client(t, nodes[2]).Conn()
	defer conn.Close()
	if err := conn.Do(ctx, "MULTI").Err(); err != nil {
		t.Fatal(err)
	}
	conn.Do(ctx, "SET", t0+"x", "1")
	if err := conn.Do(ctx, "SET", t1+"x", "1").Err(); err == nil || err.Error() != "CROSSSLOT Keys in request don't hash to the same slot" {
		t.Fatalf("a key decided by another member: %v", err)
	}
	if err := conn.Do(ctx, "EXEC").Err(); err == nil || err.Error() != "EXECABORT Transaction discarded because of previous errors." {
		t.Fatalf("EXEC: %v", err)
	}
}

// A blind write (SET) runs on the member the client sends it to, which copies it to the others:
// landing on the owner, it breaks a WATCH of its key there, as in Redis.
func TestReplicatedWatchBrokenByAnotherMembersWrite(t *testing.T) {
	nodes := replicatedThree(t)
	ctx := context.Background()
	tag := tagOwnedBy(t, nodes, 0)
	k := tag + "w"
	watcher, writer := client(t, nodes[1]), client(t, nodes[2])
	err := watcher.Watch(ctx, func(tx *redis.Tx) error {
		if err := writer.Set(ctx, k, "theirs", 0).Err(); err != nil {
			return err
		}
		_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, k, "mine", 0)
			return nil
		})
		return err
	}, k)
	if err != redis.TxFailedErr {
		t.Fatalf("EXEC after another member's write to a watched key: %v, want the transaction aborted", err)
	}
	for _, n := range nodes {
		if got := testnode.LocalValue(t, n, k); got != "theirs" {
			t.Errorf("%s holds %q", n.Replicated().Name(), got)
		}
	}
}

// Members each running transactions on keys they decide, while other clients write the same
// keys through the other members: no EXEC waits for another member's (their copies leave once
// EXEC has let other commands in; sent from inside EXEC they would wait until the forward
// timeout, here longer than the clients wait), no increment is lost, and every member ends
// with the same values.
func TestReplicatedTransactionsConcurrent(t *testing.T) {
	nodes := testnode.StartReplicated(t, 3, func(_ int, cfg *config.Config) { cfg.Cluster.ForwardTimeout = time.Minute })
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	patient := func(srv *server.Server) *redis.Client {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 20 * time.Second, MaxRetries: -1})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	ctx := context.Background()
	tags := []string{tagOwnedBy(t, nodes, 0), tagOwnedBy(t, nodes, 1), tagOwnedBy(t, nodes, 2)}
	const rounds = 150
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(tags))
	slowest := make([]time.Duration, len(tags))
	for i, tag := range tags {
		wg.Add(2)
		go func() { // transactions on the owner
			defer wg.Done()
			c := patient(nodes[i])
			for r := range rounds {
				start := time.Now()
				_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Incr(ctx, tag+"n")
					p.Incr(ctx, tag+"m")
					p.Set(ctx, tag+"s", r, 0)
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("%s round %d: %w", tag, r, err)
					return
				}
				slowest[i] = max(slowest[i], time.Since(start))
			}
		}()
		go func() { // INCRs of the same keys through another member, forwarded to the owner
			defer wg.Done()
			c := patient(nodes[(i+1)%len(nodes)])
			for r := range rounds {
				if err := c.Incr(ctx, tag+"n").Err(); err != nil {
					errs <- fmt.Errorf("%s INCR %d: %w", tag, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("slowest EXEC on each of 3 owners at once: %v", slowest)
	for _, tag := range tags {
		for _, n := range nodes {
			if got := testnode.LocalValue(t, n, tag+"n"); got != strconv.Itoa(2*rounds) {
				t.Errorf("%s holds %sn = %q, want %d", n.Replicated().Name(), tag, got, 2*rounds)
			}
			if got := testnode.LocalValue(t, n, tag+"m"); got != strconv.Itoa(rounds) {
				t.Errorf("%s holds %sm = %q, want %d", n.Replicated().Name(), tag, got, rounds)
			}
		}
	}
}
