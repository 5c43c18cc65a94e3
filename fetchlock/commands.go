package fetchlock

import (
	"context"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"time"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/redisnum"
	"github.com/vela-cache/vela/resp"
)

// Leases keeps the fetch leases behind FETCHLOCK, FETCHFILL and FETCHRELEASE; the commands use
// nothing else. Manager keeps them in process; a partitioned cluster can keep each key's leases
// on its owner and the Redis store can keep them in Redis, behind the same three methods.
// Implementations are safe for concurrent use. Byte slices passed in may alias a connection's
// read buffer and are not kept after a call returns.
type Leases interface {
	// Lock serves FETCHLOCK on key. It returns at once with Hit (the key is live), Refresh (live
	// but within req.Refresh of expiry, and nobody holds the lease: the caller now does) or
	// Locked (missing, and the caller now holds the lease). When another caller holds the lease
	// on a missing key it waits, at most req.Timeout, until the key is written (Hit), the lease is
	// handed to it (Locked) or the time is up (Timeout); it waits inside req.Client.Blocking and
	// gives up with ctx's error when ctx ends.
	Lock(ctx context.Context, key []byte, req LockRequest) (LockResult, error)
	// Fill serves FETCHFILL: it writes the value only while token holds the key's lease and the
	// key has not changed since the lease was granted, then ends the lease and wakes the waiters.
	// Otherwise it writes nothing and returns ErrNotHeld or ErrChanged.
	Fill(ctx context.Context, key []byte, token Token, f FillRequest) error
	// Release serves FETCHRELEASE: it ends the lease token holds and hands it to the longest
	// waiting caller, or returns ErrNotHeld.
	Release(ctx context.Context, key []byte, token Token) error
}

// Client is the connection a FETCHLOCK caller uses; *resp.Conn implements it.
type Client interface {
	// OnClose registers fn to run once the connection has closed: its leases end then.
	OnClose(fn func())
	// Blocking runs fn, a wait, while watching the connection; should the client go away, the
	// context passed to Lock is cancelled.
	Blocking(fn func())
}

// LockRequest is FETCHLOCK's options, defaults applied.
type LockRequest struct {
	// Timeout is the longest Lock waits; 0: it never waits.
	Timeout time.Duration
	// Lease is how long a lease granted to this caller lasts unless filled or released first.
	Lease time.Duration
	// Refresh, when positive, asks for the lease on a live key within Refresh of expiry.
	Refresh time.Duration
	// Client is the caller's connection; nil for a caller without one (its leases then end only
	// by fill, release, expiry or a write).
	Client Client
	// Unbound: the caller's lease does not end when Client closes, though the wait still ends
	// then. A cluster peer forwarding its client's FETCHLOCK sets it: the peer releases the
	// lease when that client goes (Forwarded), and its connection here is shared, one after
	// another, by the FETCHLOCKs of many clients, so closing it must not end another's lease.
	Unbound bool
	// Isolation, when set, is held around each read of the key, so that a read never sees a
	// transaction half applied; a change after the read reaches the lease's own bookkeeping
	// (KeyChanged).
	Isolation ReadLocker
}

// ReadLocker keeps transactions out while it is held (commands.Ctx).
type ReadLocker interface {
	ReadLock()
	ReadUnlock()
}

// Status is FETCHLOCK's verdict.
type Status uint8

// FETCHLOCK verdicts, named by the first element of its reply.
const (
	Hit     Status = iota + 1 // the key is live: Value
	Locked                    // the key is missing and the caller holds the lease: Token
	Refresh                   // the key is live but near expiry and the caller holds the lease: Value, Token
	Timeout                   // the wait ended with neither
)

// String returns the status as FETCHLOCK replies it.
func (s Status) String() string {
	switch s {
	case Hit:
		return "HIT"
	case Locked:
		return "LOCKED"
	case Refresh:
		return "REFRESH"
	case Timeout:
		return "TIMEOUT"
	}
	return "Status(" + strconv.Itoa(int(s)) + ")"
}

