// Package memory is Vela's default store: values in process memory, sharded so that commands on
// different keys rarely share a lock, with per-key expiry enforced lazily on access and by a
// background sweep, optional bounds (entries, bytes) with an eviction policy, and the tag index.
//
// # Layout
//
// Keys hash (xxhash) into 16384 slots; each slot is a small open-addressing table (table.go)
// owned by one of 64 shards, and each shard has its own RWMutex. Slots never move, which gives
// SCAN a stable cursor (the slot number) and lets the sweep walk the keyspace one slot at a time
// without stopping the world. Each entry is one pointer-free allocation holding its metadata, key
// and value (item.go).
//
// # Bounds and eviction
//
// MaxSize bounds the entries and MaxMemory the bytes: every item and table is counted at the
// size the Go allocator really gives it, plus an estimate of the tag index's share for tagged
// keys. Under PolicyTTLOnly a write that needs room the store may not take fails with
// store.ErrOOM, while writes that do not grow the store still succeed. Under PolicyLRU and
// PolicyLFU a write that takes the store over a bound is followed by evictions, each choosing the
// best of a few sampled entries in one shard (Redis's approximations: a millisecond access clock
// for LRU, a logarithmic counter that decays by one a minute for LFU). Eviction holds one shard's
// lock at a time and does O(1) work per entry written.
//
// The totals the bounds are checked against are kept per shard and folded into store-wide
// counters in batches of 1/4096 of the bound, so a write touches no shared counter most of the
// time and the totals are never off by more than 64/4096 (1.6 %) of the bound.
package memory

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/tags"
)

const (
	numSlots      = 16384
	slotMask      = numSlots - 1
	shardBits     = 6
	numShards     = 1 << shardBits // 64 shards of 256 slots
	shardMask     = numShards - 1
	slotsPerShard = numSlots / numShards
)

// Policy says what the store does when a write needs room beyond MaxSize or MaxMemory.
type Policy uint8

// Policies.
const (
	// PolicyTTLOnly never evicts a live key: a write that needs room fails with store.ErrOOM.
	PolicyTTLOnly Policy = iota
	// PolicyLRU evicts the least recently used of a few sampled entries.
	PolicyLRU
	// PolicyLFU evicts the least frequently used of a few sampled entries.
	PolicyLFU
)

// ParsePolicy reads a policy by its configuration name: ttl_only, lru or lfu.
func ParsePolicy(name string) (Policy, error) {
	switch name {
	case "ttl_only", "":
		return PolicyTTLOnly, nil
	case "lru":
		return PolicyLRU, nil
	case "lfu":
		return PolicyLFU, nil
	}
	return 0, fmt.Errorf("memory: unknown eviction policy %q", name)
}

// Config configures a memory Store. The zero value is usable: unbounded, no counters.
type Config struct {
	// MaxValueLen is the largest value APPEND may build (proto_max_bulk_len). Default 512 MiB.
	MaxValueLen int64
	// MaxSize is the most entries the store holds (live or awaiting the sweep); 0: unbounded.
	MaxSize int64
	// MaxMemory is the most bytes of items, tables and tag index share; 0: unbounded.
	MaxMemory int64
	// Policy applies when a bound is reached. Default PolicyTTLOnly.
	Policy Policy
	// Samples is how many entries an eviction compares. Default 5, as Redis's
	// maxmemory-samples: more is closer to true LRU/LFU and slower.
	Samples int
	// Stats receives evictions and expirations (lazy, swept, found by eviction); nil counts
	// nothing.
	Stats *stats.Stats
	// Now returns the current unix milliseconds; nil means the wall clock. Tests may fix it.
	Now func() int64
}

