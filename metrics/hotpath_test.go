package metrics_test

import (
	"testing"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/metrics"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store/memory"
)

// newNode returns a node on a memory store with stats on and, when observed, metrics attached.
func newNode(observed bool) (*commands.Node, *commands.Ctx) {
	counters := &stats.Stats{}
	node := commands.NewNode(memory.New(memory.Config{Stats: counters}), commands.Config{}, counters, nil)
	if observed {
		metrics.New(node, nil)
	}
	c := &commands.Ctx{Node: node}
	node.Exec(c, [][]byte{[]byte("SET"), []byte("key:000000000001"), make([]byte, 64)})
	return node, c
}

// TestHotPathDoesNotAllocate checks that dispatching GET (a hit) and SET through the command
// table with stats and metrics on allocates nothing but the stored item.
func TestHotPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	node, c := newNode(true)
	get := [][]byte{[]byte("GET"), []byte("key:000000000001")}
	if n := testing.AllocsPerRun(1000, func() {
		if r := node.Exec(c, get); r.Kind != resp.KindBulk {
			panic("GET missed")
		}
	}); n != 0 {
		t.Errorf("GET allocates %.1f times per call", n)
	}
	set := [][]byte{[]byte("SET"), []byte("key:000000000001"), make([]byte, 64)}
	if n := testing.AllocsPerRun(1000, func() { node.Exec(c, set) }); n != 1 {
		t.Errorf("SET allocates %.1f times per call, want 1 (the stored item)", n)
	}
}

func BenchmarkExec(b *testing.B) {
	for _, bc := range []struct {
		name     string
		observed bool
	}{{"stats", false}, {"stats+metrics", true}} {
		node, c := newNode(bc.observed)
		get := [][]byte{[]byte("GET"), []byte("key:000000000001")}
		set := [][]byte{[]byte("SET"), []byte("key:000000000001"), make([]byte, 64)}
		b.Run("GET/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				node.Exec(c, get)
			}
		})
		b.Run("SET/"+bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				node.Exec(c, set)
			}
		})
	}
}
