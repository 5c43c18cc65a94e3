package commands

import (
	"github.com/vela-cache/vela/resp"
)

// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT], as Redis 7.0 parses it: the node shuts down as
// on SIGTERM (a cluster member hands its keys over and leaves first), and the client's
// connection closes without a reply, as when Redis exits; clients expect exactly that (redis-py
// and go-redis take a reply for a failed shutdown). SAVE asks for the data to be kept: the disk
// store keeps every acknowledged write anyway and the redis store's Redis keeps its own, but
// the memory store has nowhere to save, so SAVE fails there as a failed save fails Redis's
// shutdown. NOW and FORCE change nothing: Vela waits for no replica and saves nothing. ABORT
// answers that no shutdown is in progress: Vela's, once begun, cannot be called off. Like
// Redis's, it may not be queued in a transaction nor called from a script.

// Redis's replies to SHUTDOWN that does not shut down.
const (
	errShutdownFailed = Error("ERR Errors trying to SHUTDOWN. Check logs.")
	errNoShutdown     = Error("ERR No shutdown in progress.")
)

// SetShutdown installs what SHUTDOWN does: begin the node's shutdown, in the background. Without
// it SHUTDOWN fails.
func (n *Node) SetShutdown(fn func()) { n.shutdown = fn }

func (n *Node) shutdownCommand(c *Ctx, args [][]byte) (resp.Reply, error) {
	var save, nosave, abort bool
	for _, a := range args[1:] {
		switch {
		case equalFold(a, "nosave"):
			nosave = true
		case equalFold(a, "save"):
			save = true
		case equalFold(a, "now"), equalFold(a, "force"):
		case equalFold(a, "abort"):
			abort = true
		default:
			return resp.Reply{}, ErrSyntax
		}
	}
	if (abort && len(args) > 2) || (save && nosave) {
		return resp.Reply{}, ErrSyntax
	}
	if abort {
		return resp.Reply{}, errNoShutdown
	}
	if save && n.cfg.StoreType == "memory" {
		n.log.Warn("SHUTDOWN SAVE refused: the memory store keeps nothing on disk")
		return resp.Reply{}, errShutdownFailed
	}
	if n.shutdown == nil {
		return resp.Reply{}, errShutdownFailed
	}
	n.shutdown()
	if c.Conn != nil {
		c.Conn.Hangup()
	}
	return resp.OK, nil // never written: the connection closes without a reply
}
