package memory

import (
	"context"
	"math/rand/v2"
	"sync/atomic"

	"github.com/vela-cache/vela/glob"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/tags"
)

// Len returns the number of live keys. Shards holding no key with an expiry are counted in O(1);
// the others are walked, so the answer is exact even before the sweep has run.
func (s *Store) Len(_ context.Context) (int64, error) {
	now := s.now()
	var n int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += sh.count.Load()
		if sh.ttlKeys > 0 {
			n -= sh.countItems(func(hd *header) bool { return store.Expired(hd.expireAt, now) })
		}
		sh.mu.RUnlock()
	}
	return n, nil
}

// Expires returns the number of live keys with an expiry, for INFO's keyspace line.
func (s *Store) Expires(_ context.Context) (int64, error) {
	n, _ := s.ttlStats()
	return n, nil
}

// AvgTTL returns the mean remaining time to live, in milliseconds, of the live keys with an
// expiry (0 when there are none), for INFO's avg_ttl. Redis estimates it from the keys its
// expiry cycle samples; Vela counts them all.
func (s *Store) AvgTTL(_ context.Context) (int64, error) {
	n, sum := s.ttlStats()
	if n == 0 {
		return 0, nil
	}
	return sum / n, nil
}

// ttlStats counts the live keys with an expiry and sums their remaining milliseconds.
func (s *Store) ttlStats() (n, sum int64) {
	now := s.now()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		if sh.ttlKeys > 0 {
			n += sh.countItems(func(hd *header) bool {
				if hd.expireAt == 0 || store.Expired(hd.expireAt, now) {
					return false
				}
				sum += hd.expireAt - now
				return true
			})
		}
		sh.mu.RUnlock()
	}
	return n, sum
}

// countItems counts the items of a locked shard for which pred holds.
func (sh *shard) countItems(pred func(*header) bool) int64 {
	var n int64
	for j := range sh.slots {
		for _, p := range sh.slots[j].items {
			if p != nil && pred(hdr(p)) {
				n++
			}
		}
	}
	return n
}

// Usage returns the entries the store holds (live or awaiting the sweep) and the bytes they
// cost, as the bounds count them. It takes no lock.
func (s *Store) Usage() (keys, bytes int64) {
	for i := range s.shards {
		keys += s.shards[i].count.Load()
		bytes += s.shards[i].bytes.Load()
	}
	return keys, bytes
}

// KeySize returns what key's entry costs (store.Sizer): its item at the allocator's size class,
// its tags in the tag index, and its share of its table (the table's bytes over its entries).
func (s *Store) KeySize(_ context.Context, key []byte) (int64, bool, error) {
	if s.closed.Load() {
		return 0, false, store.ErrClosed
	}
	h, sh, t := s.locate(key)
	sh.mu.RLock()
	i := t.find(key, h)
	if i < 0 || store.Expired(hdr(t.items[i]).expireAt, s.now()) {
		sh.mu.RUnlock()
		return 0, false, nil
	}
	hd := hdr(t.items[i])
	size := itemCost(hd.keyLen(), int(hd.vlen)) + tableBytes(len(t.items))/int64(max(t.n, 1))
	tagged := hd.tagged()
	sh.mu.RUnlock()
	if tagged {
		size += tags.EntryCost(len(key), len(s.tags.Tags(key)))
	}
	return size, true, nil
}

