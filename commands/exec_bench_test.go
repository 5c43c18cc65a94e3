package commands

import (
	"bytes"
	"testing"

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
