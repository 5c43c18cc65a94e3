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
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/glob"
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
	shards  [numShards]shard
	tags    *tags.Index
	maxLen  int64
	now     func() int64
	stats   *stats.Stats
	policy  Policy
	samples int
	epoch   int64 // origin of the LRU and LFU clocks, unix ms
	closed  atomic.Bool

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
				now := s.now()
				if store.Expired(hd.expireAt, now) {
					sh.mu.RUnlock()
					s.expireKey(key, now)
					_, _, res, err := store.Apply(cur, false, &op, now, s.maxLen)
					return res, err
				}
				s.touch(hd, now)
			}
			cur = store.Entry{Value: valueOf(p), ExpireAt: hd.expireAt}
			live = true
		}
		sh.mu.RUnlock()
		_, _, res, err := store.Apply(cur, live, &op, 0, s.maxLen)
		return res, err
	}
	var now int64 // read below, or by apply when the key turns out to have an expiry
	if !s.clockless(&op) {
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
			cur = store.Entry{Value: valueOf(old), ExpireAt: hd.expireAt}
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
	switch action {
	case store.Remove:
		if i >= 0 {
			s.removeAt(sh, t, i, false)
		}
	case store.Put:
		value := next.Value
		if op.Kind == store.Set {
			value = op.Value
		} else if i >= 0 && sameBytes(value, cur.Value) {
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
		s.put(sh, t, i, key, h, value, next.ExpireAt, tagged, op, now)
	}
	return res, nil
}

func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// put stores a new item for key in bucket i (or a new bucket when i < 0), replacing the old one.
func (s *Store) put(sh *shard, t *table, i int, key []byte, h uint64, value []byte, expireAt int64, tagged bool, op *store.Op, now int64) {
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
	p := newItem(key, value, uint32(h>>32), expireAt, meta, tagged)
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

// over reports whether the store-wide totals exceed a bound.
func (s *Store) over() bool {
	return s.bounded && ((s.maxSize > 0 && s.keys.Load() > s.maxSize) ||
		(s.maxMemory > 0 && s.used.Load() > s.maxMemory))
}

// roomFor reports whether writing value under key (replacing old, when not nil) keeps the store
// within its bounds, reclaiming expired entries of the key's table first when it does not.
// Writes that do not grow the store always fit.
func (s *Store) roomFor(sh *shard, t *table, key, value []byte, old item, tagged bool, op *store.Op, now int64) bool {
	fits := func() bool {
		var dKeys, dBytes int64
		dBytes = itemCost(len(key), len(value))
		if old != nil {
			dBytes -= itemCost(len(key), int(hdr(old).vlen))
		} else {
			dKeys = 1
		}
		if op.Kind == store.Set && len(op.Tags) > 0 && (old == nil || !hdr(old).tagged()) {
			dBytes += tags.EntryCost(len(key), len(op.Tags))
		}
		keys := s.keys.Load() + sh.pendingKeys
		used := s.used.Load() + sh.pendingBytes
		return (s.maxSize == 0 || dKeys <= 0 || keys+dKeys <= s.maxSize) &&
			(s.maxMemory == 0 || dBytes <= 0 || used+dBytes <= s.maxMemory)
	}
	if fits() {
		return true
	}
	reclaimed := false
	for j := 0; j < len(t.items); {
		if p := t.items[j]; p != nil && p != old && store.Expired(hdr(p).expireAt, now) {
			s.removeAt(sh, t, j, true)
			reclaimed = true
			continue // removeAt shifted a later entry into bucket j
		}
		j++
	}
	return reclaimed && fits()
}

// LRU and LFU bookkeeping. An entry's meta is, under PolicyLRU, the store's millisecond clock at
// its last access; under PolicyLFU, the minute of its last counter decay (24 bits) and a
// logarithmic access counter (8 bits), as Redis keeps them.
const (
	lfuInitVal   = 5  // a new key's counter, so it is not the first to go
	lfuLogFactor = 10 // Redis's lfu-log-factor
)

func (s *Store) clock(now int64) uint32 { return uint32(now - s.epoch) }

func (s *Store) minutes(now int64) uint32 { return uint32((now-s.epoch)/60000) & 0xFFFFFF }

// initialMeta is a new entry's meta.
func (s *Store) initialMeta(now int64) uint32 {
	switch s.policy {
	case PolicyLRU:
		return s.clock(now)
	case PolicyLFU:
		return s.minutes(now)<<8 | lfuInitVal
	}
	return 0
}

// accessedMeta is meta after one more access at now.
func (s *Store) accessedMeta(meta uint32, now int64) uint32 {
	switch s.policy {
	case PolicyLRU:
		return s.clock(now)
	case PolicyLFU:
		c := s.lfuDecayed(meta, now)
		if c < 255 {
			base := float64(max(int(c)-lfuInitVal, 0))
			if rand.Float64() < 1/(base*lfuLogFactor+1) {
				c++
			}
		}
		return s.minutes(now)<<8 | uint32(c)
	}
	return meta
}

// lfuDecayed is meta's counter less one per minute since its last decay.
func (s *Store) lfuDecayed(meta uint32, now int64) uint8 {
	elapsed := (s.minutes(now) - meta>>8) & 0xFFFFFF
	c := meta & 0xFF
	if elapsed >= c {
		return 0
	}
	return uint8(c - elapsed)
}

// touch records an access to a live entry. It may run under the shard's read lock: meta is the
// one header field that readers write, atomically, and only when it changes.
func (s *Store) touch(hd *header, now int64) {
	if s.policy == PolicyTTLOnly {
		return
	}
	old := atomic.LoadUint32(&hd.meta)
	if next := s.accessedMeta(old, now); next != old {
		atomic.CompareAndSwapUint32(&hd.meta, old, next) // losing a race loses one access: fine
	}
}

// evictScore ranks an entry for eviction: higher goes first.
func (s *Store) evictScore(hd *header, now int64) uint64 {
	meta := atomic.LoadUint32(&hd.meta)
	if s.policy == PolicyLFU {
		idle := (s.minutes(now) - meta>>8) & 0xFFFFFF
		return uint64(255-s.lfuDecayed(meta, now))<<32 | uint64(idle)
	}
	return uint64(s.clock(now) - meta)
}

// evict removes entries until the store is within its bounds, never keep (the key just written).
func (s *Store) evict(keep []byte) {
	for failures := 0; s.over() && failures < 8; {
		if !s.evictOne(keep) {
			failures++
		}
	}
}

// evictOne samples entries across the store and removes the best candidate: an expired entry
// when it meets one, else the one with the highest evictScore. Each sample picks a shard with a
// probability proportional to its entries, so every entry is about as likely to be a candidate
// wherever it lives (evicting from a shard chosen uniformly would let shard sizes drift apart
// until small shards lose even their hottest keys). Only one shard lock is held at a time. It
// reports whether it removed anything.
func (s *Store) evictOne(keep []byte) bool {
	var cum [numShards]int64
	var total int64
	for i := range s.shards {
		total += max(0, s.shards[i].count.Load())
		cum[i] = total
	}
	if total == 0 {
		return false
	}
	now := s.now()
	var keyBuf [64]byte
	best := keyBuf[:0]
	found := false
	var bestScore uint64
	for n := 0; n < s.samples; n++ {
		r := rand.Int64N(total)
		i := sort.Search(numShards, func(i int) bool { return cum[i] > r })
		sh := &s.shards[i]
		sh.mu.Lock()
		t, j := sh.sample()
		if t == nil {
			sh.mu.Unlock()
			continue
		}
		p := t.items[j]
		hd := hdr(p)
		if store.Expired(hd.expireAt, now) {
			s.removeAt(sh, t, j, true)
			sh.mu.Unlock()
			return true
		}
		if k := keyOf(p); string(k) != string(keep) {
			if score := s.evictScore(hd, now); !found || score > bestScore {
				best = append(best[:0], k...)
				bestScore, found = score, true
			}
		}
		sh.mu.Unlock()
	}
	if !found {
		return false
	}
	h, sh, t := s.locate(best)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	j := t.find(best, h)
	if j < 0 {
		return false // deleted meanwhile: the caller checks the bound again
	}
	s.removeAt(sh, t, j, false)
	if s.stats.On() {
		s.stats.Evictions.Inc()
	}
	return true
}

// sample returns a random entry of a locked shard (nil when it has none), close to uniformly:
// a random slot, retried while empty, then a random bucket of it, retried while empty. Walking
// forward to the next entry instead would favour entries behind long empty runs, and sampling
// many times the same few entries makes eviction forget what it learned from the others.
func (sh *shard) sample() (*table, int) {
	for try := 0; try < 64; try++ {
		if t := &sh.slots[rand.IntN(slotsPerShard)]; t.n > 0 {
			return t, t.randomItem()
		}
	}
	local := rand.IntN(slotsPerShard) // a sparse shard: walk to the next non-empty slot
	for k := 0; k < slotsPerShard; k++ {
		if t := &sh.slots[(local+k)%slotsPerShard]; t.n > 0 {
			return t, t.randomItem()
		}
	}
	return nil, 0
}

// randomItem returns a random occupied bucket of a non-empty table.
func (t *table) randomItem() int {
	c := len(t.items)
	i := rand.IntN(c)
	for try := 0; try < 8 && t.items[i] == nil; try++ {
		i = rand.IntN(c)
	}
	for t.items[i] == nil {
		if i++; i == c {
			i = 0
		}
	}
	return i
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
		if _, err := s.apply(sh, t, kv.Key, h, &op, now, false); err != nil {
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

// TagIndexLen returns the number of tags with keys and of tagged keys in the tag index.
func (s *Store) TagIndexLen() (tags, keys int) { return s.tags.Len() }

// KeyTags returns the tags key carries, so a cluster handoff keeps them (store.TagReader).
func (s *Store) KeyTags(_ context.Context, key []byte) ([][]byte, error) {
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

// Close marks the store closed and drops its contents.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	return s.Flush(context.Background())
}
