package memory

import (
	"context"
	"strconv"
	"testing"

	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store"
)

// The benchmarks run with stats on, as a node does by default.

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte("key:" + strconv.Itoa(i))
	}
	return keys
}

func BenchmarkGetHit(b *testing.B) {
	s := New(Config{Stats: &stats.Stats{}})
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
	s := New(Config{Stats: &stats.Stats{}})
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

// fill stores a 64-byte value under every key.
func fill(b *testing.B, s *Store, keys [][]byte) {
	val := make([]byte, 64)
	for _, k := range keys {
		if _, err := s.Do(context.Background(), k, store.Op{Kind: store.Set, Value: val}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetHitSerial is one GET hit at a time: the cost of the path itself.
func BenchmarkGetHitSerial(b *testing.B) {
	s := New(Config{Stats: &stats.Stats{}})
	keys := benchKeys(10000)
	fill(b, s, keys)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = s.Do(ctx, keys[i%len(keys)], store.Op{Kind: store.Get})
	}
}

// BenchmarkGetHitLRU is BenchmarkGetHit on a bounded LRU store: every hit also records the
// access in the entry.
func BenchmarkGetHitLRU(b *testing.B) {
	s := New(Config{Stats: &stats.Stats{}, Policy: PolicyLRU, MaxSize: 1 << 20})
	keys := benchKeys(1024)
	fill(b, s, keys)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _ = s.Do(ctx, keys[i&1023], store.Op{Kind: store.Get})
			i++
		}
	})
}

// BenchmarkSetEvicting writes 10,000 keys in turn through an LRU store bounded at 5,000: every
// write evicts one entry.
func BenchmarkSetEvicting(b *testing.B) {
	s := New(Config{Stats: &stats.Stats{}, Policy: PolicyLRU, MaxSize: 5000})
	keys := benchKeys(10000)
	val := make([]byte, 64)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, _ = s.Do(ctx, keys[i%len(keys)], store.Op{Kind: store.Set, Value: val})
	}
}

// BenchmarkGetHitRandom100k is one GET hit at a time on a random one of 100,000 keys, as
// redis-benchmark -r 100000 reads them: the lookup's cache misses dominate. The key is built in
// a buffer of its own, as a server has it in its read buffer.
func BenchmarkGetHitRandom100k(b *testing.B) {
	s := New(Config{Stats: &stats.Stats{}})
	const n = 100000
	fill(b, s, benchKeys(n))
	ctx := context.Background()
	key := make([]byte, 0, 32)
	x := uint32(1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		key = strconv.AppendInt(append(key[:0], "key:"...), int64(x%n), 10)
		if res, _ := s.Do(ctx, key, store.Op{Kind: store.Get}); !res.Found {
			b.Fatal("miss")
		}
	}
}
