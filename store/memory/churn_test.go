package memory

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestTagChurn writes 200,000 entries with random tags and 1 s TTLs (with overwrites, deletes and
// invalidations mixed in) while the background sweep runs every 50 ms, then waits for everything
// to expire: the store, the tag index and the heap must all return to where they started.
func TestTagChurn(t *testing.T) {
	const writes = 200_000
	st := &stats.Stats{}
	s := New(Config{Stats: st})
	loop := store.StartSweep(s, 50*time.Millisecond, nil, nil, slog.New(slog.DiscardHandler))
	defer func() { _ = loop.Shutdown(context.Background()) }()
	baseline := heapAlloc()

	r := rand.New(rand.NewPCG(3, 4))
	tagPool := make([][]byte, 500)
	for i := range tagPool {
		tagPool[i] = []byte(fmt.Sprintf("tag:%d", i))
	}
	var peakKeys, peakBytes int64
	var peakTags, peakTagged int
	for i := 0; i < writes; i++ {
		key := []byte(fmt.Sprintf("churn:%d", r.IntN(50_000)))
		switch p := r.IntN(1000); {
		case p < 900:
			var tags [][]byte
			if p < 800 { // 10 % of the writes overwrite without TAGS, clearing tags
				for n := r.IntN(4); n > 0; n-- {
					tags = append(tags, tagPool[r.IntN(len(tagPool))])
				}
			}
			op := store.Op{Kind: store.Set, Value: []byte("value"), TTL: store.TTLSet,
				ExpireAt: time.Now().UnixMilli() + 1000, Tags: tags}
			if _, err := s.Do(ctx, key, op); err != nil {
				t.Fatal(err)
			}
		case p < 995: // 9.5 % deletes, 0.5 % invalidations
			if _, err := s.Do(ctx, key, store.Op{Kind: store.Delete}); err != nil {
				t.Fatal(err)
			}
		default:
			if _, err := s.InvalidateTags(ctx, [][]byte{tagPool[r.IntN(len(tagPool))]}); err != nil {
				t.Fatal(err)
			}
		}
		if i%10_000 == 0 {
			keys, bytes := s.Usage()
			tags, tagged := s.TagIndexLen()
			peakKeys, peakBytes = max(peakKeys, keys), max(peakBytes, bytes)
			peakTags, peakTagged = max(peakTags, tags), max(peakTagged, tagged)
		}
	}
	peakHeap := heapAlloc() - baseline
	deadline := time.Now().Add(20 * time.Second)
	for {
		keys, bytes := s.Usage()
		tags, tagged := s.TagIndexLen()
		if keys == 0 && bytes == 0 && tags == 0 && tagged == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the TTLs: %d keys, %d bytes, %d tags, %d tagged keys remain", keys, bytes, tags, tagged)
		}
		time.Sleep(20 * time.Millisecond)
	}
	residue := heapAlloc() - baseline
	t.Logf("peak: %d keys, %d accounted bytes, %d tags, %d tagged keys, heap +%d; after expiry heap %+d bytes; %d expirations",
		peakKeys, peakBytes, peakTags, peakTagged, peakHeap, residue, st.Expirations.Load())
	if peakTagged < 1000 || peakHeap < 1<<20 {
		t.Fatalf("the churn did not load the store (peak %d tagged keys, heap +%d)", peakTagged, peakHeap)
	}
	if residue > 128<<10 {
		t.Fatalf("heap is %d bytes above its baseline after every key expired", residue)
	}
}
