package fetchlock

import (
	"bytes"
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store"
)

// Config configures a Manager.
type Config struct {
	// Store holds the values: Lock reads keys from it and Fill writes them.
	Store store.Store
	// Stats receives fetch_locks, fetch_waits and fetch_timeouts; nil counts nothing.
	Stats *stats.Stats
	// MaxLeasesPerClient bounds the leases one client connection may hold at once (0: 10000),
	// so that a client cannot make the node keep unbounded lease state on keys it never fills.
	MaxLeasesPerClient int
}

const (
	shardCount = 256
	// maxRereads bounds how often Lock reads a key again because it changed during the read.
	// Past it Lock decides on its last read; a lease granted on a stale miss is ended by the
	// change that made it stale, so this only trades a retry for a STALE fill.
	maxRereads = 8
)

// Manager keeps fetch leases in process memory. It implements Leases and commands.KeyWatcher
// (register it with Node.Watch so that writes end leases). Safe for concurrent use.
type Manager struct {
	store        store.Store
	stats        *stats.Stats
	maxPerClient int
	shards       [shardCount]shard
	owners       sync.Map      // Client -> *owner, for the clients that have used Lock
	done         chan struct{} // closed by Shutdown: nobody starts waiting any more
	shutdownOnce sync.Once
}

var _ Leases = (*Manager)(nil)

// shard holds the state of the keys that hash to it.
type shard struct {
	mu   sync.Mutex // guards keys and every entry, lease and waiter reachable from it
	keys map[string]*entry
	n    atomic.Int64 // len(keys); read without mu by KeyChanged's fast path
	_    [40]byte     // one shard per cache line
}

// entry is one key's lease state. It exists only while it has a lease, a waiter or a Lock or
// Fill call in flight (pins).
type entry struct {
	key   string
	sh    *shard
	gen   uint64 // bumped by every change reported for the key, so a read can tell it raced one
	pins  int    // Lock and Fill calls in flight on the key
	lease *lease // the current holder, nil when none
	head  *waiter
	tail  *waiter // FIFO of waiters: the head is the next to be handed the lease
}

// lease is one grant. Its fields are guarded by its entry's shard lock, except token and e,
// which never change.
type lease struct {
	token   Token
	e       *entry
	owner   *owner // the holder's connection; nil when it has none
	refresh bool   // granted on a live key (REFRESH): the fill may overwrite it
	seen    []byte // REFRESH: the value the holder was given; the fill overwrites only that
	filling bool   // a Fill is writing under this lease
	expires time.Time
	timer   *time.Timer
}

// waiter is a Lock call waiting for the key. It is sent exactly one message, after which it is
// off the queue.
type waiter struct {
	prev, next *waiter
	queued     bool
	ch         chan wake // buffered 1, so senders never block
	owner      *owner
	leaseFor   time.Duration
}

// wake is the message a waiter gets: the lease it has been handed, the value a fill has just
// written (filled), the manager shutting down (closing: answer TIMEOUT), or none of these: the
// key changed, read it again.
type wake struct {
	lease   *lease
	filled  bool
	closing bool
	value   []byte // shared by every waiter of the fill: read-only
}

// owner tracks the leases of one client connection, to end them when it closes.
type owner struct {
	mu     sync.Mutex // guards the fields below; taken after a shard lock, never before
	leases map[*lease]struct{}
	closed bool
}

// New returns a Manager over cfg.Store.
func New(cfg Config) *Manager {
	if cfg.MaxLeasesPerClient <= 0 {
		cfg.MaxLeasesPerClient = 10000
	}
	m := &Manager{store: cfg.Store, stats: cfg.Stats, maxPerClient: cfg.MaxLeasesPerClient,
		done: make(chan struct{})}
	for i := range m.shards {
		m.shards[i].keys = make(map[string]*entry)
	}
	return m
}

func (m *Manager) shard(key []byte) *shard { return &m.shards[xxhash.Sum64(key)%shardCount] }

