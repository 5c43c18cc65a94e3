package commands

import (
	"bytes"
	"testing"
	"time"

	"github.com/vela-cache/vela/nearcache"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store/memory"
)

// BenchmarkExec measures dispatch (lookup, arity, handler, store) without a socket.
func BenchmarkExec(b *testing.B) {
	n := NewNode(memory.New(memory.Config{}), Config{}, nil, nil)
	ctx := &Ctx{Node: n}
	val := bytes.Repeat([]byte("v"), 64)
	set := [][]byte{[]byte("SET"), []byte("key:1"), val}
	get := [][]byte{[]byte("GET"), []byte("key:1")}
	n.Exec(ctx, set)
	b.Run("GET", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := n.Exec(ctx, get); r.Kind != resp.KindBulk {
				b.Fatal(r)
			}
		}
	})
	b.Run("SET", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := n.Exec(ctx, set); r.Kind != resp.KindStatus {
				b.Fatal(r)
			}
		}
	})
}

// BenchmarkExecNear is BenchmarkExec's GET answered by a near cache in front of the store: what
// a GET the near cache holds costs from dispatch to reply, without the socket.
func BenchmarkExecNear(b *testing.B) {
	n := NewNode(memory.New(memory.Config{}), Config{}, nil, nil)
	nc, err := nearcache.New(1000, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	nc.Resume()
	n.SetNearCache(nc)
	ctx := &Ctx{Node: n}
	n.Exec(ctx, [][]byte{[]byte("SET"), []byte("key:1"), bytes.Repeat([]byte("v"), 64)})
	get := [][]byte{[]byte("GET"), []byte("key:1")}
	n.Exec(ctx, get) // the miss that fills it
	b.ReportAllocs()
	for b.Loop() {
		if r := n.Exec(ctx, get); r.Kind != resp.KindBulk {
			b.Fatal(r)
		}
	}
	if n.stats.L1Hits.Load() == 0 && n.stats.On() {
		b.Fatal("the near cache answered nothing")
	}
}

// BenchmarkExecTracking is BenchmarkExec for a client with CLIENT TRACKING on: a GET of a key
// it tracks already (remembered before and after the read), and a SET then GET of a key it
// tracks, where the SET invalidates (its message built, not sent: the client speaks RESP2) and
// the GET remembers the key again.
func BenchmarkExecTracking(b *testing.B) {
	n := NewNode(memory.New(memory.Config{}), Config{}, nil, nil)
	ctx := &Ctx{Node: n}
	ctx.trk = &trackState{conn: &resp.Conn{ID: 1}}
	n.clientCache.enable(ctx.trk, 0, nil, false, false, false, false, nil)
	val := bytes.Repeat([]byte("v"), 64)
	set := [][]byte{[]byte("SET"), []byte("key:1"), val}
	get := [][]byte{[]byte("GET"), []byte("key:1")}
	n.Exec(ctx, set)
	n.Exec(ctx, get)
	b.Run("GET", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := n.Exec(ctx, get); r.Kind != resp.KindBulk {
				b.Fatal(r)
			}
		}
	})
	b.Run("SET+GET", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			n.Exec(ctx, set)
			if r := n.Exec(ctx, get); r.Kind != resp.KindBulk {
				b.Fatal(r)
			}
		}
	})
}
