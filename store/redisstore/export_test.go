package redisstore

import (
	"context"
	"time"
)

// Hooks for the tests of package redisstore_test.

// KeySlot is keySlot, to compare with Redis's CLUSTER KEYSLOT.
var KeySlot = keySlot

// SlotTag returns the tag of slot that bookkeeping key names use (cluster mode).
func (s *Store) SlotTag(slot uint16) string { return s.slots[slot] }

// BeginTagWrite runs steps 0 and 1 of a tagged write of key and stops there: what a node that
// dies in the middle of SET … TAGS leaves behind (cluster mode).
func (s *Store) BeginTagWrite(ctx context.Context, key string, tags ...string) error {
	return s.beginTagWrite(ctx, key, s.keyBook(key), newNonce(), tags)
}

// SetPendingGrace sets how old a pending tagged write must be before the sweep cancels it.
func (s *Store) SetPendingGrace(d time.Duration) { s.pendingGrace = d }

// AfterTagBegin makes fn run between steps 1 and 2 of every tagged write (cluster mode).
func (s *Store) AfterTagBegin(fn func()) { s.afterTagBegin = fn }

// AfterTagCheck makes fn run between the checks of the keys of a tag hash page and the removal of
// the entries they let go, in TAGINVALIDATE and the sweep (cluster mode).
func (s *Store) AfterTagCheck(fn func()) { s.afterTagCheck = fn }

// LoopPipes returns how many event loops have a Redis connection of their own (looppipe.go).
func (s *Store) LoopPipes() int {
	if list := s.loopPipes.Load(); list != nil {
		return len(*list)
	}
	return 0
}

// KnowsLease reports whether l has heard of a lease on key (the leases a write through it ends).
func (l *Leases) KnowsLease(key string) bool {
	l.kmu.Lock()
	defer l.kmu.Unlock()
	return len(l.known[key]) > 0
}

// BeforeEnd makes fn run before each end of leases started by a write calls Redis. Set it before
// the first write.
func (l *Leases) BeforeEnd(fn func()) { l.beforeEnd = fn }
