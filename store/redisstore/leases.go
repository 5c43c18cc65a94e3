package redisstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/fetchlock"
	"github.com/vela-cache/vela/stats"
)

// Leases keeps FETCHLOCK's fetch leases in Redis, beside the values, so that several Vela nodes
// in front of one Redis coordinate: there is one lease per key whichever node a caller asks. It
// implements fetchlock.Leases and commands.KeyWatcher.
//
// # Layout
//
// A lease is a hash "l:<key>" in the meta database — the holder's token, the kind of lease
// ("missing": granted on a missing key; "refresh": granted on a live key near expiry, with the
// SHA-1 of the value it was granted on) — that expires with the lease (PEXPIRE). On Redis
// Cluster it is a field of the hash "__vela:{<slot tag>}:l" in the key's own slot, holding the
// same facts and the time (Redis's clock) the lease runs out; run-out leases are dropped when
// next looked at and by the sweep (see cluster.go). Every decision is one Lua script on the
// key's slot, so granting, filling and releasing are atomic across nodes.
//
// # Fencing
//
// A fill writes only while its token holds the lease and the key has not been written since the
// grant. In Redis, the scripts compare the key with the lease: a "missing" lease requires the key
// to be still missing, a "refresh" lease the value it was granted on, and a FETCHLOCK that finds
// the key written ends such a lease (the key is live: HIT). Those checks cannot see a key written
// and deleted again (or rewritten with the same value) between the grant and the fill.
//
// Writes through Vela therefore end the lease themselves. Every grant is announced on the lease
// channel (see Waiting) and each node keeps the leases it has heard of: key, token, and when the
// lease runs out at the latest (forgotten when announced ended, or once run out). KeyChanged,
// which a node calls after every write it makes (SET and the other writes, DEL, UNLINK, GETDEL,
// EXPIRE into the past, each key TAGINVALIDATE deletes…), ends the key's known leases with the
// release script, which deletes a lease only while the same token holds it: a lease granted
// after the write is never ended by it. The end is published like a release, so waiters on every
// node re-check at once and find the key live (HIT) or missing (exactly one gets LOCKED).
// KeyChanged does not wait for Redis: the ends run in a goroutine, each call under the store's
// timeout, and a write costs two atomic loads while the node knows of no lease and has no
// waiter (else a map lookup under a mutex). The guarantee:
//
//   - Through the node that made the write, a FETCHLOCK, FETCHFILL or FETCHRELEASE of the key
//     sent after the write's reply first waits for that end: the fill gets STALE (ErrNotHeld),
//     and FETCHLOCK does not wait for the ended lease.
//   - Through another node, the same holds once the end has reached Redis, one round trip after
//     the write, provided the writing node had heard of the grant when it wrote (the announcement
//     is one pub/sub message, normally well under a millisecond); a fill that reaches Redis
//     first still writes.
//
// Only the checks in Redis fence: writes made to Redis directly by other clients (Vela cannot
// see them), writes through a node that had not heard of the grant (its subscription was down,
// or the write followed the grant within the announcement's delay), and writes whose end failed
// (Redis unreachable within the timeout: the lease then runs out by itself) or came after Close.
// FLUSHALL deletes the leases with the data.
//
// # Waiting
//
// A caller that finds the lease held waits on its node. Grants and ends (fills, releases, ends
// by writes) are published as lease events on a channel every node subscribes to (on Redis
// Cluster, PUBLISH reaches the subscribers of every node); an end wakes the key's waiters at
// once. Every waiter also re-checks at least every PollInterval and when the lease runs out, so
// lost messages, leases that expire and writes made elsewhere are noticed within that bound.
// When a lease ends, the first waiter to re-check gets it (exactly one does), not necessarily
// the one that waited longest.
type Leases struct {
	s       *Store
	stats   *stats.Stats
	log     *slog.Logger
	poll    time.Duration
	channel string
	max     int
	ps      *redis.PubSub
	done    chan struct{} // closed when the dispatch goroutine has ended
	once    sync.Once
	closing atomic.Bool // set by Close: waiters answer TIMEOUT instead of waiting on, no end starts

	mu      sync.Mutex                           // guards waiters, owners and byToken
	waiters map[string]map[*leaseWaiter]struct{} // local callers waiting, by key
	owners  map[fetchlock.Client]*leaseOwner     // clients holding leases granted here
	byToken map[fetchlock.Token]*leaseOwner      // the owner of each such lease
	nwait   atomic.Int64                         // len of all waiter sets, read lock-free

	// The leases this node has heard of, so that a write through it can end them (Fencing).
	kmu       sync.Mutex              // guards known and pending
	known     map[string][]knownLease // by key; almost always one lease
	nknown    atomic.Int64            // len(known), read lock-free by KeyChanged
	pending   map[string]*pendingEnd  // the latest end started on each key, until it is done
	npending  atomic.Int64            // len(pending), read lock-free
	ends      sync.WaitGroup          // the goroutines running ends (endKnown); Close waits
	beforeEnd func()                  // set by tests only: runs before each end calls Redis
}