// Lock implements FETCHLOCK; see Leases.
func (m *Manager) Lock(ctx context.Context, key []byte, req LockRequest) (LockResult, error) {
	// The hit path takes no lock: a live key outside the caller's refresh window is a HIT.
	v, found, exp, err := m.read(ctx, key, req)
	if err != nil {
		return LockResult{}, err
	}
	if found && !nearExpiry(exp, req.Refresh) {
		return LockResult{Status: Hit, Value: v}, nil
	}
	var o *owner
	if req.Client != nil && !req.Unbound {
		if o = m.owner(req.Client); o.count() >= m.maxPerClient {
			return LockResult{}, ErrTooManyLeases
		}
	}
	var deadline time.Time
	if req.Timeout > 0 {
		deadline = time.Now().Add(req.Timeout)
	}
	s := m.shard(key)
	s.mu.Lock()
	e := s.pin(key)
	s.mu.Unlock()

	waited := false
	for {
		res, w, err := m.decide(ctx, e, key, req, o, deadline)
		if err != nil || w == nil {
			m.unpin(e)
			return res, err
		}
		// From here e is no longer pinned for this call: whoever ends the wait unpins it.
		if !waited {
			waited = true
			if m.stats.On() {
				m.stats.FetchWaits.Inc()
			}
		}
		msg, woken, err := m.wait(ctx, e, w, time.Until(deadline), req.Client)
		switch {
		case err != nil:
			return LockResult{}, err
		case !woken:
			if m.stats.On() {
				m.stats.FetchTimeouts.Inc()
			}
			return LockResult{Status: Timeout}, nil
		case msg.lease != nil:
			return LockResult{Status: Locked, Token: msg.lease.token}, nil
		case msg.closing:
			if m.stats.On() {
				m.stats.FetchTimeouts.Inc()
			}
			return LockResult{Status: Timeout}, nil
		case msg.filled:
			return LockResult{Status: Hit, Value: msg.value}, nil
		}
		// Woken by a write: most likely the key is there now, and reading it needs no lock.
		v, found, exp, err := m.read(ctx, key, req)
		if err != nil {
			return LockResult{}, err
		}
		if found && !nearExpiry(exp, req.Refresh) {
			return LockResult{Status: Hit, Value: v}, nil
		}
		s.mu.Lock()
		e = s.pin(key) // the entry may have been dropped meanwhile
		s.mu.Unlock()
	}
}

// decide reads the key with e pinned and settles the call under the shard lock: a result, or a
// waiter queued on e (res is then unused). A change reported while the key was being read makes
// it read again, so a decision never rests on a read older than the last reported change.
func (m *Manager) decide(ctx context.Context, e *entry, key []byte, req LockRequest, o *owner, deadline time.Time) (LockResult, *waiter, error) {
	s := e.sh
	s.mu.Lock()
	gen := e.gen
	s.mu.Unlock()
	for reads := 1; ; reads++ {
		v, found, exp, err := m.read(ctx, key, req)
		if err != nil {
			return LockResult{}, nil, err
		}
		s.mu.Lock()
		if e.gen != gen && reads < maxRereads {
			gen = e.gen
			s.mu.Unlock()
			continue
		}
		if l := e.lease; l != nil && !l.filling && !time.Now().Before(l.expires) {
			m.end(l, true) // its timer has not run yet
		}
		switch {
		case found && (e.lease != nil || !nearExpiry(exp, req.Refresh)):
			s.mu.Unlock()
			return LockResult{Status: Hit, Value: v}, nil, nil
		case found:
			l := m.grant(e, req.Lease, o, true)
			l.seen = bytes.Clone(v)
			s.mu.Unlock()
			return LockResult{Status: Refresh, Value: v, Token: l.token}, nil, nil
		case e.lease == nil:
			l := m.grant(e, req.Lease, o, false)
			s.mu.Unlock()
			return LockResult{Status: Locked, Token: l.token}, nil, nil
		case req.Timeout <= 0 || !time.Now().Before(deadline) || m.closed():
			s.mu.Unlock()
			if m.stats.On() {
				m.stats.FetchTimeouts.Inc()
			}
			return LockResult{Status: Timeout}, nil, nil
		}
		w := &waiter{ch: make(chan wake, 1), owner: o, leaseFor: req.Lease}
		e.enqueue(w)
		s.mu.Unlock()
		return LockResult{}, w, nil
	}
}

