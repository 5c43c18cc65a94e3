package disk

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/vela-cache/vela/glob"
	"github.com/vela-cache/vela/store"
)

// Config configures a disk Store. Path is required; every other zero value is a default.
type Config struct {
	// Path is the bbolt file; its directory is created if missing.
	Path string
	// MaxValueLen is the largest value APPEND may build (proto_max_bulk_len). Default 512 MiB.
	MaxValueLen int64
	// MaxBatch is the most write requests committed in one transaction. Larger batches amortise
	// the fsync over more writers but make each commit (and the writers' wait) longer. Default 1024.
	MaxBatch int
	// SweepBatch is the most expired keys one sweep transaction removes, so a sweep never holds
	// the writer for long. Default 2048.
	SweepBatch int
	// MaxStaged is the most mutations the staging log holds before the committer moves it into
	// place (see doc.go); a larger log makes moves cheaper per write and restarts after a crash
	// longer. Default 16384.
	MaxStaged int
	// MoveInterval is how often a non-empty staging log is moved into place. Default 200ms.
	MoveInterval time.Duration
	// Now returns the current unix milliseconds; nil means the wall clock. Tests may fix it.
	Now func() int64
}

// Errors particular to the disk store.
var (
	// ErrKeyTooLong: the key, or a tag together with the key, exceeds bbolt's key size limit.
	ErrKeyTooLong = errors.New("disk store: key too long (a key, and each tag with its key, must fit in 32760 bytes)")
	// ErrFormat: the file is not a Vela disk store of a version this build reads.
	ErrFormat = errors.New("disk store: file is not a Vela store of a supported version")
)

const (
	formatVersion = 1
	// maxKeyLen leaves room in a bbolt key (32768) for the 8-byte hash or expiry prefix.
	maxKeyLen = bolt.MaxKeySize - 8
)

var (
	bucketData = []byte("data")
	bucketExp  = []byte("exp")
	bucketTags = []byte("tags")
	bucketMeta = []byte("meta")
	// bucketStage is the staging log (see doc.go): sequence number -> one bucket mutation.
	bucketStage = []byte("stage")

	metaVersion = []byte("version")
	metaCount   = []byte("count")
	metaExpires = []byte("expires")
)

// Store is the bbolt-backed store. It is safe for concurrent use.
type Store struct {
	// onRemove hears of each key the store expires (NotifyRemovals), or is nil. A removal in a
	// transaction that then fails is reported too: a needless invalidation, never a missed one.
	onRemove   func(key []byte, evicted bool)
	db         *bolt.DB
	maxLen     int64
	maxBatch   int
	sweepBatch int
	maxStaged  int
	moveEvery  time.Duration
	now        func() int64

	// The overlay: data records committed to the staging log but not yet moved into the data
	// bucket (nil: deleted), sharded by the first byte of the data key. Only the committer
	// writes it; readers consult it before the data bucket.
	ov      [ovShards]ovShard
	ovLen   atomic.Int64  // entries in the overlay, so reads skip it when empty
	staged  atomic.Int64  // mutations in the staging log
	commits atomic.Uint64 // transactions committed, each with its fsync
	seq     uint64        // next staging sequence number; the committer's only

	groupTimer  *time.Timer   // the committer's, for nextInGroup
	groupsSplit atomic.Uint64 // groups committed in more than one transaction

	reqs    chan *request // writes waiting for the committer
	quit    chan struct{} // closed by Close: the committer drains reqs and stops
	stopped chan struct{} // closed when the committer has answered its last request
	closed  atomic.Bool
	once    sync.Once
	errShut error
	pool    sync.Pool // *request
}

var (
	_ store.Store       = (*Store)(nil)
	_ store.Keyspace    = (*Store)(nil)
	_ store.MultiSetter = (*Store)(nil)
	_ store.Batcher     = (*Store)(nil)
	_ store.Pipeliner   = (*Store)(nil)
	_ store.Drainer     = (*Store)(nil)
	_ store.Sweeper     = (*Store)(nil)
	_ store.Tagger      = (*Store)(nil)
)

