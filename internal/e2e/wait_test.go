package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestWaitLikeRedis: WAIT on a node without copies answers as a Redis primary without replicas:
// 0 at once for numreplicas ≤ 0 and inside MULTI, 0 after the timeout otherwise, Redis's
// errors for its arguments, refused in scripts; CLIENT UNBLOCK ends its wait (TIMEOUT: 0,
// ERROR: the UNBLOCKED error).
func TestWaitLikeRedis(t *testing.T) {
	servers := map[string]string{"redis": redistest.Start(t).Addr, "vela": testnode.StartDefault(t).Addr()}
	redis, vela := respclient.Dial(t, servers["redis"]), respclient.Dial(t, servers["vela"])
	sameReplies(t, redis, vela, [][]any{
		{"WAIT", "0", "0"}, {"WAIT", "-1", "5"}, {"WAIT", "abc", "0"}, {"WAIT", "0", "abc"},
		{"WAIT", "0", "-1"}, {"WAIT", "0", "1.5"}, {"WAIT", "1"}, {"WAIT", "0", "9223372036854775807"},
		{"WAIT", "9223372036854775808", "0"}, {"MULTI"}, {"WAIT", "5", "0"}, {"EXEC"},
		{"EVAL", "return redis.pcall('wait', '0', '0')", "0"},
	})
	for name, addr := range servers {
		t.Run(name, func(t *testing.T) {
			c := respclient.Dial(t, addr)
			start := time.Now()
			c.Do("WAIT", "1", "150").Int(0)
			if took := time.Since(start); took < 140*time.Millisecond {
				t.Errorf("WAIT 1 150 answered after %v, before its timeout", took)
			}
			for _, reason := range []string{"TIMEOUT", "ERROR"} {
				waiter, other := respclient.Dial(t, addr), respclient.Dial(t, addr)
				id := waiter.Do("CLIENT", "ID").Value.Int
				waiter.Send("WAIT", "1", "0")
				if err := waiter.Flush(); err != nil {
					t.Fatal(err)
				}
				deadline := time.Now().Add(5 * time.Second)
				for !strings.Contains(other.Do("INFO", "clients").Value.Text(), "blocked_clients:1\r\n") {
					if time.Now().After(deadline) {
						t.Fatal("INFO never counted the WAIT among blocked_clients")
					}
					time.Sleep(5 * time.Millisecond)
				}
				for other.Do("CLIENT", "UNBLOCK", id, reason).Value.Int != 1 {
					if time.Now().After(deadline) {
						t.Fatal("WAIT never became unblockable")
					}
					time.Sleep(5 * time.Millisecond)
				}
				v, _, err := waiter.Receive()
				if info := other.Do("INFO", "clients").Value.Text(); !strings.Contains(info, "blocked_clients:0\r\n") {
					t.Errorf("after the unblock: %s", info)
				}
				switch {
				case err != nil:
					t.Fatal(err)
				case reason == "TIMEOUT" && (v.Type != ':' || v.Int != 0):
					t.Errorf("WAIT unblocked with TIMEOUT answered %v, want 0", v)
				case reason == "ERROR" && v.Str != "UNBLOCKED client unblocked via CLIENT UNBLOCK":
					t.Errorf("WAIT unblocked with ERROR answered %v", v)
				}
			}
		})
	}
}

// TestWaitReplicated: in the replicated topology every other member has applied a write's copy
// before it is acknowledged, so WAIT answers their number at once.
func TestWaitReplicated(t *testing.T) {
	nodes := testnode.StartReplicated(t, 3, nil)
	testnode.WaitReplicated(t, 10*time.Second, nodes...)
	c := respclient.Dial(t, nodes[0].Addr())
	c.Do("SET", "k", "v").OK()
	start := time.Now()
	c.Do("WAIT", "2", "5000").Int(2)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("WAIT 2 took %v with both copies made", took)
	}
	c.Do("WAIT", "3", "100").Int(2)
}

// TestWaitPartitioned: in the partitioned topology a write is acknowledged once its copies have
// reached the key's other holders, so WAIT answers cluster.replicas − 1 at once (0 with one
// copy: after its timeout when more are asked for).
func TestWaitPartitioned(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprint("replicas=", replicas), func(t *testing.T) {
			nodes := testnode.StartCluster(t, 3, func(_ int, cfg *config.Config) { cfg.Cluster.Replicas = replicas })
			testnode.WaitConverged(t, 10*time.Second, nodes...)
			c := respclient.Dial(t, nodes[0].Addr())
			for i := range 10 { // keys of every owner
				c.Do("SET", fmt.Sprint("k", i), "v").OK()
			}
			c.Do("WAIT", "0", "0").Int(int64(replicas - 1))
			c.Do("WAIT", fmt.Sprint(replicas-1), "5000").Int(int64(replicas - 1))
			c.Do("WAIT", "3", "100").Int(int64(replicas - 1))
		})
	}
}
