package partition

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/ring"
	"github.com/vela-cache/vela/store"
)

// handoffBatch is how many keys a handoff puts in flight before it waits for their replies.
const handoffBatch = 512

// handoffStats describe one rebalancing pass.
type handoffStats struct {
	scanned, moved, dropped, failed int
	took                            time.Duration
}

// rebalanceLoop runs a handoff pass after membership changes (waiting Settle for the changes to
// stop), and again later when a pass could not reach every new holder.
func (cl *Cluster) rebalanceLoop() {
	defer cl.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-cl.stop
		cancel()
	}()
	balanced := ring.New([]string{cl.self}, 0, ring.Config{VNodes: cl.cfg.VNodes})
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	forget := time.NewTimer(time.Hour)
	forget.Stop()
	defer forget.Stop()
	for {
		select {
		case <-cl.stop:
			return
		case <-cl.kick:
			forget.Reset(time.Second)
		case <-retry.C:
		case <-forget.C:
			if cl.closeWindows() {
				forget.Reset(time.Second)
			}
			continue
		}
		// Let a burst of changes (a node joining sees every member at once) settle first.
		settle := time.NewTimer(cl.cfg.Settle)
		select {
		case <-cl.stop:
			settle.Stop()
			return
		case <-settle.C:
		}
		select {
		case <-cl.kick:
		default:
		}
		v := cl.view.Load()
		if slices.Equal(v.ring.Members(), balanced.Members()) {
			cl.balancedFor.Store(v.ring)
			cl.synced.Store(true)
			continue
		}
		st, err := cl.handoff(ctx, balanced, v)
		if ctx.Err() != nil {
			return
		}
		if st.moved+st.dropped+st.failed > 0 || err != nil {
			cl.log.Info("cluster handoff", "node", cl.self, "members", v.ring.Len(), "scanned", st.scanned,
				"moved", st.moved, "dropped", st.dropped, "failed", st.failed, "took", st.took.Round(time.Millisecond), "err", err)
		}
		if err != nil || st.failed > 0 {
			retry.Reset(time.Second)
			continue
		}
		balanced = v.ring
		cl.balancedFor.Store(v.ring)
		cl.synced.Store(true)
	}
}

// pendingKey is a key whose copies are in flight, and whether to drop it here once they land;
// to is the member it goes to, remembered once it is dropped (one copy of each key only).
type pendingKey struct {
	key   []byte
	calls []*peer.Call
	drop  bool
	to    dest
}

// handoff walks the local keyspace once and, for every key whose holders differ between old and
// v's ring, sends the key to its new holders and drops it here when this node no longer holds
// it. For each key one node sends: the first of its old holders still in the ring (or every
// holder when none is), so a join does not make every replica send the same copy.
func (cl *Cluster) handoff(ctx context.Context, old *ring.Ring, v *view) (handoffStats, error) {
	start := time.Now()
	var st handoffStats
	n := cl.cfg.Replicas
	var pending []pendingKey
	flush := func() {
		for _, p := range pending {
			ok := true
			for _, c := range p.calls {
				if _, err := c.Result(); err != nil {
					ok = false
				}
			}
			switch {
			case !ok:
				st.failed++
			case p.drop:
				if cl.dropHanded(ctx, p) {
					cl.node.NotifyKey(p.key)
					cl.unnote(p.key)
					st.dropped++
				}
			}
			if ok && len(p.calls) > 0 {
				st.moved++
			}
		}
		pending = pending[:0]
		cl.handing.landed()
	}
	var oldBuf, newBuf [8]string
	var cursor uint64
	for {
		keys, next, err := cl.ks.Scan(ctx, cursor, nil, 1024)
		if err != nil {
			flush()
			st.took = time.Since(start)
			return st, err
		}
		for _, key := range keys {
			st.scanned++
			oldOwners := old.Owners(key, n, oldBuf[:0])
			newOwners := v.ring.Owners(key, n, newBuf[:0])
			if slices.Equal(oldOwners, newOwners) {
				continue
			}
			holdNew := slices.Contains(newOwners, cl.self)
			holdOld := slices.Contains(oldOwners, cl.self)
			var targets []string
			switch {
			case !holdOld && !holdNew:
				// A stray copy (a write that reached this node while the ring changed): give it to
				// the owner unless the owner has one.
				targets = []string{newOwners[0]}
			case cl.sender(oldOwners, v.ring) == cl.self:
				for _, o := range newOwners {
					if o != cl.self && !slices.Contains(oldOwners, o) {
						targets = append(targets, o)
					}
				}
			}
			p := pendingKey{drop: !holdNew}
			if n == 1 && len(targets) == 1 {
				p.to = dest{member: targets[0], addr: v.addrs[targets[0]]}
			}
			if len(targets) > 0 {
				args, err := cl.restoreArgs(ctx, key, true)
				if err != nil {
					st.failed++
					continue
				}
				if string(args[1]) == "DROP" {
					continue // expired or deleted meanwhile
				}
				for _, t := range targets {
					p.calls = append(p.calls, cl.pool.Send(v.addrs[t], args, uint64(cl.stripe(key)), 5*cl.cfg.ForwardTimeout))
				}
			}
			if len(p.calls) == 0 && !p.drop {
				continue
			}
			p.key = key
			if p.drop && p.to.member != "" && len(p.calls) > 0 {
				cl.handing.add(key, p.to.member)
			}
			pending = append(pending, p)
			if len(pending) >= handoffBatch {
				flush()
			}
		}
		if ctx.Err() != nil {
			flush()
			st.took = time.Since(start)
			return st, ctx.Err()
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	flush()
	st.took = time.Since(start)
	if st.failed > 0 {
		return st, errors.New("some keys could not be handed over")
	}
	return st, nil
}

// dropHanded deletes p's key here once its copy has landed, and reports whether the delete
// ran. A key this node held alone (replicas = 1) and dropped is remembered with where it went,
// for a member that asks for it later (VELA TAKE, handed.go), under the key's stripe, as TAKE
// takes it: an asker finds the key here, or gone and recorded. A key a TAKE took meanwhile
// keeps the TAKE's record.
func (cl *Cluster) dropHanded(ctx context.Context, p pendingKey) bool {
	if p.to.member == "" {
		_, err := cl.store.Do(ctx, p.key, store.Op{Kind: store.Delete})
		return err == nil
	}
	s := cl.stripe(p.key)
	cl.stripes[s].Lock()
	defer cl.stripes[s].Unlock()
	res, err := cl.store.Do(ctx, p.key, store.Op{Kind: store.Delete})
	if err == nil && res.Done {
		cl.sentTo(p.key, p.to)
	}
	return err == nil
}

// sender is the member responsible for copying a key whose holders were oldOwners: the first
// of them still in the ring, or this node when none is left.
func (cl *Cluster) sender(oldOwners []string, r *ring.Ring) string {
	for _, o := range oldOwners {
		if r.Has(o) {
			return o
		}
	}
	return cl.self
}
