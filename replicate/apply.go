package replicate

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/store"
)

// state is a key's present state on this member, as a copy carries it.
type state struct {
	found    bool
	value    []byte
	expireAt int64 // unix ms; 0: no expiry
	tags     [][]byte
	stamp    Stamp
	enc      store.Encoding // how the value was written, kept for OBJECT ENCODING
}

// readState reads key's value, expiry and tags. Callers hold key's stripe.
func (cl *Cluster) readState(ctx context.Context, key []byte) (state, error) {
	val, err := cl.store.Do(ctx, key, store.Op{Kind: store.Get, WithExpiry: true})
	if err != nil || !val.Found {
		return state{}, err
	}
	st := state{found: true, value: val.Value, expireAt: val.ExpireAt, enc: val.Enc}
	if tr, ok := cl.store.(store.TagReader); ok {
		if st.tags, err = tr.KeyTags(ctx, key); err != nil {
			return state{}, err
		}
	}
	return st, nil
}

// args builds the copy of st: VELA RAPPLY key time node SET value pxat [tag …], or VELA RAPPLY
// key time node DEL. SET is SETRAW, SETSTR or SETINT for a value written as store.EncodeRaw,
// store.EncodeNoInt or store.EncodeCopiedInt.
func (st state) args(key []byte) [][]byte {
	args := [][]byte{wordVELA, wordRAPPLY, key, u64(st.stamp.Time), u64(st.stamp.Node)}
	if !st.found {
		return append(args, wordDEL)
	}
	args = append(args, setWords[st.enc], st.value, strconv.AppendInt(nil, st.expireAt, 10))
	return append(args, st.tags...)
}

// Words of a copy, shared read-only by every copy built.
var (
	wordVELA   = []byte("VELA")
	wordRAPPLY = []byte("RAPPLY")
	wordDEL    = []byte("DEL")
	// setWords name a copy's value by how it was written, indexed by store.Encoding.
	setWords = [...][]byte{store.EncodeByValue: []byte("SET"), store.EncodeNoInt: []byte("SETSTR"),
		store.EncodeRaw: []byte("SETRAW"), store.EncodeCopiedInt: []byte("SETINT")}
)

// argsArray is args returned by value, with the numbers written in num's spare capacity (at
// least 60 bytes), when the copy has at most maxTagsInto tags (n is 0 otherwise). A caller
// sending the copy at once keeps both on its stack (the send encodes the words before it
// returns): nothing is allocated.
func (st state) argsArray(num []byte, key []byte) (words [8 + maxTagsInto][]byte, n int) {
	if len(st.tags) > maxTagsInto {
		return words, 0
	}
	b := strconv.AppendUint(num[:0], st.stamp.Time, 10)
	t := len(b)
	b = strconv.AppendUint(b, st.stamp.Node, 10)
	m := len(b)
	words[0], words[1], words[2], words[3], words[4] = wordVELA, wordRAPPLY, key, b[:t:t], b[t:m:m]
	if !st.found {
		words[5] = wordDEL
		return words, 6
	}
	b = strconv.AppendInt(b, st.expireAt, 10)
	words[5], words[6], words[7] = setWords[st.enc], st.value, b[m:len(b):len(b)]
	return words, 8 + copy(words[8:], st.tags)
}

// maxTagsInto is the most tags argsInto takes.
const maxTagsInto = 8

// rapply serves VELA RAPPLY key time node SET value pxat [tag …] | DEL for peers: it applies a
// member's copy of key's state if the copy is newer than this member's last write of the key,
// than the last FLUSHALL, and than the last TAGINVALIDATE of each of its tags. Two copies that
// are both unstamped (keys no member wrote through the topology, such as a disk store's keys
// from before a restart) keep the greater value, so that members still agree. Replies 1 when
// applied.
func (cl *Cluster) rapply(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	st, err := parseState(args[3:])
	if err != nil {
		return resp.Reply{}, err
	}
	cl.clock.observe(st.stamp.Time)
	key := args[2]
	s := cl.stripe(key)
	cl.stripes[s].Lock()
	done, err := cl.apply(c.Context(), key, st)
	cl.stripes[s].Unlock()
	if err != nil {
		return resp.Reply{}, err
	}
	if !done {
		cl.refused.Add(1)
	}
	return resp.Bool(done), nil
}

// parseState parses a copy's wire form: time node SET value pxat [tag …] | time node DEL.
func parseState(w [][]byte) (state, error) {
	var st state
	if len(w) < 3 {
		return st, commands.ErrSyntax
	}
	in, err := parseStamp(w[0], w[1])
	if err != nil {
		return st, err
	}
	switch {
	case commands.ArgIs(w[2], "del") && len(w) == 3:
	case len(w) >= 5 && encodingOf(w[2]) >= 0:
		st.found, st.value, st.enc = true, w[3], store.Encoding(encodingOf(w[2]))
		if st.expireAt, err = strconv.ParseInt(string(w[4]), 10, 64); err != nil || st.expireAt < 0 {
			return st, commands.ErrNotInteger
		}
		st.tags = w[5:]
	default:
		return st, commands.ErrSyntax
	}
	st.stamp = in
	return st, nil
}

