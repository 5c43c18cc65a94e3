package commands

import (
	"context"
	"errors"

	"github.com/vela-cache/vela/resp"
)

// CLIENT UNBLOCK client-id [TIMEOUT|ERROR] ends another client's wait in a blocking command
// (FETCHLOCK, here or forwarded to its key's owner), as Redis ends a BLPOP's: with TIMEOUT (the
// default) the command answers as if its own timeout had come (FETCHLOCK: ["TIMEOUT", nil]),
// with ERROR it answers Redis's UNBLOCKED error. The reply is 1 when the client was waiting,
// else 0. A command that completed as the unblock arrived keeps its own reply (a FETCHLOCK that
// obtained the lease answers LOCKED): only a wait the unblock ended is answered for it.

var (
	// errUnblockTimeout and errUnblockError are the causes CLIENT UNBLOCK cancels a wait with.
	errUnblockTimeout = errors.New("unblocked: timeout")
	errUnblockError   = errors.New("unblocked: error")
)

// Redis's replies about CLIENT UNBLOCK.
const (
	errUnblocked     = Error("UNBLOCKED client unblocked via CLIENT UNBLOCK")
	errUnblockReason = Error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
)

// execUnblockable runs a blocking command for a client with its wait registered, so that CLIENT
// UNBLOCK can end it: Ctx.Context is a context that CLIENT UNBLOCK cancels, with its reason
// (unblockedReply then gives the command's reply).
func (n *Node) execUnblockable(ctx *Ctx, cmd *Command, args [][]byte) resp.Reply {
	bctx, cancel := context.WithCancelCause(ctx.Context())
	defer cancel(nil)
	ctx.blockCtx = bctx
	n.blocked.Store(ctx.Conn.ID, cancel)
	n.blockedN.Add(1)
	r := n.exec(ctx, cmd, args)
	n.blockedN.Add(-1)
	n.blocked.Delete(ctx.Conn.ID)
	ctx.blockCtx = nil
	return r
}

// unblockedReply is the reply of a blocking command whose wait ended with r: an error r caused
// by CLIENT UNBLOCK becomes the command's timeout reply, or Redis's UNBLOCKED error. It is made
// before the command's errors are counted, so that errorstats counts what the client sees.
func unblockedReply(ctx *Ctx, cmd *Command, r resp.Reply) resp.Reply {
	if r.Kind != resp.KindError {
		return r
	}
	switch context.Cause(ctx.blockCtx) {
	case errUnblockTimeout:
		if cmd.TimeoutReply != nil {
			return *cmd.TimeoutReply
		}
		return resp.NilArray
	case errUnblockError:
		return resp.Error(string(errUnblocked))
	}
	return r
}

// BlockedClients returns the clients waiting in a blocking command (INFO blocked_clients).
func (n *Node) BlockedClients() int64 { return n.blockedN.Load() }

func (n *Node) clientUnblock(_ *Ctx, args [][]byte) (resp.Reply, error) {
	if len(args) > 4 {
		return resp.Reply{}, subcommandSyntaxError("client", args[1])
	}
	id, err := intArg(args[2])
	if err != nil {
		return resp.Reply{}, err
	}
	cause := errUnblockTimeout
	if len(args) == 4 {
		switch {
		case equalFold(args[3], "timeout"):
		case equalFold(args[3], "error"):
			cause = errUnblockError
		default:
			return resp.Reply{}, errUnblockReason
		}
	}
	if v, ok := n.blocked.Load(id); ok {
		v.(context.CancelCauseFunc)(cause)
		return resp.Int(1), nil
	}
	return resp.Int(0), nil
}