// Open opens (or creates) the store file at cfg.Path and starts its committer.
func Open(cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("disk store: no path")
	}
	s := &Store{maxLen: cfg.MaxValueLen, maxBatch: cfg.MaxBatch, sweepBatch: cfg.SweepBatch, now: cfg.Now}
	if s.maxLen <= 0 {
		s.maxLen = 512 << 20
	}
	if s.maxBatch <= 0 {
		s.maxBatch = 1024
	}
	if s.sweepBatch <= 0 {
		s.sweepBatch = 2048
	}
	if s.now == nil {
		s.now = func() int64 { return time.Now().UnixMilli() }
	}
	if s.maxStaged <= 0 {
		s.maxStaged = 65536
	}
	if s.moveEvery <= 0 {
		s.moveEvery = time.Second
	}
	for i := range s.ov {
		s.ov[i].m = map[string][]byte{}
	}
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("disk store: %w", err)
		}
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{
		Timeout:      time.Second,
		FreelistType: bolt.FreelistMapType,
		NoStatistics: true,
		// The freelist is rebuilt at open (a scan of the page headers: 0.14 s for a million keys)
		// instead of written by every commit, which makes each group commit about a quarter
		// cheaper. Data and meta pages are still fsync'd by every commit.
		NoFreelistSync: true,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("disk store: %s is locked by another process", cfg.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("disk store: open %s: %w", cfg.Path, err)
	}
	if err := db.Update(initBuckets); err != nil {
		_ = db.Close()
		return nil, err
	}
	s.db = db
	// A log left by a crash is moved into place before anything is served.
	if _, err := s.commitTx([]*request{{kind: reqMove}}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("disk store: replaying the staging log: %w", err)
	}
	s.reqs = make(chan *request, s.maxBatch)
	s.quit = make(chan struct{})
	s.stopped = make(chan struct{})
	s.pool.New = func() any { return &request{done: make(chan struct{}, 1)} }
	go s.run()
	return s, nil
}

// initBuckets creates the buckets of a new file and checks the version of an existing one.
func initBuckets(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if tx.Bucket(bucketData) != nil {
			return ErrFormat
		}
		var err error
		if meta, err = tx.CreateBucket(bucketMeta); err != nil {
			return err
		}
		for _, k := range [][]byte{metaVersion, metaCount, metaExpires} {
			if err := meta.Put(k, make([]byte, 8)); err != nil {
				return err
			}
		}
		if err := meta.Put(metaVersion, u64(formatVersion)); err != nil {
			return err
		}
	}
	if v := meta.Get(metaVersion); len(v) != 8 || binary.BigEndian.Uint64(v) != formatVersion {
		return ErrFormat
	}
	for _, b := range [][]byte{bucketData, bucketExp, bucketTags, bucketStage} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the committer after it has answered every queued write, then closes the file. It
// is idempotent.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		close(s.quit)
		<-s.stopped
		s.errShut = s.db.Close()
	})
	return s.errShut
}

// Do applies op to key. Reads run in a read-only transaction; writes are committed (fsync'd)
// before Do returns.
func (s *Store) Do(ctx context.Context, key []byte, op store.Op) (store.Result, error) {
	if s.closed.Load() {
		return store.Result{}, store.ErrClosed
	}
	if groupOf(ctx) != nil {
		return s.doInGroup(ctx, key, op)
	}
	switch op.Kind {
	case store.Get, store.Inspect, store.Touch:
		return s.read(key, &op)
	case store.GetEx:
		if op.TTL == store.TTLKeep {
			return s.read(key, &op)
		}
	}
	if err := checkWrite(ctx, key, &op); err != nil {
		return store.Result{}, err
	}
	r := s.pool.Get().(*request)
	r.kind, r.key, r.op = reqOp, key, op
	if err := s.submit(r); err != nil {
		return store.Result{}, err
	}
	res, err := r.res, r.err
	s.release(r)
	return res, err
}

