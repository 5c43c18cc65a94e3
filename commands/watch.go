package commands

import "github.com/vela-cache/vela/store"

// KeyWatcher is told about every change a command on this node makes to a key, after the change
// is applied: FETCHLOCK leases end on a write, near caches drop their copy. Methods are called on
// the connection goroutine that made the change and must not block.
type KeyWatcher interface {
	// KeyChanged reports that key was written or deleted.
	KeyChanged(key []byte)
	// AllChanged reports that every key may have changed (FLUSHALL, FLUSHDB).
	AllChanged()
}

// Watch registers w. Call it during start-up, before the node serves clients.
func (n *Node) Watch(w KeyWatcher) { n.watchers = append(n.watchers, w) }

// NotifyKey tells every watcher that key changed. Commands registered by other packages call it
// after their own writes (TAGINVALIDATE for each deleted key, FETCHFILL).
func (n *Node) NotifyKey(key []byte) { n.notifyKey(key, 0) }

// NotifyKeyBy is NotifyKey for a change c's command made: a client tracking with NOLOOP is
// not told of its own changes.
func (n *Node) NotifyKeyBy(c *Ctx, key []byte) { n.notifyKey(key, originOf(c)) }

// notifyKey is NotifyKey for a change made by the client whose ID is origin (0: none).
func (n *Node) notifyKey(key []byte, origin int64) {
	n.watches.touch(key)
	for _, w := range n.watchers {
		w.KeyChanged(key)
	}
	n.clientCache.changed(key, origin)
}

// NotifyAll tells every watcher that every key may have changed.
func (n *Node) NotifyAll() {
	for _, w := range n.watchers {
		w.AllChanged()
	}
	n.clientCache.flushed()
}

// changes reports whether an Op of this kind, with this result, changed the key.
func changes(op *store.Op, res *store.Result) bool {
	switch op.Kind {
	case store.Get, store.Inspect, store.Touch:
		return false
	case store.GetEx:
		// PERSIST of a key without expiry changes nothing, as in Redis; a store that cannot
		// tell the old expiry reports -1, so PERSIST then counts as a change.
		return res.Found && (op.TTL == store.TTLSet || (op.TTL == store.TTLClear && res.ExpireAt != 0))
	case store.Set, store.Delete, store.Expire, store.Persist, store.SetRange:
		return res.Done
	}
	// IncrBy, IncrByFloat and Append write whenever they succeed; so do SetBit and BitField, a
	// key's encoding changing (Redis makes it raw) or the key being created even when no bit
	// does (a BITFIELD whose every write OVERFLOW FAIL refused).
	return true
}
