package memory

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/tags"
)

var ctx = context.Background()

// fakeClock is a settable Now for tests.
type fakeClock struct{ ms int64 }

func (c *fakeClock) now() int64 { return c.ms }

// recount recomputes what the store's accounting should say, from its contents.
func recount(s *Store) (keys, bytes int64) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for j := range sh.slots {
			t := &sh.slots[j]
			bytes += tableBytes(len(t.items))
			n := 0
			for _, p := range t.items {
				if p == nil {
					continue
				}
				n++
				hd := hdr(p)
				bytes += itemCost(hd.keyLen(), int(hd.vlen))
				if hd.tagged() {
					bytes += tags.EntryCost(hd.keyLen(), len(s.tags.Tags(keyOf(p))))
				}
			}
			if n != t.n {
				panic(fmt.Sprintf("table n=%d, holds %d", t.n, n))
			}
			keys += int64(n)
		}
		sh.mu.RUnlock()
	}
	return keys, bytes
}

// TestAgainstModel runs random operations against the store and a plain map and compares them,
// exercising table growth, backward-shift deletion, shrinking, expiry and the accounting.
func TestAgainstModel(t *testing.T) {
	clock := &fakeClock{ms: 1_000_000}
	s := New(Config{Now: clock.now})
	type mv struct {
		val      string
		expireAt int64
	}
	model := map[string]mv{}
	r := rand.New(rand.NewPCG(1, 2))
	keyspace := 5000
	if testing.Short() {
		keyspace = 1000
	}
	for step := 0; step < 40*keyspace; step++ {
		k := fmt.Sprintf("k%d", r.IntN(keyspace))
		// Grow, then shrink the keyspace, so tables both grow and shrink.
		if step > 20*keyspace && r.IntN(3) > 0 {
			k = fmt.Sprintf("k%d", r.IntN(keyspace/20))
		}
		cur, ok := model[k]
		if ok && cur.expireAt != 0 && cur.expireAt <= clock.ms {
			delete(model, k)
			ok, cur = false, mv{}
		}
		switch op := r.IntN(10); {
		case op < 4:
			v := fmt.Sprintf("v%d-%s", step, k[:r.IntN(len(k))])
			var exp int64
			if r.IntN(4) == 0 {
				exp = clock.ms + int64(r.IntN(50))
			}
			if _, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Set, Value: []byte(v), TTL: store.TTLSet, ExpireAt: exp}); err != nil {
				t.Fatal(err)
			}
			model[k] = mv{v, exp}
		case op < 6 || step > 20*keyspace && op < 8:
			res, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Delete})
			if err != nil || res.Found != ok {
				t.Fatalf("step %d DEL %s: found=%v want %v (%v)", step, k, res.Found, ok, err)
			}
			delete(model, k)
		case op < 7:
			res, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Expire, ExpireAt: clock.ms + 30})
			if err != nil || res.Done != ok {
				t.Fatalf("step %d EXPIRE %s: %v want %v (%v)", step, k, res.Done, ok, err)
			}
			if ok {
				model[k] = mv{cur.val, clock.ms + 30}
			}
		default:
			res, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Get})
			if err != nil || res.Found != ok || string(res.Value) != cur.val {
				t.Fatalf("step %d GET %s: %v %q want %v %q (%v)", step, k, res.Found, res.Value, ok, cur.val, err)
			}
		}
		if step%7 == 0 {
			clock.ms++
		}
		if step%(5*keyspace) == 0 {
			if _, err := s.Sweep(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	live := 0
	for k, v := range model {
		if v.expireAt != 0 && v.expireAt <= clock.ms {
			continue
		}
		live++
		res, _ := s.Do(ctx, []byte(k), store.Op{Kind: store.Get})
		if !res.Found || string(res.Value) != v.val {
			t.Fatalf("final GET %s = %v %q, want %q", k, res.Found, res.Value, v.val)
		}
	}
	if n, _ := s.Len(ctx); n != int64(live) {
		t.Fatalf("Len = %d, want %d", n, live)
	}
	keys, bytes := s.Usage()
	wantKeys, wantBytes := recount(s)
	if keys != wantKeys || bytes != wantBytes {
		t.Fatalf("Usage = %d keys %d bytes, recount %d keys %d bytes", keys, bytes, wantKeys, wantBytes)
	}
	clock.ms += 1000
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if keys, bytes := s.Usage(); keys != 0 || bytes != 0 {
		t.Fatalf("after Flush: Usage = %d keys %d bytes", keys, bytes)
	}
}

// newClocked returns a store with cfg on a fake clock that tests advance by hand.
func newClocked(cfg Config) (*Store, *fakeClock) {
	clock := &fakeClock{ms: 1_700_000_000_000}
	cfg.Now = clock.now
	return New(cfg), clock
}

func set(t testing.TB, s *Store, key, value string) error {
	t.Helper()
	_, err := s.Do(ctx, []byte(key), store.Op{Kind: store.Set, Value: []byte(value)})
	return err
}

func get(s *Store, key string) (string, bool) {
	res, _ := s.Do(ctx, []byte(key), store.Op{Kind: store.Get})
	return string(res.Value), res.Found
}

// TestLRUKeepsHotSet fills an LRU store bounded at 1,000 entries, keeps touching 100 hot keys
// while 20,000 new keys stream through, and expects the hot keys to survive: a store that evicted
// at random, or by insertion order, would lose nearly all of them. With 5 samples a hot key
// (at most 50 writes old) goes only when the 4 other samples are younger still: about 0.2 losses
// expected over the run.
func TestLRUKeepsHotSet(t *testing.T) {
	st := &stats.Stats{}
	s, clock := newClocked(Config{MaxSize: 1000, Policy: PolicyLRU, Stats: st})
	for i := 0; i < 100; i++ {
		if err := set(t, s, fmt.Sprintf("hot%d", i), "h"); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20000; i++ {
		clock.ms++
		if err := set(t, s, fmt.Sprintf("new%d", i), "n"); err != nil {
			t.Fatal(err)
		}
		get(s, fmt.Sprintf("hot%d", (2*i)%100)) // every hot key is touched every 50 writes
		get(s, fmt.Sprintf("hot%d", (2*i+1)%100))
	}
	survivors := 0
	for i := 0; i < 100; i++ {
		if _, ok := get(s, fmt.Sprintf("hot%d", i)); ok {
			survivors++
		}
	}
	if survivors < 95 {
		t.Fatalf("only %d of 100 hot keys survived LRU eviction", survivors)
	}
	if n, _ := s.Len(ctx); n != 1000 {
		t.Fatalf("Len = %d, want the bound 1000", n)
	}
	if ev := st.Evictions.Load(); ev != 20100-1000 {
		t.Fatalf("evictions = %d, want %d", ev, 20100-1000)
	}
	t.Logf("%d/100 hot keys kept, %d evictions", survivors, st.Evictions.Load())
}

// TestLFUKeepsFrequentKeys reads 100 keys often, then streams 10,000 new keys through an LFU
// store bounded at 1,000 entries without touching the frequent keys again. LRU would evict them
// (they are the oldest); LFU must keep them.
func TestLFUKeepsFrequentKeys(t *testing.T) {
	st := &stats.Stats{}
	s, clock := newClocked(Config{MaxSize: 1000, Policy: PolicyLFU, Stats: st})
	for i := 0; i < 1000; i++ {
		name := fmt.Sprintf("cold%d", i)
		if i < 100 {
			name = fmt.Sprintf("freq%d", i)
		}
		if err := set(t, s, name, "v"); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 200; round++ {
		for i := 0; i < 100; i++ {
			get(s, fmt.Sprintf("freq%d", i))
		}
		for i := 100; i < 1000; i += 50 {
			get(s, fmt.Sprintf("cold%d", i)) // a few cold reads: cold is not "never read"
		}
	}
	for i := 0; i < 10000; i++ {
		clock.ms++
		if err := set(t, s, fmt.Sprintf("new%d", i), "n"); err != nil {
			t.Fatal(err)
		}
	}
	survivors := 0
	for i := 0; i < 100; i++ {
		if _, ok := get(s, fmt.Sprintf("freq%d", i)); ok {
			survivors++
		}
	}
	if survivors < 95 {
		t.Fatalf("only %d of 100 frequently read keys survived LFU eviction", survivors)
	}
	if n, _ := s.Len(ctx); n != 1000 {
		t.Fatalf("Len = %d, want 1000", n)
	}
	t.Logf("%d/100 frequent keys kept, %d evictions", survivors, st.Evictions.Load())
}

// TestLFUDecay checks that an LFU counter loses one per idle minute.
func TestLFUDecay(t *testing.T) {
	s, clock := newClocked(Config{MaxSize: 10, Policy: PolicyLFU})
	meta := s.initialMeta(clock.ms)
	for i := 0; i < 1000; i++ {
		meta = s.accessedMeta(meta, clock.ms)
	}
	c := s.lfuDecayed(meta, clock.ms)
	if c < 10 || c > 30 {
		t.Fatalf("counter after 1000 accesses = %d, want a logarithmic 10..30", c)
	}
	clock.ms += 3 * 60000
	if d := s.lfuDecayed(meta, clock.ms); d != c-3 {
		t.Fatalf("after 3 idle minutes counter = %d, want %d", d, c-3)
	}
}

// TestTTLOnlyOOM checks the ttl_only policy at a memory bound: new keys are refused with
// ErrOOM, updates that do not grow the store succeed, growing ones are refused, and nothing is
// ever evicted.
func TestTTLOnlyOOM(t *testing.T) {
	st := &stats.Stats{}
	s, _ := newClocked(Config{MaxMemory: 64 << 10, Stats: st})
	value := string(make([]byte, 100))
	n := 0
	for ; n < 10000; n++ {
		if err := set(t, s, fmt.Sprintf("k%d", n), value); err != nil {
			if !errors.Is(err, store.ErrOOM) {
				t.Fatalf("SET k%d: %v", n, err)
			}
			break
		}
	}
	_, used := s.Usage()
	if n == 10000 || used > 64<<10 || used < 60<<10 {
		t.Fatalf("OOM after %d keys at %d bytes; want it near the 65536-byte bound", n, used)
	}
	if err := set(t, s, "k0", string(make([]byte, 90))); err != nil {
		t.Fatalf("shrinking update at the bound: %v", err)
	}
	if err := set(t, s, "k1", value); err != nil {
		t.Fatalf("same-size update at the bound: %v", err)
	}
	if err := set(t, s, "k2", string(make([]byte, 4000))); !errors.Is(err, store.ErrOOM) {
		t.Fatalf("growing update at the bound: %v, want ErrOOM", err)
	}
	if _, err := s.Do(ctx, []byte("k3"), store.Op{Kind: store.Append, Value: make([]byte, 4000)}); !errors.Is(err, store.ErrOOM) {
		t.Fatalf("APPEND at the bound: %v, want ErrOOM", err)
	}
	if _, err := s.Do(ctx, []byte("k3"), store.Op{Kind: store.Delete}); err != nil {
		t.Fatal(err)
	}
	if err := set(t, s, "new", value); err != nil {
		t.Fatalf("SET after a DEL made room: %v", err)
	}
	if ok, err := s.SetMulti(ctx, []store.KV{{Key: []byte("m1"), Value: []byte(value)}, {Key: []byte("m2"), Value: []byte(value)}}, 0, false); ok || !errors.Is(err, store.ErrOOM) {
		t.Fatalf("MSET at the bound = %v, %v; want ErrOOM", ok, err)
	}
	if _, ok := get(s, "m1"); ok {
		t.Fatal("a refused MSET wrote m1")
	}
	if st.Evictions.Load() != 0 {
		t.Fatalf("ttl_only evicted %d keys", st.Evictions.Load())
	}
}

// heapAlloc returns the live heap after a full collection.
func heapAlloc() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestMaxMemoryHolds writes four times max_memory of 1 KiB values through an LRU store and
// checks both that the store's own accounting stays within 5 % of the bound and that the accounting
// is honest: the real heap growth (measured after New, so the empty store's fixed slot array is
// not counted) is within 5 % of it.
func TestMaxMemoryHolds(t *testing.T) {
	const limit = 16 << 20
	before := heapAlloc()
	s, _ := newClocked(Config{MaxMemory: limit, Policy: PolicyLRU})
	baseline := heapAlloc()
	value := make([]byte, 1024)
	maxSeen := int64(0)
	for i := 0; i < 4*limit/1024; i++ {
		if _, err := s.Do(ctx, []byte(fmt.Sprintf("key:%08d", i)), store.Op{Kind: store.Set, Value: value}); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			_, used := s.Usage()
			maxSeen = max(maxSeen, used)
		}
	}
	keys, used := s.Usage()
	maxSeen = max(maxSeen, used)
	heap := heapAlloc() - baseline
	t.Logf("bound %d: accounted %d (peak %d) for %d keys; heap growth %d (%.2f%% of accounted); empty store %d bytes",
		limit, used, maxSeen, keys, heap, 100*float64(heap)/float64(used), baseline-before)
	if maxSeen > limit*105/100 || used < limit*90/100 {
		t.Fatalf("accounting %d (peak %d) not within 5%% of the bound %d", used, maxSeen, limit)
	}
	if diff := heap - used; diff > used/20 || diff < -used/20 {
		t.Fatalf("heap grew %d bytes but the store accounts %d: off by more than 5%%", heap, used)
	}
	runtime.KeepAlive(s)
}

// TestGetDoesNotAllocate checks the hot paths' allocations with stats on: a GET hit none, a SET
// only its item.
func TestGetDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, p := range []Policy{PolicyTTLOnly, PolicyLRU, PolicyLFU} {
		s := New(Config{Stats: &stats.Stats{}, Policy: p, MaxSize: 1 << 20})
		key, value := []byte("some:key"), []byte("some value of a modest size")
		if err := set(t, s, string(key), string(value)); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() {
			res, _ := s.Do(ctx, key, store.Op{Kind: store.Get})
			if !res.Found {
				panic("miss")
			}
		}); n != 0 {
			t.Errorf("policy %d: GET hit allocates %.1f times", p, n)
		}
		if n := testing.AllocsPerRun(1000, func() {
			_, _ = s.Do(ctx, key, store.Op{Kind: store.Set, Value: value})
		}); n != 1 {
			t.Errorf("policy %d: SET overwrite allocates %.1f times, want 1 (the item)", p, n)
		}
	}
}