// encodingOf returns the store.Encoding a copy's SET word names, -1 for another word.
func encodingOf(word []byte) int {
	for enc, w := range setWords {
		if bytes.EqualFold(word, w) {
			return enc
		}
	}
	return -1
}

func parseStamp(t, n []byte) (Stamp, error) {
	tv, err1 := strconv.ParseUint(string(t), 10, 64)
	nv, err2 := strconv.ParseUint(string(n), 10, 64)
	if err1 != nil || err2 != nil {
		return Stamp{}, commands.ErrNotInteger
	}
	return Stamp{Time: tv, Node: nv}, nil
}

// apply installs st as key's state if it is newer than what this member has (or as new, and
// greater), and reports whether it did. Callers hold key's stripe.
func (cl *Cluster) apply(ctx context.Context, key []byte, st state) (bool, error) {
	cur := cl.versions.get(key)
	// Equal stamps (both zero: keys no member wrote through the topology; or a disk-store
	// member killed after a write but before saving its stamp, which kept the previous one)
	// are settled by the state itself, the same way on every member.
	tie := st.stamp == cur.stamp
	if !st.stamp.After(cur.stamp) && !tie {
		return false, nil
	}
	if st.found {
		if f := cl.versions.floor(st.tags); !f.IsZero() && !st.stamp.After(f) {
			// Flushed or invalidated after it was written: where it was applied in time it is
			// deleted by now, so here it ends deleted too (not left at the older state).
			if tie {
				return false, nil
			}
			st.found = false
		}
		if st.expireAt != 0 && st.expireAt <= time.Now().UnixMilli() {
			st.found = false // expired on the way: as good as deleted
		}
	}
	if tie {
		// A value beats an absence, and the greater value the smaller.
		if !st.found {
			return false, nil
		}
		have, err := cl.store.Do(ctx, key, store.Op{Kind: store.Get})
		if err != nil {
			return false, err
		}
		if have.Found && bytes.Compare(have.Value, st.value) >= 0 {
			return false, nil
		}
	}
	op := store.Op{Kind: store.Delete}
	if st.found {
		op = store.Op{Kind: store.Set, Value: st.value, TTL: store.TTLSet, ExpireAt: st.expireAt, Tags: st.tags,
			Enc: st.enc}
	}
	if _, err := cl.store.Do(ctx, key, op); err != nil {
		return false, err
	}
	if !st.stamp.IsZero() {
		cl.versions.put(key, entry{stamp: st.stamp, gone: !st.found})
	}
	cl.node.NotifyKey(key)
	return true, nil
}

// rflush serves VELA RFLUSH time node for peers: a member ran FLUSHALL. Unless a newer one ran
// here already, every key is deleted except those whose last write is newer than the FLUSHALL
// (it reached this member first). Replies 1 when applied.
func (cl *Cluster) rflush(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	in, err := parseStamp(args[2], args[3])
	if err != nil {
		return resp.Reply{}, err
	}
	cl.clock.observe(in.Time)
	ctx := c.Context()
	// Not in the middle of an EXEC here; the gate before the stripes, as every write takes them.
	c.ReadLock()
	defer c.ReadUnlock()
	cl.lockAll()
	defer cl.unlockAll()
	if !cl.versions.setFlush(in) {
		return resp.Zero, nil
	}
	var keep []state
	var keepKeys []string
	for _, k := range cl.versions.newerThan(in) {
		st, err := cl.readState(ctx, []byte(k))
		if err != nil {
			return resp.Reply{}, err
		}
		if st.found {
			keep, keepKeys = append(keep, st), append(keepKeys, k)
		}
	}
	if err := cl.ks.Flush(ctx); err != nil {
		return resp.Reply{}, err
	}
	for i, st := range keep {
		op := store.Op{Kind: store.Set, Value: st.value, TTL: store.TTLSet, ExpireAt: st.expireAt, Tags: st.tags,
			Enc: st.enc}
		if _, err := cl.store.Do(ctx, []byte(keepKeys[i]), op); err != nil {
			return resp.Reply{}, err
		}
	}
	cl.versions.dropOlder(in)
	cl.node.NotifyAll()
	return resp.One, nil
}

// rtags serves VELA RTAGS time node tag [tag …] for peers: a member ran TAGINVALIDATE. The
// tags not invalidated here since are invalidated here too: their keys written before the
// invalidation (by its stamp) are deleted, those written after it stay. Replies with the number
// of keys deleted.
func (cl *Cluster) rtags(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	in, err := parseStamp(args[2], args[3])
	if err != nil {
		return resp.Reply{}, err
	}
	cl.clock.observe(in.Time)
	tags := cl.versions.setTags(args[4:], in)
	if len(tags) == 0 {
		return resp.Zero, nil
	}
	c.ReadLock() // not in the middle of an EXEC here
	n, err := cl.invalidate(c.Context(), tags, in)
	c.ReadUnlock()
	if err != nil {
		return resp.Reply{}, err
	}
	return resp.Int(int64(n)), nil
}

