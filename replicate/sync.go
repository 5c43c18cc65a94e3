package replicate

import (
	"context"
	"time"

	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/store"
)

// syncBatch is how many copies a state transfer sends before waiting for their replies.
const syncBatch = 512

// syncRetry is how long the state sender waits before trying a failed transfer again. A member
// behind is probed that often (each probe waits at most the forward timeout), so that it learns
// soon after it answers again that it must not serve from its own store.
const syncRetry = 250 * time.Millisecond

// collectEvery is how often the collector looks for versions to forget.
const collectEvery = time.Minute

// queueSync asks the state sender to send this node's whole state to member.
func (cl *Cluster) queueSync(member string) {
	cl.behindMu.Lock()
	if cl.pending == nil {
		cl.pending = map[string]struct{}{}
	}
	cl.pending[member] = struct{}{}
	cl.behindMu.Unlock()
	select {
	case cl.syncKick <- struct{}{}:
	default:
	}
}

// queueAsked queues the transfer of the whole state a member asked for (VELA RSYNCME), unless one
// to it is queued or under way already: it usually asks at the moment the others see it join.
func (cl *Cluster) queueAsked(member string) {
	cl.behindMu.Lock()
	_, queued := cl.pending[member]
	busy := queued || cl.sending == member
	cl.behindMu.Unlock()
	if !busy {
		cl.queueSync(member)
	}
}

// queueRequest asks the state sender to ask member for its whole state.
func (cl *Cluster) queueRequest(member string) {
	cl.behindMu.Lock()
	if cl.requests == nil {
		cl.requests = map[string]struct{}{}
	}
	cl.requests[member] = struct{}{}
	cl.behindMu.Unlock()
	select {
	case cl.syncKick <- struct{}{}:
	default:
	}
}

// requestAgain is how often a member that has not received the whole state yet asks the other
// members for it again.
const requestAgain = 5 * time.Second

// retry is when the state sender tries a member again after failures.
type retry struct {
	next   time.Time
	failed int // attempts failed in a row
}

// sendLoop is the state sender: it sends the whole state to every member queued, one at a time,
// and tries a failed transfer again after syncRetry while the member is in the view. It also sends this member's requests for the
// whole state, and repeats them every requestAgain until one has arrived.
func (cl *Cluster) sendLoop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	again := time.NewTicker(requestAgain)
	defer again.Stop()
	tries := map[string]*retry{}
	for {
		select {
		case <-cl.stop:
			return
		case <-cl.syncKick:
		case <-timer.C:
		case <-again.C:
			if !cl.synced.Load() {
				for _, m := range cl.view.Load().ring.Members() {
					if m != cl.self {
						cl.queueRequest(m)
					}
				}
			}
		}
		cl.behindMu.Lock()
		members := make([]string, 0, len(cl.pending))
		for m := range cl.pending {
			members = append(members, m)
		}
		asks := make([]string, 0, len(cl.requests))
		for m := range cl.requests {
			asks = append(asks, m)
		}
		clear(cl.requests)
		cl.behindMu.Unlock()
		for _, m := range asks {
			cl.request(m)
		}
		var earliest time.Time
		for _, m := range members {
			r := tries[m]
			if r != nil && time.Now().Before(r.next) {
				if earliest.IsZero() || r.next.Before(earliest) {
					earliest = r.next
				}
				continue
			}
			cl.behindMu.Lock()
			delete(cl.pending, m)
			cl.sending = m
			cl.behindMu.Unlock()
			err := cl.sendState(m)
			cl.behindMu.Lock()
			cl.sending = ""
			if err != nil {
				cl.pending[m] = struct{}{}
			}
			cl.behindMu.Unlock()
			if err == nil {
				delete(tries, m)
				continue
			}
			if r == nil {
				r = &retry{}
				tries[m] = r
			}
			r.failed++
			r.next = time.Now().Add(syncRetry)
			if earliest.IsZero() || r.next.Before(earliest) {
				earliest = r.next
			}
			if r.failed == 1 {
				cl.log.Warn("replicate: sending the whole state failed; will retry", "node", cl.self, "member", m, "err", err)
			} else {
				cl.log.Debug("replicate: sending the whole state failed again", "node", cl.self, "member", m,
					"attempts", r.failed, "err", err)
			}
		}
		for m := range tries {
			if cl.view.Load().addrs[m] == "" {
				delete(tries, m) // gone from the cluster
			}
		}
		if !earliest.IsZero() {
			timer.Reset(time.Until(earliest))
		}
	}
}

