package partition

import (
	"strconv"
	"time"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/resp"
)

// Client tracking (CLIENT TRACKING) in a partitioned cluster. A member's tracking clients read
// other members' keys, whose changes only their owners see, so a tracked read of another
// member's key registers this member with the key's owner first, as the near cache does
// (VELA L1WATCH), and waits for the registration before the read runs: every change the owner
// makes after the read then reaches this member (VELA L1INVALIDATE), which tells its clients.
// The owner's word can be lost (an owner that goes quiet or restarts, a ring change); then
// every tracking client of this member is told to drop everything (an invalidation with a null
// key list), as when Redis's tracking table is flushed. Registrations run out after trackWatch,
// so the member also does that every trackWatch/2 while it registers keys: no copy a client
// keeps outlives the registration that covers it. A key whose owner declines the registration (it is handing the key over)
// is invalidated for the reader right after its reply.

// trackWatch is how long an owner keeps a tracked key's registration.
const trackWatch = time.Hour

// trackDropper is the node's tracking table as a near-cache reader's dropper.
type trackDropper struct{ n *commands.Node }

func (d trackDropper) Invalidate(key []byte) { d.n.TrackingInvalidate(key) }
func (d trackDropper) Flush()                { d.n.TrackingFlush() }

// newTrackReader returns the reader of the keys node's tracking clients read on other members.
func newTrackReader(node *commands.Node) *nearReader {
	return &nearReader{drop: trackDropper{node}, flushEvery: trackWatch / 2, lastFlush: time.Now(),
		ttl: trackWatch, heard: map[string]int64{}, expect: map[string]int64{}, inc: map[string]string{}}
}

// WatchReads implements commands.ReadWatcher: it registers this member with the owners of the
// keys of a tracking client's read that other members own, all in parallel, and returns the
// keys an owner did not register (or did not answer for).
func (cl *Cluster) WatchReads(c *commands.Ctx, keys [][]byte) (unwatched [][]byte) {
	v := cl.view.Load()
	ttl := strconv.AppendInt(nil, trackWatch.Milliseconds(), 10)
	type pending struct {
		key   []byte
		owner string
		call  *peer.Call
	}
	var calls []pending
	for _, k := range keys {
		owner := v.ring.Owner(k)
		if owner == cl.self {
			continue // its changes are this node's own
		}
		addr := v.addrs[owner]
		if addr == "" {
			unwatched = append(unwatched, k)
			continue
		}
		watch := [][]byte{[]byte("VELA"), []byte("L1WATCH"), []byte(cl.self), ttl, k}
		calls = append(calls, pending{k, owner, cl.pool.Send(addr, watch, pick(c), cl.cfg.ForwardTimeout)})
	}
	for _, p := range calls {
		r, err := p.call.Result()
		if err != nil || r.Kind != resp.KindArray || len(r.Elems) != 2 {
			unwatched = append(unwatched, p.key)
			continue
		}
		until := time.Now().Add(trackWatch).UnixMilli()
		if !cl.trackR.filling(p.owner, r.Elems[1].Text(), until) {
			unwatched = append(unwatched, p.key) // a restarted owner: everything was dropped
		}
	}
	if cl.view.Load() != v { // the ring changed meanwhile: owners may have moved
		return keys
	}
	return unwatched
}
