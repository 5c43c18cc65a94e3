package partition_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// tagOwnedBy returns a hash tag ("{tN}") whose keys nodes[i] owns.
func tagOwnedBy(t *testing.T, nodes []*server.Server, i int) string {
	t.Helper()
	want := nodes[i].Cluster().Name()
	for n := 0; n < 10000; n++ {
		tag := "{t" + strconv.Itoa(n) + "}"
		if nodes[0].Cluster().Owner([]byte(tag)) == want {
			return tag
		}
	}
	t.Fatalf("no tag owned by %s", want)
	return ""
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
