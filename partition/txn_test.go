package partition_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// tagOwnedBy returns a hash tag ("{tN}") whose keys nodes[i] owns.
func tagOwnedBy(t *testing.T, nodes []*server.Server, i int) string {
	return testnode.TagOwnedBy(t, nodes[0].Cluster().Owner, nodes[i].Cluster().Name())
}

// TestTransactionsOnTheKeysOwner runs MULTI/EXEC through every member of a three-member cluster
// on keys every member owns in turn: the owner runs the transaction (the member asked, or
// another one), and the replies are Redis's, in one array, with the connection's own commands
// (PING, ECHO) in their places.
func TestTransactionsOnTheKeysOwner(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
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
				p.Do(ctx, "SET", b, "x", "TAGS", "tg"+tag)
				p.MGet(ctx, a, b)
				p.Echo(ctx, "hi")
				return nil
			})
			if err != nil {
				t.Fatalf("owner %d via %d: %v", i, j, err)
			}
			if got := cmds[1].(*redis.IntCmd).Val(); got != 15 {
				t.Errorf("owner %d via %d: INCRBY = %d", i, j, got)
			}
			if got := cmds[2].(*redis.StatusCmd).Val(); got != "PONG" {
				t.Errorf("owner %d via %d: PING = %q", i, j, got)
			}
			if got := cmds[4].(*redis.SliceCmd).Val(); len(got) != 2 || got[0] != "15" || got[1] != "x" {
				t.Errorf("owner %d via %d: MGET = %v", i, j, got)
			}
			if got := cmds[5].(*redis.StringCmd).Val(); got != "hi" {
				t.Errorf("owner %d via %d: ECHO = %q", i, j, got)
			}
			// Through another member, the tag index was kept by the owner.
			other := client(t, nodes[(j+1)%len(nodes)])
			if n, err := other.Do(ctx, "TAGINVALIDATE", "tg"+tag).Int(); err != nil || n < 1 {
				t.Errorf("owner %d via %d: TAGINVALIDATE = %d, %v", i, j, n, err)
			}
		}
	}
}

// TestTransactionKeysOnSeveralMembers: as in Redis Cluster, a transaction's keys must live
// together. A queued command naming a key of another member is refused with CROSSSLOT and EXEC
// then answers EXECABORT, running nothing; so is a WATCH over several members, and a cluster-
// wide command cannot be queued.
func TestTransactionKeysOnSeveralMembers(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	t0, t1 := tagOwnedBy(t, nodes, 0), tagOwnedBy(t, nodes, 1)
	for j, n := range nodes {
		c := client(t, n)
		conn := c.Conn()
		steps := []struct {
			args []any
			want string // error text, or the status
		}{
			{[]any{"MULTI"}, "OK"},
			{[]any{"SET", t0 + "x", "1"}, "QUEUED"},
			{[]any{"SET", t1 + "x", "1"}, "CROSSSLOT Keys in request don't hash to the same slot"},
			{[]any{"DBSIZE"}, "ERR DBSIZE is not supported inside MULTI with topology.type = partitioned (it acts on every member)"},
			{[]any{"EXEC"}, "EXECABORT Transaction discarded because of previous errors."},
			{[]any{"MGET", t0 + "x", t1 + "x"}, ""},
			{[]any{"WATCH", t0 + "x", t1 + "x"}, "CROSSSLOT Keys in request don't hash to the same slot"},
			{[]any{"WATCH", t0 + "x"}, "OK"},
			{[]any{"WATCH", t1 + "x"}, "CROSSSLOT Keys in request don't hash to the same slot"},
			{[]any{"UNWATCH"}, "OK"},
			{[]any{"WATCH", t1 + "x"}, "OK"}, // UNWATCH freed the transaction from t0's member
			{[]any{"UNWATCH"}, "OK"},
		}
		for _, st := range steps {
			v, err := conn.Do(ctx, st.args...).Result()
			switch {
			case st.want == "":
				if got, _ := v.([]any); err != nil || len(got) != 2 || got[0] != nil || got[1] != nil {
					t.Errorf("via %d: %v = %v, %v; want nothing written", j, st.args, v, err)
				}
			case err != nil:
				if err.Error() != st.want {
					t.Errorf("via %d: %v: %v, want %q", j, st.args, err, st.want)
				}
			case v != st.want:
				t.Errorf("via %d: %v = %v, want %q", j, st.args, v, st.want)
			}
		}
		_ = conn.Close()
	}
}