// LockResult is FETCHLOCK's answer. Value may alias store memory: read it, do not modify it.
type LockResult struct {
	Status Status
	Value  []byte
	Token  Token
}

// FillRequest is what FETCHFILL writes.
type FillRequest struct {
	Value    []byte
	ExpireAt int64    // absolute unix ms; 0: no expiry
	Tags     [][]byte // the key's tags (nil: none), as SET … TAGS
}

// Token identifies one lease: 128 bits from crypto/rand, written as 32 hex digits.
type Token [16]byte

// String returns the token as 32 lower-case hex digits.
func (t Token) String() string { return hex.EncodeToString(t[:]) }

// ParseToken reads a token written by String.
func ParseToken(b []byte) (Token, bool) {
	var t Token
	if len(b) != 2*len(t) {
		return t, false
	}
	_, err := hex.Decode(t[:], b)
	return t, err == nil
}

// Errors of Fill, Release and Lock, mapped to replies by the commands.
var (
	// ErrNotHeld: the token does not hold the key's lease. The lease was filled, released, ran
	// out, was handed on when its connection closed, or was ended by a write to the key.
	ErrNotHeld = errors.New("fetchlock: the lease is not held")
	// ErrChanged: the key was written since the lease was granted.
	ErrChanged = errors.New("fetchlock: the key was written since the lease was granted")
	// ErrTooManyLeases: the client holds Config.MaxLeasesPerClient leases already.
	ErrTooManyLeases = errors.New("fetchlock: too many leases held by this connection")
)

// Replies to errors, as the commands send them.
const (
	replyNotHeld  = "STALE the lease is not held (filled, released, expired, or ended by a write to the key)"
	replyChanged  = "STALE the key was written since the lease was granted"
	replyTooMany  = "ERR too many FETCHLOCK leases held by this connection"
	replyBadToken = "ERR invalid FETCHLOCK token"
)

// Bounds on client-chosen times, in milliseconds.
const (
	maxTimeoutMs = 3_600_000      // TIMEOUT: an hour
	maxLeaseMs   = 3_600_000      // LEASE: an hour
	maxRefreshMs = 31_536_000_000 // REFRESH: a year
)

// CommandConfig is what the commands take from the node's configuration. The zero value means:
// protection on, callers do not wait unless they ask (TIMEOUT), leases of five seconds, no
// default TTL.
type CommandConfig struct {
	// NoWait is stampede_protection = false: FETCHLOCK never waits; a caller that would wait
	// gets TIMEOUT at once (no value, no lease).
	NoWait bool
	// Timeout is stampede_timeout: the default TIMEOUT, and LEASE (0: callers do not wait by
	// default and leases last five seconds). Capped at an hour.
	Timeout time.Duration
	// DefaultTTL is default_ttl: the expiry of a FETCHFILL that gives none (0: none).
	DefaultTTL time.Duration
}