var _ fetchlock.Leases = (*Leases)(nil)

// leaseWaiter is one waiting Lock call; ch (capacity 1) is signalled to make it re-check.
type leaseWaiter struct{ ch chan struct{} }

// leaseOwner is the leases a client connection holds, so they end when it closes.
type leaseOwner struct {
	held map[fetchlock.Token]heldLease
}

type heldLease struct {
	key   string
	until time.Time // when the lease runs out in Redis anyway
}

// LeasesConfig configures Redis-kept leases. The zero value is usable.
type LeasesConfig struct {
	// Stats receives fetch_locks, fetch_waits and fetch_timeouts; nil counts nothing.
	Stats *stats.Stats
	// PollInterval is the longest a waiter goes without re-checking the key. Default 25ms.
	PollInterval time.Duration
	// MaxLeasesPerClient bounds the leases one connection may hold at once. Default 10000.
	MaxLeasesPerClient int
}

// NewLeases starts keeping leases in the store's Redis. Close it before the store.
func (s *Store) NewLeases(cfg LeasesConfig) (*Leases, error) {
	channel := clusterChannel
	if s.cluster == nil {
		channel = "__vela:fetchlock:" + s.metaDB
	}
	l := &Leases{s: s, stats: cfg.Stats, log: s.log, poll: cfg.PollInterval, max: cfg.MaxLeasesPerClient,
		channel: channel, done: make(chan struct{}),
		waiters: map[string]map[*leaseWaiter]struct{}{}, owners: map[fetchlock.Client]*leaseOwner{},
		byToken: map[fetchlock.Token]*leaseOwner{}, known: map[string][]knownLease{},
		pending: map[string]*pendingEnd{}}
	if l.stats == nil {
		l.stats = &stats.Stats{Disabled: true}
	}
	if l.poll <= 0 {
		l.poll = 25 * time.Millisecond
	}
	if l.max <= 0 {
		l.max = 10000
	}
	// go-redis re-subscribes by itself after a lost connection; waiters poll meanwhile.
	l.ps = s.c.Subscribe(context.Background(), l.channel)
	ch := l.ps.Channel()
	go func() {
		defer close(l.done)
		prune := time.NewTicker(pruneEvery)
		defer prune.Stop()
		for {
			select {
			case msg, ok := <-ch:
				if !ok {
					return
				}
				l.event(msg.Payload)
			case now := <-prune.C:
				l.prune(now)
			}
		}
	}()
	return l, nil
}

// Close waits for the lease ends in flight (each bounded by the store's timeout), stops
// listening for lease events and wakes every waiter. It is idempotent.
func (l *Leases) Close() error {
	var err error
	l.once.Do(func() {
		// Set under kmu, where endKnown reads it: no end starts after this.
		l.kmu.Lock()
		l.closing.Store(true)
		l.kmu.Unlock()
		l.ends.Wait()
		err = l.ps.Close()
		<-l.done
		l.AllChanged()
	})
	return err
}

