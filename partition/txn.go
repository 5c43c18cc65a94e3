package partition

import (
	"context"
	"errors"
	"time"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// Transactions (commands.TxRouter): a transaction whose keys one member owns runs on that
// member, as Redis Cluster runs one within a slot (commands/txn_routed.go).

var _ commands.TxRouter = (*Cluster)(nil)

// TxUnsupported implements commands.TxRouter: every partitioned cluster runs transactions. With
// more than one copy of each key the owner copies a transaction's writes to the other holders
// once EXEC has let other commands in again (writeInExec).
func (cl *Cluster) TxUnsupported() error { return nil }

// TxPlace implements commands.TxRouter: the owner of keys, "" when it is this node.
func (cl *Cluster) TxPlace(keys [][]byte) (string, error) {
	v := cl.view.Load()
	owner := v.ring.Owner(keys[0])
	for _, k := range keys[1:] {
		if v.ring.Owner(k) != owner {
			return "", commands.Error(errCrossSlot)
		}
	}
	if owner == cl.self || owner == "" {
		return "", nil
	}
	addr := v.addrs[owner]
	if addr == "" {
		return "", commands.Error("ERR cluster: no address for member " + owner)
	}
	return addr, nil
}

// TxPrepare implements commands.TxRouter: during the window after this node joined, the keys
// it owns but lacks are pulled from their previous owner now (with more copies, read from their
// other holders: fetchIfMissing), before EXEC holds every other command back (localInWindow
// and writeLocal do not pull inside EXEC).
func (cl *Cluster) TxPrepare(c *commands.Ctx, keys [][]byte) {
	v := cl.view.Load()
	if v.prev == nil {
		return
	}
	for _, k := range keys {
		switch {
		case v.ring.Owner(k) != cl.self:
		case cl.cfg.Replicas > 1:
			cl.fetchIfMissing(c, v, k)
		default:
			cl.pullIfMissing(c, v, k)
		}
	}
}

// TxConn implements commands.TxRouter: a connection to the member at addr that no other request
// shares, on which it runs what it is sent as a peer's.
func (cl *Cluster) TxConn(_ context.Context, addr string) (store.TxConn, error) {
	x, err := cl.pool.Exclusive(addr)
	if err != nil {
		return nil, commands.Error(peer.ErrorReply(err).Str)
	}
	return &txConn{cl: cl, x: x}, nil
}

// txConn is a client transaction's connection to the member holding its keys.
type txConn struct {
	cl *Cluster
	x  *peer.Exclusive
}

// Do implements store.TxConn. This node's near-cache copies of the keys the commands may write
// are dropped before they are sent and again once they have run (as for a forwarded write).
func (t *txConn) Do(ctx context.Context, cmds [][][]byte, writes [][]byte) ([]resp.Reply, error) {
	t.dropNear(writes)
	if t.cl.stats.On() {
		t.cl.stats.Forwards.Inc()
	}
	replies, err := t.x.Do(ctx, cmds, t.timeout(cmds))
	t.dropNear(writes)
	if err != nil {
		text := peer.ErrorReply(err).Str
		if errors.Is(err, peer.ErrNotSent) && len(cmds) > 1 {
			// The member closed the connection before anything was sent (it restarted): any
			// WATCH it held is gone too.
			text += " (the transaction did not run)"
		} else if len(cmds) > 1 {
			// The member may have received EXEC and run the transaction, or not: a client
			// that retries must know it cannot tell.
			text += " (the transaction may or may not have run)"
		}
		return nil, commands.Error(text)
	}
	return replies, nil
}

// timeout bounds the wait for the replies to cmds: the forward timeout, plus the time a large
// transaction takes to travel and run (1 ms a command: on the disk store a write inside EXEC
// waits for its commit; and 1 s per 64 MB), so that a transaction the owner is still running
// is not reported failed. It only bounds the wait for a member that stopped answering.
func (t *txConn) timeout(cmds [][][]byte) time.Duration {
	size := 0
	for _, args := range cmds {
		for _, a := range args {
			size += len(a)
		}
	}
	return t.cl.cfg.ForwardTimeout + time.Duration(len(cmds))*time.Millisecond +
		time.Duration(size)*time.Second/(64<<20)
}

func (t *txConn) dropNear(keys [][]byte) {
	if t.cl.nearR == nil {
		return
	}
	for _, k := range keys {
		t.cl.nearR.c.Invalidate(k)
	}
}

// Release implements store.TxConn.
func (t *txConn) Release(clean bool) { t.x.Release(clean) }
