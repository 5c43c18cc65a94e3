// Package memory is Vela's default store: values in process memory, sharded so that commands on
// different keys rarely share a lock, with per-key expiry enforced lazily on access and by a
// background sweep.
//
// # Layout
//
// Keys hash (xxhash) into 16384 slots; each slot is a small Go map owned by one of the shards, and
// each shard has its own RWMutex. Slots never move, which gives SCAN a stable cursor (the slot
// number) and lets the sweep walk the keyspace one slot at a time without stopping the world.
package memory

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/glob"
	"github.com/vela-cache/vela/store"
)

const (
	numSlots  = 16384
	slotMask  = numSlots - 1
	shardBits = 6
	numShards = 1 << shardBits // 64 shards of 256 slots
	shardMask = numShards - 1
)

// Config configures a memory Store. The zero value is usable.
type Config struct {
	// MaxValueLen is the largest value APPEND may build (proto_max_bulk_len). Default 512 MiB.
	MaxValueLen int64
	// Now returns the current unix milliseconds; nil means the wall clock. Tests may fix it.
	Now func() int64
}

// Store is the in-memory store. It is safe for concurrent use.
type Store struct {
	shards [numShards]shard
	maxLen int64
	now    func() int64
	closed atomic.Bool
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.Keyspace    = (*Store)(nil)
	_ store.MultiSetter = (*Store)(nil)
	_ store.Sweeper     = (*Store)(nil)
)

// shard owns the slots s with s&shardMask == its index.
type shard struct {
	mu    sync.RWMutex // guards slots, peak, ttlKeys and every entry in them
	slots [numSlots / numShards]map[string]entry
	// peak is the most entries each slot map has held since it was last rebuilt; Go maps never
	// shrink, so the sweep rebuilds a slot map that has emptied or fallen far below its peak.
	peak    [numSlots / numShards]int32
	ttlKeys int64        // entries with an expiry, so Len can skip shards that have none
	count   atomic.Int64 // entries, live or expired-but-unswept
	_       [64]byte     // keep neighbouring shards' locks off one cache line
}

// entry is one stored value. val is never modified after it is stored.
type entry struct {
	val      []byte
	expireAt int64
}

// New returns an empty memory store.
func New(cfg Config) *Store {
	s := &Store{maxLen: cfg.MaxValueLen, now: cfg.Now}
	if s.maxLen <= 0 {
		s.maxLen = 512 << 20
	}
	if s.now == nil {
		s.now = func() int64 { return time.Now().UnixMilli() }
	}
	for i := range s.shards {
		for j := range s.shards[i].slots {
			s.shards[i].slots[j] = make(map[string]entry)
		}
	}
	return s
}

func slotOf(key []byte) int { return int(xxhash.Sum64(key) & slotMask) }

func (s *Store) shardOf(slot int) (*shard, int) {
	return &s.shards[slot&shardMask], slot >> shardBits
}