// TestWatchBrokenByClusterWideWrites: FLUSHALL and TAGINVALIDATE through any member break the
// watch of a key they delete, on the member that owns it, as in Redis.
func TestWatchBrokenByClusterWideWrites(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	key := tagOwnedBy(t, nodes, 2) + "k"
	for _, via := range []int{0, 2} { // the watch held by another member, and by the owner
		for _, wide := range [][]any{{"FLUSHALL", "SYNC"}, {"TAGINVALIDATE", "tw"}} {
			c := client(t, nodes[via])
			if err := c.Do(ctx, "SET", key, "v", "TAGS", "tw").Err(); err != nil {
				t.Fatal(err)
			}
			conn := c.Conn()
			if err := conn.Do(ctx, "WATCH", key).Err(); err != nil {
				t.Fatal(err)
			}
			if err := client(t, nodes[1]).Do(ctx, wide...).Err(); err != nil {
				t.Fatal(err)
			}
			_, err := conn.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, key, "after", 0)
				return nil
			})
			if !errors.Is(err, redis.TxFailedErr) {
				t.Errorf("watch via %d, %v through another member: EXEC = %v, want a refused transaction", via, wide, err)
			}
			_ = conn.Close()
		}
	}
}

// TestRemoteTransactionCommandStats: the commands a transaction ran on another member count in
// INFO commandstats of the member the client asked, as commands it forwards do.
func TestRemoteTransactionCommandStats(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	key := tagOwnedBy(t, nodes, 1) + "n"
	c := client(t, nodes[0])
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, key, "x", 0)
		p.Incr(ctx, key) // fails: not an integer
		p.Get(ctx, key)
		return nil
	})
	if err == nil || err.Error() != "ERR value is not an integer or out of range" {
		t.Fatalf("EXEC: %v", err)
	}
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"cmdstat_set:calls=1,", "cmdstat_get:calls=1,", "cmdstat_exec:calls=1,"} {
		if !strings.Contains(info, want) {
			t.Errorf("INFO commandstats lacks %q:\n%s", want, info)
		}
	}
	if !strings.Contains(info, "cmdstat_incr:calls=1,") || !strings.Contains(info, "failed_calls=1\r\n") {
		t.Errorf("INFO commandstats: INCR must count one failed call:\n%s", info)
	}
}

// TestRemoteTransactionRunsNoPeerCommand: a transaction on another member's keys runs there as
// a peer's request, yet a client may not run peer-only commands through it (VELA DROP would
// delete a key, VELA RESTORE write one), and STATS answers this member's counters: commands
// without keys run here. Found by a review.
func TestRemoteTransactionRunsNoPeerCommand(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	tag := tagOwnedBy(t, nodes, 1)
	c := client(t, nodes[0])
	if err := c.Set(ctx, tag+"keep", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	cmds, _ := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, tag+"x", "1", 0)
		p.Do(ctx, "VELA", "DROP", tag+"keep")
		p.Do(ctx, "VELA", "RESTORE", tag+"evil", "v", "0")
		p.Do(ctx, "STATS")
		return nil
	})
	if len(cmds) != 4 {
		t.Fatalf("%d replies", len(cmds))
	}
	for _, i := range []int{1, 2} {
		if err := cmds[i].Err(); err == nil || !strings.Contains(err.Error(), "for cluster peers only") {
			t.Errorf("%v inside EXEC: %v, want the peer-only refusal", cmds[i].Args(), err)
		}
	}
	if v, err := c.Get(ctx, tag+"keep").Result(); err != nil || v != "v" {
		t.Errorf("%skeep = %q, %v: deleted through a transaction", tag, v, err)
	}
	if n, err := c.Exists(ctx, tag+"evil").Result(); err != nil || n != 0 {
		t.Errorf("%sevil exists (%d, %v): written through a transaction", tag, n, err)
	}
	stats, _ := cmds[3].(*redis.Cmd).Result()
	if m, ok := stats.(map[any]any); !ok || m["forwards"] == int64(0) {
		t.Errorf("STATS inside EXEC = %v, want this member's counters (it forwarded the SET)", stats)
	}
}