// Object describes key for OBJECT (store.Describer) without counting as an access. The idle
// time is tracked under PolicyLRU (to the millisecond) and PolicyTTLOnly (to the last Tick), the
// access counter under PolicyLFU. Small integers are shared, as in Redis, unless an LRU or LFU
// policy runs with a memory bound.
func (s *Store) Object(_ context.Context, key []byte, _ store.ObjectField) (store.Object, bool, error) {
	if s.closed.Load() {
		return store.Object{}, false, store.ErrClosed
	}
	now := s.now()
	h, sh, t := s.locate(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	i := t.find(key, h)
	if i < 0 || store.Expired(hdr(t.items[i]).expireAt, now) {
		return store.Object{}, false, nil
	}
	p := t.items[i]
	hd := hdr(p)
	enc, value := hd.enc(), valueOf(p)
	obj := store.Object{Encoding: enc.Name(value), RefCount: 1, Idle: -1, Freq: -1}
	if enc.SharedInt(value) && (s.policy == PolicyTTLOnly || s.maxMemory == 0) {
		obj.RefCount = store.SharedRefCount
	}
	meta := atomic.LoadUint32(&hd.meta)
	switch s.policy {
	case PolicyLFU:
		obj.Freq = int64(s.lfuDecayed(meta, now))
	case PolicyLRU:
		obj.Idle = int64(s.clock(now)-meta) / 1000
	default:
		obj.Idle = int64(s.idleClock.Load() - meta) // modular: a restored idle time may exceed the store's age
		if obj.Idle > 1<<31 {
			obj.Idle = 0 // meta ahead of the clock: a read stamped it as the clock moved
		}
	}
	return obj, true, nil
}

// TagIndexLen returns the number of tags with keys and of tagged keys in the tag index.
func (s *Store) TagIndexLen() (tags, keys int) { return s.tags.Len() }

// KeyTags returns the tags key carries, so a cluster handoff keeps them (store.TagReader).
func (s *Store) KeyTags(ctx context.Context, key []byte) ([][]byte, error) {
	if res, err := s.Do(ctx, key, store.Op{Kind: store.Inspect}); err != nil || !res.Found {
		return nil, err // an expired key not swept yet still has its tags in the index
	}
	names := s.tags.Tags(key)
	if len(names) == 0 {
		return nil, nil
	}
	out := make([][]byte, len(names))
	for i, t := range names {
		out[i] = []byte(t)
	}
	return out, nil
}

// TagKeys returns the keys carrying tag (store.TagLister).
func (s *Store) TagKeys(_ context.Context, tag []byte) ([][]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	names := s.tags.Keys([][]byte{tag})
	out := make([][]byte, len(names))
	for i, k := range names {
		out[i] = []byte(k)
	}
	return out, nil
}

// Scan walks slots from cursor until it has collected at least count keys or visited every slot.
// The cursor is the next slot to visit; slots never move, so a key present for the whole
// iteration is returned exactly once.
func (s *Store) Scan(_ context.Context, cursor uint64, pattern []byte, count int) ([][]byte, uint64, error) {
	if cursor >= numSlots {
		return nil, 0, nil
	}
	if count < 1 {
		count = 10
	}
	now := s.now()
	var keys [][]byte
	slot := int(cursor)
	for ; slot < numSlots && len(keys) < count; slot++ {
		sh := &s.shards[slot&shardMask]
		sh.mu.RLock()
		for _, p := range sh.slots[slot>>shardBits].items {
			if p == nil || store.Expired(hdr(p).expireAt, now) {
				continue
			}
			k := keyOf(p)
			if len(pattern) > 0 && !glob.Match(pattern, k) {
				continue
			}
			keys = append(keys, append([]byte(nil), k...))
		}
		sh.mu.RUnlock()
	}
	if slot >= numSlots {
		slot = 0
	}
	return keys, uint64(slot), nil
}

// Flush deletes every key. It holds every shard's lock at once, briefly (dropping the tables is
// O(slots)), so that the tag index is cleared in step with the data.
func (s *Store) Flush(_ context.Context) error {
	for i := range s.shards {
		s.shards[i].mu.Lock()
	}
	for i := range s.shards {
		sh := &s.shards[i]
		for j := range sh.slots {
			sh.slots[j] = table{}
		}
		s.account(sh, -sh.count.Load(), -sh.bytes.Load())
		sh.ttlKeys = 0
	}
	s.tags.Clear()
	for i := range s.shards {
		s.shards[i].mu.Unlock()
	}
	return nil
}

// Sweep deletes expired entries one slot at a time, holding a shard's lock only for one slot,
// and frees the tables of slots it leaves empty.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	removed := 0
	for slot := 0; slot < numSlots; slot++ {
		if slot&255 == 0 && ctx.Err() != nil {
			return removed, ctx.Err()
		}
		sh := &s.shards[slot&shardMask]
		sh.mu.Lock()
		if sh.ttlKeys > 0 || sh.slots[slot>>shardBits].n == 0 {
			t := &sh.slots[slot>>shardBits]
			now := s.now()
			for j := 0; j < len(t.items); {
				if p := t.items[j]; p != nil && store.Expired(hdr(p).expireAt, now) {
					s.removeAt(sh, t, j, true)
					removed++
					continue // removeAt shifted a later entry into bucket j
				}
				j++
			}
			if t.n == 0 && t.items != nil {
				s.account(sh, 0, t.resize(0))
			}
		}
		sh.mu.Unlock()
	}
	return removed, nil
}

