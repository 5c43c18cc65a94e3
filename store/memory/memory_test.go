package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

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