// Register adds FETCHLOCK, FETCHFILL and FETCHRELEASE to node's command table, served by
// leases, and the lease counts to INFO when leases can report them. Call it once, at start-up.
func Register(node *commands.Node, leases Leases, cfg CommandConfig) {
	h := &handlers{node: node, leases: leases, cfg: cfg,
		wait: min(max(cfg.Timeout, 0), maxTimeoutMs*time.Millisecond), lease: 5 * time.Second}
	if cfg.Timeout > 0 {
		h.lease = min(cfg.Timeout, maxLeaseMs*time.Millisecond)
	}
	const g = "vela"
	key := commands.Arg{Name: "key", Type: "key"}
	token := commands.Arg{Name: "token", Type: "string"}
	for _, c := range []*commands.Command{
		{Name: "fetchlock", Arity: -2, Flags: commands.FlagWrite | commands.FlagBlocking, FirstKey: 1, LastKey: 1, KeyStep: 1,
			TimeoutReply: &timedOut,
			Handler:      h.fetchlock, Group: g,
			Summary: "Returns the value of a key, or the lease to fetch it (waiting while another caller holds it).",
			Args: []commands.Arg{key,
				{Name: "timeout", Type: "integer", Token: "TIMEOUT", Optional: true},
				{Name: "lease", Type: "integer", Token: "LEASE", Optional: true},
				{Name: "refresh", Type: "integer", Token: "REFRESH", Optional: true}}},
		{Name: "fetchfill", Arity: -4, Flags: commands.FlagWrite, FirstKey: 1, LastKey: 1, KeyStep: 1,
			Handler: h.fetchfill, Group: g,
			Summary: "Writes a key under its FETCHLOCK lease, only if the lease is still current.",
			Args: []commands.Arg{key, token, {Name: "value", Type: "string"},
				{Name: "expiration", Type: "oneof", Optional: true, Args: []commands.Arg{
					{Name: "seconds", Type: "integer", Token: "EX"},
					{Name: "milliseconds", Type: "integer", Token: "PX"}}},
				{Name: "tags", Type: "block", Token: "TAGS", Optional: true, Args: []commands.Arg{
					{Name: "tag", Type: "string", Multiple: true}}}}},
		{Name: "fetchrelease", Arity: 3, Flags: commands.FlagWrite | commands.FlagFast, FirstKey: 1, LastKey: 1, KeyStep: 1,
			Handler: h.fetchrelease, Group: g,
			Summary: "Gives up a FETCHLOCK lease; the next waiter gets it.",
			Args:    []commands.Arg{key, token}},
	} {
		node.Table().Register(c)
	}
	if m, ok := leases.(interface{ Counts() Counts }); ok {
		node.AddInfoSection("vela", func(context.Context) []string {
			c := m.Counts()
			return []string{
				"fetchlock_keys:" + strconv.Itoa(c.Keys),
				"fetchlock_leases:" + strconv.Itoa(c.Leases),
				"fetchlock_waiters:" + strconv.Itoa(c.Waiters),
			}
		})
	}
}

type handlers struct {
	node   *commands.Node
	leases Leases
	cfg    CommandConfig
	wait   time.Duration // default TIMEOUT
	lease  time.Duration // default LEASE
}

// fetchlock serves FETCHLOCK key [TIMEOUT ms] [LEASE ms] [REFRESH ms].
// timedOut is FETCHLOCK's reply when its wait ends without the key or the lease: TIMEOUT, or
// CLIENT UNBLOCK … TIMEOUT.
var timedOut = resp.Array([]resp.Reply{resp.BulkString("TIMEOUT"), resp.Nil})

func (h *handlers) fetchlock(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	req := LockRequest{Timeout: h.wait, Lease: h.lease}
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			return resp.Reply{}, commands.ErrSyntax
		}
		var err error
		switch opt := args[i]; {
		case commands.ArgIs(opt, "timeout"):
			req.Timeout, err = msArg(args[i+1], "TIMEOUT", 0, maxTimeoutMs)
		case commands.ArgIs(opt, "lease"):
			req.Lease, err = msArg(args[i+1], "LEASE", 1, maxLeaseMs)
		case commands.ArgIs(opt, "refresh"):
			req.Refresh, err = msArg(args[i+1], "REFRESH", 1, maxRefreshMs)
		default:
			return resp.Reply{}, commands.ErrSyntax
		}
		if err != nil {
			return resp.Reply{}, err
		}
	}
	if h.cfg.NoWait {
		req.Timeout = 0
	}
	if c.Conn != nil {
		req.Client, req.Unbound = c.Conn, c.Peer
	}
	req.Isolation = c
	res, err := h.leases.Lock(c.Context(), args[1], req)
	if err != nil {
		return resp.Reply{}, replyErr(err)
	}
	if st := h.node.Stats(); st.On() {
		if res.Status == Hit || res.Status == Refresh {
			st.Hits.Inc()
		} else {
			st.Misses.Inc()
		}
	}
	status := resp.BulkString(res.Status.String())
	switch res.Status {
	case Hit:
		return resp.Array([]resp.Reply{status, resp.Bulk(res.Value)}), nil
	case Locked:
		return resp.Array([]resp.Reply{status, resp.BulkString(res.Token.String())}), nil
	case Refresh:
		return resp.Array([]resp.Reply{status, resp.Bulk(res.Value), resp.BulkString(res.Token.String())}), nil
	}
	return resp.Array([]resp.Reply{status, resp.Nil}), nil
}

