package redisstore

// Ending leases on writes: every node keeps the leases it has heard of (granted through it, or
// announced on the lease channel by another node) and ends a key's leases when a write goes
// through it, so a fill after a write is refused as on the other stores.

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vela-cache/vela/fetchlock"
)

// knownLease is a lease this node has heard of: granted through it, or announced by another node.
type knownLease struct {
	token fetchlock.Token
	until time.Time // when it runs out at the latest (this node's clock)
}

// ranOut reports, for slices.DeleteFunc, the known leases that have run out at now.
func ranOut(now time.Time) func(knownLease) bool {
	return func(h knownLease) bool { return !now.Before(h.until) }
}

// pendingEnd is an end of leases started by endKnown; done is closed once it has reached Redis
// (or failed).
type pendingEnd struct{ done chan struct{} }

// pruneEvery is how often the dispatch goroutine drops the known leases that ran out unannounced.
const pruneEvery = time.Second

// Lease events are the messages the scripts publish on the lease channel (luaLeaseEvents), token
// being 32 hex digits:
//
//	"g" token " " lease ms " " key   a lease was granted
//	"e" token " " key                a lease ended: filled, released, or ended by a write
//
// A lease that runs out, or goes with FLUSHALL, is not announced.
const (
	eventGrant = 'g'
	eventEnd   = 'e'
)

// luaLeaseEvents defines granted and ended, which publish lease events on channel ch.
const luaLeaseEvents = `
local function granted(ch, token, ms, key) redis.call('PUBLISH', ch, 'g' .. token .. ' ' .. ms .. ' ' .. key) end
local function ended(ch, token, key) redis.call('PUBLISH', ch, 'e' .. token .. ' ' .. key) end
`

// leaseEvent is a parsed lease event.
type leaseEvent struct {
	kind  byte // eventGrant or eventEnd
	token fetchlock.Token
	lease time.Duration // eventGrant: how long the lease was granted for
	key   string
}

// parseEvent reads a lease event; ok is false for any other payload.
func parseEvent(p string) (ev leaseEvent, ok bool) {
	const n = 1 + 2*len(fetchlock.Token{}) // kind and token
	if len(p) <= n || p[n] != ' ' {
		return ev, false
	}
	if ev.token, ok = fetchlock.ParseToken([]byte(p[1:n])); !ok {
		return ev, false
	}
	ev.kind, ev.key = p[0], p[n+1:]
	switch ev.kind {
	case eventEnd:
		return ev, true
	case eventGrant:
		ms, key, found := strings.Cut(ev.key, " ")
		v, err := strconv.ParseInt(ms, 10, 64)
		if !found || err != nil || v < 0 {
			return ev, false
		}
		ev.lease, ev.key = time.Duration(v)*time.Millisecond, key
		return ev, true
	}
	return ev, false
}

// KeyChanged reports a write to key through this node: it ends the leases on key this node
// knows of (endKnown) and wakes this node's waiters on key. It never waits on Redis, and while
// this node knows of no lease and has no waiter it costs two atomic loads.
func (l *Leases) KeyChanged(key []byte) {
	if l.nknown.Load() > 0 {
		l.endKnown(key)
	}
	if l.nwait.Load() > 0 {
		l.wake(string(key))
	}
}

// endKnown ends the leases this node knows of on key, which was just written through it, and
// forgets them. The Redis calls run in a goroutine of their own, after the key's previous end
// (so that settle need wait for the latest one only): each lease is released by its token, so
// one granted since the write is left alone, and its end is published to every node's waiters.
func (l *Leases) endKnown(key []byte) {
	l.kmu.Lock()
	defer l.kmu.Unlock()
	held, ok := l.known[string(key)]
	if !ok {
		return
	}
	k := string(key)
	l.setKnown(k, nil)
	held = slices.DeleteFunc(held, ranOut(time.Now()))
	if len(held) == 0 || l.closing.Load() {
		return
	}
	prev := l.pending[k]
	if prev == nil {
		l.npending.Add(1)
	}
	p := &pendingEnd{done: make(chan struct{})}
	l.pending[k] = p
	l.ends.Add(1)
	go l.end(k, held, prev, p)
}

