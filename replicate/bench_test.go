package replicate

import (
	"strconv"
	"testing"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/store/memory"
)

// solo returns a node with the replicated router installed and marked synced, as a member is
// once it holds the whole state (without joining anything).
func solo(t testing.TB) (*commands.Node, *commands.Ctx) {
	st := memory.New(memory.Config{})
	node := commands.NewNode(st, commands.Config{}, nil, nil)
	cl, err := New(node, st, Config{NodeName: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	cl.synced.Store(true)
	return node, &commands.Ctx{Node: node}
}

// TestReadPathDoesNotAllocate: with the replicated router installed, a read runs without
// allocating, as on a local node.
func TestReadPathDoesNotAllocate(t *testing.T) {
	node, ctx := solo(t)
	if r := node.Exec(ctx, [][]byte{[]byte("SET"), []byte("k"), []byte("v")}); r.IsError() {
		t.Fatal(r.Str)
	}
	get := [][]byte{[]byte("GET"), []byte("k")}
	allocs := testing.AllocsPerRun(1000, func() {
		if r := node.Exec(ctx, get); string(r.Bytes) != "v" {
			t.Fatalf("GET = %+v", r)
		}
	})
	if allocs != 0 {
		t.Fatalf("a replicated member's GET allocates %.1f times", allocs)
	}
}

func BenchmarkReplicatedGet(b *testing.B) {
	node, ctx := solo(b)
	node.Exec(ctx, [][]byte{[]byte("SET"), []byte("k"), []byte("v")})
	get := [][]byte{[]byte("GET"), []byte("k")}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		node.Exec(ctx, get)
	}
}

// BenchmarkReplicatedSetStamping is a SET on a member with no other member: the write, its
// stamp and the read of the state a copy would carry, without the network.
func BenchmarkReplicatedSetStamping(b *testing.B) {
	node, ctx := solo(b)
	keys := make([][]byte, 1024)
	for i := range keys {
		keys[i] = []byte("key:" + strconv.Itoa(i))
	}
	args := [][]byte{[]byte("SET"), nil, []byte("value")}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		args[1] = keys[i%len(keys)]
		node.Exec(ctx, args)
	}
}