// Store is the in-memory store. It is safe for concurrent use.
type Store struct {
	shards [numShards]shard
	tags   *tags.Index
	// onRemove hears of each key the store expires or evicts (NotifyRemovals), or is nil.
	onRemove func(key []byte, evicted bool)
	maxLen   int64
	now      func() int64
	stats    *stats.Stats
	policy   Policy
	samples  int
	epoch    int64 // origin of the LRU and LFU clocks, unix ms
	// idleClock is the seconds since epoch as of the last Tick: the access time of entries under
	// PolicyTTLOnly (see stamp).
	idleClock atomic.Uint32
	closed    atomic.Bool

	// Bounds and the store-wide totals they are checked against (only when bounded).
	maxSize, maxMemory    int64
	bounded               bool
	keys, used            atomic.Int64
	batchKeys, batchBytes int64
	_                     [32]byte
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.Keyspace    = (*Store)(nil)
	_ store.MultiSetter = (*Store)(nil)
	_ store.Sweeper     = (*Store)(nil)
	_ store.Tagger      = (*Store)(nil)
	_ store.TagReader   = (*Store)(nil)
)

// shard owns the slots s with s&shardMask == its index.
type shard struct {
	mu    sync.RWMutex // guards slots, ttlKeys, pending* and every item's header but meta
	slots [slotsPerShard]table
	count atomic.Int64 // entries, live or expired-but-unswept (written under mu)
	bytes atomic.Int64 // bytes of items, tables and tag share (written under mu)
	// ttlKeys is the entries with an expiry, so Len can skip shards that have none.
	ttlKeys int64
	// pendingKeys and pendingBytes are changes not yet folded into the store-wide totals.
	pendingKeys, pendingBytes int64
	_                         [64]byte // keep neighbouring shards' locks off one cache line
}

// New returns an empty memory store.
func New(cfg Config) *Store {
	s := &Store{maxLen: cfg.MaxValueLen, now: cfg.Now, stats: cfg.Stats, policy: cfg.Policy,
		samples: cfg.Samples, maxSize: cfg.MaxSize, maxMemory: cfg.MaxMemory, tags: tags.New()}
	if s.maxLen <= 0 {
		s.maxLen = 512 << 20
	}
	s.maxLen = min(s.maxLen, maxValueLen)
	if s.now == nil {
		s.now = func() int64 { return time.Now().UnixMilli() }
	}
	if s.samples <= 0 {
		s.samples = 5
	}
	s.epoch = s.now()
	s.bounded = s.maxSize > 0 || s.maxMemory > 0
	s.batchKeys = max(1, s.maxSize/4096)
	s.batchBytes = max(1, s.maxMemory/4096)
	return s
}

// locate returns the hash of key, its shard and its table.
func (s *Store) locate(key []byte) (uint64, *shard, *table) {
	h := xxhash.Sum64(key)
	slot := int(h & slotMask)
	sh := &s.shards[slot&shardMask]
	return h, sh, &sh.slots[slot>>shardBits]
}