// InvalidateTags deletes every live key carrying any of tags and returns them. Expired keys it
// meets are removed too but not returned. Each key is rechecked under its shard's lock, so a key
// re-tagged or rewritten without the tags meanwhile is left alone.
func (s *Store) InvalidateTags(ctx context.Context, tagList [][]byte) ([][]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	var deleted [][]byte
	for n, k := range s.tags.Keys(tagList) {
		if n&1023 == 1023 && ctx.Err() != nil {
			return deleted, ctx.Err()
		}
		key := []byte(k)
		h, sh, t := s.locate(key)
		sh.mu.Lock()
		if i := t.find(key, h); i >= 0 && hdr(t.items[i]).tagged() && s.tags.HasAny(key, tagList) {
			expired := store.Expired(hdr(t.items[i]).expireAt, s.now())
			s.removeAt(sh, t, i, expired)
			if !expired {
				deleted = append(deleted, key)
			}
		}
		sh.mu.Unlock()
	}
	return deleted, nil
}

// RandomKey returns a live key chosen at random (store.Sampler): a random slot, or the next one
// holding a live key, and a random live key of that slot. Like Redis's, the choice is not
// exactly uniform (a key alone in its slot is likelier than one sharing it).
func (s *Store) RandomKey(_ context.Context) ([]byte, bool, error) {
	now := s.now()
	start := rand.IntN(numSlots)
	for i := range numSlots {
		slot := (start + i) % numSlots
		sh := &s.shards[slot&shardMask]
		sh.mu.RLock()
		items := sh.slots[slot>>shardBits].items
		live := 0
		for _, p := range items {
			if p != nil && !store.Expired(hdr(p).expireAt, now) {
				live++
			}
		}
		pick := rand.IntN(max(live, 1))
		for _, p := range items {
			if p == nil || store.Expired(hdr(p).expireAt, now) {
				continue
			}
			if pick == 0 {
				k := append([]byte{}, keyOf(p)...)
				sh.mu.RUnlock()
				return k, true, nil
			}
			pick--
		}
		sh.mu.RUnlock()
	}
	return nil, false, nil
}

var _ store.AccessSetter = (*Store)(nil)

// SetAccess implements store.AccessSetter. An idle time sets the entry's LRU clock (or, under
// PolicyTTLOnly, its idle clock) that far back, modulo the clock's width, as Redis's 24-bit
// LRU clock does.
func (s *Store) SetAccess(_ context.Context, key []byte, idle, freq int64) (bool, error) {
	if s.closed.Load() {
		return false, store.ErrClosed
	}
	now := s.now()
	h, sh, t := s.locate(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	i := t.find(key, h)
	if i < 0 || store.Expired(hdr(t.items[i]).expireAt, now) {
		return false, nil
	}
	hd := hdr(t.items[i])
	switch {
	case s.policy == PolicyLFU && freq >= 0:
		atomic.StoreUint32(&hd.meta, s.minutes(now)<<8|uint32(min(freq, 255)))
	case s.policy == PolicyLRU && idle >= 0:
		atomic.StoreUint32(&hd.meta, s.clock(now-idle*1000))
	case s.policy == PolicyTTLOnly && idle >= 0:
		atomic.StoreUint32(&hd.meta, s.idleClock.Load()-uint32(idle))
	}
	return true, nil
}
