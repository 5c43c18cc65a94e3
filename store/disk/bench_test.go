package disk_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/disk"
)

// BenchmarkOpen1M measures a restart with a million keys: open the file and serve the first GET.
// The file is built once (VELA_BENCH_KEYS overrides the key count).
func BenchmarkOpen1M(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("VELA_BENCH_KEYS")); err == nil && v > 0 {
		n = v
	}
	path := filepath.Join(b.TempDir(), "vela.db")
	s, err := disk.Open(disk.Config{Path: path})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	const chunk = 10_000
	far := time.Now().Add(time.Hour).UnixMilli()
	for i := 0; i < n; i += chunk {
		pairs := make([]store.KV, 0, chunk)
		for j := i; j < min(i+chunk, n); j++ {
			pairs = append(pairs, store.KV{Key: []byte(fmt.Sprintf("key:%d", j)), Value: []byte(fmt.Sprintf("value-%d-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", j))})
		}
		exp := int64(0)
		if (i/chunk)%2 == 0 {
			exp = far
		}
		if _, err := s.SetMulti(ctx, pairs, exp, false); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(path)
	b.Logf("built %d keys (%d MB) in %v", n, fi.Size()>>20, time.Since(start).Round(time.Millisecond))
	b.ResetTimer()
	for range b.N {
		s, err := disk.Open(disk.Config{Path: path})
		if err != nil {
			b.Fatal(err)
		}
		res, err := s.Do(ctx, []byte("key:12345"), store.Op{Kind: store.Get})
		if err != nil || !res.Found {
			b.Fatalf("first get: %v %v", res.Found, err)
		}
		b.StopTimer()
		if l, _ := s.Len(ctx); l != int64(n) {
			b.Fatalf("len %d, want %d", l, n)
		}
		_ = s.Close()
		b.StartTimer()
	}
}

// BenchmarkSetParallel measures SET throughput through the group commit with 1 and 50 writers
// (random keys, as bench/disk.sh sends them).
func BenchmarkSetParallel(b *testing.B) {
	for _, writers := range []int{1, 50} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := disk.Open(disk.Config{Path: filepath.Join(b.TempDir(), "vela.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N/writers + 1
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 1))
					for range per {
						// Random keys over 100,000, as redis-benchmark -r 100000 writes them.
						key := []byte(fmt.Sprintf("key:%012d", rng.IntN(100_000)))
						if _, err := s.Do(ctx, key, store.Op{Kind: store.Set, Value: []byte("xxx")}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
