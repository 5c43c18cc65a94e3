package commands

import "strings"

// Transactions in a cluster whose router places them (TxRouter: the partitioned topology), as
// Redis Cluster runs them within one slot: every key a transaction names, queued or watched,
// must live on one member. A command naming a key elsewhere gets CROSSSLOT (queued, it dooms
// the transaction, so EXEC answers EXECABORT), and so does a WATCH; a cluster-wide command
// (KEYS, SCAN, DBSIZE, FLUSHALL, TAGINVALIDATE) cannot be queued. Where the keys live decides
// how the transaction runs:
//
//   - on this node: as on the local topology, the gate isolating it (txn.go);
//   - on another member: that member runs it, as Redis runs one on the redis store
//     (txn_remote.go): WATCH goes there at once, on a connection the transaction keeps, and EXEC
//     sends MULTI, the queued commands and EXEC on it. Commands about the connection or the
//     server run here, their replies put in their places.
//
// A peer's connection runs what it is sent here, unchecked: its sender placed it.

// errCrossSlot is Redis Cluster's reply to keys that do not live together.
const errCrossSlot = Error("CROSSSLOT Keys in request don't hash to the same slot")

// errMoved ends an EXEC whose keys changed member between MULTI and EXEC (the cluster's members
// changed): it runs nothing, and the client may retry.
const errMoved = Error("TRYAGAIN the transaction's keys moved to another member before EXEC; nothing ran")

// placing reports whether the node places the transactions of c's connection: a client's on a
// node whose router can.
func (n *Node) placing(c *Ctx) bool { return n.txr != nil && !c.Peer }

// place checks that keys live where the transaction's earlier keys do, and holds the
// transaction there.
func (n *Node) place(c *Ctx, keys [][]byte) error {
	if len(keys) == 0 {
		return nil
	}
	where, err := n.txr.TxPlace(keys)
	if err != nil {
		return err
	}
	tx := c.txn()
	if tx.placed && where != tx.place {
		return errCrossSlot
	}
	tx.placed, tx.place = true, where
	return nil
}

// placeQueued checks a command queued inside MULTI: it must not act on every member, and its
// keys must live with the transaction's.
func (n *Node) placeQueued(c *Ctx, cmd *Command, args [][]byte) error {
	if cmd.Flags&FlagClusterWide != 0 {
		return Error("ERR " + strings.ToUpper(strings.ReplaceAll(cmd.Name, "|", " ")) +
			" is not supported inside MULTI with topology.type = " + n.cfg.Topology + " (it acts on every member)")
	}
	return n.place(c, commandKeys(cmd, args))
}

// stillPlaced checks, at EXEC, that the transaction's keys, queued and watched, still live
// where they did when queued or watched; a peer's transaction, that they live here (the
// sender's members may have changed before this node's). A watched key that moved may have been
// changed on its new member, which no watch here or there saw.
func (n *Node) stillPlaced(c *Ctx, tx *txState) error {
	if !c.Peer && !tx.placed {
		return nil
	}
	keys := n.txKeys(tx)
	if len(keys) == 0 {
		return nil
	}
	where, err := n.txr.TxPlace(keys)
	if err != nil || (c.Peer && where != "") || (!c.Peer && where != tx.place) {
		return errMoved
	}
	return nil
}

// txKeys returns the keys the transaction names: its queued commands' and its watched keys.
func (n *Node) txKeys(tx *txState) [][]byte {
	var keys [][]byte
	for _, q := range tx.queue {
		keys = append(keys, commandKeys(q.cmd, q.args)...)
	}
	for _, w := range tx.watching {
		keys = append(keys, []byte(w.key))
	}
	for _, k := range tx.remoteWatched {
		keys = append(keys, []byte(k))
	}
	return keys
}

// PlaceOnOwner is TxRouter.TxPlace for a router that places keys by owner: owner is the member
// owning every key (together is false when they have several), self this node's name, and addr
// the owner's address.
func PlaceOnOwner(owner string, together bool, self, addr string) (string, error) {
	switch {
	case !together:
		return "", errCrossSlot
	case owner == self || owner == "":
		return "", nil
	case addr == "":
		return "", Error("ERR cluster: no address for member " + owner)
	}
	return addr, nil
}
