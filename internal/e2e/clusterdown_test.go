package e2e_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// TestClusterDownUntilJoined: a member started with seeds that do not answer yet has joined no
// cluster. Alone, it would answer for keys the cluster holds: a miss for a key another member
// has, and a write its join would later drop (the handoff does not overwrite the owner's copy).
// So until it joins, clients' commands on keys get Redis Cluster's CLUSTERDOWN, in a
// transaction and a script too, while keyless commands are served. Once the seed comes up the
// member joins, and the key written through the seed reads back through it.
func TestClusterDownUntilJoined(t *testing.T) {
	for _, topology := range []string{"partitioned", "replicated"} {
		t.Run(topology, func(t *testing.T) { testClusterDownUntilJoined(t, topology) })
	}
}

func testClusterDownUntilJoined(t *testing.T, topology string) {
	ctx := context.Background()
	seedAddr := freeAddr(t)
	cfg := testnode.ClusterConfig("node-2", seedAddr)
	cfg.Topology.Type = topology
	late := testnode.Start(t, cfg)
	c := redis.NewClient(&redis.Options{Addr: late.Addr(), MaxRetries: -1})
	defer c.Close()

	const down = "CLUSTERDOWN The cluster is down"
	wantErr := func(what string, err error, want string) {
		t.Helper()
		if err == nil || err.Error() != want {
			t.Errorf("%s: err = %v, want %q", what, err, want)
		}
	}
	wantErr("GET", c.Get(ctx, "k").Err(), down)
	wantErr("SET", c.Set(ctx, "k", "v", 0).Err(), down)
	wantErr("MGET", c.MGet(ctx, "k", "j").Err(), down)
	wantErr("DBSIZE", c.DBSize(ctx).Err(), down)
	wantErr("FLUSHALL", c.FlushAll(ctx).Err(), down)
	wantErr("TAGINVALIDATE", c.Do(ctx, "TAGINVALIDATE", "t").Err(), down)
	wantErr("EVAL with a key", c.Eval(ctx, "return redis.call('get', KEYS[1])", []string{"k"}).Err(), down)
	err := c.Eval(ctx, "return redis.call('get', 'k')", nil).Err()
	if err == nil || !strings.Contains(err.Error(), "Script attempted to execute a command while the cluster is down") {
		t.Errorf("EVAL calling GET: err = %v", err)
	}
	_, err = c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "k", "v", 0)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "EXECABORT") {
		t.Errorf("MULTI/SET/EXEC: err = %v, want EXECABORT", err)
	}
	if got, err := c.Ping(ctx).Result(); err != nil || got != "PONG" {
		t.Errorf("PING = %q, %v", got, err)
	}
	if err := c.Info(ctx, "server").Err(); err != nil {
		t.Errorf("INFO: %v", err)
	}
	if t.Failed() {
		return
	}

	// The seed comes up with a key; the member joins it and serves.
	seedCfg := testnode.ClusterConfig("node-1")
	seedCfg.Topology.Type = topology
	seedCfg.Cluster.GossipListen = seedAddr
	seed := testnode.Start(t, seedCfg)
	sc := redis.NewClient(&redis.Options{Addr: seed.Addr(), MaxRetries: -1})
	defer sc.Close()
	if err := sc.Set(ctx, "k", "from-seed", 0).Err(); err != nil {
		t.Fatal(err)
	}
	waitJoined(t, topology, seed, late)
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "from-seed" {
		t.Fatalf("GET through the joined member = %q, %v", got, err)
	}
	if err := c.Set(ctx, "k", "from-joiner", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := sc.Get(ctx, "k").Result(); err != nil || got != "from-joiner" {
		t.Fatalf("GET through the seed = %q, %v", got, err)
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitJoined waits until both members are ready with both in their rings.
func waitJoined(t *testing.T, topology string, nodes ...*server.Server) {
	t.Helper()
	if topology == "replicated" {
		testnode.WaitReplicated(t, 15*time.Second, nodes...)
		return
	}
	testnode.WaitConverged(t, 15*time.Second, nodes...)
}