// doInGroup is Do for an operation of a group (group.go): reads too go to the committer, whose
// open transaction holds the group's earlier writes, and the answer comes before the commit.
func (s *Store) doInGroup(ctx context.Context, key []byte, op store.Op) (store.Result, error) {
	if op.Kind != store.Get && op.Kind != store.Inspect && op.Kind != store.Touch {
		if err := checkWrite(ctx, key, &op); err != nil {
			return store.Result{}, err
		}
	}
	r := &request{kind: reqOp, key: key, op: op, done: make(chan struct{}, 1)}
	inGroup(ctx, r)
	if err := s.submit(r); err != nil {
		return store.Result{}, err
	}
	return r.res, r.err
}

// Start begins a SET (without tags) and returns without waiting for its commit, so that the
// writes a client pipelines share commits instead of paying one each, in order. Everything else,
// reads included, returns nil: the caller then waits for its started writes and uses Do, so a
// read still sees them (store.Pipeliner), and reads never queue behind the committer. In a group
// it returns nil too: Do answers a group's operation without waiting for a commit anyway.
func (s *Store) Start(ctx context.Context, key []byte, op store.Op) store.Call {
	if s.closed.Load() || op.Kind != store.Set || len(op.Tags) > 0 || groupOf(ctx) != nil || checkWrite(ctx, key, &op) != nil {
		return nil // Do reports the refusal
	}
	// The caller may reuse key and op's buffers once Start returns.
	op.Value, op.Expect = bytes.Clone(op.Value), bytes.Clone(op.Expect)
	r := &request{kind: reqOp, key: bytes.Clone(key), op: op, done: make(chan struct{}, 1)}
	if s.enqueue(r) != nil {
		return nil
	}
	return &writeCall{s: s, r: r}
}

// Commits returns how many transactions the store has committed, each with its fsync.
func (s *Store) Commits() uint64 { return s.commits.Load() }

// Drain implements store.Drainer: the committer takes requests in order and answers a batch
// only after committing it, so once a request queued now is answered every write started
// before it is in the store. A batch that changes nothing is not committed: this costs no
// fsync of its own.
func (s *Store) Drain(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	r := &request{kind: reqDrain, done: make(chan struct{}, 1)}
	inGroup(ctx, r)
	if err := s.submit(r); err != nil {
		return err
	}
	return r.err
}

// writeCall is a write begun with Start.
type writeCall struct {
	s    *Store
	r    *request
	once sync.Once
	res  store.Result
	err  error
}

// Wait implements store.Call: it returns once the write has been committed.
func (c *writeCall) Wait() (store.Result, error) {
	c.once.Do(func() {
		if c.err = c.s.wait(c.r); c.err == nil {
			c.res, c.err = c.r.res, c.r.err
		}
	})
	return c.res, c.err
}