// fetchfill serves FETCHFILL key token value [EX s|PX ms] [TAGS tag …].
func (h *handlers) fetchfill(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	f := FillRequest{Value: args[3]}
	var unit string // "ex" or "px" once given
	var expire []byte
	for i := 4; i < len(args); i++ {
		switch a := args[i]; {
		case (commands.ArgIs(a, "ex") || commands.ArgIs(a, "px")) && unit == "" && i+1 < len(args):
			unit, expire = "px", args[i+1]
			if commands.ArgIs(a, "ex") {
				unit = "ex"
			}
			i++
		case commands.ArgIs(a, "tags") && i+1 < len(args):
			f.Tags = args[i+1:]
			i = len(args)
		default:
			return resp.Reply{}, commands.ErrSyntax
		}
	}
	token, ok := ParseToken(args[2])
	if !ok {
		return resp.Reply{}, commands.Error(replyBadToken)
	}
	switch {
	case unit != "":
		at, err := expireAt(expire, unit == "ex")
		if err != nil {
			return resp.Reply{}, err
		}
		f.ExpireAt = at
	case h.cfg.DefaultTTL > 0:
		f.ExpireAt = time.Now().UnixMilli() + h.cfg.DefaultTTL.Milliseconds()
	}
	if err := h.leases.Fill(c.Context(), args[1], token, f); err != nil {
		return resp.Reply{}, replyErr(err)
	}
	if st := h.node.Stats(); st.On() {
		st.Writes.Inc()
	}
	h.node.NotifyKey(args[1]) // near caches and other watchers; the lease has ended already
	return resp.OK, nil
}

// fetchrelease serves FETCHRELEASE key token.
func (h *handlers) fetchrelease(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	token, ok := ParseToken(args[2])
	if !ok {
		return resp.Reply{}, commands.Error(replyBadToken)
	}
	if err := h.leases.Release(c.Context(), args[1], token); err != nil {
		return resp.Reply{}, replyErr(err)
	}
	return resp.OK, nil
}

// replyErr maps the lease errors to their replies; anything else (store errors) passes through
// to the command layer's mapping.
func replyErr(err error) error {
	switch {
	case errors.Is(err, ErrNotHeld):
		return commands.Error(replyNotHeld)
	case errors.Is(err, ErrChanged):
		return commands.Error(replyChanged)
	case errors.Is(err, ErrTooManyLeases):
		return commands.Error(replyTooMany)
	}
	return err
}

// msArg parses a millisecond option within [lo, hi].
func msArg(b []byte, name string, lo, hi int64) (time.Duration, error) {
	n, ok := redisnum.ParseInt(b)
	if !ok {
		return 0, commands.ErrNotInteger
	}
	if n < lo || n > hi {
		return 0, commands.Error("ERR " + name + " is out of range, must be between " +
			strconv.FormatInt(lo, 10) + " and " + strconv.FormatInt(hi, 10) + " milliseconds")
	}
	return time.Duration(n) * time.Millisecond, nil
}

// expireAt turns FETCHFILL's EX/PX argument into absolute unix ms, as SET validates its own.
func expireAt(b []byte, seconds bool) (int64, error) {
	n, ok := redisnum.ParseInt(b)
	if !ok {
		return 0, commands.ErrNotInteger
	}
	bad := commands.Error("ERR invalid expire time in 'fetchfill' command")
	if n <= 0 || (seconds && n > math.MaxInt64/1000) {
		return 0, bad
	}
	if seconds {
		n *= 1000
	}
	now := time.Now().UnixMilli()
	if n > math.MaxInt64-now {
		return 0, bad
	}
	return now + n, nil
}