// wait blocks until w is sent a message, d passes, ctx ends or the manager shuts down. It
// returns the message and whether one arrived; err is ctx's error when ctx ended, in which case
// a lease handed at that moment has been passed on. The waiter's pin on e is released when it
// returns: by the sender of the message (so that a thousand woken waiters do not all take the
// shard lock again), or here.
func (m *Manager) wait(ctx context.Context, e *entry, w *waiter, d time.Duration, c Client) (msg wake, woken bool, err error) {
	t := time.NewTimer(d)
	defer t.Stop()
	block := func() {
		select {
		case msg = <-w.ch:
			woken = true
		case <-t.C:
		case <-ctx.Done():
		}
	}
	if c != nil {
		c.Blocking(block)
	} else {
		block()
	}
	if !woken {
		s := e.sh
		s.mu.Lock()
		if w.queued {
			e.remove(w)
			e.pins--
			s.drop(e)
			s.mu.Unlock()
			return wake{}, false, ctx.Err()
		}
		s.mu.Unlock()
		msg, woken = <-w.ch, true // a message was sent just as the wait ended
	}
	if err := ctx.Err(); err != nil {
		if msg.lease != nil {
			m.releaseLease(msg.lease) // the client has gone: the next waiter gets it
		}
		return wake{}, false, err
	}
	return msg, woken, nil
}

// Fill implements FETCHFILL; see Leases.
func (m *Manager) Fill(ctx context.Context, key []byte, token Token, f FillRequest) error {
	s := m.shard(key)
	s.mu.Lock()
	e := s.keys[string(key)]
	if e == nil || e.lease == nil || e.lease.token != token || e.lease.filling {
		s.mu.Unlock()
		return ErrNotHeld
	}
	l := e.lease
	if !time.Now().Before(l.expires) {
		m.end(l, true)
		s.drop(e)
		s.mu.Unlock()
		return ErrNotHeld
	}
	l.filling = true
	e.pins++
	s.mu.Unlock()

	op := store.Op{Kind: store.Set, Value: f.Value, ExpireAt: f.ExpireAt, Tags: f.Tags}
	if f.ExpireAt != 0 {
		op.TTL = store.TTLSet
	}
	if l.refresh {
		// Granted on a live key: a write since then has changed its value (or, expired in the
		// meantime, the key is absent and the refresh may land).
		op.Cond, op.Expect = store.CondSame, l.seen
	} else {
		// Granted on a missing key: any write since then has created it.
		op.Cond = store.CondNX
	}
	res, err := m.store.Do(ctx, key, op)

	s.mu.Lock()
	defer s.mu.Unlock()
	e.pins--
	l.filling = false
	switch {
	case err != nil:
		if e.lease == l && !time.Now().Before(l.expires) {
			m.end(l, true) // it ran out while the write was failing
		}
		s.drop(e)
		return err
	case !res.Done:
		// The key exists: written since the grant, its notification still on its way.
		if e.lease == l {
			m.changed(e)
		}
		s.drop(e)
		return ErrChanged
	}
	// Our own write: end the lease and hand the waiters the value, unless it expired at once.
	e.gen++
	if e.lease != nil {
		m.endLease(e.lease)
	}
	msg := wake{}
	if e.head != nil && (f.ExpireAt == 0 || f.ExpireAt > time.Now().UnixMilli()) {
		msg = wake{filled: true, value: bytes.Clone(f.Value)}
	}
	for w := e.dequeue(); w != nil; w = e.dequeue() {
		e.send(w, msg)
	}
	s.drop(e)
	return nil
}

// Release implements FETCHRELEASE; see Leases.
func (m *Manager) Release(_ context.Context, key []byte, token Token) error {
	s := m.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.keys[string(key)]
	if e == nil || e.lease == nil || e.lease.token != token {
		return ErrNotHeld
	}
	m.end(e.lease, true)
	s.drop(e)
	return nil
}