// TestRemoteWatchesDoNotBlockMembers: clients of every member watch keys another member owns,
// others run transactions on their own member's keys, others MGET keys of every member. A
// command waiting for another member (a remote WATCH, an MGET's part) must not hold its own
// member's gate, or two members each running an EXEC wait for each other until the forward
// timeout. Every command must succeed (or its EXEC be refused for a changed watch). Found by
// two reviews.
func TestRemoteWatchesDoNotBlockMembers(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tags := []string{tagOwnedBy(t, nodes, 0), tagOwnedBy(t, nodes, 1), tagOwnedBy(t, nodes, 2)}
	end := time.Now().Add(3 * time.Second)
	errs := make(chan error, 27)
	done := make(chan struct{})
	var running atomic.Int32
	for i := range nodes {
		for w := range 9 {
			running.Add(1)
			go func() {
				defer func() {
					if running.Add(-1) == 0 {
						close(done)
					}
				}()
				c := redis.NewClient(&redis.Options{Addr: nodes[i].Addr(), PoolSize: 1, MaxRetries: -1})
				defer c.Close()
				for time.Now().Before(end) {
					var err error
					switch w % 3 {
					case 0: // check-and-set on the next member's key
						key := tags[(i+1)%len(tags)] + "cas"
						err = c.Watch(ctx, func(tx *redis.Tx) error {
							n, err := tx.Get(ctx, key).Int()
							if err != nil && !errors.Is(err, redis.Nil) {
								return err
							}
							_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
								p.Set(ctx, key, n+1, 0)
								return nil
							})
							return err
						}, key)
					case 1: // transactions on this member's own keys
						_, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
							p.Incr(ctx, tags[i]+"own")
							p.Get(ctx, tags[i]+"own")
							return nil
						})
					default: // keys of every member
						err = c.MGet(ctx, tags[0]+"own", tags[1]+"own", tags[2]+"own", "a", "b", "c").Err()
					}
					if err != nil && !errors.Is(err, redis.TxFailedErr) {
						errs <- err
						return
					}
				}
			}()
		}
	}
	<-done
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestWatchedKeyMovedRefusesExec: a key watched through one member moves to a member that
// joins, and is changed there; neither member's watch sees that change, so EXEC must not run
// (it answers TRYAGAIN). Found by a review.
func TestWatchedKeyMovedRefusesExec(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	// Keys node-2 owns now: some of them will move to the joiner.
	var keys []string
	for i := 0; len(keys) < 64; i++ {
		k := "w" + strconv.Itoa(i)
		if nodes[0].Cluster().Owner([]byte(k)) == nodes[1].Cluster().Name() {
			keys = append(keys, k)
		}
	}
	var stay string
	for _, via := range []int{0, 1} { // a remote watch, and the owner's own
		conn := client(t, nodes[via]).Conn()
		watch := []any{"WATCH"}
		for _, k := range keys {
			watch = append(watch, k)
		}
		if err := conn.Do(ctx, watch...).Err(); err != nil {
			t.Fatal(err)
		}
		name := "node-4-" + strconv.Itoa(via)
		n4 := testnode.Start(t, testnode.ClusterConfig(name, nodes[0].Cluster().GossipAddr()))
		all := append(append([]*server.Server(nil), nodes...), n4)
		testnode.WaitConverged(t, 10*time.Second, all...)
		moved := ""
		for _, k := range keys {
			if nodes[0].Cluster().Owner([]byte(k)) == name {
				moved = k
			} else {
				stay = k
			}
		}
		if moved == "" {
			t.Fatalf("none of %d keys moved to %s", len(keys), name)
		}
		if err := client(t, nodes[2]).Set(ctx, moved, "changed", 0).Err(); err != nil {
			t.Fatal(err)
		}
		_, err := conn.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.Set(ctx, stay, "on-a-stale-read", 0)
			return nil
		})
		if err == nil || !strings.HasPrefix(err.Error(), "TRYAGAIN") {
			t.Errorf("watch via %d: EXEC after a watched key moved and changed: %v, want TRYAGAIN", via, err)
		}
		_ = conn.Close()
		ctxStop, cancel := context.WithTimeout(ctx, 10*time.Second)
		_ = n4.Shutdown(ctxStop)
		cancel()
		testnode.WaitConverged(t, 10*time.Second, nodes...)
	}
}

