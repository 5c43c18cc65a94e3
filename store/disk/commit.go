package disk

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vela-cache/vela/store"
)

// reqKind says what a write request does.
type reqKind uint8

const (
	reqOp         reqKind = iota // one Op on one key
	reqMulti                     // SetMulti
	reqInvalidate                // InvalidateTags
	reqFlush                     // Flush
	reqSweep                     // one sweep batch
	reqMove                      // move the staging log into place (see doc.go)
	reqDrain                     // nothing: answered once every request queued before it is
	reqGroupEnd                  // nothing: ends its group, answered once the group is committed
	reqKeyTags                   // read a key's tags (a group's read, in its transaction)
)

// request is one write waiting for the committer. Its inputs may alias the caller's buffers: the
// caller waits for done, so they stay valid while the committer reads them.
type request struct {
	kind reqKind
	// inputs
	key      []byte
	op       store.Op
	pairs    []store.KV
	expireAt int64
	nx       bool
	tags     [][]byte
	// outputs, set by the committer before it signals done
	res  store.Result
	ok   bool
	n    int
	keys [][]byte
	err  error // the request's own failure (not an integer…) or the commit's
	done chan struct{}
	// group is the request's group (group.go), if any; answered is set when the committer
	// answered it before the commit, as it does a group's operations.
	group    *group
	answered bool
}

// release returns a finished Do request to the pool.
func (s *Store) release(r *request) {
	*r = request{done: r.done}
	s.pool.Put(r)
}

// submit queues r for the committer and waits until it has been committed. Once queued, a request
// is always answered (Close drains the queue), unless the committer has already stopped.
func (s *Store) submit(r *request) error {
	if err := s.enqueue(r); err != nil {
		return err
	}
	return s.wait(r)
}

// enqueue hands r to the committer without waiting for its commit.
func (s *Store) enqueue(r *request) error {
	select {
	case s.reqs <- r:
		return nil
	case <-s.quit:
		return store.ErrClosed
	}
}

// wait waits until the committer has answered r, which enqueue has queued.
func (s *Store) wait(r *request) error {
	select {
	case <-r.done:
		return nil
	case <-s.stopped:
		select {
		case <-r.done: // answered just before the committer stopped
			return nil
		default:
			return store.ErrClosed
		}
	}
}

// run is the committer: it takes every queued request (up to maxBatch), commits them in one
// transaction and answers them, until Close.
func (s *Store) run() {
	defer close(s.stopped)
	tick := time.NewTicker(s.moveEvery)
	defer tick.Stop()
	batch := make([]*request, 0, s.maxBatch)
	lastBatch, lastCommit := 0, time.Duration(0) // the previous commit's size and duration
	for {
		select {
		case r := <-s.reqs:
			batch = append(batch, r)
		case <-tick.C:
			if s.staged.Load() > 0 {
				s.commit([]*request{{kind: reqMove, done: make(chan struct{}, 1)}})
			}
			continue
		case <-s.quit:
			for {
				select {
				case r := <-s.reqs:
					batch = append(batch, r)
					if len(batch) < s.maxBatch {
						continue
					}
				default:
				}
				batch = s.commit(batch)
				if len(batch) < s.maxBatch {
					// Leave the file compact: the log moved into place.
					s.commit([]*request{{kind: reqMove, done: make(chan struct{}, 1)}})
					return
				}
				batch = batch[:0]
			}
		}
	fill:
		for len(batch) < s.maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		// With concurrent writers, the ones answered by the last commit are still on their way
		// back (reply, next request): wait a little for them, up to as many as the last batch
		// and at most half a commit, so that they share this commit instead of each paying for
		// the next. A lone writer (last batch of one) never waits.
		if target := min(lastBatch, s.maxBatch); len(batch) < target {
			timer := time.NewTimer(min(lastCommit/2, time.Millisecond))
		more:
			for len(batch) < target {
				select {
				case r := <-s.reqs:
					batch = append(batch, r)
				case <-timer.C:
					break more
				}
			}
			timer.Stop()
		}
		start := time.Now()
		batch = s.commit(batch)
		lastBatch, lastCommit = len(batch), time.Since(start)
		clear(batch)
		batch = batch[:0]
	}
}