// TestEvictionAndExpiryUntagKeys checks that eviction, lazy expiry, the sweep and overwrites all
// remove keys from the tag index, so that it always holds exactly the tagged keys stored.
func TestEvictionAndExpiryUntagKeys(t *testing.T) {
	s, clock := newClocked(Config{MaxSize: 200, Policy: PolicyLRU})
	tagged := func() int {
		n := 0
		for i := range s.shards {
			for j := range s.shards[i].slots {
				for _, p := range s.shards[i].slots[j].items {
					if p != nil && hdr(p).tagged() {
						n++
					}
				}
			}
		}
		return n
	}
	check := func(when string) {
		t.Helper()
		_, inIndex := s.TagIndexLen()
		if n := tagged(); inIndex != n {
			t.Fatalf("%s: tag index has %d keys, the store %d tagged keys", when, inIndex, n)
		}
	}
	for i := 0; i < 1000; i++ {
		clock.ms++
		op := store.Op{Kind: store.Set, Value: []byte("v"), Tags: [][]byte{[]byte(fmt.Sprintf("t%d", i%7))}}
		if i%3 == 0 {
			op.TTL, op.ExpireAt = store.TTLSet, clock.ms+50
		}
		if _, err := s.Do(ctx, []byte(fmt.Sprintf("k%d", i)), op); err != nil {
			t.Fatal(err)
		}
	}
	check("after evictions")
	if _, inIndex := s.TagIndexLen(); inIndex == 0 || inIndex > 200 {
		t.Fatalf("tag index holds %d keys for a store of 200", inIndex)
	}
	clock.ms += 100
	for i := 900; i < 1000; i++ {
		get(s, fmt.Sprintf("k%d", i)) // lazy expiry of a third of them
	}
	check("after lazy expiry")
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	check("after the sweep")
	for i := 0; i < 1000; i++ {
		_ = set(t, s, fmt.Sprintf("k%d", i), "untagged now")
	}
	if tags, keys := s.TagIndexLen(); tags != 0 || keys != 0 {
		t.Fatalf("after overwriting every key without TAGS the index holds %d tags, %d keys", tags, keys)
	}
}

