package redisstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// Transactions on one Redis (store.Transactor): each client's WATCH and MULTI … EXEC run on a
// connection of its own, so that Redis watches the keys for it as for any client. Connections
// left clean (no WATCH, no MULTI) are kept for the next transaction, up to maxIdleTx.

const maxIdleTx = 8

var errTxCluster = errors.New("redis store: transactions need a single Redis (not Cluster or Sentinel)")

// TxConn implements store.Transactor.
func (s *Store) TxConn(context.Context) (store.TxConn, error) {
	if s.pipe == nil {
		return nil, errTxCluster
	}
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	select {
	case tc := <-s.idleTx:
		return tc, nil
	default:
	}
	nc, err := s.pipe.dial()
	if err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	return &txConn{s: s, nc: nc, br: bufio.NewReader(nc)}, nil
}

// Transactions reports whether the store runs transactions (TxConn): on one Redis.
func (s *Store) Transactions() bool { return s.pipe != nil }

// txConn is a store.TxConn.
type txConn struct {
	s  *Store
	nc net.Conn
	br *bufio.Reader
}

// Do implements store.TxConn.
func (tc *txConn) Do(ctx context.Context, cmds [][][]byte, writes [][]byte) ([]resp.Reply, error) {
	for _, k := range writes {
		tc.s.wroteKey(k)
	}
	defer func() {
		for _, k := range writes {
			tc.s.wroteKey(k)
		}
	}()
	var out []byte
	for _, c := range cmds {
		out = resp.AppendCommand(out, c...)
	}
	deadline := time.Now().Add(tc.s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = tc.nc.SetDeadline(deadline)
	if _, err := tc.nc.Write(out); err != nil {
		return nil, fmt.Errorf("redis store: %w", err)
	}
	replies := make([]resp.Reply, len(cmds))
	for i := range cmds {
		r, err := resp.ReadReply(tc.br)
		if err != nil {
			return nil, fmt.Errorf("redis store: %w", err)
		}
		replies[i] = r
	}
	return replies, nil
}

// Release implements store.TxConn.
func (tc *txConn) Release(clean bool) {
	if clean && !tc.s.closed.Load() {
		_ = tc.nc.SetDeadline(time.Time{})
		select {
		case tc.s.idleTx <- tc:
			return
		default:
		}
	}
	_ = tc.nc.Close()
}

// closeIdleTx closes the connections kept for transactions.
func (s *Store) closeIdleTx() {
	for {
		select {
		case tc := <-s.idleTx:
			_ = tc.nc.Close()
		default:
			return
		}
	}
}
