package partition

import (
	"context"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
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
	if v.down {
		return "", commands.ErrClusterDown
	}
	owner, together := v.ring.OwnerOfAll(keys)
	return commands.PlaceOnOwner(owner, together, cl.self, v.addrs[owner])
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
// shares, on which it runs what it is sent as a peer's. This node's near-cache copies of the
// keys the commands may write are dropped before they are sent and again once they have run (as
// for a forwarded write).
func (cl *Cluster) TxConn(_ context.Context, addr string) (store.TxConn, error) {
	return cl.pool.TxConn(addr, peer.TxConfig{Wait: cl.cfg.ForwardTimeout,
		Before: func(writes [][]byte) {
			if cl.stats.On() {
				cl.stats.Forwards.Inc()
			}
			cl.dropNear(writes)
		},
		After: cl.dropNear})
}

func (cl *Cluster) dropNear(keys [][]byte) {
	if cl.nearR == nil {
		return
	}
	for _, k := range keys {
		cl.nearR.c.Invalidate(k)
	}
}