// Lock serves FETCHLOCK (see fetchlock.Leases).
func (l *Leases) Lock(ctx context.Context, key []byte, req fetchlock.LockRequest) (fetchlock.LockResult, error) {
	k := string(key)
	deadline := time.Now().Add(req.Timeout)
	var w *leaseWaiter
	defer func() {
		if w != nil {
			l.unregister(k, w)
		}
	}()
	if l.s.cluster != nil && reserved(key) {
		return fetchlock.LockResult{}, ErrReservedKey
	}
	if req.Client != nil && l.full(req.Client) {
		return fetchlock.LockResult{}, fetchlock.ErrTooManyLeases
	}
	l.settle(ctx, k)
	waited := false
	for {
		var tok fetchlock.Token
		_, _ = rand.Read(tok[:])
		cctx, cancel := context.WithTimeout(ctx, l.s.timeout)
		lease := max(req.Lease.Milliseconds(), 1)
		var cmd *redis.Cmd
		if l.s.cluster != nil {
			bk := l.s.keyBook(k)
			cmd = clusterLock.Run(cctx, l.s.c, []string{k, bk.leases, bk.index}, tok.String(), lease, req.Refresh.Milliseconds(), l.channel)
		} else {
			cmd = scriptLock.Run(cctx, l.s.c, nil, l.s.metaDB, l.s.userDB, k, tok.String(),
				lease, req.Refresh.Milliseconds(), l.channel)
		}
		v, err := cmd.Slice()
		cancel()
		if err != nil {
			return fetchlock.LockResult{}, l.s.mapErr(cctx, err)
		}
		status, _ := v[0].(string)
		switch status {
		case "HIT":
			val, _ := v[1].(string)
			return fetchlock.LockResult{Status: fetchlock.Hit, Value: []byte(val)}, nil
		case "REFRESH", "LOCKED":
			until := time.Now().Add(req.Lease)
			l.learn(k, tok, until)
			l.hold(req.Client, k, tok, until)
			if l.stats.On() {
				l.stats.FetchLocks.Inc()
			}
			if status == "LOCKED" {
				return fetchlock.LockResult{Status: fetchlock.Locked, Token: tok}, nil
			}
			val, _ := v[1].(string)
			return fetchlock.LockResult{Status: fetchlock.Refresh, Value: []byte(val), Token: tok}, nil
		}
		// Someone else holds the lease on a missing key.
		remaining := time.Until(deadline)
		if req.Timeout <= 0 || remaining <= 0 || l.closing.Load() {
			if l.stats.On() {
				l.stats.FetchTimeouts.Inc()
			}
			return fetchlock.LockResult{Status: fetchlock.Timeout}, nil
		}
		if !waited {
			waited = true
			if l.stats.On() {
				l.stats.FetchWaits.Inc()
			}
		}
		if w == nil { // registered before the next check, so no wake-up can be missed
			w = l.register(k)
			continue
		}
		d := min(remaining, l.poll)
		if ttl, _ := v[1].(int64); ttl > 0 {
			d = min(d, time.Duration(ttl+1)*time.Millisecond)
		}
		l.sleep(ctx, w, d, req.Client)
		if err := ctx.Err(); err != nil {
			return fetchlock.LockResult{}, err
		}
	}
}

// Fill serves FETCHFILL: one script checks the token and the fencing, writes the value (and its
// tags), ends the lease and publishes the key.
func (l *Leases) Fill(ctx context.Context, key []byte, token fetchlock.Token, f fetchlock.FillRequest) error {
	if l.s.cluster != nil && reserved(key) {
		return ErrReservedKey
	}
	l.settle(ctx, string(key))
	ctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	l.s.wroteKey(key)
	defer l.s.wroteKey(key)
	var res string
	var err error
	if l.s.cluster != nil {
		res, err = l.clusterFill(ctx, string(key), token, f)
	} else {
		args := make([]any, 0, 7+len(f.Tags))
		args = append(args, l.s.metaDB, l.s.userDB, string(key), token.String(), f.Value, f.ExpireAt, l.channel)
		for _, t := range f.Tags {
			args = append(args, t)
		}
		res, err = scriptFill.Run(ctx, l.s.c, nil, args...).Text()
	}
	if err != nil {
		return l.s.mapErr(ctx, err)
	}
	l.unlearn(string(key), token) // whatever the verdict, token holds no lease now
	switch res {
	case "NOTHELD":
		return fetchlock.ErrNotHeld
	case "CHANGED":
		l.forget(token)
		return fetchlock.ErrChanged
	}
	l.forget(token)
	return nil
}

// Release serves FETCHRELEASE.
func (l *Leases) Release(ctx context.Context, key []byte, token fetchlock.Token) error {
	if l.s.cluster != nil && reserved(key) {
		return ErrReservedKey
	}
	l.settle(ctx, string(key))
	ok, err := l.release(ctx, string(key), token)
	if err != nil {
		return err
	}
	if !ok {
		return fetchlock.ErrNotHeld
	}
	l.forget(token)
	return nil
}