// commit applies batch in one transaction and answers every request. If the transaction fails
// as a whole (an I/O error), each request is retried alone so that one cannot fail the others,
// except a group's: its operations were answered already, so the group is failed. It returns
// batch with the requests a group's transaction took in after it (commitTx).
func (s *Store) commit(batch []*request) []*request {
	if len(batch) == 0 {
		return batch
	}
	batch, err := s.commitTx(batch)
	if err != nil {
		for _, r := range batch {
			if r.group != nil {
				r.group.lose(s.dbError(err))
			}
		}
	}
	if err != nil && len(batch) > 1 {
		for _, r := range batch {
			if r.answered {
				continue
			}
			if r.group != nil { // a group's operation that failed the transaction, or its end
				r.err = r.group.lostErr()
			} else if _, e := s.commitTx([]*request{r}); e != nil {
				r.err = s.dbError(e)
			}
			r.done <- struct{}{}
		}
		return batch
	}
	for _, r := range batch {
		if r.answered {
			continue
		}
		switch {
		case r.group != nil:
			r.err = cmp.Or(r.err, r.group.lostErr())
		case err != nil:
			r.err = s.dbError(err)
		}
		r.done <- struct{}{}
	}
	return batch
}

// commitTx runs batch in one read-write transaction, committing only if something changed, and
// then publishes the transaction's staged values to the overlay (or clears it after a move).
//
// A group's operation is answered as soon as it has been applied, and the transaction then
// stays open for the group's next request (group.go), which is appended to batch, as is any
// other request that arrives meanwhile: the returned batch is every request the transaction
// ran.
func (s *Store) commitTx(batch []*request) ([]*request, error) {
	tx, err := s.db.Begin(true)
	if err != nil {
		return batch, err
	}
	w := &wtx{
		s: s, data: tx.Bucket(bucketData), exp: tx.Bucket(bucketExp), tags: tx.Bucket(bucketTags),
		stage: tx.Bucket(bucketStage), meta: tx.Bucket(bucketMeta), tx: tx, now: s.now(), maxLen: s.maxLen,
		pending: map[string][]byte{},
	}
	w.count = metaInt(w.meta, metaCount)
	w.expires = metaInt(w.meta, metaExpires)
	var open *group // a group whose operations the transaction holds, not ended yet
	for i := 0; i < len(batch); i++ {
		r := batch[i]
		if err := w.exec(r, s.sweepBatch); err != nil {
			_ = tx.Rollback()
			return batch, err
		}
		switch {
		case r.group == nil:
		case r.kind == reqGroupEnd:
			if open == r.group {
				open = nil
			}
		default:
			open = r.group
			r.answered = true
			r.done <- struct{}{}
		}
		if i == len(batch)-1 && open != nil {
			next, err := s.nextInGroup()
			if err != nil {
				_ = tx.Rollback()
				return batch, err
			}
			if next != nil {
				batch = append(batch, next)
			}
		}
	}
	if !w.dirty {
		return batch, tx.Rollback()
	}
	if err := w.meta.Put(metaCount, u64(uint64(w.count))); err != nil {
		_ = tx.Rollback()
		return batch, err
	}
	if err := w.meta.Put(metaExpires, u64(uint64(w.expires))); err != nil {
		_ = tx.Rollback()
		return batch, err
	}
	if err := tx.Commit(); err != nil {
		return batch, err
	}
	s.commits.Add(1)
	// Committed (fsync'd): make the staged values visible before anyone is answered.
	if w.moved {
		s.ovClear()
		s.staged.Store(0)
	} else {
		s.ovMerge(w.pending)
		s.staged.Add(int64(w.nstaged))
	}
	return batch, nil
}

// wtx is the committer's view of one read-write transaction. Methods return an error only for
// failures of the transaction itself; a request's own failure goes into the request.
type wtx struct {
	s                            *Store
	tx                           *bolt.Tx
	data, exp, tags, stage, meta *bolt.Bucket
	now, maxLen                  int64
	count, expires               int64 // the meta counters, as updated so far in this transaction
	dirty                        bool  // something was written
	// Until the staging log is moved in this transaction, mutations are appended to the log and
	// the data records they produce are kept in pending (nil: deleted), which reads consult
	// before the overlay and the data bucket.
	moved   bool
	pending map[string][]byte
	nstaged int
}

// bucket ids in the staging log.
const (
	stData byte = iota
	stExp
	stTags
)

