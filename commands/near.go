package commands

import (
	"github.com/vela-cache/vela/nearcache"
	"github.com/vela-cache/vela/store"
)

// SetNearCache puts c in front of the store: GET and MGET are answered from it when it holds a
// copy, and fill it when it does not. Every write through this node drops the key's copy before
// the write leaves (so a client reads its own writes, pipelined or not) and again once it is
// applied; what changes elsewhere is c's invalidation channel's business. Call it during
// start-up, before the node serves clients.
func (n *Node) SetNearCache(c *nearcache.Cache) {
	n.near, n.nearShown = c, c
	n.Watch(nearWatcher{c})
}

// ShowNearCache makes INFO and NearCache report c, a near cache another layer uses (the
// partitioned topology keeps copies of other members' keys in it), without the node using it.
func (n *Node) ShowNearCache(c *nearcache.Cache) { n.nearShown = c }

// NearCache returns the near cache, or nil.
func (n *Node) NearCache() *nearcache.Cache { return n.nearShown }

// nearWatcher drops the near cache's copies of what this node's commands change.
type nearWatcher struct{ c *nearcache.Cache }

func (w nearWatcher) KeyChanged(key []byte) { w.c.Invalidate(key) }
func (w nearWatcher) AllChanged()           { w.c.Flush() }

// nearServes reports whether a read of the client may be answered from the near cache. Not
// while its earlier commands are still in flight: one of them may be a write, and another client
// may have filled the copy from a read that Redis ran before it. Not while it watches keys in
// Redis (a transaction): a read after WATCH must see every change made before it, and a copy
// may not have heard of one yet.
func (n *Node) nearServes(c *Ctx) bool {
	if c.Conn != nil && c.Conn.Pending() {
		return false
	}
	return !c.watchingRemote()
}

// nearGet looks key up in the near cache, counting the hit (a keyspace hit too) or the miss.
func (n *Node) nearGet(key []byte) ([]byte, bool) {
	v, ok := n.near.Get(key)
	if n.stats.On() {
		if ok {
			n.stats.Hits.Inc()
			n.stats.L1Hits.Inc()
		} else {
			n.stats.L1Misses.Inc()
		}
	}
	return v, ok
}

// nearFill offers the result of a GET begun with t to the near cache, unless the GET joined
// another caller's (store.Result.Shared), which may have been sent before t was taken.
func (n *Node) nearFill(key []byte, t nearcache.Ticket, res store.Result, err error) {
	if err == nil && res.Found && !res.Shared {
		n.near.Fill(key, t, res.Value, res.ExpireAt)
	}
}

// nearBeforeWrite drops key's copy before op may change it in the store.
func (n *Node) nearBeforeWrite(key []byte, op *store.Op) {
	switch op.Kind {
	case store.Get, store.Inspect, store.Touch:
	default:
		n.near.Invalidate(key)
	}
}