// invalidate deletes the live keys carrying any of tags whose last write is not newer than s (a
// TAGINVALIDATE stamped s), each under its stripe, and returns how many it deleted. A key
// written after the invalidation (its copy arrived first, or it was written on the other side
// of a partition) stays, as it does on the member where it was written after it.
func (cl *Cluster) invalidate(ctx context.Context, tags [][]byte, s Stamp) (int, error) {
	tl, ok := cl.store.(store.TagLister)
	if !ok {
		deleted, err := cl.node.InvalidateTags(ctx, tags) // every key of the tags
		return len(deleted), err
	}
	tr, _ := cl.store.(store.TagReader)
	seen := map[string]bool{}
	n := 0
	for _, tag := range tags {
		keys, err := tl.TagKeys(ctx, tag)
		if err != nil {
			return n, err
		}
		for _, k := range keys {
			if seen[string(k)] {
				continue
			}
			seen[string(k)] = true
			done, err := cl.invalidateKey(ctx, tr, k, tags, s)
			if err != nil {
				return n, err
			}
			if done {
				n++
			}
		}
	}
	if n > 0 && cl.stats.On() {
		cl.stats.TagInvalidations.Add(uint64(n))
	}
	return n, nil
}

// invalidateKey deletes key if it is live, still carries one of tags, and was last written no
// later than s.
func (cl *Cluster) invalidateKey(ctx context.Context, tr store.TagReader, key []byte, tags [][]byte, s Stamp) (bool, error) {
	i := cl.stripe(key)
	cl.stripes[i].Lock()
	defer cl.stripes[i].Unlock()
	if cl.versions.get(key).stamp.After(s) {
		return false, nil
	}
	if tr != nil {
		has, err := tr.KeyTags(ctx, key) // nil when it is gone or expired
		if err != nil || !carriesAny(has, tags) {
			return false, err
		}
	}
	res, err := cl.store.Do(ctx, key, store.Op{Kind: store.Delete})
	if err != nil || !res.Done {
		return false, err
	}
	cl.node.NotifyKey(key)
	return true, nil
}

func carriesAny(has, tags [][]byte) bool {
	for _, h := range has {
		for _, t := range tags {
			if bytes.Equal(h, t) {
				return true
			}
		}
	}
	return false
}

// rsynced serves VELA RSYNCED member for peers: member has sent this one its whole state. The
// member is synced again once every member that told it it was behind (RBEHIND) has sent it.
func (cl *Cluster) rsynced(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	cl.syncsGot.Add(1)
	cl.behindMu.Lock()
	delete(cl.waitingFor, string(args[2]))
	waiting := len(cl.waitingFor)
	cl.behindMu.Unlock()
	if waiting > 0 {
		return resp.OK, nil // another member said it gave copies up: its own transfer must come
	}
	if !cl.synced.Swap(true) {
		cl.log.Info("replicated state received", "node", cl.self, "from", string(args[2]))
	}
	return resp.OK, nil
}

// rstate serves VELA RSTATE key for peers: key's present state here with its stamp, in a copy's
// wire form (time node SET value pxat [tag …] | time node DEL), for a member that decides a
// read-modify-write command before it holds the whole state.
func (cl *Cluster) rstate(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	key := args[2]
	s := cl.stripe(key)
	cl.stripes[s].Lock()
	st, err := cl.readState(c.Context(), key)
	st.stamp = cl.versions.get(key).stamp
	cl.stripes[s].Unlock()
	if err != nil {
		return resp.Reply{}, err
	}
	wire := st.args(key)[3:]
	out := make([]resp.Reply, len(wire))
	for i, w := range wire {
		out[i] = resp.Bulk(w)
	}
	return resp.Array(out), nil
}

// rsyncme serves VELA RSYNCME member for peers: member (just started, or back) asks for this
// member's whole state.
func (cl *Cluster) rsyncme(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	cl.queueAsked(string(args[2]))
	return resp.OK, nil
}

// rbehind serves VELA RBEHIND member for peers: member gave up copies to this one, which is
// about to be sent the whole state. Until it has it, it answers nothing from its own store.
func (cl *Cluster) rbehind(c *commands.Ctx, args [][]byte) (resp.Reply, error) {
	if !c.Peer {
		return resp.Reply{}, errPeerOnly
	}
	cl.behindMu.Lock()
	if cl.waitingFor == nil {
		cl.waitingFor = map[string]struct{}{}
	}
	cl.waitingFor[string(args[2])] = struct{}{}
	cl.behindMu.Unlock()
	if cl.synced.Swap(false) {
		cl.log.Warn("replicate: a member missed copies to this one; it waits for the whole state",
			"node", cl.self, "from", string(args[2]))
	}
	return resp.OK, nil
}
