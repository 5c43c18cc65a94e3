package memory

import (
	"context"
	"strconv"
	"testing"

	"github.com/vela-cache/vela/store"
)

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte("key:" + strconv.Itoa(i))
	}
	return keys
}

func BenchmarkGetHit(b *testing.B) {
	s := New(Config{})
	ctx := context.Background()
	keys := benchKeys(1024)
	val := make([]byte, 64)
	for _, k := range keys {
		if _, err := s.Do(ctx, k, store.Op{Kind: store.Set, Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			res, _ := s.Do(ctx, keys[i&1023], store.Op{Kind: store.Get})
			if !res.Found {
				b.Fatal("miss")
			}
			i++
		}
	})
}

func BenchmarkSet(b *testing.B) {
	s := New(Config{})
	ctx := context.Background()
	keys := benchKeys(1024)
	val := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Do(ctx, keys[i&1023], store.Op{Kind: store.Set, Value: val}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