// checkWrite refuses a write op that no transaction should see: a key or tags over the limits,
// or a caller that has gone.
func checkWrite(ctx context.Context, key []byte, op *store.Op) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if op.Kind == store.Set {
		if err := checkTags(key, op.Tags); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// DoBatch applies op to every key (DEL k1 k2 …), queueing all the writes before it waits for any,
// so that they share the committer's transactions: one commit, and one fsync, per batch of up to
// maxBatch keys instead of one per key. It returns a result for each key it queued, in order (an
// empty one for a key whose write failed), and the first error; it queues no key after one it
// refuses (a key over the size limit, a caller gone).
func (s *Store) DoBatch(ctx context.Context, keys [][]byte, op store.Op) ([]store.Result, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	var err error
	queued := make([]*request, 0, len(keys))
	for _, key := range keys {
		if err = checkWrite(ctx, key, &op); err != nil {
			break
		}
		var r *request
		if grouped := groupOf(ctx) != nil; grouped {
			r = &request{done: make(chan struct{}, 1)}
			inGroup(ctx, r)
		} else {
			r = s.pool.Get().(*request)
		}
		r.kind, r.key, r.op = reqOp, key, op
		if err = s.enqueue(r); err != nil {
			s.releaseUnlessGrouped(r)
			break
		}
		queued = append(queued, r)
	}
	out := make([]store.Result, len(queued))
	for i, r := range queued {
		werr := s.wait(r)
		if werr == nil {
			werr = r.err
		}
		if werr == nil {
			out[i] = r.res
		}
		err = cmp.Or(err, werr)
		s.releaseUnlessGrouped(r)
	}
	return out, err
}

// releaseUnlessGrouped returns r to the pool, unless it is a group's (the committer may still
// read it).
func (s *Store) releaseUnlessGrouped(r *request) {
	if r.group == nil {
		s.release(r)
	}
}

// read runs a read-only op in a read transaction.
func (s *Store) read(key []byte, op *store.Op) (res store.Result, err error) {
	now := op.Now // EXEC's frozen clock, or else the store's
	if now == 0 {
		now = s.now()
	}
	var buf [128]byte
	dk := appendDataKey(buf[:0], key)
	if raw, ok := s.ovGet(dk); ok {
		var e store.Entry
		live := false
		if raw != nil {
			e = store.Entry{ExpireAt: recExpire(raw), Value: recValue(raw), Enc: recEnc(raw)}
			live = !store.Expired(e.ExpireAt, now)
		}
		_, _, res, err = store.Apply(e, live, op, now, s.maxLen)
		res.Value = cloneBytes(res.Value)
		return res, err
	}
	dbErr := s.db.View(func(tx *bolt.Tx) error {
		raw := tx.Bucket(bucketData).Get(dk)
		var e store.Entry
		live := false
		if raw != nil {
			e = store.Entry{ExpireAt: recExpire(raw), Value: recValue(raw), Enc: recEnc(raw)}
			live = !store.Expired(e.ExpireAt, now)
		}
		_, _, res, err = store.Apply(e, live, op, now, s.maxLen)
		res.Value = cloneBytes(res.Value) // raw is only valid inside the transaction
		return nil
	})
	if dbErr != nil {
		return store.Result{}, s.dbError(dbErr)
	}
	return res, err
}

var (
	_ store.TagReader = (*Store)(nil)
	_ store.TagLister = (*Store)(nil)
)

// TagKeys returns the keys carrying tag, from the tag index (store.TagLister).
func (s *Store) TagKeys(ctx context.Context, tag []byte) ([][]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if err := s.syncGroup(ctx); err != nil {
		return nil, err
	}
	if err := s.settle(ctx); err != nil { // staged writes are not in the tag index yet
		return nil, err
	}
	prefix := tagPrefix(tag)
	var out [][]byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTags).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			out = append(out, cloneBytes(k[len(prefix):])) // k is only valid inside the transaction
		}
		return nil
	}); err != nil {
		return nil, s.dbError(err)
	}
	return out, nil
}

// KeyTags returns the tags of key's record (nil when the key has none, does not exist or has
// expired): a cluster copying or handing the key over keeps them.
func (s *Store) KeyTags(ctx context.Context, key []byte) ([][]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if groupOf(ctx) != nil { // in the group's transaction, which may have written the key
		r := &request{kind: reqKeyTags, key: key, done: make(chan struct{}, 1)}
		inGroup(ctx, r)
		if err := s.submit(r); err != nil {
			return nil, err
		}
		return r.keys, r.err
	}
	now := s.now()
	var buf [128]byte
	dk := appendDataKey(buf[:0], key)
	tagsOf := func(raw []byte) [][]byte {
		if raw == nil || store.Expired(recExpire(raw), now) {
			return nil
		}
		tags := decodeRecord(raw).tags
		if len(tags) == 0 {
			return nil
		}
		out := make([][]byte, len(tags))
		for i, t := range tags {
			out[i] = cloneBytes(t) // raw is only valid inside the transaction
		}
		return out
	}
	if raw, ok := s.ovGet(dk); ok {
		return tagsOf(raw), nil
	}
	var out [][]byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		out = tagsOf(tx.Bucket(bucketData).Get(dk))
		return nil
	}); err != nil {
		return nil, s.dbError(err)
	}
	return out, nil
}