// request asks member for its whole state (VELA RSYNCME), unless this member has it already.
func (cl *Cluster) request(member string) {
	addr := cl.view.Load().addrs[member]
	if addr == "" || cl.synced.Load() {
		return
	}
	args := [][]byte{[]byte("VELA"), []byte("RSYNCME"), []byte(cl.self)}
	if _, err := cl.syncs.Do(addr, args, 0, cl.cfg.ForwardTimeout); err != nil {
		cl.log.Debug("replicate: asking for the whole state failed", "member", member, "err", err)
	}
}

// sendState sends member everything this node holds, in the order that lets it apply each
// part: the FLUSHALL and TAGINVALIDATE stamps, every live key with its stamp, the tombstones,
// and then VELA RSYNCED. A member no longer in the view is skipped. While it runs, copies to the
// member are waited for again.
func (cl *Cluster) sendState(member string) error {
	addr := cl.view.Load().addrs[member]
	if addr == "" {
		cl.clearBehind(member)
		return nil
	}
	// Copies to the member resume only once it answers: a member that does not would otherwise
	// cost every write a dial or a timeout. The probe also tells it that it is behind (VELA
	// RBEHIND), so that it stops answering from its own store until it has everything.
	if cl.isBehind(member) {
		probe := [][]byte{[]byte("VELA"), []byte("RBEHIND"), []byte(cl.self)}
		if _, err := cl.syncs.Do(addr, probe, 0, cl.cfg.ForwardTimeout); err != nil {
			return err
		}
	}
	cl.clearBehind(member)
	if err := cl.transfer(member, addr); err != nil {
		cl.behindMu.Lock()
		cl.behind[member] = struct{}{}
		cl.behindMu.Unlock()
		return err
	}
	return nil
}