// With two copies of each key, a transaction runs on its keys' owner and its writes reach the
// other holder before EXEC answers, whichever member the client asked.
func TestTransactionsWithReplicas(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) { cfg.Cluster.Replicas = 2 })
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	for i := range nodes {
		tag := tagOwnedBy(t, nodes, i)
		holders := nodes[0].Cluster().Holders([]byte(tag))
		for j, n := range nodes {
			c := client(t, n)
			a, b := tag+"a"+strconv.Itoa(j), tag+"b"+strconv.Itoa(j)
			if err := c.Watch(ctx, func(tx *redis.Tx) error {
				_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.Set(ctx, a, "10", 0)
					p.IncrBy(ctx, a, 5)
					p.Set(ctx, b, "x", 0)
					p.Del(ctx, b)
					return nil
				})
				return err
			}, a); err != nil {
				t.Fatalf("owner %d via %d: %v", i, j, err)
			}
			for _, h := range nodes {
				want := ""
				if slices.Contains(holders, h.Cluster().Name()) {
					want = "15"
				}
				if got := testnode.LocalValue(t, h, a); got != want {
					t.Errorf("owner %d via %d: %s holds %s = %q, want %q", i, j, h.Cluster().Name(), a, got, want)
				}
				if got := testnode.LocalValue(t, h, b); got != "" {
					t.Errorf("owner %d via %d: %s still holds the deleted %s = %q", i, j, h.Cluster().Name(), b, got)
				}
			}
		}
	}
}

// Members in EXEC at once, each the other's replica: a transaction's copies leave only after
// its EXEC has let other commands in, so neither waits for the other. Sent from inside EXEC,
// each member's copies would wait for the other's EXEC to end, until the forward timeout, here
// longer than the clients wait: every transaction must be answered, and every holder must end
// with the owner's value.
func TestTransactionsWithReplicasDoNotWaitForEachOther(t *testing.T) {
	nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) {
		cfg.Cluster.Replicas = 2
		cfg.Cluster.ForwardTimeout = time.Minute
	})
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	ctx := context.Background()
	tags := []string{tagOwnedBy(t, nodes, 0), tagOwnedBy(t, nodes, 1), tagOwnedBy(t, nodes, 2)}
	const rounds = 200
	var slowest atomic.Int64
	errs := make(chan error, len(tags))
	for i, tag := range tags {
		go func() {
			// On the owner, so EXEC runs where the client is.
			c := redis.NewClient(&redis.Options{Addr: nodes[i].Addr(), ReadTimeout: 20 * time.Second, MaxRetries: -1})
			defer c.Close()
			for r := range rounds {
				start := time.Now()
				_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
					for k := range 5 {
						p.Incr(ctx, tag+strconv.Itoa(k))
					}
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("%s round %d: %w", tag, r, err)
					return
				}
				if d := time.Since(start); d.Nanoseconds() > slowest.Load() {
					slowest.Store(d.Nanoseconds())
				}
			}
			errs <- nil
		}()
	}
	for range tags {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("slowest EXEC of %d on each of 3 owners at once: %v", rounds, time.Duration(slowest.Load()))
	for _, tag := range tags {
		holders := nodes[0].Cluster().Holders([]byte(tag))
		for _, h := range nodes {
			if !slices.Contains(holders, h.Cluster().Name()) {
				continue
			}
			for k := range 5 {
				if got := testnode.LocalValue(t, h, tag+strconv.Itoa(k)); got != strconv.Itoa(rounds) {
					t.Errorf("%s holds %s = %q, want %d", h.Cluster().Name(), tag+strconv.Itoa(k), got, rounds)
				}
			}
		}
	}
}