// dbError maps bbolt's errors after Close to store.ErrClosed.
func (s *Store) dbError(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) || s.closed.Load() {
		return store.ErrClosed
	}
	return fmt.Errorf("disk store: %w", err)
}

// SetMulti writes every pair in one transaction; with onlyIfNoneExist it writes nothing when any
// key is live. Every pair is written without tags.
func (s *Store) SetMulti(ctx context.Context, pairs []store.KV, expireAt int64, onlyIfNoneExist bool) (bool, error) {
	if s.closed.Load() {
		return false, store.ErrClosed
	}
	for _, kv := range pairs {
		if err := checkKey(kv.Key); err != nil {
			return false, err
		}
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r := &request{kind: reqMulti, pairs: pairs, expireAt: expireAt, nx: onlyIfNoneExist, done: make(chan struct{}, 1)}
	inGroup(ctx, r)
	if err := s.submit(r); err != nil {
		return false, err
	}
	return r.ok, r.err
}

// InvalidateTags deletes every key carrying any of tags, in one transaction, and returns the live
// ones it deleted.
func (s *Store) InvalidateTags(ctx context.Context, tags [][]byte) ([][]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := &request{kind: reqInvalidate, tags: tags, done: make(chan struct{}, 1)}
	inGroup(ctx, r)
	if err := s.submit(r); err != nil {
		return nil, err
	}
	return r.keys, r.err
}

// Flush deletes every key.
func (s *Store) Flush(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return s.control(ctx, reqFlush)
}

// NotifyRemovals implements store.RemovalNotifier.
func (s *Store) NotifyRemovals(fn func(key []byte, evicted bool)) { s.onRemove = fn }

// removedOnItsOwn reports key, removed because it expired, to NotifyRemovals's function.
func (s *Store) removedOnItsOwn(key []byte) {
	if s.onRemove != nil {
		s.onRemove(key, false)
	}
}

// Sweep removes expired entries (and their tags) from the file, SweepBatch per transaction, until
// none is left or ctx ends.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		if s.closed.Load() {
			return total, store.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
		r := &request{kind: reqSweep, done: make(chan struct{}, 1)}
		if err := s.submit(r); err != nil {
			return total, err
		}
		total += r.n
		if r.err != nil || r.n < s.sweepBatch {
			return total, r.err
		}
	}
}

// Len returns the number of live keys: the stored count less the expired keys not yet swept.
func (s *Store) Len(ctx context.Context) (int64, error) { return s.liveCount(ctx, metaCount) }

// Expires returns the number of live keys with an expiry, for INFO's keyspace line.
func (s *Store) Expires(ctx context.Context) (int64, error) { return s.liveCount(ctx, metaExpires) }

// liveCount reads a stored count (every key, or every key with an expiry) less the keys that
// have expired but are not yet swept.
func (s *Store) liveCount(ctx context.Context, counter []byte) (int64, error) {
	if err := s.syncGroup(ctx); err != nil {
		return 0, err
	}
	if err := s.settle(ctx); err != nil {
		return 0, err
	}
	var n int64
	now := s.now()
	err := s.db.View(func(tx *bolt.Tx) error {
		n = metaInt(tx.Bucket(bucketMeta), counter) - countExpired(tx, now)
		return nil
	})
	if err != nil {
		return 0, s.dbError(err)
	}
	return n, nil
}

// settle moves the staging log into place, so that the indexes and the key order reflect every
// acknowledged write (Len, Expires and Scan read them directly).
func (s *Store) settle(ctx context.Context) error {
	if s.staged.Load() == 0 {
		return nil
	}
	if s.closed.Load() {
		return store.ErrClosed
	}
	return s.control(ctx, reqMove)
}

