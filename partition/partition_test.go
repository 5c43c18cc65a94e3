package partition_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/faultnet"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// The partition test cuts the network between nodes with package faultnet instead of network
// namespaces, so it runs anywhere without privileges.

func startFaultyNode(t *testing.T, f *faultnet.Net, name string, seeds ...string) *server.Server {
	t.Helper()
	srv := testnode.Start(t, testnode.ClusterConfig(name, seeds...), f.Options(t, name)...)
	f.Register(srv.Addr(), name)
	return srv
}

func ringIs(srv *server.Server, members ...string) bool {
	got := srv.Cluster().RingMembers()
	return strings.Join(got, ",") == strings.Join(members, ",")
}

func TestNetworkPartition(t *testing.T) {
	f := faultnet.New()
	n1 := startFaultyNode(t, f, "node-1")
	n2 := startFaultyNode(t, f, "node-2", n1.Cluster().GossipAddr())
	n3 := startFaultyNode(t, f, "node-3", n1.Cluster().GossipAddr())
	nodes := []*server.Server{n1, n2, n3}
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	writeKeys(t, client(t, n1), 3000)

	f.Split([]string{"node-1", "node-2"}, []string{"node-3"})
	ctx := context.Background()
	clients := []*redis.Client{client(t, n1), client(t, n2), client(t, n3)}
	// While the cut is fresh, and until each side has declared the other dead, every command
	// answers or fails with a clear error within the forward timeout (1s) plus slack.
	answers, clearErrors := duringPartition(t, clients, func(ci int) bool {
		return ringIs(nodes[ci], "node-1", "node-2") || ringIs(nodes[ci], "node-3")
	})
	if t.Failed() {
		return
	}
	waitFor(t, 15*time.Second, "each side to drop the other", func() bool {
		return ringIs(n1, "node-1", "node-2") && ringIs(n2, "node-1", "node-2") && ringIs(n3, "node-3")
	})
	t.Logf("during the partition: %d answers, %d clear errors", answers, clearErrors)
	// Each side now serves on its own: the majority answers for every key (those node-3 held
	// are missing there, with one copy), and node-3 answers too.
	for _, c := range clients {
		for i := 0; i < 100; i++ {
			if err := c.Get(ctx, "key:"+strconv.Itoa(i)).Err(); err != nil && !errors.Is(err, redis.Nil) {
				t.Fatalf("GET while partitioned and settled: %v", err)
			}
		}
	}

	f.Heal()
	testnode.WaitConverged(t, 20*time.Second, nodes...)
	for i, c := range clients {
		k := "healed:" + strconv.Itoa(i)
		if err := c.Set(ctx, k, "yes", 0).Err(); err != nil {
			t.Fatalf("SET after heal: %v", err)
		}
		for _, other := range clients {
			if v, err := other.Get(ctx, k).Result(); err != nil || v != "yes" {
				t.Fatalf("GET %s after heal = %q, %v", k, v, err)
			}
		}
	}
	if n, err := clients[0].DBSize(ctx).Result(); err != nil || n < 3 {
		t.Fatalf("DBSIZE after heal = %d, %v", n, err)
	}
}

// duringPartition sends GETs and SETs of the 3,000 keys "key:N" through every client, four at a
// time each, for up to 10 s or until settled(client index) reports that client's member has
// settled, and fails t when a command takes more than 2 s or fails with anything but a clear
// "ERR cluster: …" error. It returns how many commands were answered and how many failed clearly.
func duringPartition(t *testing.T, clients []*redis.Client, settled func(ci int) bool) (answers, clearErrors int64) {
	t.Helper()
	ctx := context.Background()
	var ok, clear atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second)
	for ci, c := range clients {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; time.Now().Before(deadline); i += 4 {
					if settled(ci) {
						return
					}
					key := "key:" + strconv.Itoa(i%3000)
					t0 := time.Now()
					var err error
					if i%2 == 0 {
						err = c.Get(ctx, key).Err()
					} else {
						err = c.Set(ctx, key, "val:"+strconv.Itoa(i%3000), 0).Err()
					}
					if d := time.Since(t0); d > 2*time.Second {
						t.Errorf("command %d through client %d took %v during the partition: %v", i, ci+1, d, err)
						return
					}
					switch {
					case err == nil || errors.Is(err, redis.Nil):
						ok.Add(1)
					case strings.HasPrefix(err.Error(), "ERR cluster: "):
						clear.Add(1)
					default:
						t.Errorf("command through client %d: unexpected error %v", ci+1, err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	return ok.Load(), clear.Load()
}

// waitFor polls cond until it holds or fails the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
