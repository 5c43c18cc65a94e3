package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/store"
)

// Redis Cluster mode. Redis Cluster has only database 0, so Vela's bookkeeping lives there
// beside the user keys, under reservedPrefix, and each Lua script may touch one hash slot. The
// layout (see slot.go for the slot tags) puts every bookkeeping key in the slot of what it is
// about:
//
//	__vela:{S}:r        hash: user key → its tag record            (S: the user key's slot tag)
//	__vela:{S}:p        hash: user key → its tagged writes in flight
//	__vela:{S}:l        hash: user key → its FETCHLOCK lease
//	__vela:{T}:t:<tag>  hash: user key → nonce of the write that added it   (T: the tag's slot tag)
//	__vela:{S}:i        set: the slot's other bookkeeping keys that exist ("r", "p", "l", "t:<tag>")
//
// Keys and their records are in one slot, so everything about one key (SET … TAGS's write and
// record, DEL, INCR, FETCHLOCK, FETCHFILL) is one atomic script, as on a single Redis. A tag's
// hash names keys of every slot, so tagging a key takes three steps, each atomic:
//
//  0. in the key's slot, record the write as pending under a random nonce;
//  1. in each tag's slot, set key → nonce in the tag's hash;
//  2. in the key's slot, if the write is still pending, end it, do the SET and write the record.
//
// TAGINVALIDATE (and the sweep) visit a tag's hash entry by entry. For each entry one script in
// the key's slot deletes the key if it carries the tag (its record lists the tag and its value
// still has the record's fingerprint) and says whether the entry must stay: while the key still
// carries the tag (the sweep) or has a tagged write pending. Then one script in the tag's slot
// removes the entries that may go, each only if it still holds the nonce that was read. So the
// entry of a key that carries a tag is never removed: a write pending at the check keeps it, and
// a write that starts after the check sets a new nonce that the removal leaves alone. A node that
// dies between the steps leaves a pending write and entries that no record confirms; the sweep
// drops pending writes older than the grace period (their writer, if it was only slow, finds its
// write no longer pending and starts over), after which invalidation and the sweep remove the
// entries. The sweep visits the slots master by master, so it never scans the user keys.
//
// SCAN walks the masters one after the other (the cursor holds the master's lowest slot and its
// own SCAN cursor) and drops bookkeeping keys. DBSIZE subtracts, on each master, the bookkeeping
// keys of its slots, which one script per master counts from the slots' indexes (an SCARD per
// slot: a few milliseconds for 5,461 slots, during which that master serves nobody else). Both
// assume no slot is migrating meanwhile. Keys beginning with reservedPrefix are refused.

const (
	// reservedPrefix begins every bookkeeping key on Redis Cluster.
	reservedPrefix = "__vela:"
	// clusterChannel carries FETCHLOCK's wake-ups on Redis Cluster (PUBLISH reaches every node).
	clusterChannel = "__vela:fetchlock"
	// maxTagAttempts bounds how often a tagged write starts over after the sweep gave it up.
	maxTagAttempts = 3
	// visitBatch is the number of tag hash entries checked per round trip.
	visitBatch = 256
	// sweepSlotBatch is the number of slots one sweep script visits.
	sweepSlotBatch = 1024
	// cursorSlotBits is the low part of a cluster SCAN cursor, the master's lowest slot.
	cursorSlotBits = 14
)

// ErrReservedKey is returned on Redis Cluster for keys that begin with "__vela:", where Vela keeps
// its tag and lease bookkeeping.
var ErrReservedKey = errors.New(`redis store: keys beginning with "__vela:" are reserved for Vela's bookkeeping on Redis Cluster`)

// errTagRace: a tagged write was given up by the sweep maxTagAttempts times (each time it took
// longer than the grace period between its steps).
var errTagRace = errors.New("a tagged write was too slow to complete; try again")

// reserved reports whether key is a bookkeeping key name on Redis Cluster.
func reserved(key []byte) bool {
	return len(key) >= len(reservedPrefix) && string(key[:len(reservedPrefix)]) == reservedPrefix
}

// slotBase is the common prefix of the bookkeeping keys of slot.
func (s *Store) slotBase(slot uint16) string {
	return reservedPrefix + "{" + s.slots[slot] + "}:"
}

// book names the bookkeeping keys of one slot.
type book struct {
	recs, pend, leases, index string
}

