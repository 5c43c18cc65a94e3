package commands

import (
	"time"

	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/store"
)

// Keyspace notifications (notify-keyspace-events), as Redis 7.0 publishes them: each change a
// command makes, each key the store expires or evicts, and (class m) each read of a missing key
// is published on __keyspace@0__:<key> (the event as the message) and __keyevent@0__:<event>
// (the key), as the parameter's classes select. The events are Redis's for each string and
// key command; TAGINVALIDATE publishes "del" for each key it deletes. Events are published on
// the node that ran the command or removed the key, to its own subscribers, as each Redis
// Cluster node publishes its own. On the redis store
// Pub/Sub is Redis's (remotePS), and so are keyspace notifications: Vela publishes none there.

// keyspaceEvent publishes event, of class c, about key when notify-keyspace-events selects it.
func (n *Node) keyspaceEvent(c pubsub.Events, event string, key []byte) {
	if ev := pubsub.Events(n.events.Load()); ev != 0 && n.remotePS == nil {
		n.hub.Notify(ev, c, event, key, nil)
	}
}

// removedByStore hears of a key the store removed on its own: tracking clients are told, and
// "expired" or "evicted" is published.
func (n *Node) removedByStore(key []byte, evicted bool) {
	n.clientCache.removed(key)
	if evicted {
		n.keyspaceEvent(pubsub.Evicted, "evicted", key)
	} else {
		n.keyspaceEvent(pubsub.Expired, "expired", key)
	}
}

// opEvents publishes the events of op's result on key, as Redis's command for it does, when ev
// selects them. A write that creates the key publishes "new" first (class n), as Redis's dbAdd
// does before the command's own event.
func (n *Node) opEvents(ev pubsub.Events, key []byte, op *store.Op, res *store.Result) {
	pub := func(c pubsub.Events, event string) { n.hub.Notify(ev, c, event, key, nil) }
	if ev&pubsub.New != 0 && creates(op, res) {
		pub(pubsub.New, "new")
	}
	switch op.Kind {
	case store.Set:
		if res.Done {
			pub(pubsub.String, "set")
			if op.TTL == store.TTLSet {
				pub(pubsub.Generic, "expire")
			}
		}
	case store.Delete:
		if res.Found {
			pub(pubsub.Generic, "del")
		}
	case store.IncrBy:
		pub(pubsub.String, "incrby")
	case store.IncrByFloat:
		pub(pubsub.String, "incrbyfloat")
	case store.Append:
		pub(pubsub.String, "append")
	case store.SetRange:
		if res.Done {
			pub(pubsub.String, "setrange")
		}
	case store.SetBit, store.BitField:
		if res.Done {
			pub(pubsub.String, "setbit")
		}
	case store.Expire:
		if res.Done {
			pub(pubsub.Generic, expireEvent(op))
		}
	case store.Persist:
		if res.Done {
			pub(pubsub.Generic, "persist")
		}
	case store.GetEx:
		switch {
		case !res.Found:
		case op.TTL == store.TTLSet:
			pub(pubsub.Generic, expireEvent(op))
		case op.TTL == store.TTLClear && res.ExpireAt != 0:
			pub(pubsub.Generic, "persist")
		}
	}
	if readsKey(op) && !res.Found {
		pub(pubsub.KeyMiss, "keymiss")
	}
}

// creates reports whether op, with result res, added its key: it was not there before (Apply
// reports Found for a key that was, whatever the kind) and the write happened.
func creates(op *store.Op, res *store.Result) bool {
	if res.Found {
		return false
	}
	switch op.Kind {
	case store.Set, store.SetRange:
		return res.Done
	case store.IncrBy, store.IncrByFloat, store.Append, store.SetBit, store.BitField:
		return true
	}
	return false
}

// expireEvent is the event of an expiry set: "expire", or "del" when it has passed already,
// which deletes the key.
func expireEvent(op *store.Op) string {
	now := op.Now
	if now == 0 {
		now = time.Now().UnixMilli()
	}
	if op.ExpireAt <= now {
		return "del"
	}
	return "expire"
}