// control asks the committer for a whole-store operation and waits for it.
func (s *Store) control(ctx context.Context, kind reqKind) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{kind: kind, done: make(chan struct{}, 1)}
	if kind != reqMove { // a move is for readers of the file: it must be committed (syncGroup)
		inGroup(ctx, r)
	}
	if err := s.submit(r); err != nil {
		return err
	}
	return r.err
}

// ovShards is the number of overlay shards.
const ovShards = 64

// ovShard is one part of the overlay.
type ovShard struct {
	mu sync.RWMutex // guards m; the committer holds it only to write
	m  map[string][]byte
	_  [40]byte // keep neighbouring shards' locks off one cache line
}

// ovGet returns the overlay's record for a data key (nil: deleted) and whether it has one.
func (s *Store) ovGet(dk []byte) ([]byte, bool) {
	if s.ovLen.Load() == 0 {
		return nil, false
	}
	sh := &s.ov[dk[0]%ovShards]
	sh.mu.RLock()
	rec, ok := sh.m[string(dk)]
	sh.mu.RUnlock()
	return rec, ok
}

// ovPeek is ovGet for the committer, the overlay's only writer: no lock needed.
func (s *Store) ovPeek(dk []byte) ([]byte, bool) {
	if s.ovLen.Load() == 0 {
		return nil, false
	}
	rec, ok := s.ov[dk[0]%ovShards].m[string(dk)]
	return rec, ok
}

// ovMerge publishes a committed transaction's staged records.
func (s *Store) ovMerge(pending map[string][]byte) {
	for k, rec := range pending {
		sh := &s.ov[k[0]%ovShards]
		sh.mu.Lock()
		if _, ok := sh.m[k]; !ok {
			s.ovLen.Add(1)
		}
		sh.m[k] = rec
		sh.mu.Unlock()
	}
}

// ovClear empties the overlay after the staging log has been moved into place.
func (s *Store) ovClear() {
	if s.ovLen.Load() == 0 {
		return
	}
	for i := range s.ov {
		sh := &s.ov[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.mu.Unlock()
	}
	s.ovLen.Store(0)
}

// countExpired counts the head of the exp index: keys whose expiry has passed.
func countExpired(tx *bolt.Tx, now int64) int64 {
	var n int64
	c := tx.Bucket(bucketExp).Cursor()
	for k, _ := c.First(); k != nil && int64(binary.BigEndian.Uint64(k)) <= now; k, _ = c.Next() {
		n++
	}
	return n
}

// Scan returns keys in hash order from cursor, the top store.CursorBits bits of a key hash. It
// stops once it has count keys or has visited ten times count entries, and never between two keys
// whose hashes share those bits; the next cursor is those bits of the first key not visited, or 0
// at the end. A larger cursor is a whole hash, as builds before CursorBits returned them: the
// iteration goes on from there.
func (s *Store) Scan(ctx context.Context, cursor uint64, pattern []byte, count int) ([][]byte, uint64, error) {
	if err := s.syncGroup(ctx); err != nil {
		return nil, 0, err
	}
	if err := s.settle(ctx); err != nil {
		return nil, 0, err
	}
	if count < 1 {
		count = 10
	}
	seek := cursor << cursorShift
	if cursor >= 1<<store.CursorBits {
		seek = cursor // an older build's cursor: a whole hash
	}
	now := s.now()
	var keys [][]byte
	var next uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketData).Cursor()
		visited := 0
		var last uint64
		// Keys are ordered by hash; a cursor is the top CursorBits bits of the next key's
		// hash, and a page ends only between two such prefixes, so resuming at a prefix never
		// skips a key (keys sharing one are rare, and returned together).
		for k, v := c.Seek(u64(seek)); k != nil; k, v = c.Next() {
			h := binary.BigEndian.Uint64(k) >> cursorShift
			if (len(keys) >= count || visited >= 10*count) && h != last {
				next = h
				return nil
			}
			visited++
			last = h
			if store.Expired(recExpire(v), now) {
				continue
			}
			if key := k[8:]; len(pattern) == 0 || glob.Match(pattern, key) {
				keys = append(keys, cloneBytes(key))
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, s.dbError(err)
	}
	return keys, next, nil
}

// RandomKey returns a live key chosen at random (store.Sampler): keys are ordered by their
// hash, so the first live one at or after a random hash is a uniformly random one. At most
// maxRandomVisits expired records are stepped over before it gives up (none found), as a store
// holding little but expired records not swept yet would make the walk long.
func (s *Store) RandomKey(ctx context.Context) ([]byte, bool, error) {
	if err := s.syncGroup(ctx); err != nil {
		return nil, false, err
	}
	if err := s.settle(ctx); err != nil {
		return nil, false, err
	}
	now := s.now()
	var key []byte
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketData).Cursor()
		k, v := c.Seek(u64(rand.Uint64()))
		wrapped := false
		for visited := 0; visited < maxRandomVisits; visited++ {
			if k == nil {
				if wrapped {
					return nil
				}
				wrapped = true
				if k, v = c.First(); k == nil {
					return nil
				}
			}
			if !store.Expired(recExpire(v), now) {
				key, found = append([]byte{}, k[8:]...), true
				return nil
			}
			k, v = c.Next()
		}
		return nil
	})
	if err != nil {
		return nil, false, s.dbError(err)
	}
	return key, found, nil
}

