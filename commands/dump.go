package commands

import (
	"errors"

	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/rdb"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// DUMP and RESTORE, as Redis 7.0 serves them, so that tools moving data between Redis and Vela
// (redis-shake's scan mode, RIOT, MIGRATE-like scripts) work: DUMP answers a key's value in
// Redis's RDB serialization (package rdb), RESTORE creates a key from one. Vela stores strings
// only: a payload of another type is refused. DUMP never compresses (Redis would LZF-compress a
// long value); RESTORE reads every encoding Redis writes. IDLETIME and FREQ set the key's access
// statistics on a store that keeps them (store.AccessSetter: the memory store); elsewhere they
// are checked as Redis checks them and the key starts with fresh statistics.

// RESTORE errors, with Redis's texts.
const (
	errBusyKey       = Error("BUSYKEY Target key name already exists.")
	errRestoreTTL    = Error("ERR Invalid TTL value, must be >= 0")
	errRestoreIdle   = Error("ERR Invalid IDLETIME value, must be >= 0")
	errRestoreFreq   = Error("ERR Invalid FREQ value, must be >= 0 and <= 255")
	errDumpPayload   = Error("ERR DUMP payload version or checksum are wrong")
	errBadDataFormat = Error("ERR Bad data format")
)

func (n *Node) registerDump() {
	const g = "generic"
	for _, c := range []*Command{
		{Name: "dump", Arity: 2, Flags: FlagReadOnly, FirstKey: 1, LastKey: 1, Handler: n.dump},
		{Name: "restore", Arity: -4, Flags: FlagWrite, FirstKey: 1, LastKey: 1, Handler: n.restore},
	} {
		c.Group = g
		n.table.Register(c)
	}
}

// dump serves DUMP key: the payload, or a null for a missing key.
func (n *Node) dump(c *Ctx, args [][]byte) (resp.Reply, error) {
	res, err := n.do(c, args[1], store.Op{Kind: store.Get})
	if err != nil || !res.Found {
		return resp.Nil, err
	}
	return resp.Bulk(rdb.Dump(res.Value)), nil
}

// restore serves RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f], checking in
// Redis's order: the options, an existing key, the TTL, the payload's footer, its value.
func (n *Node) restore(c *Ctx, args [][]byte) (resp.Reply, error) {
	var replace, absTTL, idle, freq bool
	idleSecs, freqCount := int64(-1), int64(-1)
	for i := 4; i < len(args); i++ {
		more := i+1 < len(args)
		switch {
		case equalFold(args[i], "replace"):
			replace = true
		case equalFold(args[i], "absttl"):
			absTTL = true
		case equalFold(args[i], "idletime") && more && !freq:
			v, err := intArg(args[i+1])
			switch {
			case err != nil:
				return resp.Reply{}, err
			case v < 0:
				return resp.Reply{}, errRestoreIdle
			}
			idle, idleSecs = true, v
			i++
		case equalFold(args[i], "freq") && more && !idle:
			v, err := intArg(args[i+1])
			switch {
			case err != nil:
				return resp.Reply{}, err
			case v < 0 || v > 255:
				return resp.Reply{}, errRestoreFreq
			}
			freq, freqCount = true, v
			i++
		default:
			return resp.Reply{}, ErrSyntax
		}
	}
	key := args[1]
	if !replace {
		if taken, err := n.quietExists(c, key); err != nil {
			return resp.Reply{}, err
		} else if taken {
			return resp.Reply{}, errBusyKey
		}
	}
	ttl, err := intArg(args[2])
	switch {
	case err != nil:
		return resp.Reply{}, err
	case ttl < 0:
		return resp.Reply{}, errRestoreTTL
	}
	value, err := rdb.Restore(args[3], int(n.cfg.MaxBulkLen))
	var other rdb.NotStringError
	switch {
	case errors.Is(err, rdb.ErrChecksum):
		return resp.Reply{}, errDumpPayload
	case errors.As(err, &other):
		return resp.Reply{}, Error(string(errBadDataFormat) + ": Vela stores strings only, and the payload holds another type")
	case err != nil:
		return resp.Reply{}, errBadDataFormat
	}
	if ttl > 0 && !absTTL {
		ttl += now()
	}
	if ttl > 0 && ttl <= now() { // expired already: only the replaced key goes, as in Redis
		if replace {
			res, err := n.quietDo(c, key, store.Op{Kind: store.Delete})
			if err != nil {
				return resp.Reply{}, err
			}
			if res.Found {
				n.keyspaceEvent(pubsub.Generic, "del", key)
			}
		}
		return resp.OK, nil
	}
	op := store.Op{Kind: store.Set, Value: value}
	if ttl > 0 {
		op.TTL, op.ExpireAt = store.TTLSet, ttl
	}
	if !replace {
		op.Cond = store.CondNX // created since the check above: the key is taken after all
	}
	res, err := n.quietDo(c, key, op)
	switch {
	case err != nil:
		return resp.Reply{}, err
	case !res.Done:
		return resp.Reply{}, errBusyKey
	}
	if as, ok := n.store.(store.AccessSetter); ok && (idle || freq) {
		if _, err := as.SetAccess(c.Context(), key, idleSecs, freqCount); err != nil {
			return resp.Reply{}, err
		}
	}
	n.keyspaceEvent(pubsub.New, "new", key)
	n.keyspaceEvent(pubsub.Generic, "restore", key)
	return resp.OK, nil
}