// Do applies op to key atomically.
func (s *Store) Do(_ context.Context, key []byte, op store.Op) (store.Result, error) {
	if s.closed.Load() {
		return store.Result{}, store.ErrClosed
	}
	if len(key) > maxKeyLen {
		return store.Result{}, store.ErrTooLarge
	}
	h, sh, t := s.locate(key)
	if op.Kind == store.Get || op.Kind == store.Inspect || op.Kind == store.Touch {
		// Reads look at the clock only when they must (an expiry to check, an access to
		// record): on a key without TTL under ttl_only, a GET reads no clock at all. Apply
		// does not use now for these kinds.
		sh.mu.RLock()
		var cur store.Entry
		live := false
		if i := t.find(key, h); i >= 0 {
			p := t.items[i]
			hd := hdr(p)
			if hd.expireAt != 0 || s.policy != PolicyTTLOnly {
				now := s.nowFor(&op)
				if store.Expired(hd.expireAt, now) {
					sh.mu.RUnlock()
					s.expireKey(key, now)
					_, _, res, err := store.Apply(cur, false, &op, now, s.maxLen)
					return res, err
				}
				if op.Kind != store.Inspect { // as Redis's EXISTS, TTL and TYPE, no access
					s.touch(hd, now)
				}
			} else if op.Kind != store.Inspect {
				s.stamp(hd)
			}
			cur = store.Entry{Value: valueOf(p), ExpireAt: hd.expireAt, Enc: hd.enc()}
			switch {
			case op.Kind != store.Get:
			case op.Peek != nil:
				op.Peek(cur.Value)
				cur.Value = nil
			default:
				lend(p) // a large value is changed in place until it is lent (inplace.go)
			}
			live = true
		}
		sh.mu.RUnlock()
		_, _, res, err := store.Apply(cur, live, &op, 0, s.maxLen)
		return res, err
	}
	now := op.Now // else read below, or by apply when the key turns out to have an expiry
	if now == 0 && !s.clockless(&op) {
		now = s.now()
	}
	sh.mu.Lock()
	res, err := s.apply(sh, t, key, h, &op, now, s.policy == PolicyTTLOnly)
	sh.mu.Unlock()
	if err == nil && s.policy != PolicyTTLOnly && s.over() {
		s.evict(key)
	}
	return res, err
}

// expireKey removes key if it is (still) expired: the lazy expiry a read that found it expired
// could not do under its read lock.
func (s *Store) expireKey(key []byte, now int64) {
	h, sh, t := s.locate(key)
	sh.mu.Lock()
	if i := t.find(key, h); i >= 0 && store.Expired(hdr(t.items[i]).expireAt, now) {
		s.removeAt(sh, t, i, true)
	}
	sh.mu.Unlock()
}

// nowFor is the time op runs at: its own (EXEC's frozen clock) or the store's.
func (s *Store) nowFor(op *store.Op) int64 {
	if op.Now != 0 {
		return op.Now
	}
	return s.now()
}

// clockless reports whether op may run without the current time, unless the key it finds has an
// expiry: a plain SET with no expiry, in an unbounded store without LRU or LFU bookkeeping. Time
// then decides nothing (every expiry Apply compares is 0), and the two clock reads are a few
// percent of such a SET.
func (s *Store) clockless(op *store.Op) bool {
	return op.Kind == store.Set && op.ExpireAt == 0 && s.policy == PolicyTTLOnly && !s.bounded
}

// apply runs op on one key of a locked shard at now (0 when clockless: apply reads the clock if
// the key has an expiry). With checkRoom (PolicyTTLOnly) a write that would take the store over a
// bound fails with store.ErrOOM.
func (s *Store) apply(sh *shard, t *table, key []byte, h uint64, op *store.Op, now int64, checkRoom bool) (store.Result, error) {
	i := t.find(key, h)
	var old item
	var cur store.Entry
	if i >= 0 {
		old = t.items[i]
		hd := hdr(old)
		if hd.expireAt != 0 && now == 0 {
			now = s.now()
		}
		if store.Expired(hd.expireAt, now) {
			s.removeAt(sh, t, i, true)
			i, old = -1, nil
		} else {
			cur = store.Entry{Value: valueOf(old), ExpireAt: hd.expireAt, Enc: hd.enc()}
		}
	}
	if i >= 0 {
		if res, ok := s.changeInPlace(old, op, now); ok {
			return res, nil
		}
	}
	applied := op
	if op.Kind == store.Set {
		// A Set's outcome never depends on the new value's bytes: let Apply decide without
		// cloning them, and copy op.Value once, into the new item.
		withoutValue := *op
		withoutValue.Value = nil
		applied = &withoutValue
	}
	next, action, res, err := store.Apply(cur, i >= 0, applied, now, s.maxLen)
	if err != nil {
		return res, err
	}
	if i >= 0 && len(res.Value) > 0 && sameBytes(res.Value, cur.Value) {
		lend(old) // the old value answered (GETEX, SET … GET), whose item may stay
	}
	switch action {
	case store.Remove:
		if i >= 0 {
			s.removeAt(sh, t, i, false)
		}
	case store.Put:
		value := next.Value
		if op.Kind == store.Set {
			value = op.Value
		} else if i >= 0 && sameBytes(value, cur.Value) && next.Enc == cur.Enc {
			s.setExpiry(sh, hdr(old), next.ExpireAt)
			s.touch(hdr(old), now)
			return res, nil
		}
		if len(value) > maxValueLen {
			return store.Result{}, store.ErrTooLarge
		}
		tagged := i >= 0 && hdr(old).tagged() // non-Set writes keep the key's tags
		if op.Kind == store.Set {
			tagged = len(op.Tags) > 0
		}
		if checkRoom && s.bounded {
			if !s.roomFor(sh, t, key, value, old, tagged, op, now) {
				return store.Result{}, store.ErrOOM
			}
			if i >= 0 {
				i = t.find(key, h) // reclaiming expired entries may have moved it
			}
		}
		s.put(sh, t, i, key, h, value, next.ExpireAt, tagged, next.Enc, op, now)
	}
	return res, nil
}