func (w *wtx) bucket(id byte) *bolt.Bucket {
	switch id {
	case stData:
		return w.data
	case stExp:
		return w.exp
	}
	return w.tags
}

// putIn writes key=val into bucket id: appended to the staging log, or in place once moved.
func (w *wtx) putIn(id byte, key, val []byte) error {
	w.dirty = true
	if w.moved {
		return w.bucket(id).Put(key, val)
	}
	if id == stData {
		w.pending[string(key)] = val
	}
	return w.stageOp(id, 'P', key, val)
}

// delIn deletes key from bucket id, staged or in place.
func (w *wtx) delIn(id byte, key []byte) error {
	w.dirty = true
	if w.moved {
		return w.bucket(id).Delete(key)
	}
	if id == stData {
		w.pending[string(key)] = nil
	}
	return w.stageOp(id, 'D', key, nil)
}

// stageOp appends one mutation to the staging log under the next sequence number: the log's
// keys only grow, so a batch of writes dirties the log's last page or two, whatever the keys.
func (w *wtx) stageOp(id, op byte, key, val []byte) error {
	seq := w.s.seq
	w.s.seq++
	w.nstaged++
	rec := make([]byte, 0, 2+binary.MaxVarintLen64+len(key)+len(val))
	rec = append(rec, id, op)
	rec = binary.AppendUvarint(rec, uint64(len(key)))
	rec = append(append(rec, key...), val...)
	return w.stage.Put(u64(seq), rec)
}

// getData returns key's current data record: staged in this transaction, staged earlier (the
// overlay), or in the data bucket.
func (w *wtx) getData(dk []byte) []byte {
	if !w.moved {
		if rec, ok := w.pending[string(dk)]; ok {
			return rec
		}
		if rec, ok := w.s.ovPeek(dk); ok {
			return rec
		}
	}
	return w.data.Get(dk)
}

// move applies the staging log to the buckets, in order, and empties it. Afterwards this
// transaction writes in place.
func (w *wtx) move() error {
	if w.moved {
		return nil
	}
	w.moved, w.dirty = true, true
	clear(w.pending)
	// Applied in key order (stable, so the writes to one key keep their order): bbolt inserts
	// into a node by shifting it, and a node only splits at commit, so random-order inserts of a
	// long log into one transaction would cost quadratic copying.
	type mutation struct {
		id  byte
		del bool
		key []byte
		val []byte
	}
	var log []mutation
	c := w.stage.Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) < 3 {
			continue
		}
		n, sz := binary.Uvarint(v[2:])
		if sz <= 0 || n > uint64(len(v)-2-sz) {
			continue // cannot happen: the log is written by stageOp only
		}
		log = append(log, mutation{id: v[0], del: v[1] == 'D',
			key: cloneBytes(v[2+sz : 2+sz+int(n)]), val: cloneBytes(v[2+sz+int(n):])})
	}
	sort.SliceStable(log, func(i, j int) bool {
		if log[i].id != log[j].id {
			return log[i].id < log[j].id
		}
		return bytes.Compare(log[i].key, log[j].key) < 0
	})
	for _, m := range log {
		var err error
		if m.del {
			err = w.bucket(m.id).Delete(m.key)
		} else {
			err = w.bucket(m.id).Put(m.key, m.val)
		}
		if err != nil {
			return err
		}
	}
	if err := w.tx.DeleteBucket(bucketStage); err != nil {
		return err
	}
	b, err := w.tx.CreateBucket(bucketStage)
	w.stage = b
	return err
}

// exec runs one request. Its outputs are reset first, so that a retried request starts clean.
func (w *wtx) exec(r *request, sweepBatch int) error {
	r.res, r.ok, r.n, r.keys, r.err = store.Result{}, false, 0, nil, nil
	if r.kind == reqDrain || r.kind == reqGroupEnd {
		return nil
	}
	switch r.kind {
	case reqOp, reqMulti:
		if !w.moved && w.s.staged.Load()+int64(w.nstaged) >= int64(w.s.maxStaged) {
			if err := w.move(); err != nil {
				return err
			}
		}
	case reqKeyTags:
	default: // the whole-keyspace requests work on the buckets themselves
		if err := w.move(); err != nil {
			return err
		}
	}
	switch r.kind {
	case reqMove:
		return nil
	case reqKeyTags:
		r.keys = w.keyTags(r.key)
		return nil
	case reqOp:
		if r.op.Now != 0 { // EXEC's frozen clock, for this op only
			now := w.now
			w.now = r.op.Now
			defer func() { w.now = now }()
		}
		res, opErr, err := w.apply(r.key, &r.op)
		r.res, r.err = res, opErr
		return err
	case reqMulti:
		return w.setMulti(r)
	case reqInvalidate:
		keys, err := w.invalidate(r.tags)
		r.keys = keys
		return err
	case reqFlush:
		return w.flush()
	case reqSweep:
		n, err := w.sweep(sweepBatch)
		r.n = n
		return err
	}
	return nil
}