// maxRandomVisits bounds RandomKey's walk over expired records.
const maxRandomVisits = 100000

// cursorShift turns a key's 64-bit hash into a SCAN cursor of store.CursorBits bits.
const cursorShift = 64 - store.CursorBits

// checkKey refuses keys bbolt cannot hold with the 8-byte prefix.
func checkKey(key []byte) error {
	if len(key) > maxKeyLen {
		return ErrKeyTooLong
	}
	return nil
}

// checkTags refuses tags whose tag-index key would exceed bbolt's limit.
func checkTags(key []byte, tags [][]byte) error {
	for _, t := range tags {
		if len(t)+len(key)+binary.MaxVarintLen64 > bolt.MaxKeySize {
			return ErrKeyTooLong
		}
	}
	return nil
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func metaInt(meta *bolt.Bucket, k []byte) int64 {
	v := meta.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// appendDataKey appends the data-bucket key of key: its hash, then the key.
func appendDataKey(dst, key []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, xxhash.Sum64(key))
	return append(dst, key...)
}

// expKey is the exp-index key of key expiring at at.
func expKey(at int64, key []byte) []byte {
	b := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(b, uint64(at))
	return append(b, key...)
}

// tagPrefix is the tag-index prefix of tag's keys.
func tagPrefix(tag []byte) []byte {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(tag)), uint64(len(tag)))
	return append(b, tag...)
}

// tagKey is the tag-index key of key under tag.
func tagKey(tag, key []byte) []byte {
	b := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(tag)+len(key)), uint64(len(tag)))
	return append(append(b, tag...), key...)
}

// record is a decoded data-bucket value. Its slices alias the transaction's memory.
type record struct {
	expireAt int64
	enc      store.Encoding
	tags     [][]byte
	value    []byte
}

// A record's first word is the expiry; its top bit, which no expiry uses, says that one byte
// follows with the value's store.Encoding. Records of store.EncodeByValue, and every record of
// files written before the encoding was kept, have no such byte.
const encFlag = 1 << 63

// encodeRecord builds a data-bucket value.
func encodeRecord(expireAt int64, enc store.Encoding, tags [][]byte, value []byte) []byte {
	n := 9 + binary.MaxVarintLen64 + len(value)
	for _, t := range tags {
		n += binary.MaxVarintLen64 + len(t)
	}
	b := make([]byte, 8, n)
	binary.BigEndian.PutUint64(b, uint64(expireAt))
	if enc != store.EncodeByValue {
		b[0] |= encFlag >> 56
		b = append(b, byte(enc))
	}
	b = binary.AppendUvarint(b, uint64(len(tags)))
	for _, t := range tags {
		b = binary.AppendUvarint(b, uint64(len(t)))
		b = append(b, t...)
	}
	return append(b, value...)
}

