package partition

import (
	"sync"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/resp"
)

// maxHeldPerConn bounds the leases remembered for one client connection; past it the oldest
// are forgotten (they still end at their LEASE).
const maxHeldPerConn = 1024

// heldLeases remembers the FETCHLOCK leases that other members granted to this node's clients
// (the lease lives on the key's owner, held there by this node's peer connection). When such a
// client disconnects, its leases are released on their owners at once (FETCHRELEASE), as a
// lease held directly on a node ends when its client goes away, instead of running until LEASE.
// A client's FETCHFILL or FETCHRELEASE of the key through this node forgets the lease.
type heldLeases struct {
	mu     sync.Mutex
	byConn map[int64]*connLeases
	closed bool // the cluster is shutting down: nothing is released any more
}

// connLeases are one connection's leases, key → token, oldest first.
type connLeases struct {
	keys   []string
	tokens map[string]string
}

// trackLease records the lease a forwarded FETCHLOCK on key obtained, if its reply grants one
// (LOCKED or REFRESH: the token is the last element).
func (cl *Cluster) trackLease(c *commands.Ctx, key []byte, r resp.Reply) {
	if c.Conn == nil || r.Kind != resp.KindArray || len(r.Elems) < 2 {
		return
	}
	status := replyText(r.Elems[0])
	if status != "LOCKED" && status != "REFRESH" {
		return
	}
	token := replyText(r.Elems[len(r.Elems)-1])
	h := &cl.held
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if h.byConn == nil {
		h.byConn = map[int64]*connLeases{}
	}
	id := c.Conn.ID
	cls := h.byConn[id]
	if cls == nil {
		cls = &connLeases{tokens: map[string]string{}}
		h.byConn[id] = cls
		c.Conn.OnClose(func() { cl.releaseHeld(id) })
	}
	k := string(key)
	if _, ok := cls.tokens[k]; !ok {
		if len(cls.keys) >= maxHeldPerConn {
			delete(cls.tokens, cls.keys[0])
			cls.keys = cls.keys[1:]
		}
		cls.keys = append(cls.keys, k)
	}
	cls.tokens[k] = token
	cl.holding.Store(true)
}

// untrackLease forgets c's lease on key: its client fills or releases it itself.
func (cl *Cluster) untrackLease(c *commands.Ctx, key []byte) {
	if c.Conn == nil {
		return
	}
	h := &cl.held
	h.mu.Lock()
	defer h.mu.Unlock()
	if cls := h.byConn[c.Conn.ID]; cls != nil {
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
}

// releaseHeld releases, on their owners, the leases a closed connection still held.
func (cl *Cluster) releaseHeld(id int64) {
	h := &cl.held
	h.mu.Lock()
	cls := h.byConn[id]
	delete(h.byConn, id)
	if cls == nil || len(cls.keys) == 0 || h.closed {
		h.mu.Unlock()
		return
	}
	cl.bg.Add(1) // under mu while not closed: Shutdown marks closed before it waits for bg
	h.mu.Unlock()
	go func() {
		defer cl.bg.Done()
		v := cl.view.Load()
		for _, k := range cls.keys {
			owner := v.ring.Owner([]byte(k))
			addr, ok := v.addrs[owner]
			if !ok || owner == cl.self || addr == "" {
				continue // the key moved here or its owner left: the lease ended with it
			}
			args := [][]byte{[]byte("FETCHRELEASE"), []byte(k), []byte(cls.tokens[k])}
			if _, err := cl.pool.Do(addr, args, 0, cl.cfg.ForwardTimeout); err != nil {
				cl.log.Debug("releasing a disconnected client's lease failed", "key", k, "err", err)
			}
		}
	}()
}

// closeHeld stops releasing leases (Shutdown): the peer connections are about to close.
func (cl *Cluster) closeHeld() {
	cl.held.mu.Lock()
	cl.held.closed = true
	cl.held.byConn = nil
	cl.held.mu.Unlock()
}

// endsLease reports whether cmd is FETCHFILL or FETCHRELEASE, which end the caller's lease.
func endsLease(cmd *commands.Command) bool {
	return cmd.Name == "fetchfill" || cmd.Name == "fetchrelease"
}

// replyText is a bulk or status reply's text.
func replyText(r resp.Reply) string {
	if r.Bytes != nil {
		return string(r.Bytes)
	}
	return r.Str
}