// keyTags returns the tags of key's live record, copied out of the transaction's memory.
func (w *wtx) keyTags(key []byte) [][]byte {
	raw := w.getData(appendDataKey(make([]byte, 0, 8+len(key)), key))
	if raw == nil || store.Expired(recExpire(raw), w.now) {
		return nil
	}
	var out [][]byte
	for _, t := range decodeRecord(raw).tags {
		out = append(out, cloneBytes(t))
	}
	return out
}

// load reads key's record, removing it first if it has expired.
func (w *wtx) load(dk, key []byte) (record, bool, error) {
	raw := w.getData(dk)
	if raw == nil {
		return record{}, false, nil
	}
	rec := decodeRecord(raw)
	if store.Expired(rec.expireAt, w.now) {
		w.s.removedOnItsOwn(key)
		return record{}, false, w.remove(dk, key, rec)
	}
	return rec, true, nil
}

// apply runs one Op with store.Apply and writes its outcome: the value, the expiry index and,
// for a Set, the key's new tags.
func (w *wtx) apply(key []byte, op *store.Op) (res store.Result, opErr, err error) {
	dk := appendDataKey(make([]byte, 0, 8+len(key)), key)
	cur, exists, err := w.load(dk, key)
	if err != nil {
		return res, nil, err
	}
	next, action, res, opErr := store.Apply(store.Entry{Value: cur.value, ExpireAt: cur.expireAt, Enc: cur.enc}, exists, op, w.now, w.maxLen)
	res.Value = cloneBytes(res.Value) // it may alias the transaction's memory
	if opErr != nil {
		return res, opErr, nil
	}
	switch action {
	case store.Put:
		tags := cur.tags
		if op.Kind == store.Set {
			tags = dedupe(op.Tags)
		}
		err = w.put(dk, key, cur, exists, next, tags, op.Kind == store.Set)
	case store.Remove:
		if exists {
			err = w.remove(dk, key, cur)
		}
	}
	return res, nil, err
}

// put writes key's new entry with tags; old is the current record when existed. replaceTags says
// whether the tag index must change (a Set); other writes keep the key's tags.
func (w *wtx) put(dk, key []byte, old record, existed bool, next store.Entry, tags [][]byte, replaceTags bool) error {
	w.dirty = true
	if !existed || old.expireAt != next.ExpireAt {
		if existed && old.expireAt != 0 {
			if err := w.delIn(stExp, expKey(old.expireAt, key)); err != nil {
				return err
			}
			w.expires--
		}
		if next.ExpireAt != 0 {
			if err := w.putIn(stExp, expKey(next.ExpireAt, key), nil); err != nil {
				return err
			}
			w.expires++
		}
	}
	if replaceTags || !existed {
		if existed {
			for _, t := range old.tags {
				if err := w.delIn(stTags, tagKey(t, key)); err != nil {
					return err
				}
			}
		}
		for _, t := range tags {
			if err := w.putIn(stTags, tagKey(t, key), nil); err != nil {
				return err
			}
		}
	}
	if !existed {
		w.count++
	}
	return w.putIn(stData, dk, encodeRecord(next.ExpireAt, next.Enc, tags, next.Value))
}

// remove deletes key, whose current record is rec, with its expiry and tag index entries.
func (w *wtx) remove(dk, key []byte, rec record) error {
	w.dirty = true
	if err := w.delIn(stData, dk); err != nil {
		return err
	}
	w.count--
	if rec.expireAt != 0 {
		if err := w.delIn(stExp, expKey(rec.expireAt, key)); err != nil {
			return err
		}
		w.expires--
	}
	for _, t := range rec.tags {
		if err := w.delIn(stTags, tagKey(t, key)); err != nil {
			return err
		}
	}
	return nil
}

