package commands

import (
	"math"
	"time"

	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/resp"
)

// WAIT numreplicas timeout answers how many other copies hold every write this client has had
// acknowledged, as Redis counts its replicas' acknowledgements. A lone node has none, so it
// answers 0 at once when numreplicas is 0 or less, and otherwise after timeout milliseconds
// (never, with 0), as a Redis primary without replicas does. A router whose writes are copied
// before they are acknowledged says how many copies that makes (CopyCounter): every member the
// replicated topology has not marked behind. Inside MULTI it answers at once, as in Redis;
// CLIENT UNBLOCK ends its wait (TIMEOUT: the count; ERROR: Redis's UNBLOCKED error).

// CopyCounter is implemented by routers that copy a write to other members before it is
// acknowledged.
type CopyCounter interface {
	// AckedCopies returns how many other members hold every write acknowledged so far.
	AckedCopies() int
}

// Redis's errors for a timeout argument in milliseconds.
const (
	errTimeoutNotInteger = Error("ERR timeout is not an integer or out of range")
	errTimeoutNegative   = Error("ERR timeout is negative")
)

// waitReplyZero is WAIT's reply when CLIENT UNBLOCK … TIMEOUT ends it on a node without copies.
var waitReplyZero = resp.Int(0)

func (n *Node) registerWait() {
	n.table.Register(&Command{Name: "wait", Arity: 3, Flags: FlagBlocking, Handler: n.wait,
		TimeoutReply: &waitReplyZero, Group: "generic"})
}

// ackedCopies is WAIT's count.
func (n *Node) ackedCopies() int64 {
	if cc, ok := n.router.(CopyCounter); ok {
		return int64(cc.AckedCopies())
	}
	return 0
}

// msTimeout reads a timeout in milliseconds as Redis 7.0's getTimeoutFromObjectOrReply does
// (which takes any non-negative integer), and returns how long it is (0: no timeout).
func msTimeout(b []byte) (time.Duration, error) {
	ms, ok := redisnum.ParseInt(b)
	switch {
	case !ok:
		return 0, errTimeoutNotInteger
	case ms < 0:
		return 0, errTimeoutNegative
	}
	return time.Duration(min(ms, math.MaxInt64/int64(time.Millisecond))) * time.Millisecond, nil
}

func (n *Node) wait(c *Ctx, args [][]byte) (resp.Reply, error) {
	want, err := intArg(args[1])
	if err != nil {
		return resp.Reply{}, err
	}
	timeout, err := msTimeout(args[2])
	if err != nil {
		return resp.Reply{}, err
	}
	if acks := n.ackedCopies(); acks >= want || c.InExec() || c.Conn == nil {
		return resp.Int(acks), nil
	}
	var expired, recheck <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	if _, ok := n.router.(CopyCounter); ok { // members may catch up meanwhile
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		recheck = tick.C
	}
	var ended error
	c.Blocking(func() {
		for {
			select {
			case <-expired:
				return
			case <-c.Context().Done():
				ended = c.Context().Err()
				return
			case <-recheck:
				if n.ackedCopies() >= want {
					return
				}
			}
		}
	})
	if ended != nil {
		return resp.Reply{}, ended // CLIENT UNBLOCK's, or the client has gone (unblockedReply)
	}
	return resp.Int(n.ackedCopies()), nil
}