func recExpire(raw []byte) int64 {
	if len(raw) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(raw) &^ encFlag)
}

func recEnc(raw []byte) store.Encoding {
	if len(raw) < 9 || raw[0]&(encFlag>>56) == 0 {
		return store.EncodeByValue
	}
	return store.Encoding(raw[8])
}

// recTags returns the part of a record from its tag count on.
func recTags(raw []byte) []byte {
	if len(raw) < 9 {
		return nil
	}
	if raw[0]&(encFlag>>56) != 0 {
		return raw[9:]
	}
	return raw[8:]
}

// recValue returns the value of a record without decoding its tags into a slice.
func recValue(raw []byte) []byte {
	p := recTags(raw)
	if len(p) == 0 {
		return nil
	}
	n, w := binary.Uvarint(p)
	p = p[w:]
	for ; n > 0 && w > 0; n-- {
		var l uint64
		l, w = binary.Uvarint(p)
		if w <= 0 || l > uint64(len(p)-w) {
			return nil
		}
		p = p[w+int(l):]
	}
	return p
}

// decodeRecord decodes a record; a malformed one decodes as far as it can.
func decodeRecord(raw []byte) record {
	r := record{expireAt: recExpire(raw), enc: recEnc(raw)}
	p := recTags(raw)
	if len(p) == 0 {
		return r
	}
	n, w := binary.Uvarint(p)
	if w <= 0 || n > uint64(len(p)) {
		return r
	}
	p = p[w:]
	if n > 0 {
		r.tags = make([][]byte, 0, n)
	}
	for ; n > 0; n-- {
		l, w := binary.Uvarint(p)
		if w <= 0 || l > uint64(len(p)-w) {
			return r
		}
		r.tags = append(r.tags, p[w:w+int(l)])
		p = p[w+int(l):]
	}
	r.value = p
	return r
}

// Object describes key for OBJECT (store.Describer). The disk store keeps no access data (a
// read would have to write the file), so it reports no idle time or frequency; it does not
// bound its memory, so small integers count as shared, as in a Redis without maxmemory.
func (s *Store) Object(ctx context.Context, key []byte, _ store.ObjectField) (store.Object, bool, error) {
	res, err := s.Do(ctx, key, store.Op{Kind: store.Get})
	if err != nil || !res.Found {
		return store.Object{}, false, err
	}
	obj := store.Object{Encoding: res.Enc.Name(res.Value), RefCount: 1, Idle: -1, Freq: -1}
	if res.Enc.SharedInt(res.Value) {
		obj.RefCount = store.SharedRefCount
	}
	return obj, true, nil
}

// bboltElement is the header bbolt keeps beside every key and value on a leaf page.
const bboltElement = 16

// KeySize returns the bytes key's entry takes in the file (store.Sizer): its record in the data
// bucket, its entry in the expiry index when it has an expiry, and one entry in the tag index
// per tag, each with bbolt's element header. Pages' free space is not counted.
func (s *Store) KeySize(ctx context.Context, key []byte) (int64, bool, error) {
	res, err := s.Do(ctx, key, store.Op{Kind: store.Inspect})
	if err != nil || !res.Found {
		return 0, false, err
	}
	tags, err := s.KeyTags(ctx, key)
	if err != nil {
		return 0, false, err
	}
	record := 8 + uvarintLen(uint64(len(tags))) + int(res.Int)
	if res.Enc != store.EncodeByValue {
		record++ // the byte that says how the value was written
	}
	size := bboltElement + 8 + len(key) + record
	for _, t := range tags {
		size += uvarintLen(uint64(len(t))) + len(t) // in the record
		size += bboltElement + uvarintLen(uint64(len(t))) + len(t) + len(key)
	}
	if res.ExpireAt != 0 {
		size += bboltElement + 8 + len(key)
	}
	return int64(size), true, nil
}

// uvarintLen is the length of v as a uvarint.
func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}