// keyBook returns the bookkeeping keys of key's slot.
func (s *Store) keyBook(key string) book {
	b := s.slotBase(keySlot(key))
	return book{recs: b + "r", pend: b + "p", leases: b + "l", index: b + "i"}
}

// tagBook returns tag's hash and the index of its slot.
func (s *Store) tagBook(tag string) (hash, index string) {
	b := s.slotBase(keySlot(tag))
	return b + "t:" + tag, b + "i"
}

// newNonce returns a random name for one tagged write.
func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// distinct returns tags as strings, each once, in order.
func distinct(tags [][]byte) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if !slices.Contains(out, string(t)) {
			out = append(out, string(t))
		}
	}
	return out
}

// scriptCall is one script invocation of a batch.
type scriptCall struct {
	keys []string
	args []any
}

// evalBatch runs sc once per call, pipelined (go-redis sends each to the master of its first key,
// the nodes in parallel), and returns the commands in order: each has its own result or error.
// Scripts a node does not have yet are sent again in full.
func (s *Store) evalBatch(ctx context.Context, sc *redis.Script, calls []scriptCall) []*redis.Cmd {
	cmds := make([]*redis.Cmd, len(calls))
	_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = sc.EvalSha(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	var redo []int
	for i, c := range cmds {
		if redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			redo = append(redo, i)
		}
	}
	if len(redo) > 0 {
		_, _ = s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range redo {
				cmds[i] = sc.Eval(ctx, p, calls[i].keys, calls[i].args...)
			}
			return nil
		})
	}
	return cmds
}