// clusterFill runs FETCHFILL on Redis Cluster; with tags it is a tagged write (steps 0 to 2 of
// cluster.go, clusterFill being step 2), started over if the sweep gave it up.
func (l *Leases) clusterFill(ctx context.Context, key string, token fetchlock.Token, f fetchlock.FillRequest) (string, error) {
	bk := l.s.keyBook(key)
	tags := distinct(f.Tags)
	for range maxTagAttempts {
		nonce := ""
		if len(tags) > 0 {
			nonce = newNonce()
			if err := l.s.beginTagWrite(ctx, key, bk, nonce, tags); err != nil {
				return "", err
			}
		}
		args := make([]any, 0, 5+len(tags))
		args = append(args, token.String(), f.Value, f.ExpireAt, l.channel, nonce)
		for _, t := range tags {
			args = append(args, t)
		}
		res, err := clusterFill.Run(ctx, l.s.c, []string{key, bk.leases, bk.recs, bk.pend, bk.index}, args...).Text()
		if err != nil || res != "RETRY" {
			return res, err
		}
	}
	return "", errTagRace
}

// release ends the lease token holds on key, if it does, and publishes the end. It reports
// whether token held a lease that had not run out.
func (l *Leases) release(ctx context.Context, key string, token fetchlock.Token) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, l.s.timeout)
	defer cancel()
	var cmd *redis.Cmd
	if l.s.cluster != nil {
		bk := l.s.keyBook(key)
		cmd = clusterRelease.Run(ctx, l.s.c, []string{bk.leases, bk.index}, key, token.String(), l.channel)
	} else {
		cmd = scriptRelease.Run(ctx, l.s.c, nil, l.s.metaDB, key, token.String(), l.channel)
	}
	n, err := cmd.Int64()
	if err != nil {
		return false, l.s.mapErr(ctx, err)
	}
	l.unlearn(key, token)
	return n == 1, nil
}

// Counts reports the callers waiting here, for INFO (leases and keys live in Redis).
func (l *Leases) Counts() fetchlock.Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := fetchlock.Counts{Keys: len(l.waiters), Waiters: int(l.nwait.Load())}
	for _, o := range l.owners {
		c.Leases += len(o.held)
	}
	return c
}

func (l *Leases) wake(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for w := range l.waiters[key] {
		signal(w.ch)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (l *Leases) register(key string) *leaseWaiter {
	w := &leaseWaiter{ch: make(chan struct{}, 1)}
	l.mu.Lock()
	set := l.waiters[key]
	if set == nil {
		set = map[*leaseWaiter]struct{}{}
		l.waiters[key] = set
	}
	set[w] = struct{}{}
	l.mu.Unlock()
	l.nwait.Add(1)
	return w
}

func (l *Leases) unregister(key string, w *leaseWaiter) {
	l.mu.Lock()
	if set := l.waiters[key]; set != nil {
		delete(set, w)
		if len(set) == 0 {
			delete(l.waiters, key)
		}
	}
	l.mu.Unlock()
	l.nwait.Add(-1)
}

// sleep waits for a wake-up, d, or ctx, inside the client's Blocking (which watches its socket).
func (l *Leases) sleep(ctx context.Context, w *leaseWaiter, d time.Duration, c fetchlock.Client) {
	wait := func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-w.ch:
		case <-t.C:
		case <-ctx.Done():
		}
	}
	if c == nil {
		wait()
		return
	}
	c.Blocking(wait)
}

// full reports whether c holds the most leases allowed, after dropping those that ran out.
func (l *Leases) full(c fetchlock.Client) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.owners[c]
	if o == nil || len(o.held) < l.max {
		return false
	}
	now := time.Now()
	for tok, h := range o.held {
		if now.After(h.until) {
			delete(o.held, tok)
			delete(l.byToken, tok)
		}
	}
	return len(o.held) >= l.max
}

// hold records that c holds tok on key until at the latest, so that the lease ends when c closes.
func (l *Leases) hold(c fetchlock.Client, key string, tok fetchlock.Token, until time.Time) {
	if c == nil {
		return
	}
	l.mu.Lock()
	o := l.owners[c]
	if o == nil {
		o = &leaseOwner{held: map[fetchlock.Token]heldLease{}}
		l.owners[c] = o
		c.OnClose(func() { l.clientClosed(c) })
	}
	o.held[tok] = heldLease{key: key, until: until}
	l.byToken[tok] = o
	l.mu.Unlock()
}

// forget drops tok from its owner's leases (it was filled or released).
func (l *Leases) forget(tok fetchlock.Token) {
	l.mu.Lock()
	if o := l.byToken[tok]; o != nil {
		delete(o.held, tok)
		delete(l.byToken, tok)
	}
	l.mu.Unlock()
}