// setMulti is SetMulti inside the transaction.
func (w *wtx) setMulti(r *request) error {
	if r.nx {
		for _, kv := range r.pairs {
			dk := appendDataKey(make([]byte, 0, 8+len(kv.Key)), kv.Key)
			_, exists, err := w.load(dk, kv.Key)
			if err != nil {
				return err
			}
			if exists {
				return nil
			}
		}
	}
	op := store.Op{Kind: store.Set, ExpireAt: r.expireAt}
	for i, kv := range r.pairs {
		op.Value = kv.Value
		res, opErr, err := w.apply(kv.Key, &op)
		if err != nil {
			return err
		}
		if opErr != nil {
			r.err = opErr
			return nil
		}
		r.pairs[i].Created = !res.Found // the caller's pairs: SetMulti reports it
	}
	r.ok = true
	return nil
}

// invalidate deletes every key under tags and returns the live ones, each once.
func (w *wtx) invalidate(tags [][]byte) ([][]byte, error) {
	var out [][]byte
	seen := make(map[string]struct{})
	for _, tag := range tags {
		prefix := tagPrefix(tag)
		var keys [][]byte
		c := w.tags.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, cloneBytes(k[len(prefix):]))
		}
		for _, key := range keys {
			if _, dup := seen[string(key)]; dup {
				continue
			}
			dk := appendDataKey(make([]byte, 0, 8+len(key)), key)
			raw := w.data.Get(dk)
			if raw == nil { // cannot happen while the index is consistent; heal it
				w.dirty = true
				if err := w.tags.Delete(tagKey(tag, key)); err != nil {
					return nil, err
				}
				continue
			}
			rec := decodeRecord(raw)
			live := !store.Expired(rec.expireAt, w.now)
			if err := w.remove(dk, key, rec); err != nil {
				return nil, err
			}
			seen[string(key)] = struct{}{}
			if live {
				out = append(out, key)
			}
		}
	}
	return out, nil
}

// flush empties the data and index buckets.
func (w *wtx) flush() error {
	w.dirty = true
	for _, name := range [][]byte{bucketData, bucketExp, bucketTags, bucketStage} {
		if err := w.tx.DeleteBucket(name); err != nil {
			return err
		}
		b, err := w.tx.CreateBucket(name)
		if err != nil {
			return err
		}
		switch {
		case bytes.Equal(name, bucketData):
			w.data = b
		case bytes.Equal(name, bucketExp):
			w.exp = b
		case bytes.Equal(name, bucketStage):
			w.stage = b
		default:
			w.tags = b
		}
	}
	w.count, w.expires = 0, 0
	return nil
}

// sweep removes up to limit expired keys, oldest expiry first.
func (w *wtx) sweep(limit int) (int, error) {
	var due [][]byte
	c := w.exp.Cursor()
	for k, _ := c.First(); k != nil && len(due) < limit && int64(binary.BigEndian.Uint64(k)) <= w.now; k, _ = c.Next() {
		due = append(due, cloneBytes(k))
	}
	n := 0
	for _, ek := range due {
		at, key := int64(binary.BigEndian.Uint64(ek)), ek[8:]
		dk := appendDataKey(make([]byte, 0, 8+len(key)), key)
		raw := w.data.Get(dk)
		if raw != nil {
			if rec := decodeRecord(raw); rec.expireAt == at {
				w.s.removedOnItsOwn(key)
				if err := w.remove(dk, key, rec); err != nil {
					return n, err
				}
				n++
				continue
			}
		}
		// A stale index entry (cannot happen while the index is consistent); heal it.
		w.dirty = true
		if err := w.exp.Delete(ek); err != nil {
			return n, err
		}
	}
	return n, nil
}

// dedupe returns tags without repeats, keeping the first of each.
func dedupe(tags [][]byte) [][]byte {
	if len(tags) < 2 {
		return tags
	}
	out := make([][]byte, 0, len(tags))
	seen := make(map[string]struct{}, len(tags))
	for _, t := range tags {
		if _, dup := seen[string(t)]; !dup {
			seen[string(t)] = struct{}{}
			out = append(out, t)
		}
	}
	return out
}