// A plain SET reads no clock unless the key it replaces has an expiry; then the expiry still
// counts: SET NX over a key that has just expired writes.
func TestClocklessSetSeesExpiredKey(t *testing.T) {
	clock := &fakeClock{ms: 1_000_000}
	s := New(Config{Now: clock.now})
	ctx := context.Background()
	key := []byte("k")
	if _, err := s.Do(ctx, key, store.Op{Kind: store.Set, Value: []byte("old"), TTL: store.TTLSet, ExpireAt: clock.ms + 10}); err != nil {
		t.Fatal(err)
	}
	clock.ms += 20
	res, err := s.Do(ctx, key, store.Op{Kind: store.Set, Value: []byte("new"), Cond: store.CondNX})
	if err != nil || !res.Done {
		t.Fatalf("SET NX over an expired key: done=%v err=%v, want it written", res.Done, err)
	}
	res, err = s.Do(ctx, key, store.Op{Kind: store.Get})
	if err != nil || !res.Found || string(res.Value) != "new" {
		t.Fatalf("GET: found=%v value=%q err=%v, want \"new\"", res.Found, res.Value, err)
	}
	if res, _ := s.Do(ctx, key, store.Op{Kind: store.Set, Value: []byte("again"), Cond: store.CondNX}); res.Done {
		t.Fatal("SET NX over a live key without expiry wrote")
	}
}
