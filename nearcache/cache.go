// Package nearcache is Vela's L1: a bounded, in-process copy of the values a node reads from a
// store whose data lives elsewhere (an external Redis), so that a repeated GET is answered
// without a round trip.
//
// # Coherence
//
// A copy is dropped when the node writes the key (the command layer calls Invalidate before the
// write leaves), when the invalidation channel reports a change made elsewhere (Tracker: Redis's
// client tracking), and at the latest after the configured l1_ttl or at the key's own expiry,
// whichever comes first. While the channel is down the cache serves nothing and keeps nothing
// (Suspend), because changes made meanwhile would go unreported.
//
// A read that misses fetches the value from the store and offers it back with Fill. The Ticket
// taken before the fetch makes that safe against an invalidation that arrives while the fetch is
// in flight: the value it fetched may predate the change, so Fill keeps nothing. Tickets are per
// shard of the key space, so an invalidation of another key in the same shard also drops the fill
// (a later read fetches again): a lost fill costs a miss, never a stale hit.
package nearcache

import (
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/maypok86/otter/v2"
)

// shards is the number of invalidation epochs a Ticket can be checked against.
const shards = 256

// Cache is the near cache. It is safe for concurrent use.
type Cache struct {
	c   *otter.Cache[uint64, *entry]
	ttl int64 // l1_ttl in milliseconds: the longest a copy serves

	live    atomic.Bool // the invalidation channel is up: copies may be served and kept
	epochs  [shards]atomic.Uint64
	flushes atomic.Uint64 // whole-cache drops, for INFO
}

// entry is one copy. Entries are immutable once stored; the otter key is the hash of key.
type entry struct {
	key      string
	value    []byte
	expireAt int64 // unix ms from which the copy is not served: min(fill + l1_ttl, key's expiry)
}

// Ticket is taken before a fetch and given back to Fill with its result.
type Ticket struct {
	hash, epoch uint64
	ok          bool // the cache was live when the ticket was taken
}

// New returns a near cache of at most maxSize copies, each served for at most ttl. It starts
// suspended: call Resume once the invalidation channel is up (a cache that only this node's
// writes change, such as a test's, may resume at once).
func New(maxSize int, ttl time.Duration) (*Cache, error) {
	c := &Cache{ttl: max(ttl.Milliseconds(), 1)}
	oc, err := otter.New(&otter.Options[uint64, *entry]{
		MaximumSize: maxSize,
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[uint64, *entry]) time.Duration {
			return time.Duration(e.Value.expireAt-time.Now().UnixMilli()) * time.Millisecond
		}),
	})
	if err != nil {
		return nil, err
	}
	c.c = oc
	return c, nil
}

// Get returns the copy of key, if one is live.
func (c *Cache) Get(key []byte) ([]byte, bool) {
	if !c.live.Load() {
		return nil, false
	}
	e, ok := c.c.GetIfPresent(xxhash.Sum64(key))
	if !ok || e.key != string(key) || time.Now().UnixMilli() >= e.expireAt {
		return nil, false
	}
	return e.value, true
}

// Begin returns the ticket for a fetch of key that is about to start.
func (c *Cache) Begin(key []byte) Ticket {
	h := xxhash.Sum64(key)
	ep := c.epochs[h%shards].Load()
	return Ticket{hash: h, epoch: ep, ok: c.live.Load()}
}

// Fill offers the value a fetch begun with t returned for key, with the key's expiry (0: none,
// -1: unknown). It keeps a copy unless the key or its shard was invalidated since t was taken,
// the cache was suspended, or the expiry is unknown or past. The cache keeps value itself: the
// caller must not modify it afterwards.
func (c *Cache) Fill(key []byte, t Ticket, value []byte, keyExpireAt int64) {
	if !t.ok || keyExpireAt < 0 || !c.current(t) {
		return
	}
	now := time.Now().UnixMilli()
	until := now + c.ttl
	if keyExpireAt != 0 {
		until = min(until, keyExpireAt)
	}
	if until <= now {
		return
	}
	c.c.Set(t.hash, &entry{key: string(key), value: value, expireAt: until})
	// An invalidation that ran between the check above and the Set bumped the epoch before it
	// deleted; if it deleted before the Set, the copy must go again.
	if !c.current(t) {
		c.c.Invalidate(t.hash)
	}
}

// current reports whether nothing invalidated t's shard since t was taken, and the cache is live.
func (c *Cache) current(t Ticket) bool {
	return c.live.Load() && c.epochs[t.hash%shards].Load() == t.epoch
}

// Invalidate drops the copy of key and makes fetches of key (and of its shard) begun before now
// keep nothing.
func (c *Cache) Invalidate(key []byte) {
	h := xxhash.Sum64(key)
	c.epochs[h%shards].Add(1)
	c.c.Invalidate(h)
}

// Flush drops every copy and makes every fetch begun before now keep nothing.
func (c *Cache) Flush() {
	for i := range c.epochs {
		c.epochs[i].Add(1)
	}
	c.c.InvalidateAll()
	c.flushes.Add(1)
}

// Suspend stops serving and keeping copies, and drops those held: the invalidation channel is
// down, so changes made meanwhile would go unseen.
func (c *Cache) Suspend() {
	c.live.Store(false)
	c.Flush()
}

// Resume serves and keeps copies again, once the invalidation channel is up. Fetches begun
// before it keep nothing: they may have read before the channel saw changes.
func (c *Cache) Resume() {
	for i := range c.epochs {
		c.epochs[i].Add(1)
	}
	c.live.Store(true)
}

// Live reports whether the cache serves copies (its invalidation channel is up).
func (c *Cache) Live() bool { return c.live.Load() }

// Len returns the number of copies held (an estimate while writes are in flight).
func (c *Cache) Len() int { return c.c.EstimatedSize() }

// Flushes returns how many times the whole cache was dropped (FLUSHALL, a lost channel).
func (c *Cache) Flushes() uint64 { return c.flushes.Load() }

// Close stops the cache's background maintenance. The cache must not be used afterwards.
func (c *Cache) Close() {
	c.live.Store(false)
	c.c.StopAllGoroutines()
	c.c.InvalidateAll()
}
