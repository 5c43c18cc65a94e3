package memory

import (
	"testing"

	"github.com/vela-cache/vela/store"
)

func describe(t *testing.T, s *Store, key string) store.Object {
	t.Helper()
	obj, found, err := s.Object(ctx, []byte(key), store.ObjectIdleTime)
	if err != nil || !found {
		t.Fatalf("Object(%s): found %v, %v", key, found, err)
	}
	return obj
}

func exists(s *Store, key string) {
	_, _ = s.Do(ctx, []byte(key), store.Op{Kind: store.Inspect})
}

// TestIdleTimeTTLOnly: under ttl_only the idle time counts Ticks of the idle clock (seconds)
// since the last read or write; EXISTS-style inspection and OBJECT itself are not accesses.
func TestIdleTimeTTLOnly(t *testing.T) {
	s, clock := newClocked(Config{})
	if err := set(t, s, "k", "v"); err != nil {
		t.Fatal(err)
	}
	clock.ms += 2500
	s.Tick()
	exists(s, "k")
	if obj := describe(t, s, "k"); obj.Idle != 2 || obj.Freq != -1 {
		t.Errorf("after 2.5 s and an inspection: idle %d, freq %d; want 2, -1", obj.Idle, obj.Freq)
	}
	clock.ms += 1000
	if obj := describe(t, s, "k"); obj.Idle != 2 {
		t.Errorf("without a Tick the idle clock stands still: idle %d, want 2", obj.Idle)
	}
	s.Tick()
	if obj := describe(t, s, "k"); obj.Idle != 3 {
		t.Errorf("after the Tick: idle %d, want 3", obj.Idle)
	}
	get(s, "k")
	if obj := describe(t, s, "k"); obj.Idle != 0 {
		t.Errorf("after a read: idle %d, want 0", obj.Idle)
	}
	clock.ms += 5000
	s.Tick()
	if _, err := s.Do(ctx, []byte("k"), store.Op{Kind: store.Expire, ExpireAt: clock.ms + 60_000}); err != nil {
		t.Fatal(err)
	}
	if obj := describe(t, s, "k"); obj.Idle != 0 {
		t.Errorf("after EXPIRE: idle %d, want 0", obj.Idle)
	}
}

// TestIdleTimeLRU: under lru the idle time is the store's millisecond clock since the last
// access, in whole seconds.
func TestIdleTimeLRU(t *testing.T) {
	s, clock := newClocked(Config{MaxSize: 100, Policy: PolicyLRU})
	if err := set(t, s, "k", "v"); err != nil {
		t.Fatal(err)
	}
	clock.ms += 4999
	exists(s, "k")
	if obj := describe(t, s, "k"); obj.Idle != 4 {
		t.Errorf("idle %d, want 4", obj.Idle)
	}
	get(s, "k")
	clock.ms += 1000
	if obj := describe(t, s, "k"); obj.Idle != 1 || obj.Freq != -1 {
		t.Errorf("idle %d, freq %d; want 1, -1", obj.Idle, obj.Freq)
	}
}

// TestFreqLFU: under lfu a new key's counter starts where Redis's does (5), the first reads
// raise it by one each, a minute without access takes one off, and the idle time is not kept.
func TestFreqLFU(t *testing.T) {
	s, clock := newClocked(Config{MaxSize: 100, Policy: PolicyLFU})
	if err := set(t, s, "k", "v"); err != nil {
		t.Fatal(err)
	}
	if obj := describe(t, s, "k"); obj.Freq != 5 || obj.Idle != -1 {
		t.Errorf("new key: freq %d, idle %d; want 5, -1", obj.Freq, obj.Idle)
	}
	get(s, "k")
	exists(s, "k") // not an access
	if obj := describe(t, s, "k"); obj.Freq != 6 {
		t.Errorf("after one read: freq %d, want 6", obj.Freq)
	}
	clock.ms += 2 * 60_000
	if obj := describe(t, s, "k"); obj.Freq != 4 {
		t.Errorf("two minutes later: freq %d, want 4", obj.Freq)
	}
}

// TestSharedIntegers: small integers count as Redis's shared objects unless an LRU or LFU
// policy runs with a memory bound (then each key needs its own access data, as in Redis).
func TestSharedIntegers(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want int64
	}{
		{Config{}, store.SharedRefCount},
		{Config{MaxMemory: 1 << 30}, store.SharedRefCount},
		{Config{MaxSize: 100, Policy: PolicyLRU}, store.SharedRefCount},
		{Config{MaxMemory: 1 << 30, Policy: PolicyLRU}, 1},
		{Config{MaxMemory: 1 << 30, Policy: PolicyLFU}, 1},
	} {
		s := New(tc.cfg)
		if err := set(t, s, "k", "42"); err != nil {
			t.Fatal(err)
		}
		if obj := describe(t, s, "k"); obj.RefCount != tc.want || obj.Encoding != "int" {
			t.Errorf("%+v: refcount %d, encoding %s; want %d, int", tc.cfg, obj.RefCount, obj.Encoding, tc.want)
		}
	}
}

// TestCopyKeepsEncoding: a Set that installs another store's entry (Op.Enc) keeps how its
// value was written, and a Get reports it, so a cluster's copies describe the key alike.
func TestCopyKeepsEncoding(t *testing.T) {
	s := New(Config{})
	for _, enc := range []store.Encoding{store.EncodeByValue, store.EncodeNoInt, store.EncodeRaw} {
		if _, err := s.Do(ctx, []byte("k"), store.Op{Kind: store.Set, Value: []byte("3"), Enc: enc}); err != nil {
			t.Fatal(err)
		}
		res, err := s.Do(ctx, []byte("k"), store.Op{Kind: store.Get})
		if err != nil || res.Enc != enc {
			t.Errorf("Get after a copy of encoding %d: %d, %v", enc, res.Enc, err)
		}
		if got, want := describe(t, s, "k").Encoding, enc.Name([]byte("3")); got != want {
			t.Errorf("encoding %d: OBJECT says %s, want %s", enc, got, want)
		}
	}
}