// end is the goroutine of one endKnown: once prev (the key's previous end, or nil) is done, it
// releases each of held (each call under the store's timeout) and marks p done.
func (l *Leases) end(key string, held []knownLease, prev, p *pendingEnd) {
	defer l.ends.Done()
	if prev != nil {
		<-prev.done
	}
	if l.beforeEnd != nil {
		l.beforeEnd()
	}
	for _, h := range held {
		ended, err := l.release(context.Background(), key, h.token)
		if err != nil {
			l.log.Warn("redis store: could not end a FETCHLOCK lease after a write to its key", "err", err)
		} else if ended {
			l.forget(h.token)
		}
	}
	l.kmu.Lock()
	if l.pending[key] == p {
		delete(l.pending, key)
		l.npending.Add(-1)
	}
	l.kmu.Unlock()
	close(p.done)
}

// settle waits, at most until ctx ends, for the ends endKnown started on key to reach Redis,
// so that a FETCHLOCK, FETCHFILL or FETCHRELEASE through this node finds the leases that the
// writes made through this node before it ended.
func (l *Leases) settle(ctx context.Context, key string) {
	if l.npending.Load() == 0 {
		return
	}
	l.kmu.Lock()
	p := l.pending[key]
	l.kmu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-p.done:
	case <-ctx.Done():
	}
}

// event handles a message of the lease channel: it learns a granted lease, or forgets an ended
// one and wakes the key's waiters. Any other payload is taken as a key to wake the waiters of
// (what earlier versions published).
func (l *Leases) event(payload string) {
	ev, ok := parseEvent(payload)
	switch {
	case !ok:
		l.wake(payload)
	case ev.kind == eventGrant:
		l.learn(ev.key, ev.token, time.Now().Add(ev.lease))
	default:
		l.unlearn(ev.key, ev.token)
		l.forget(ev.token)
		l.wake(ev.key)
	}
}

// learn records that token holds a lease on key, until at the latest.
func (l *Leases) learn(key string, token fetchlock.Token, until time.Time) {
	l.kmu.Lock()
	defer l.kmu.Unlock()
	held := l.known[key]
	for _, h := range held {
		if h.token == token {
			return // heard of already: granted here, then announced
		}
	}
	held = slices.DeleteFunc(held, ranOut(time.Now()))
	l.setKnown(key, append(held, knownLease{token: token, until: until}))
}

// unlearn forgets token's lease on key: it ended.
func (l *Leases) unlearn(key string, token fetchlock.Token) {
	if l.nknown.Load() == 0 {
		return
	}
	l.kmu.Lock()
	defer l.kmu.Unlock()
	if held, ok := l.known[key]; ok {
		l.setKnown(key, slices.DeleteFunc(held, func(h knownLease) bool { return h.token == token }))
	}
}

// prune forgets the known leases that have run out by now (runs out are not announced).
func (l *Leases) prune(now time.Time) {
	if l.nknown.Load() == 0 {
		return
	}
	l.kmu.Lock()
	defer l.kmu.Unlock()
	for key, held := range l.known {
		l.setKnown(key, slices.DeleteFunc(held, ranOut(now)))
	}
}

// setKnown makes held the known leases on key, none removing the key; kmu must be held.
func (l *Leases) setKnown(key string, held []knownLease) {
	_, had := l.known[key]
	switch {
	case len(held) > 0:
		l.known[key] = held
		if !had {
			l.nknown.Add(1)
		}
	case had:
		delete(l.known, key)
		l.nknown.Add(-1)
	}
}

// AllChanged wakes every waiter on this node.
func (l *Leases) AllChanged() {
	if l.nwait.Load() == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, set := range l.waiters {
		for w := range set {
			signal(w.ch)
		}
	}
}