func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// put stores a new item for key in bucket i (or a new bucket when i < 0), replacing the old one.
func (s *Store) put(sh *shard, t *table, i int, key []byte, h uint64, value []byte, expireAt int64, tagged bool, enc store.Encoding, op *store.Op, now int64) {
	meta := s.initialMeta(now)
	var dKeys, dBytes int64
	var oldTagged bool
	if i >= 0 {
		old := t.items[i]
		oh := hdr(old)
		meta = s.accessedMeta(atomic.LoadUint32(&oh.meta), now)
		oldTagged = oh.tagged()
		dBytes -= itemCost(len(key), int(oh.vlen))
		if oh.expireAt != 0 {
			sh.ttlKeys--
		}
	} else {
		dKeys = 1
	}
	p := newItem(key, value, uint32(h>>32), expireAt, meta, tagged, enc)
	dBytes += itemCost(len(key), len(value))
	if expireAt != 0 {
		sh.ttlKeys++
	}
	if i >= 0 {
		t.items[i] = p
	} else {
		dBytes += t.insert(p, fingerprint(h))
	}
	if op.Kind == store.Set && (oldTagged || len(op.Tags) > 0) {
		before, after := s.tags.Set(key, op.Tags)
		dBytes += tags.EntryCost(len(key), after) - tags.EntryCost(len(key), before)
	}
	s.account(sh, dKeys, dBytes)
}

// setExpiry changes a stored item's expiry in place.
func (s *Store) setExpiry(sh *shard, hd *header, expireAt int64) {
	if hd.expireAt != 0 {
		sh.ttlKeys--
	}
	if expireAt != 0 {
		sh.ttlKeys++
	}
	hd.expireAt = expireAt
}

// NotifyRemovals implements store.RemovalNotifier.
func (s *Store) NotifyRemovals(fn func(key []byte, evicted bool)) { s.onRemove = fn }

// removeAt deletes the item in bucket i of a locked shard's table, with its tags. expired says
// the entry is being removed because it expired, which the stats count.
func (s *Store) removeAt(sh *shard, t *table, i int, expired bool) {
	p := t.items[i]
	hd := hdr(p)
	dBytes := -itemCost(hd.keyLen(), int(hd.vlen))
	if hd.tagged() {
		key := keyOf(p)
		dBytes -= tags.EntryCost(len(key), s.tags.Remove(key))
	}
	if expired && s.onRemove != nil {
		s.onRemove(keyOf(p), false)
	}
	if hd.expireAt != 0 {
		sh.ttlKeys--
	}
	dBytes += t.removeAt(i)
	s.account(sh, -1, dBytes)
	if expired && s.stats.On() {
		s.stats.Expirations.Inc()
	}
}

