package memory

import (
	"math/rand/v2"
	"sort"
	"sync/atomic"

	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/tags"
)

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
// logarithmic access counter (8 bits), as Redis keeps them; under PolicyTTLOnly, which evicts
// nothing, the idle clock (in seconds) at its last access, for OBJECT IDLETIME only.
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
	return s.idleClock.Load()
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
	return s.idleClock.Load()
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
		s.stamp(hd)
		return
	}
	old := atomic.LoadUint32(&hd.meta)
	if next := s.accessedMeta(old, now); next != old {
		atomic.CompareAndSwapUint32(&hd.meta, old, next) // losing a race loses one access: fine
	}
}

// stamp records an access under PolicyTTLOnly without reading the time: the idle clock is one
// atomic load of a word that changes when Tick advances it, and an entry is written at most once
// per tick, so a read of a key read before costs no write.
func (s *Store) stamp(hd *header) {
	if c := s.idleClock.Load(); atomic.LoadUint32(&hd.meta) != c {
		atomic.StoreUint32(&hd.meta, c)
	}
}

// Tick advances the idle clock that OBJECT IDLETIME reads under PolicyTTLOnly to the store's
// current time. The node calls it ten times a second, as Redis updates its LRU clock; under the
// other policies the entries keep the store's own clock and Tick changes nothing.
func (s *Store) Tick() {
	s.idleClock.Store(s.seconds(s.now()))
}

func (s *Store) seconds(now int64) uint32 { return uint32((now - s.epoch) / 1000) }

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
	if s.onRemove != nil {
		s.onRemove(keyOf(t.items[j]), true)
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
