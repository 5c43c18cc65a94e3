package peer

import (
	"context"
	"errors"
	"time"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// TxConn is a client transaction's connection to the cluster member that runs it
// (store.TxConn): an Exclusive connection, kept from WATCH to EXEC, on which the member runs
// what it receives as a peer's commands.
type TxConn struct {
	x   *Exclusive
	cfg TxConfig
}

// TxConfig says how a TxConn waits and what it tells its caller.
type TxConfig struct {
	// Wait is how long a reply may take beyond the time the commands take to travel and run.
	Wait time.Duration
	// Before and After, if not nil, are called with the keys the commands may write before they
	// are sent and once they have run (or failed): a near cache drops its copies of them.
	Before, After func(writes [][]byte)
}

// TxConn takes a connection to addr for a client's transaction. Its errors are the replies a
// client sees.
func (p *Pool) TxConn(addr string, cfg TxConfig) (*TxConn, error) {
	x, err := p.Exclusive(addr)
	if err != nil {
		return nil, store.ServerError(ErrorReply(err).Str)
	}
	return &TxConn{x: x, cfg: cfg}, nil
}

// Do implements store.TxConn. When the connection fails, the error says whether the transaction
// may have run: the member may have received EXEC and run it, and a client that retries must
// know it cannot tell; a member that closed the connection before anything was sent (it
// restarted) ran nothing, and any WATCH it held is gone too.
func (t *TxConn) Do(ctx context.Context, cmds [][][]byte, writes [][]byte) ([]resp.Reply, error) {
	if t.cfg.Before != nil {
		t.cfg.Before(writes)
	}
	replies, err := t.x.Do(ctx, cmds, t.timeout(cmds))
	if t.cfg.After != nil {
		t.cfg.After(writes)
	}
	if err != nil {
		text := ErrorReply(err).Str
		if errors.Is(err, ErrNotSent) && len(cmds) > 1 {
			text += " (the transaction did not run)"
		} else if len(cmds) > 1 {
			text += " (the transaction may or may not have run)"
		}
		return nil, store.ServerError(text)
	}
	return replies, nil
}

// timeout bounds the wait for the replies to cmds: Wait, plus the time a large transaction
// takes to travel and run (1 ms a command: on the disk store a write inside EXEC waits for its
// commit; and 1 s per 64 MB), so that a transaction the member is still running is not
// reported failed. It only bounds the wait for a member that stopped answering.
func (t *TxConn) timeout(cmds [][][]byte) time.Duration {
	size := 0
	for _, args := range cmds {
		for _, a := range args {
			size += len(a)
		}
	}
	return t.cfg.Wait + time.Duration(len(cmds))*time.Millisecond + time.Duration(size)*time.Second/(64<<20)
}

// Release implements store.TxConn.
func (t *TxConn) Release(clean bool) { t.x.Release(clean) }