// KeyChanged ends the key's lease and wakes its waiters: the key was written or deleted.
func (m *Manager) KeyChanged(key []byte) {
	s := m.shard(key)
	// Lock pins its entry before it reads the key, so a write that finds no entry here happened
	// before that read, which sees it.
	if s.n.Load() == 0 {
		return
	}
	s.mu.Lock()
	if e := s.keys[string(key)]; e != nil {
		m.changed(e)
		s.drop(e)
	}
	s.mu.Unlock()
}

// AllChanged ends every lease and wakes every waiter (FLUSHALL, FLUSHDB).
func (m *Manager) AllChanged() {
	for i := range m.shards {
		s := &m.shards[i]
		if s.n.Load() == 0 {
			continue
		}
		s.mu.Lock()
		for _, e := range s.keys {
			m.changed(e)
			s.drop(e)
		}
		s.mu.Unlock()
	}
}

// Counts is a snapshot of the state a Manager holds.
type Counts struct {
	Keys, Leases, Waiters int
}

// Counts returns how many keys have state, how many leases are held and how many callers wait.
// It locks each shard in turn; meant for INFO and tests.
func (m *Manager) Counts() Counts {
	var c Counts
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		c.Keys += len(s.keys)
		for _, e := range s.keys {
			if e.lease != nil {
				c.Leases++
			}
			for w := e.head; w != nil; w = w.next {
				c.Waiters++
			}
		}
		s.mu.Unlock()
	}
	return c
}

// Shutdown wakes every waiter (they answer TIMEOUT), makes later callers not wait and stops the
// lease timers. It is idempotent.
func (m *Manager) Shutdown(context.Context) error {
	m.shutdownOnce.Do(func() {
		close(m.done)
		for i := range m.shards {
			s := &m.shards[i]
			s.mu.Lock()
			for _, e := range s.keys {
				if e.lease != nil {
					e.lease.timer.Stop()
				}
				for w := e.dequeue(); w != nil; w = e.dequeue() {
					e.send(w, wake{closing: true})
				}
				s.drop(e)
			}
			s.mu.Unlock()
		}
	})
	return nil
}

func (m *Manager) closed() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// read returns the key's value and, when req asks for a refresh, its expiry, under
// req.Isolation when there is one.
func (m *Manager) read(ctx context.Context, key []byte, req LockRequest) ([]byte, bool, int64, error) {
	if req.Isolation != nil {
		req.Isolation.ReadLock()
		defer req.Isolation.ReadUnlock()
	}
	return m.readNow(ctx, key, req.Refresh)
}

// readNow is read without isolation.
func (m *Manager) readNow(ctx context.Context, key []byte, refresh time.Duration) ([]byte, bool, int64, error) {
	res, err := m.store.Do(ctx, key, store.Op{Kind: store.Get})
	if err != nil || !res.Found || refresh <= 0 {
		return res.Value, res.Found, 0, err
	}
	meta, err := m.store.Do(ctx, key, store.Op{Kind: store.Inspect})
	if err != nil {
		return nil, false, 0, err
	}
	if !meta.Found {
		return res.Value, true, 1, nil // expired just after the read: as near expiry as can be
	}
	return res.Value, true, meta.ExpireAt, nil
}

// nearExpiry reports whether a key expiring at exp (unix ms, 0: never) is within window of it.
func nearExpiry(exp int64, window time.Duration) bool {
	return window > 0 && exp != 0 && exp-time.Now().UnixMilli() <= window.Milliseconds()
}

// grant makes a new lease on e for d. The caller holds e's shard lock and e has no lease.
func (m *Manager) grant(e *entry, d time.Duration, o *owner, refresh bool) *lease {
	l := &lease{e: e, owner: o, refresh: refresh, expires: time.Now().Add(d)}
	_, _ = rand.Read(l.token[:]) // crypto/rand never fails on supported platforms
	l.timer = time.AfterFunc(d, func() { m.expire(l) })
	e.lease = l
	if o != nil {
		o.add(l)
	}
	if m.stats.On() {
		m.stats.FetchLocks.Inc()
	}
	return l
}

// end ends lease l, the current lease of its entry, and either hands the lease to the first
// waiter (handOver) or wakes every waiter to read the key. The caller holds the shard lock.
func (m *Manager) end(l *lease, handOver bool) {
	e := l.e
	m.endLease(l)
	if handOver {
		if w := e.dequeue(); w != nil {
			e.send(w, wake{lease: m.grant(e, w.leaseFor, w.owner, false)})
		}
		return
	}
	for w := e.dequeue(); w != nil; w = e.dequeue() {
		e.send(w, wake{})
	}
}