// account records a change in a locked shard's entries and bytes, and folds it into the
// store-wide totals once it reaches a batch.
func (s *Store) account(sh *shard, dKeys, dBytes int64) {
	if dKeys != 0 {
		sh.count.Add(dKeys)
	}
	if dBytes != 0 {
		sh.bytes.Add(dBytes)
	}
	if !s.bounded {
		return
	}
	sh.pendingKeys += dKeys
	sh.pendingBytes += dBytes
	if sh.pendingKeys >= s.batchKeys || sh.pendingKeys <= -s.batchKeys {
		s.keys.Add(sh.pendingKeys)
		sh.pendingKeys = 0
	}
	if sh.pendingBytes >= s.batchBytes || sh.pendingBytes <= -s.batchBytes {
		s.used.Add(sh.pendingBytes)
		sh.pendingBytes = 0
	}
}

// SetMulti writes every pair atomically: the shards involved are locked in index order, so two
// concurrent SetMulti calls cannot deadlock. Under PolicyTTLOnly it writes nothing, and fails
// with store.ErrOOM, when the pairs together do not fit.
func (s *Store) SetMulti(_ context.Context, pairs []store.KV, expireAt int64, onlyIfNoneExist bool) (bool, error) {
	if s.closed.Load() {
		return false, store.ErrClosed
	}
	type loc struct {
		h  uint64
		sh *shard
		t  *table
	}
	locs := make([]loc, len(pairs))
	var locked [numShards]bool
	for i, kv := range pairs {
		if len(kv.Key) > maxKeyLen || len(kv.Value) > maxValueLen {
			return false, store.ErrTooLarge
		}
		h, sh, t := s.locate(kv.Key)
		locs[i] = loc{h, sh, t}
		locked[h&slotMask&shardMask] = true
	}
	for i := range locked {
		if locked[i] {
			s.shards[i].mu.Lock()
		}
	}
	ok, err := s.setMultiLocked(pairs, func(i int) (uint64, *shard, *table) {
		return locs[i].h, locs[i].sh, locs[i].t
	}, expireAt, onlyIfNoneExist)
	for i := range locked {
		if locked[i] {
			s.shards[i].mu.Unlock()
		}
	}
	if err == nil && ok && s.policy != PolicyTTLOnly && s.over() {
		s.evict(nil)
	}
	return ok, err
}

func (s *Store) setMultiLocked(pairs []store.KV, loc func(int) (uint64, *shard, *table), expireAt int64, onlyIfNoneExist bool) (bool, error) {
	now := s.now()
	var dKeys, dBytes int64
	for i, kv := range pairs {
		h, _, t := loc(i)
		j := t.find(kv.Key, h)
		live := j >= 0 && !store.Expired(hdr(t.items[j]).expireAt, now)
		if onlyIfNoneExist && live {
			return false, nil
		}
		dBytes += itemCost(len(kv.Key), len(kv.Value))
		if live {
			dBytes -= itemCost(len(kv.Key), int(hdr(t.items[j]).vlen))
		} else {
			dKeys++
		}
	}
	if s.policy == PolicyTTLOnly && s.bounded {
		// Checked once for the whole batch (a key given twice counts twice: conservative).
		if (s.maxSize > 0 && dKeys > 0 && s.keys.Load()+dKeys > s.maxSize) ||
			(s.maxMemory > 0 && dBytes > 0 && s.used.Load()+dBytes > s.maxMemory) {
			return false, store.ErrOOM
		}
	}
	op := store.Op{Kind: store.Set, ExpireAt: expireAt}
	for i, kv := range pairs {
		h, sh, t := loc(i)
		op.Value = kv.Value
		res, err := s.apply(sh, t, kv.Key, h, &op, now, false)
		if err != nil {
			return false, err
		}
		pairs[i].Created = !res.Found
	}
	return true, nil
}

// Close marks the store closed and drops its contents.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.Flush(context.Background())
}
