package fetchlock_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/fetchlock"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store/memory"
)

// BenchmarkFetchLock measures the commands without a socket: FETCHLOCK on a live key (the path
// every reader of a warm cache takes), a whole miss → LOCKED → FETCHFILL cycle, and what the lease
// manager adds to a plain SET (a change notification for a key without lease state).
func BenchmarkFetchLock(b *testing.B) {
	st := memory.New(memory.Config{})
	defer st.Close()
	n := commands.NewNode(st, commands.Config{}, nil, nil)
	m := fetchlock.New(fetchlock.Config{Store: st})
	defer m.Shutdown(context.Background())
	n.Watch(m)
	fetchlock.Register(n, m, fetchlock.CommandConfig{})
	ctx := &commands.Ctx{Node: n}
	val := bytes.Repeat([]byte("v"), 64)
	set := [][]byte{[]byte("SET"), []byte("key:1"), val}
	n.Exec(ctx, set)

	b.Run("HIT", func(b *testing.B) {
		args := [][]byte{[]byte("FETCHLOCK"), []byte("key:1")}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := n.Exec(ctx, args); r.Kind != resp.KindArray || r.Elems[0].Str != "HIT" {
				b.Fatal(r)
			}
		}
	})
	b.Run("HIT-REFRESH-window", func(b *testing.B) {
		args := [][]byte{[]byte("FETCHLOCK"), []byte("key:1"), []byte("REFRESH"), []byte("1000")}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := n.Exec(ctx, args); r.Kind != resp.KindArray || r.Elems[0].Str != "HIT" {
				b.Fatal(r)
			}
		}
	})
	b.Run("LOCKED+FETCHFILL", func(b *testing.B) {
		lock := [][]byte{[]byte("FETCHLOCK"), []byte("cold")}
		fill := [][]byte{[]byte("FETCHFILL"), []byte("cold"), nil, val}
		del := [][]byte{[]byte("DEL"), []byte("cold")}
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			r := n.Exec(ctx, lock)
			if r.Kind != resp.KindArray || r.Elems[0].Str != "LOCKED" {
				b.Fatal(r)
			}
			fill[2] = []byte(r.Elems[1].Str)
			if r := n.Exec(ctx, fill); r.Kind != resp.KindStatus {
				b.Fatal(r)
			}
			n.Exec(ctx, del)
		}
	})
	b.Run("SET-watched", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if r := n.Exec(ctx, set); r.Kind != resp.KindStatus {
				b.Fatal(r)
			}
		}
	})
}