// endLease detaches l from its entry, timer and owner. The caller holds the shard lock.
func (m *Manager) endLease(l *lease) {
	l.e.lease = nil
	l.timer.Stop()
	if l.owner != nil {
		l.owner.remove(l)
	}
}

// changed records a change to e's key: it ends the lease and wakes every waiter. The caller
// holds the shard lock.
func (m *Manager) changed(e *entry) {
	e.gen++
	if e.lease != nil {
		m.end(e.lease, false)
		return
	}
	for w := e.dequeue(); w != nil; w = e.dequeue() {
		e.send(w, wake{})
	}
}

// expire runs when l's time is up.
func (m *Manager) expire(l *lease) {
	s := l.e.sh
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.e.lease != l || l.filling {
		return // already ended, or a fill is writing: it ends the lease when done
	}
	m.end(l, true)
	s.drop(l.e)
}

// releaseLease ends l, if it is still current, and hands it on.
func (m *Manager) releaseLease(l *lease) {
	s := l.e.sh
	s.mu.Lock()
	defer s.mu.Unlock()
	if l.e.lease == l && !l.filling {
		m.end(l, true)
	}
	s.drop(l.e)
}

// owner returns the lease tracker of client c, registering it to be told when c closes. It is
// called on c's own goroutine, so two calls for one client never race.
func (m *Manager) owner(c Client) *owner {
	if v, ok := m.owners.Load(c); ok {
		return v.(*owner)
	}
	o := &owner{leases: make(map[*lease]struct{})}
	m.owners.Store(c, o)
	c.OnClose(func() { m.clientClosed(c, o) })
	return o
}

// clientClosed hands on every lease the closed client held.
func (m *Manager) clientClosed(c Client, o *owner) {
	m.owners.Delete(c)
	o.mu.Lock()
	o.closed = true
	held := make([]*lease, 0, len(o.leases))
	for l := range o.leases {
		held = append(held, l)
	}
	o.leases = nil
	o.mu.Unlock()
	for _, l := range held {
		m.releaseLease(l)
	}
}

func (o *owner) add(l *lease) {
	o.mu.Lock()
	if !o.closed {
		o.leases[l] = struct{}{}
	}
	o.mu.Unlock()
}

func (o *owner) remove(l *lease) {
	o.mu.Lock()
	delete(o.leases, l)
	o.mu.Unlock()
}

func (o *owner) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.leases)
}

// pin returns key's entry, creating it, and counts a call in flight on it. The caller holds mu.
func (s *shard) pin(key []byte) *entry {
	e := s.keys[string(key)]
	if e == nil {
		e = &entry{key: string(key), sh: s}
		s.keys[e.key] = e
		s.n.Add(1)
	}
	e.pins++
	return e
}

// unpin ends a call in flight on e.
func (m *Manager) unpin(e *entry) {
	s := e.sh
	s.mu.Lock()
	e.pins--
	s.drop(e)
	s.mu.Unlock()
}

// drop forgets e once nothing refers to it. The caller holds mu.
func (s *shard) drop(e *entry) {
	if e.pins == 0 && e.lease == nil && e.head == nil && s.keys[e.key] == e {
		delete(s.keys, e.key)
		s.n.Add(-1)
	}
}

// send gives dequeued waiter w its message and releases its pin on e. The caller holds the
// shard lock.
func (e *entry) send(w *waiter, msg wake) {
	e.pins--
	w.ch <- msg
}

func (e *entry) enqueue(w *waiter) {
	w.queued = true
	w.prev = e.tail
	if e.tail != nil {
		e.tail.next = w
	} else {
		e.head = w
	}
	e.tail = w
}

func (e *entry) dequeue() *waiter {
	w := e.head
	if w != nil {
		e.remove(w)
	}
	return w
}

func (e *entry) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		e.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		e.tail = w.prev
	}
	w.prev, w.next, w.queued = nil, nil, false
}
