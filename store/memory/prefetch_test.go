package memory

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"

	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store"
)

// TestPrefetchChangesNothing runs Prefetch on keys that writers are setting, deleting and
// growing tables under (under -race it also proves Prefetch reads only under the shards' locks),
// then checks every key still holds what the writers last put there.
func TestPrefetchChangesNothing(t *testing.T) {
	s := New(Config{Stats: &stats.Stats{}})
	ctx := context.Background()
	s.Prefetch([][]byte{[]byte("a"), nil, []byte("b")}) // empty store, nil key
	const writers, keysPer = 4, 3000
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(1, 2))
		batch := make([][]byte, 40) // more than maxPrefetch
		for {
			select {
			case <-stop:
				return
			default:
			}
			for i := range batch {
				batch[i] = []byte("k:" + strconv.Itoa(r.IntN(writers)) + ":" + strconv.Itoa(r.IntN(keysPer)))
			}
			s.Prefetch(batch)
		}
	}()
	var wwg sync.WaitGroup
	for w := range writers {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			for i := range keysPer {
				key := []byte("k:" + strconv.Itoa(w) + ":" + strconv.Itoa(i))
				if _, err := s.Do(ctx, key, store.Op{Kind: store.Set, Value: []byte("v" + strconv.Itoa(i))}); err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if _, err := s.Do(ctx, key, store.Op{Kind: store.Delete}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wwg.Wait()
	close(stop)
	wg.Wait()
	for w := range writers {
		for i := range keysPer {
			key := []byte("k:" + strconv.Itoa(w) + ":" + strconv.Itoa(i))
			res, err := s.Do(ctx, key, store.Op{Kind: store.Get})
			if err != nil {
				t.Fatal(err)
			}
			if want := i%3 != 0; res.Found != want || (want && string(res.Value) != "v"+strconv.Itoa(i)) {
				t.Fatalf("%s: found %v value %q after prefetching", key, res.Found, res.Value)
			}
		}
	}
	if n, _ := s.Len(ctx); n != int64(writers*(keysPer-keysPer/3)) {
		t.Fatalf("Len %d", n)
	}
}

// BenchmarkBatchGet looks up pipelined batches of 16 random keys among 1M, as an event loop runs
// a connection's batch, with and without prefetching the batch first.
func BenchmarkBatchGet(b *testing.B) {
	s := New(Config{Stats: &stats.Stats{}})
	ctx := context.Background()
	keys := benchKeys(1 << 20)
	val := make([]byte, 64)
	for _, k := range keys {
		if _, err := s.Do(ctx, k, store.Op{Kind: store.Set, Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	for _, pre := range []bool{false, true} {
		b.Run("prefetch="+strconv.FormatBool(pre), func(b *testing.B) {
			r := rand.New(rand.NewPCG(3, 4))
			batch := make([][]byte, 16)
			b.ReportAllocs()
			for b.Loop() {
				for i := range batch {
					batch[i] = keys[r.IntN(len(keys))]
				}
				if pre {
					s.Prefetch(batch)
				}
				for _, k := range batch {
					if res, _ := s.Do(ctx, k, store.Op{Kind: store.Get}); !res.Found {
						b.Fatal("miss")
					}
				}
			}
		})
	}
}
