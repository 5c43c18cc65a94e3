// Package testnode runs in-process Vela nodes on free loopback ports for tests: the same
// server.Server the binary runs, with real sockets.
package testnode

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/server"
	"github.com/vela-cache/vela/store"
)

// Config returns the default configuration adjusted for tests: a free port, no metrics listener.
func Config() config.Config {
	cfg := config.Default()
	cfg.Listen = "127.0.0.1:0"
	cfg.MetricsListen = ""
	return cfg
}

// Start validates cfg, runs a node and stops it when the test ends. Set VELA_TEST_LOG=1 to see
// its logs.
func Start(t testing.TB, cfg config.Config, opts ...server.Option) *server.Server {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("VELA_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv, err := server.New(cfg, log, opts...)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := srv.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return srv
}

// StartDefault runs a node with Config().
func StartDefault(t testing.TB) *server.Server { return Start(t, Config()) }

// ClusterConfig returns Config() for a member of a partitioned test cluster: gossip on a free
// loopback port with fast failure detection, joining seeds.
func ClusterConfig(name string, seeds ...string) config.Config {
	cfg := Config()
	cfg.Topology.Type = "partitioned"
	cfg.Cluster.NodeName = name
	cfg.Cluster.GossipListen = "127.0.0.1:0"
	cfg.Cluster.GossipProfile = "local"
	cfg.Cluster.Join = seeds
	cfg.Cluster.Secret = "test-secret"
	return cfg
}

// StartCluster runs n partitioned members named node-1…node-n, each joining the first, with
// adjust (may be nil) applied to each configuration. It does not wait for them to converge.
func StartCluster(t testing.TB, n int, adjust func(i int, cfg *config.Config)) []*server.Server {
	t.Helper()
	return startMembers(t, n, "partitioned", adjust)
}

// startMembers runs n members of a topology named node-1…node-n, each joining the first.
func startMembers(t testing.TB, n int, topology string, adjust func(i int, cfg *config.Config)) []*server.Server {
	t.Helper()
	var nodes []*server.Server
	var seeds []string
	for i := 0; i < n; i++ {
		cfg := ClusterConfig(fmt.Sprintf("node-%d", i+1), seeds...)
		cfg.Topology.Type = topology
		if adjust != nil {
			adjust(i, &cfg)
		}
		srv := Start(t, cfg)
		if i == 0 {
			seeds = []string{gossipAddr(srv)}
		}
		nodes = append(nodes, srv)
	}
	return nodes
}

// gossipAddr is a cluster member's memberlist address.
func gossipAddr(srv *server.Server) string {
	if r := srv.Replicated(); r != nil {
		return r.GossipAddr()
	}
	return srv.Cluster().GossipAddr()
}

// WaitConverged polls until every node's ring has exactly the given nodes as members and every
// node is ready and has finished handing off keys for that ring, or fails the test after
// timeout.
func WaitConverged(t testing.TB, timeout time.Duration, nodes ...*server.Server) {
	t.Helper()
	waitMembers(t, timeout, nodes, func(n *server.Server) member {
		return member{n.Cluster().Name(), n.Cluster().RingMembers(), n.Cluster().Ready() && n.Cluster().Balanced()}
	})
}

// member is what waitMembers checks of a node: its name, its ring's members, and whether it
// is ready.
type member struct {
	name  string
	ring  []string
	ready bool
}

// waitMembers polls until every node, as state describes it, has exactly the nodes as ring
// members and is ready, or fails the test after timeout.
func waitMembers(t testing.TB, timeout time.Duration, nodes []*server.Server, state func(*server.Server) member) {
	t.Helper()
	var want []string
	for _, n := range nodes {
		want = append(want, state(n).name)
	}
	sort.Strings(want)
	deadline := time.Now().Add(timeout)
	for {
		ok := true
		for _, n := range nodes {
			if m := state(n); !slices.Equal(m.ring, want) || !m.ready {
				ok = false
				break
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var got []string
			for _, n := range nodes {
				m := state(n)
				got = append(got, fmt.Sprintf("%s: %v ready=%v", m.name, m.ring, m.ready))
			}
			t.Fatalf("cluster did not converge on %v within %v: %v", want, timeout, got)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StartReplicated runs n members of a replicated cluster named node-1…node-n, each joining the
// first, with adjust (may be nil) applied to each configuration. It does not wait for them.
func StartReplicated(t testing.TB, n int, adjust func(i int, cfg *config.Config)) []*server.Server {
	t.Helper()
	return startMembers(t, n, "replicated", adjust)
}

// WaitReplicated polls until every node of a replicated cluster sees exactly the given nodes as
// members and is ready, or fails the test after timeout.
func WaitReplicated(t testing.TB, timeout time.Duration, nodes ...*server.Server) {
	t.Helper()
	waitMembers(t, timeout, nodes, func(n *server.Server) member {
		return member{n.Replicated().Name(), n.Replicated().RingMembers(), n.Replicated().Ready()}
	})
}

// TagOwnedBy returns a hash tag ("{tN}") whose keys owner (a ring's Owner) places on member.
func TagOwnedBy(t testing.TB, owner func(key []byte) string, member string) string {
	t.Helper()
	for n := 0; n < 10000; n++ {
		tag := "{t" + strconv.Itoa(n) + "}"
		if owner([]byte(tag)) == member {
			return tag
		}
	}
	t.Fatalf("no tag owned by %s", member)
	return ""
}

// LocalValue reads key from srv's own store, whichever member owns it: "" when it is not there.
func LocalValue(t testing.TB, srv *server.Server, key string) string {
	t.Helper()
	res, err := srv.Node().Store().Do(context.Background(), []byte(key), store.Op{Kind: store.Get})
	if err != nil {
		t.Fatal(err)
	}
	return string(res.Value)
}
