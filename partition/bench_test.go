package partition_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/partition"
	"github.com/vela-cache/vela/server"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/memory"
)

// TestLocalPathDoesNotAllocate: with the cluster router installed, a command on a key this
// node owns runs without allocating, as on a local node.
func TestLocalPathDoesNotAllocate(t *testing.T) {
	st := memory.New(memory.Config{})
	node := commands.NewNode(st, commands.Config{}, nil, nil)
	if _, err := partition.New(node, st, partition.Config{NodeName: "solo"}); err != nil {
		t.Fatal(err)
	}
	ctx := &commands.Ctx{Node: node}
	set := [][]byte{[]byte("SET"), []byte("k"), []byte("v")}
	get := [][]byte{[]byte("GET"), []byte("k")}
	if r := node.Exec(ctx, set); r.IsError() {
		t.Fatal(r.Str)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if r := node.Exec(ctx, get); string(r.Bytes) != "v" {
			t.Fatalf("GET = %+v", r)
		}
	})
	if allocs != 0 {
		t.Fatalf("routed local GET allocates %.1f times", allocs)
	}
}

func BenchmarkRoutedLocalGet(b *testing.B) {
	st := memory.New(memory.Config{})
	node := commands.NewNode(st, commands.Config{}, nil, nil)
	if _, err := partition.New(node, st, partition.Config{NodeName: "solo"}); err != nil {
		b.Fatal(err)
	}
	ctx := &commands.Ctx{Node: node}
	node.Exec(ctx, [][]byte{[]byte("SET"), []byte("k"), []byte("v")})
	get := [][]byte{[]byte("GET"), []byte("k")}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		node.Exec(ctx, get)
	}
}

// BenchmarkRebalance1M measures how long a fourth member's join takes to settle when three
// members hold 1M keys: from its start until every member has handed off what it no longer
// owns. Run it alone: go test ./partition -run '^$' -bench Rebalance1M -benchtime 1x.
func BenchmarkRebalance1M(b *testing.B) {
	const keys = 1_000_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		nodes := testnode.StartCluster(b, 3, nil)
		testnode.WaitConverged(b, 10*time.Second, nodes...)
		byName := map[string]*server.Server{}
		for _, n := range nodes {
			byName[n.Cluster().Name()] = n
		}
		// Load the keys straight into their owners' stores (the network path is measured by
		// bench/cluster.sh; here only the handoff is).
		ctx := context.Background()
		val := []byte("value-0123456789abcdef0123456789abcdef")
		for k := 0; k < keys; k++ {
			key := []byte("key:" + strconv.Itoa(k))
			owner := byName[nodes[0].Cluster().Owner(key)]
			if _, err := owner.Node().Store().Do(ctx, key, store.Op{Kind: store.Set, Value: val}); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start := time.Now()
		n4 := testnode.Start(b, testnode.ClusterConfig("node-4", nodes[0].Cluster().GossipAddr()))
		all := append(nodes, n4)
		testnode.WaitConverged(b, 2*time.Minute, all...)
		took := time.Since(start)
		b.StopTimer()
		moved, _ := n4.Node().Store().(store.Keyspace).Len(ctx)
		var total int64
		for _, n := range all {
			l, _ := n.Node().Store().(store.Keyspace).Len(ctx)
			total += l
		}
		if total != keys {
			b.Fatalf("%d keys after the join, want %d", total, keys)
		}
		b.ReportMetric(took.Seconds(), "s/join")
		b.ReportMetric(float64(moved), "keys-moved")
		b.ReportMetric(float64(moved)/took.Seconds(), "keys/s")
		for _, n := range all {
			_ = n.Shutdown(ctx)
		}
		b.StartTimer()
	}
}