// clientClosed releases the leases c still holds; waiters anywhere are woken by the release.
func (l *Leases) clientClosed(c fetchlock.Client) {
	l.mu.Lock()
	o := l.owners[c]
	delete(l.owners, c)
	var held map[fetchlock.Token]heldLease
	if o != nil {
		held = o.held
		for tok := range held {
			delete(l.byToken, tok)
		}
	}
	l.mu.Unlock()
	now := time.Now()
	for tok, h := range held {
		if now.After(h.until) {
			continue // ran out in Redis already
		}
		if _, err := l.release(context.Background(), h.key, tok); err != nil {
			l.log.Warn("redis store: could not release a FETCHLOCK lease of a closed connection", "err", err)
		}
	}
}

// scriptLock: ARGV meta, user, key, token, lease ms, refresh ms, channel. Returns {"HIT", value},
// {"REFRESH", value}, {"LOCKED"} or {"WAIT", lease pttl}.
var scriptLock = redis.NewScript(luaLeaseEvents + `
local key, lk = ARGV[3], 'l:' .. ARGV[3]
redis.call('SELECT', ARGV[2])
local v = redis.call('GET', key)
if v then
  local pttl = redis.call('PTTL', key)
  redis.call('SELECT', ARGV[1])
  local lease = redis.call('HMGET', lk, 'token', 'kind', 'fp')
  local kind = lease[2]
  if kind == 'missing' or (kind == 'refresh' and lease[3] ~= redis.sha1hex(v)) then
    -- the key was written since this lease was granted: the write ended it
    redis.call('DEL', lk)
    ended(ARGV[7], lease[1], key)
  end
  local refresh = tonumber(ARGV[6])
  if refresh > 0 and pttl >= 0 and pttl <= refresh and redis.call('EXISTS', lk) == 0 then
    redis.call('HSET', lk, 'token', ARGV[4], 'kind', 'refresh', 'fp', redis.sha1hex(v))
    redis.call('PEXPIRE', lk, ARGV[5])
    granted(ARGV[7], ARGV[4], ARGV[5], key)
    return {'REFRESH', v}
  end
  return {'HIT', v}
end
redis.call('SELECT', ARGV[1])
if redis.call('EXISTS', lk) == 0 then
  redis.call('HSET', lk, 'token', ARGV[4], 'kind', 'missing')
  redis.call('PEXPIRE', lk, ARGV[5])
  granted(ARGV[7], ARGV[4], ARGV[5], key)
  return {'LOCKED'}
end
return {'WAIT', redis.call('PTTL', lk)}
`)

// scriptFill: ARGV meta, user, key, token, value, pxat (0: none), channel, tags… Returns "OK",
// "NOTHELD" or "CHANGED".
var scriptFill = redis.NewScript(luaDropTags + luaLeaseEvents + `
local key, lk = ARGV[3], 'l:' .. ARGV[3]
redis.call('SELECT', ARGV[1])
if redis.call('HGET', lk, 'token') ~= ARGV[4] then return 'NOTHELD' end
local kind, fp = redis.call('HGET', lk, 'kind'), redis.call('HGET', lk, 'fp')
redis.call('DEL', lk)
ended(ARGV[7], ARGV[4], key)
redis.call('SELECT', ARGV[2])
local cur = redis.call('GET', key)
if kind == 'missing' then
  if cur then return 'CHANGED' end
elseif not cur or redis.sha1hex(cur) ~= fp then
  return 'CHANGED'
end
if ARGV[6] ~= '0' then redis.call('SET', key, ARGV[5], 'PXAT', ARGV[6])
else redis.call('SET', key, ARGV[5]) end
local live = redis.call('EXISTS', key)
redis.call('SELECT', ARGV[1])
droptags(key)
if live == 1 and #ARGV >= 8 then
  for i = 8, #ARGV do
    redis.call('SADD', 't:' .. ARGV[i], key)
    redis.call('SADD', 'k:' .. key, ARGV[i])
  end
  redis.call('SET', 'f:' .. key, redis.sha1hex(ARGV[5]))
end
return 'OK'
`)

// scriptRelease: ARGV meta, key, token, channel. Returns 1 if the token held the lease.
var scriptRelease = redis.NewScript(luaLeaseEvents + `
redis.call('SELECT', ARGV[1])
local lk = 'l:' .. ARGV[2]
if redis.call('HGET', lk, 'token') ~= ARGV[3] then return 0 end
redis.call('DEL', lk)
ended(ARGV[4], ARGV[3], ARGV[2])
return 1
`)

// String describes the lease keeper for logs.
func (l *Leases) String() string { return fmt.Sprintf("redis leases (channel %s)", l.channel) }