// transfer sends member, at addr, the whole state (see sendState).
func (cl *Cluster) transfer(member, addr string) error {
	start := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-cl.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	b := &batch{cl: cl, addr: addr}
	if f := cl.versions.flushStamp(); !f.IsZero() {
		b.send([][]byte{[]byte("VELA"), []byte("RFLUSH"), u64(f.Time), u64(f.Node)})
	}
	for tag, s := range cl.versions.tagFloors() {
		b.send([][]byte{[]byte("VELA"), []byte("RTAGS"), u64(s.Time), u64(s.Node), []byte(tag)})
	}
	if err := b.wait(); err != nil {
		return err
	}
	keys := 0
	var cursor uint64
	for {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		page, next, err := cl.ks.Scan(ctx, cursor, nil, syncBatch)
		if err != nil {
			return err
		}
		for _, k := range page {
			s := cl.stripe(k)
			cl.stripes[s].Lock()
			st, err := cl.readState(ctx, k)
			st.stamp = cl.versions.get(k).stamp
			cl.stripes[s].Unlock()
			if err != nil {
				return err
			}
			if st.found {
				b.send(st.args(k))
				keys++
			}
		}
		if err := b.wait(); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	for i := range cl.versions.shards {
		cl.versions.tombstones(i, func(k string, s Stamp) {
			b.send(state{stamp: s}.args([]byte(k)))
		})
		if err := b.wait(); err != nil {
			return err
		}
	}
	b.send([][]byte{[]byte("VELA"), []byte("RSYNCED"), []byte(cl.self)})
	if err := b.wait(); err != nil {
		return err
	}
	cl.syncsSent.Add(1)
	cl.log.Info("replicated state sent", "node", cl.self, "to", member, "keys", keys,
		"took", time.Since(start).Round(time.Millisecond))
	return nil
}

// batch sends a state transfer's commands pipelined and waits for them together.
type batch struct {
	cl    *Cluster
	addr  string
	calls []*peer.Call
}

func (b *batch) send(args [][]byte) {
	b.calls = append(b.calls, b.cl.syncs.Send(b.addr, args, 0, 4*b.cl.cfg.ForwardTimeout))
}

// wait waits for every command sent since the last wait and returns the first failure.
func (b *batch) wait() error {
	var first error
	for _, c := range b.calls {
		r, err := c.Result()
		if err == nil && r.IsError() {
			// Applying one key failed there (out of memory, say): the rest still goes.
			b.cl.copiesFailed.Add(1)
			b.cl.log.Warn("replicate: a member refused part of the state", "addr", b.addr, "err", r.Text())
		}
		if first == nil {
			first = err
		}
	}
	b.calls = b.calls[:0]
	return first
}

func (cl *Cluster) clearBehind(member string) {
	cl.behindMu.Lock()
	delete(cl.behind, member)
	cl.behindMu.Unlock()
}

// collectLoop is the collector: every collectEvery it forgets the tombstones, the versions of
// keys gone by expiry or eviction, and the TAGINVALIDATE stamps older than tombstoneTTL.
func (cl *Cluster) collectLoop() {
	t := time.NewTicker(collectEvery)
	defer t.Stop()
	for {
		select {
		case <-cl.stop:
			return
		case <-t.C:
			cl.collect(context.Background(), time.Now().Add(-tombstoneTTL).UnixMilli())
		}
	}
}

// collect forgets what is older than cutoff (unix ms) and no longer needed: tombstones, and the
// versions of keys the store no longer holds.
func (cl *Cluster) collect(ctx context.Context, cutoff int64) {
	cl.versions.gcFloors(cutoff)
	for i := range cl.versions.shards {
		for _, k := range cl.versions.oldKeys(i, cutoff) {
			key := []byte(k)
			s := cl.stripe(key)
			cl.stripes[s].Lock()
			if e := cl.versions.get(key); wallMillis(e.stamp.Time) < cutoff {
				if e.gone {
					cl.versions.drop(key)
				} else if res, err := cl.store.Do(ctx, key, store.Op{Kind: store.Inspect}); err == nil && !res.Found {
					cl.versions.drop(key)
				}
			}
			cl.stripes[s].Unlock()
		}
	}
}

// saveEvery is how often the saver writes the stamps to Config.StampsPath while they change.
const saveEvery = 30 * time.Second

// saveLoop is the saver: with a stamps file it saves the stamps every saveEvery if they changed.
// Shutdown saves them a last time.
func (cl *Cluster) saveLoop() {
	if cl.cfg.StampsPath == "" {
		return
	}
	t := time.NewTicker(saveEvery)
	defer t.Stop()
	saved := cl.versions.changes.Load()
	for {
		select {
		case <-cl.stop:
			return
		case <-t.C:
			if n := cl.versions.changes.Load(); n != saved {
				if err := cl.versions.save(cl.cfg.StampsPath); err != nil {
					cl.log.Warn("replicate: saving the stamps failed", "path", cl.cfg.StampsPath, "err", err)
					continue
				}
				saved = n
			}
		}
	}
}

// pauseCheck is how often the pause watcher looks at the clock.
const pauseCheck = 100 * time.Millisecond

// watchPauses is the pause watcher: when this process has not run for longer than the others
// wait for a copy (copyTimeout: it was stopped, or its machine paused), the others may have
// given up copies to it, and it cannot know which. It then stops answering from its own store
// (not synced) and asks every member for the whole state.
func (cl *Cluster) watchPauses() {
	t := time.NewTicker(pauseCheck)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-cl.stop:
			return
		case now := <-t.C:
			gap := now.Sub(last)
			last = now
			if gap < cl.copyTimeout() || !cl.synced.Load() {
				cl.tick.Store(int64(now.Sub(cl.epoch)))
				continue
			}
			others := 0
			for _, m := range cl.view.Load().ring.Members() {
				if m != cl.self {
					others++
					cl.queueRequest(m)
				}
			}
			if others > 0 && cl.synced.Swap(false) {
				cl.log.Warn("replicate: this process did not run for a while; it may have missed copies and asks for the whole state",
					"node", cl.self, "paused", gap.Round(time.Millisecond))
			}
			cl.tick.Store(int64(now.Sub(cl.epoch))) // after synced is cleared: paused() covers until then
		}
	}
}

// paused reports whether the pause watcher has not run for longer than copyTimeout: this process
// was stopped and has just resumed, and the watcher has not yet noticed. Reads and decisions
// made here treat it as not synced, since the first command after a resume may run before the
// watcher does.
func (cl *Cluster) paused() bool {
	if cl.epoch.IsZero() {
		return false // not started: no watcher, nothing to miss
	}
	return int64(time.Since(cl.epoch))-cl.tick.Load() > int64(cl.copyTimeout())
}