// Do applies op to key atomically.
func (s *Store) Do(_ context.Context, key []byte, op store.Op) (store.Result, error) {
	if s.closed.Load() {
		return store.Result{}, store.ErrClosed
	}
	sh, local := s.shardOf(slotOf(key))
	now := s.now()
	if op.Kind == store.Get || op.Kind == store.Inspect || op.Kind == store.Touch {
		sh.mu.RLock()
		e, ok := sh.slots[local][string(key)]
		sh.mu.RUnlock()
		live := ok && !store.Expired(e.expireAt, now)
		_, _, res, err := store.Apply(store.Entry{Value: e.val, ExpireAt: e.expireAt}, live, &op, now, s.maxLen)
		return res, err
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.apply(local, key, &op, now, s.maxLen)
}

// apply runs op on one key of a locked shard.
func (sh *shard) apply(local int, key []byte, op *store.Op, now, maxLen int64) (store.Result, error) {
	m := sh.slots[local]
	e, ok := m[string(key)]
	if ok && store.Expired(e.expireAt, now) {
		sh.remove(local, key, e)
		ok = false
	}
	next, action, res, err := store.Apply(store.Entry{Value: e.val, ExpireAt: e.expireAt}, ok, op, now, maxLen)
	if err != nil {
		return res, err
	}
	switch action {
	case store.Put:
		sh.put(local, key, e, ok, entry{val: next.Value, expireAt: next.ExpireAt})
	case store.Remove:
		if ok {
			sh.remove(local, key, e)
		}
	}
	return res, nil
}

// put stores ne under key; old is the previous entry when existed.
func (sh *shard) put(local int, key []byte, old entry, existed bool, ne entry) {
	m := sh.slots[local]
	m[string(key)] = ne
	if existed {
		if old.expireAt != 0 {
			sh.ttlKeys--
		}
	} else {
		sh.count.Add(1)
		if n := int32(len(m)); n > sh.peak[local] {
			sh.peak[local] = n
		}
	}
	if ne.expireAt != 0 {
		sh.ttlKeys++
	}
}

// remove deletes key, whose current entry is e.
func (sh *shard) remove(local int, key []byte, e entry) {
	delete(sh.slots[local], string(key))
	sh.count.Add(-1)
	if e.expireAt != 0 {
		sh.ttlKeys--
	}
}

// SetMulti writes every pair atomically: the shards involved are locked in index order, so two
// concurrent SetMulti calls cannot deadlock.
func (s *Store) SetMulti(_ context.Context, pairs []store.KV, expireAt int64, onlyIfNoneExist bool) (bool, error) {
	if s.closed.Load() {
		return false, store.ErrClosed
	}
	slots := make([]int, len(pairs))
	var locked [numShards]bool
	for i, kv := range pairs {
		slots[i] = slotOf(kv.Key)
		locked[slots[i]&shardMask] = true
	}
	for i := range locked {
		if locked[i] {
			s.shards[i].mu.Lock()
			defer s.shards[i].mu.Unlock()
		}
	}
	now := s.now()
	if onlyIfNoneExist {
		for i, kv := range pairs {
			sh, local := s.shardOf(slots[i])
			if e, ok := sh.slots[local][string(kv.Key)]; ok && !store.Expired(e.expireAt, now) {
				return false, nil
			}
		}
	}
	op := store.Op{Kind: store.Set, ExpireAt: expireAt}
	for i, kv := range pairs {
		sh, local := s.shardOf(slots[i])
		op.Value = kv.Value
		if _, err := sh.apply(local, kv.Key, &op, now, s.maxLen); err != nil {
			return false, err
		}
	}
	return true, nil
}

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
			for _, m := range sh.slots {
				for _, e := range m {
					if store.Expired(e.expireAt, now) {
						n--
					}
				}
			}
		}
		sh.mu.RUnlock()
	}
	return n, nil
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
		sh, local := s.shardOf(slot)
		sh.mu.RLock()
		for k, e := range sh.slots[local] {
			if store.Expired(e.expireAt, now) {
				continue
			}
			if len(pattern) > 0 && !glob.Match(pattern, []byte(k)) {
				continue
			}
			keys = append(keys, []byte(k))
		}
		sh.mu.RUnlock()
	}
	if slot >= numSlots {
		slot = 0
	}
	return keys, uint64(slot), nil
}

// Flush deletes every key.
func (s *Store) Flush(_ context.Context) error {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for j := range sh.slots {
			sh.slots[j] = make(map[string]entry)
			sh.peak[j] = 0
		}
		sh.count.Store(0)
		sh.ttlKeys = 0
		sh.mu.Unlock()
	}
	return nil
}

// Sweep deletes expired entries one slot at a time, holding each shard's lock only for one slot,
// and rebuilds slot maps that have emptied or shrunk far below their peak so the memory is given
// back.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	removed := 0
	for slot := 0; slot < numSlots; slot++ {
		if slot&255 == 0 && ctx.Err() != nil {
			return removed, ctx.Err()
		}
		sh, local := s.shardOf(slot)
		sh.mu.Lock()
		now := s.now()
		m := sh.slots[local]
		for k, e := range m {
			if store.Expired(e.expireAt, now) {
				delete(m, k)
				sh.count.Add(-1)
				sh.ttlKeys--
				removed++
			}
		}
		// Go maps never shrink: a slot map that has emptied, or shrunk far below its peak, is
		// replaced so that the memory its buckets held is given back.
		if peak := sh.peak[local]; peak > 0 && (len(m) == 0 || (peak > 16 && int32(len(m)) < peak/4)) {
			fresh := make(map[string]entry, len(m))
			for k, e := range m {
				fresh[k] = e
			}
			sh.slots[local] = fresh
			sh.peak[local] = int32(len(m))
		}
		sh.mu.Unlock()
	}
	return removed, nil
}

// Close marks the store closed and drops its contents.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.Flush(context.Background())
}

// Stored returns the number of entries the store holds, including expired ones that neither an
// access nor the sweep has removed yet; Len counts only live keys.
func (s *Store) Stored() int64 {
	var n int64
	for i := range s.shards {
		n += s.shards[i].count.Load()
	}
	return n
}

// Expires returns the number of live keys with an expiry, for INFO's keyspace line.
func (s *Store) Expires(_ context.Context) (int64, error) {
	now := s.now()
	var n int64
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		if sh.ttlKeys > 0 {
			for _, m := range sh.slots {
				for _, e := range m {
					if e.expireAt != 0 && !store.Expired(e.expireAt, now) {
						n++
					}
				}
			}
		}
		sh.mu.RUnlock()
	}
	return n, nil
}
