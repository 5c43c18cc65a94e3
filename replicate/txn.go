package replicate

import (
	"context"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// Transactions (commands.TxRouter). Every member holds every key, but one member decides the
// read-modify-write commands on a key (its ring owner), so that they stay atomic: a transaction
// runs on the member that owns all its keys, as Redis Cluster runs one within a slot
// (commands/txn_routed.go), with that member's every other command held back. Its writes are
// stamped there, in EXEC, like any write, and copied to the other members once EXEC has let
// other commands in again (writeInExec): sent from inside EXEC, the copies would wait for
// members that may be in an EXEC of their own, copying the other way.
//
// Blind writes (SET, DEL…) run on whichever member a client sends them to; one that another
// member runs while the transaction runs reaches the owner as a copy, ordered by its stamp
// (last writer wins), and breaks a WATCH of its key on the owner when it lands there.

var _ commands.TxRouter = (*Cluster)(nil)

// TxUnsupported implements commands.TxRouter: a replicated cluster runs transactions.
func (cl *Cluster) TxUnsupported() error { return nil }

// TxPlace implements commands.TxRouter: the member owning every key, "" when it is this one.
func (cl *Cluster) TxPlace(keys [][]byte) (string, error) {
	if cl.down.Load() {
		return "", commands.ErrClusterDown
	}
	v := cl.view.Load()
	owner, together := v.ring.OwnerOfAll(keys)
	return commands.PlaceOnOwner(owner, together, cl.self, v.addrs[owner])
}

// TxPrepare implements commands.TxRouter: a member that does not hold the whole state yet
// fetches the present state of the transaction's keys now, before EXEC holds every other command
// back; inside EXEC, Route reads and decides on what is here.
func (cl *Cluster) TxPrepare(c *commands.Ctx, keys [][]byte) {
	if cl.synced.Load() && !cl.paused() {
		return
	}
	args := append([][]byte{nil}, keys...)
	if err := cl.pullKeys(c, cl.view.Load(), args, 1, len(keys), 1); err != nil {
		cl.log.Warn("replicate: fetching a transaction's keys failed; it runs on what is here", "err", err)
	}
}

// TxConn implements commands.TxRouter: a connection to the member at addr that no other request
// shares, on which it runs what it is sent as a peer's. Its replies may wait for the copies of
// the transaction's writes (copyTimeout).
func (cl *Cluster) TxConn(_ context.Context, addr string) (store.TxConn, error) {
	return cl.forwards.TxConn(addr, peer.TxConfig{Wait: cl.copyTimeout() + cl.cfg.ForwardTimeout,
		Before: func([][]byte) {
			if cl.stats.On() {
				cl.stats.Forwards.Inc()
			}
		}})
}

// writeInExec is writeAndCopy for a command EXEC runs, while no other command of this member
// runs: it needs no stripe (taking one could wait for a write that holds it while it waits for
// the gate EXEC holds). The keys it changed are stamped now, in the order of this member's
// writes, and their copies leave once EXEC has let other commands in again (Ctx.AfterExec).
// A copy carries the key's state after the command; a member applies it only if it is newer
// than what it holds, so copies arriving in any order converge.
func (cl *Cluster) writeInExec(c *commands.Ctx, cmd *commands.Command, args [][]byte, keys [][]byte) resp.Reply {
	before := make([]uint64, len(keys))
	for i, k := range keys {
		before[i] = cl.changes[cl.stripe(k)].Load()
	}
	reply := settled(cl.node.ExecLocal(c, cmd, args))
	if reply.IsError() {
		return reply
	}
	type pending struct {
		args [][]byte
		pick uint64
	}
	var out []pending
	for i, k := range keys {
		if cl.changes[cl.stripe(k)].Load() == before[i] {
			continue
		}
		st, err := cl.readState(c.Context(), k)
		if err != nil {
			cl.log.Warn("replicate: reading a written key failed", "err", err)
			continue
		}
		st.stamp = Stamp{Time: cl.clock.next(), Node: cl.id}
		cl.versions.put(k, entry{stamp: st.stamp, gone: !st.found})
		// The command's buffers and the store's value are not ours to keep.
		out = append(out, pending{cloneArgs(st.args(k)), uint64(cl.stripe(k))})
	}
	if len(out) > 0 {
		c.AfterExec(func() {
			v := cl.view.Load()
			var sent []sentCopy
			for _, p := range out {
				sent = cl.sendToOthers(v, p.args, p.pick, sent, nil)
			}
			cl.awaitCopies(sent)
		})
	}
	return reply
}
