package fetchlock

import (
	"sync"
	"sync/atomic"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/resp"
)

// maxForwardedPerConn bounds the leases remembered for one client connection; past it the
// oldest are forgotten (they still end at their LEASE).
const maxForwardedPerConn = 1024

// Forwarded remembers the FETCHLOCK leases that other cluster members granted to this node's
// clients: the lease lives on the key's owner, held there by this node's peer connection. When
// such a client disconnects, its leases are released at once (the Release function sends
// FETCHRELEASE to their owners), as a lease held directly on a node ends when its client goes
// away, instead of running until LEASE. A client's own FETCHFILL or FETCHRELEASE of the key
// forgets the lease.
type Forwarded struct {
	release func(key, token string) // gives up one lease on its owner; may block on the network
	holding atomic.Bool             // byConn has ever had an entry: Forget's fast path
	wg      sync.WaitGroup          // releases in flight

	mu     sync.Mutex // guards byConn and closed
	byConn map[int64]*connLeases
	closed bool // Close ran: nothing is released any more
}

// connLeases are one connection's leases, key → token, oldest first.
type connLeases struct {
	keys   []string
	tokens map[string]string
}

// NewForwarded returns a Forwarded that gives a disconnected client's leases up with release,
// called on a goroutine of its own for each disconnected client.
func NewForwarded(release func(key, token string)) *Forwarded {
	return &Forwarded{release: release, byConn: map[int64]*connLeases{}}
}

// Track records the lease a forwarded FETCHLOCK on key obtained for c's client, if its reply r
// grants one (LOCKED or REFRESH: the token is the last element).
func (f *Forwarded) Track(c *commands.Ctx, key []byte, r resp.Reply) {
	if c.Conn == nil || r.Kind != resp.KindArray || len(r.Elems) < 2 {
		return
	}
	status := r.Elems[0].Text()
	if status != "LOCKED" && status != "REFRESH" {
		return
	}
	token := r.Elems[len(r.Elems)-1].Text()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	id := c.Conn.ID
	cls := f.byConn[id]
	if cls == nil {
		cls = &connLeases{tokens: map[string]string{}}
		f.byConn[id] = cls
		c.Conn.OnClose(func() { f.releaseConn(id) })
	}
	k := string(key)
	if _, ok := cls.tokens[k]; !ok {
		if len(cls.keys) >= maxForwardedPerConn {
			delete(cls.tokens, cls.keys[0])
			cls.keys = cls.keys[1:]
		}
		cls.keys = append(cls.keys, k)
	}
	cls.tokens[k] = token
	f.holding.Store(true)
}

// Forget drops c's lease on key when cmd ends it (FETCHFILL or FETCHRELEASE): its client fills
// or releases it itself.
func (f *Forwarded) Forget(c *commands.Ctx, cmd *commands.Command, key []byte) {
	if !f.holding.Load() || c.Conn == nil || (cmd.Name != "fetchfill" && cmd.Name != "fetchrelease") {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	cls := f.byConn[c.Conn.ID]
	if cls == nil {
		return
	}
	if _, ok := cls.tokens[string(key)]; ok {
		delete(cls.tokens, string(key))
		for i, k := range cls.keys {
			if k == string(key) {
				cls.keys = append(cls.keys[:i], cls.keys[i+1:]...)
				break
			}
		}
	}
}

// releaseConn gives up the leases a closed connection still held.
func (f *Forwarded) releaseConn(id int64) {
	f.mu.Lock()
	cls := f.byConn[id]
	delete(f.byConn, id)
	if cls == nil || len(cls.keys) == 0 || f.closed {
		f.mu.Unlock()
		return
	}
	f.wg.Add(1) // under mu while not closed: Close marks closed before it waits
	f.mu.Unlock()
	go func() {
		defer f.wg.Done()
		for _, k := range cls.keys {
			f.release(k, cls.tokens[k])
		}
	}()
}

// Close stops releasing leases (the peer connections are about to close) and waits for the
// releases in flight.
func (f *Forwarded) Close() {
	f.mu.Lock()
	f.closed = true
	f.byConn = nil
	f.mu.Unlock()
	f.wg.Wait()
}