// beginTagWrite runs steps 0 and 1 of a tagged write of key under nonce.
func (s *Store) beginTagWrite(ctx context.Context, key string, bk book, nonce string, tags []string) error {
	if err := clusterBegin.Run(ctx, s.c, []string{bk.pend, bk.index}, key, nonce).Err(); err != nil {
		return err
	}
	var calls []scriptCall
	bySlot := map[uint16]int{}
	for _, t := range tags {
		slot := keySlot(t)
		i, ok := bySlot[slot]
		if !ok {
			i = len(calls)
			bySlot[slot] = i
			calls = append(calls, scriptCall{keys: []string{s.slotBase(slot) + "i"}, args: []any{key, nonce}})
		}
		hash, _ := s.tagBook(t)
		calls[i].keys = append(calls[i].keys, hash)
		calls[i].args = append(calls[i].args, t)
	}
	for _, c := range s.evalBatch(ctx, clusterTagAdd, calls) {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

// clusterSetTagged runs SET … TAGS (steps 0 to 2), starting over if the sweep gave it up.
func (s *Store) clusterSetTagged(ctx context.Context, k string, op *store.Op, cond, ttl string) (store.Result, error) {
	var res store.Result
	tags := distinct(op.Tags)
	bk := s.keyBook(k)
	for range maxTagAttempts {
		nonce := newNonce()
		if err := s.beginTagWrite(ctx, k, bk, nonce, tags); err != nil {
			return res, err
		}
		if s.afterTagBegin != nil {
			s.afterTagBegin()
		}
		args := make([]any, 0, 6+len(tags))
		args = append(args, op.Value, cond, boolArg(op.ReturnOld), ttl, op.ExpireAt, nonce)
		for _, t := range tags {
			args = append(args, t)
		}
		v, err := clusterSet.Run(ctx, s.c, []string{k, bk.recs, bk.pend, bk.index}, args...).Slice()
		if err != nil {
			return res, err
		}
		n, _ := v[0].(int64)
		if n == -1 {
			continue
		}
		res.Done = n == 1
		if len(v) > 1 {
			if sv, ok := v[1].(string); ok {
				res.Found, res.Value = true, []byte(sv)
			}
		}
		return res, nil
	}
	return res, errTagRace
}

// clusterInvalidate serves InvalidateTags on Redis Cluster: each tag's hash entry by entry, each
// key checked and deleted atomically in its own slot. On an error it returns the keys deleted so
// far with it.
func (s *Store) clusterInvalidate(ctx context.Context, tags [][]byte) ([][]byte, error) {
	var out [][]byte
	for _, tag := range distinct(tags) {
		hash, index := s.tagBook(tag)
		deleted, _, err := s.visitTag(ctx, hash, index, tag, "del")
		out = append(out, deleted...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// visitTag checks every entry of one tag hash with clusterCheck in mode ("del" or "clean") and
// removes the entries the checks let go. It returns the keys deleted and the entries removed.
func (s *Store) visitTag(ctx context.Context, hash, index, tag, mode string) ([][]byte, int, error) {
	var deleted [][]byte
	removed := 0
	var cursor uint64
	for {
		d, n, next, err := s.visitTagPage(ctx, hash, index, tag, mode, cursor)
		deleted = append(deleted, d...)
		removed += n
		if err != nil || next == 0 {
			return deleted, removed, err
		}
		cursor = next
	}
}

// visitTagPage is one HSCAN page of visitTag, under its own deadline.
func (s *Store) visitTagPage(ctx context.Context, hash, index, tag, mode string, cursor uint64) ([][]byte, int, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	kv, next, err := s.c.HScan(ctx, hash, cursor, "", visitBatch).Result()
	if err != nil {
		return nil, 0, 0, err
	}
	calls := make([]scriptCall, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		bk := s.keyBook(kv[i])
		calls = append(calls, scriptCall{keys: []string{kv[i], bk.recs, bk.pend, bk.index}, args: []any{tag, mode}})
	}
	var deleted [][]byte
	var firstErr error
	drop := []any{tag}
	for i, c := range s.evalBatch(ctx, clusterCheck, calls) {
		n, err := c.Int64()
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		k := kv[2*i]
		if n&1 != 0 {
			deleted = append(deleted, []byte(k))
		}
		if n&2 == 0 {
			drop = append(drop, k, kv[2*i+1])
		}
	}
	removed := 0
	if len(drop) > 1 {
		if s.afterTagCheck != nil {
			s.afterTagCheck()
		}
		n, err := clusterTagRemove.Run(ctx, s.c, []string{hash, index}, drop...).Int64()
		if err != nil {
			return deleted, 0, 0, err
		}
		removed = int(n)
	}
	return deleted, removed, next, firstErr
}

// clusterMaster is one master of the cluster and the slots it serves.
type clusterMaster struct {
	client *redis.Client
	slots  []uint16 // ascending; slots[0] names the master in SCAN cursors
}

// masters lists the cluster's masters (from CLUSTER SLOTS) in the order of their lowest slot.
func (s *Store) masters(ctx context.Context) ([]clusterMaster, error) {
	//lint:ignore SA1019 CLUSTER SLOTS also answers Redis Clusters older than 7 (CLUSTER SHARDS is 7.0+)
	ranges, err := s.cluster.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, err
	}
	byNode := map[string]*clusterMaster{}
	for _, r := range ranges {
		if len(r.Nodes) == 0 || r.Start < 0 || r.End >= numSlots || r.Start > r.End {
			continue
		}
		id := r.Nodes[0].ID + "@" + r.Nodes[0].Addr
		m := byNode[id]
		if m == nil {
			m = &clusterMaster{}
			byNode[id] = m
		}
		for slot := r.Start; slot <= r.End; slot++ {
			m.slots = append(m.slots, uint16(slot))
		}
	}
	out := make([]clusterMaster, 0, len(byNode))
	for _, m := range byNode {
		slices.Sort(m.slots)
		// go-redis's own routing: the client it would send this master's keys to.
		if m.client, err = s.cluster.MasterForKey(ctx, "{"+s.slots[m.slots[0]]+"}"); err != nil {
			return nil, err
		}
		out = append(out, *m)
	}
	if len(out) == 0 {
		return nil, errors.New("the cluster serves no slots")
	}
	slices.SortFunc(out, func(a, b clusterMaster) int { return int(a.slots[0]) - int(b.slots[0]) })
	return out, nil
}

// slotArgs returns the slot tags of slots as script arguments, after the given leading ones.
func (s *Store) slotArgs(slots []uint16, lead ...any) []any {
	args := make([]any, 0, len(lead)+len(slots))
	args = append(args, lead...)
	for _, slot := range slots {
		args = append(args, s.slots[slot])
	}
	return args
}

// onMasters runs fn on every master at once (i is the master's index) and returns the errors.
func onMasters(ms []clusterMaster, fn func(i int, m clusterMaster) error) error {
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, m)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// clusterLen is DBSIZE over the masters, without the bookkeeping keys.
func (s *Store) clusterLen(ctx context.Context) (int64, error) {
	ms, err := s.masters(ctx)
	if err != nil {
		return 0, err
	}
	counts := make([]int64, len(ms))
	err = onMasters(ms, func(i int, m clusterMaster) error {
		args := make([]any, len(m.slots))
		for j, slot := range m.slots {
			args[j] = s.indexArgs[slot]
		}
		var err error
		counts[i], err = clusterCount.Run(ctx, m.client, nil, args...).Int64()
		return err
	})
	if err != nil {
		return 0, err
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	return total, nil
}

// clusterExpires sums the keys with an expiry over the masters (bookkeeping keys have none).
func (s *Store) clusterExpires(ctx context.Context) (int64, error) {
	var mu sync.Mutex
	var total int64
	err := s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "keyspace").Result()
		if err != nil {
			return err
		}
		n := keyspaceField(info, "db0:", "expires=")
		mu.Lock()
		total += n
		mu.Unlock()
		return nil
	})
	return total, err
}

// keyspaceField reads one number of INFO keyspace's line for a database ("db0:").
func keyspaceField(info, db, field string) int64 {
	for line := range strings.SplitSeq(info, "\r\n") {
		if rest, ok := strings.CutPrefix(line, db); ok {
			for f := range strings.SplitSeq(rest, ",") {
				if v, ok := strings.CutPrefix(f, field); ok {
					n, _ := strconv.ParseInt(v, 10, 64)
					return n
				}
			}
		}
	}
	return 0
}

// clusterScan runs one SCAN step on one master: the cursor's low cursorSlotBits bits are the
// master's lowest slot, the rest that master's own cursor. When a master is done the cursor moves
// to the next one; bookkeeping keys are left out.
func (s *Store) clusterScan(ctx context.Context, cursor uint64, match string, count int) ([][]byte, uint64, error) {
	ms, err := s.masters(ctx)
	if err != nil {
		return nil, 0, err
	}
	first, nodeCursor := uint16(cursor&(1<<cursorSlotBits-1)), cursor>>cursorSlotBits
	i := slices.IndexFunc(ms, func(m clusterMaster) bool { return m.slots[0] == first })
	if i < 0 { // the slots moved: go on with the master that serves the slot now
		i = slices.IndexFunc(ms, func(m clusterMaster) bool {
			_, ok := slices.BinarySearch(m.slots, first)
			return ok
		})
		if i < 0 {
			return nil, 0, fmt.Errorf("SCAN cursor %d names no master of the cluster", cursor)
		}
	}
	keys, next, err := ms[i].client.Scan(ctx, nodeCursor, match, int64(max(count, 1))).Result()
	if err != nil {
		return nil, 0, err
	}
	out := make([][]byte, 0, len(keys))
	for _, k := range keys {
		if !strings.HasPrefix(k, reservedPrefix) {
			out = append(out, []byte(k))
		}
	}
	switch {
	case next >= 1<<(store.CursorBits-cursorSlotBits):
		// Over 2^29 hash buckets on one master: the combined cursor would pass store.CursorBits.
		return nil, 0, fmt.Errorf("SCAN cursor %d of a master is too large to combine", next)
	case next != 0:
		return out, next<<cursorSlotBits | uint64(ms[i].slots[0]), nil
	case i+1 < len(ms):
		return out, uint64(ms[i+1].slots[0]), nil
	}
	return out, 0, nil
}

// clusterSweep drops run-out leases, abandoned pending writes and tag hash entries that no key
// carries. It returns the number of tag hash entries removed.
func (s *Store) clusterSweep(ctx context.Context) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	ms, err := s.masters(cctx)
	cancel()
	if err != nil {
		return 0, err
	}
	var found []string // slot tag, tag, slot tag, tag…
	for _, m := range ms {
		for batch := range slices.Chunk(m.slots, sweepSlotBatch) {
			cctx, cancel := context.WithTimeout(ctx, s.timeout)
			v, err := clusterSlotSweep.Run(cctx, m.client, nil, s.slotArgs(batch, s.pendingGrace.Milliseconds())...).StringSlice()
			cancel()
			if err != nil {
				return 0, err
			}
			found = append(found, v...)
		}
	}
	removed := 0
	for i := 0; i+1 < len(found); i += 2 {
		b := reservedPrefix + "{" + found[i] + "}:"
		_, n, err := s.visitTag(ctx, b+"t:"+found[i+1], b+"i", found[i+1], "clean")
		removed += n
		if err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// defaultPendingGrace is how long a tagged write may stay pending before the sweep gives it up.
func defaultPendingGrace(timeout time.Duration) time.Duration {
	return max(time.Minute, 10*timeout)
}
