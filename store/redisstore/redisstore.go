// Package redisstore is Vela's store on an external Redis (or Redis Cluster, or a Sentinel-managed
// Redis) through go-redis. Each Op becomes the native Redis command that means the same thing
// (SET with NX/XX/GET/KEEPTTL/PXAT, INCRBY, INCRBYFLOAT, APPEND, PEXPIREAT with NX/XX/GT/LT,
// PERSIST, GETEX, GETDEL…), so expiry is Redis's own and replies match Redis exactly. Keys are
// stored under their own names: other Redis clients see the same data.
//
// # URLs
//
//	redis://[user:password@]host:port[/db][?dial_timeout=1s&…]   one Redis (go-redis ParseURL options)
//	rediss://…                                                     the same over TLS
//	unix:///path/to/redis.sock[?db=N]                              a Unix socket
//	redis+cluster://[user:password@]h1:p1,h2:p2[?…]                Redis Cluster (seed nodes)
//	rediss+cluster://…                                             Redis Cluster over TLS
//	redis+sentinel://[user:password@]s1:26379,s2:26379/master[/db][?sentinel_password=…]
//
// Any of them may add vela_meta_db=N (default 15; ignored on Redis Cluster): the database that
// holds the tag and lease bookkeeping, and vela_pipeline_conns=N (default 2): the shared
// connections that carry pipelined GETs and SETs (single Redis only).
//
// # Tags
//
// Tags live in Redis. On a single Redis or behind Sentinel they live in the meta database (a
// separate database, so KEYS, SCAN and DBSIZE show only user keys): "t:<tag>" is the set of keys
// under a tag, "k:<key>" the set of a key's tags and "f:<key>" the SHA-1 of the value the key had
// when it was tagged. A key carries its tags only while its value still has that fingerprint,
// which lets every write without TAGS stay the plain Redis command (a plain SET costs what it
// costs on Redis): SET … TAGS, DEL, INCR/APPEND (which move the fingerprint to the new value)
// and TAGINVALIDATE are Lua scripts that keep the bookkeeping in step atomically, so several
// Vela nodes sharing the Redis agree. Stale entries
// (keys overwritten, expired or deleted, also by clients writing to Redis directly) are dropped
// when their tag is invalidated and by the periodic sweep, so none stays forever.
//
// One difference from the memory and disk stores follows: a write without TAGS that stores
// exactly the value the key already had, or a key that expires and is re-created with exactly its
// old value, keeps the old tags. The only effect is that TAGINVALIDATE may delete such a key,
// which a cache can always afford.
//
// # Redis Cluster
//
// Redis Cluster has only database 0 and lets a script touch one hash slot, so there the tag
// records, the tag sets and the leases are keys beginning with "__vela:" in database 0, each in
// the slot of the key (or tag) it is about, and tagging a key is a three-step protocol that never
// leaves a tagged key out of its tag's set (cluster.go). Tags, TAGINVALIDATE and FETCHLOCK
// leases work as on one Redis, with one difference: TAGINVALIDATE deletes key by key, not in one
// transaction. SCAN and KEYS walk the masters and leave the bookkeeping keys out; DBSIZE
// subtracts them; keys beginning with "__vela:" are refused.
//
// # Failures
//
// Every call has a deadline (Config.Timeout, default 2 s) on top of go-redis's dial, read and
// write timeouts, and is never retried (a retried INCR could apply twice): when Redis is down or
// slow the client gets "-ERR redis store: …" within the deadline, and the next call after Redis
// returns uses a fresh connection. Concurrent GETs of one key share one Redis call.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/vela-cache/vela/bitmap"
	"github.com/vela-cache/vela/store"
)

// Config configures a Store. URL is required.
type Config struct {
	// URL says where Redis is; see the package comment for the forms.
	URL string
	// Timeout bounds every call, queueing for a connection included. Default 2s.
	Timeout time.Duration
	// PoolSize is the most connections per Redis node. Default 128: Vela multiplexes many
	// clients, and each in-flight command holds a connection.
	PoolSize int
	// PipelineConns is the number of shared connections that carry the GETs and SETs of every
	// client, pipelined (single Redis only; Cluster and Sentinel use the pool). Default 2; the
	// URL parameter vela_pipeline_conns overrides it.
	PipelineConns int
	// Logger receives connection-level events; nil discards them.
	Logger *slog.Logger
}

// defaultPipelineConns is the number of shared pipelined connections unless configured.
const defaultPipelineConns = 2

// Store is the Redis-backed store. It is safe for concurrent use.
type Store struct {
	c       redis.UniversalClient
	meta    *redis.Client // the meta database, for the sweep (nil in cluster mode)
	cluster *redis.ClusterClient
	// clusterOpt is the cluster client's options, for connections of its own to a master.
	clusterOpt *redis.ClusterOptions
	// Sentinel mode: the failover client's options, and a client of each Sentinel, to ask them
	// which server is the master now (tracking.go).
	failoverOpt *redis.FailoverOptions
	sentinels   []*redis.SentinelClient
	metaDB      string // "" in cluster mode
	userDB      string
	timeout     time.Duration
	log         *slog.Logger
	pipe        *pipe // shared pipelined connections for GET and SET (single Redis only)

	// The pipes of the event loops (looppipe.go): copied on write under loopMu, read without
	// it. loopWG counts their goroutines (dials, deadline tickers).
	loopPipes atomic.Pointer[[]*loopPipe]
	loopMu    sync.Mutex
	loopWG    sync.WaitGroup
	gets      singleflight.Group
	closed    atomic.Bool
	// writeEpochs count the writes through this store begun and ended, by key hash, so that a
	// GET never joins one sent before a write (coalesce.go).
	writeEpochs [writeShards]atomic.Uint64
	// idleTx keeps clean connections of finished transactions for the next ones (txconn.go).
	idleTx chan *txConn

	// Cluster mode (cluster.go): the tag of each slot, for bookkeeping key names; the name of
	// each slot's bookkeeping index, ready to pass to scripts; how old a pending tagged write
	// must be before the sweep gives it up.
	slots        *slotTags
	indexArgs    []any
	pendingGrace time.Duration
	// afterTagBegin and afterTagCheck, set by tests only, run between steps 1 and 2 of a tagged
	// write and between an invalidation's checks and its removal of tag entries.
	afterTagBegin, afterTagCheck func()
}

var (
	_ store.Store         = (*Store)(nil)
	_ store.Keyspace      = (*Store)(nil)
	_ store.MultiSetter   = (*Store)(nil)
	_ store.Sweeper       = (*Store)(nil)
	_ store.Tagger        = (*Store)(nil)
	_ store.Pipeliner     = (*Store)(nil)
	_ store.LoopPipeliner = (*Store)(nil)
)

// Open prepares clients for the Redis that cfg.URL names and pings it. Only a bad URL is an
// error: Redis itself may come up later.
func Open(cfg Config) (*Store, error) {
	t, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	s := &Store{timeout: cfg.Timeout, log: cfg.Logger, idleTx: make(chan *txConn, maxIdleTx)}
	if s.timeout <= 0 {
		s.timeout = 2 * time.Second
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	redis.SetLogger(&clientLogger{log: s.log}) // go-redis's logger is process-wide
	pool := cfg.PoolSize
	if pool <= 0 {
		pool = 128
	}
	// Bounded waits everywhere, no retries (see the package comment).
	dial, rw := min(time.Second, s.timeout), s.timeout
	switch t.kind {
	case "single":
		o := t.single
		o.MaxRetries, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = -1, dial, rw, rw, s.timeout
		o.ContextTimeoutEnabled, o.PoolSize, o.DialerRetries = true, pool, 1
		s.c = redis.NewClient(o)
		conns := cfg.PipelineConns
		if t.conns > 0 {
			conns = t.conns
		}
		if conns <= 0 {
			conns = defaultPipelineConns
		}
		s.pipe = newPipe(o, conns, s.timeout)
		mo := *o
		mo.DB, mo.PoolSize = t.metaDB, 4
		s.meta = redis.NewClient(&mo)
	case "sentinel":
		o := t.failover
		o.MaxRetries, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = -1, dial, rw, rw, s.timeout
		o.ContextTimeoutEnabled, o.PoolSize, o.DialerRetries = true, pool, 1
		s.c = redis.NewFailoverClient(o)
		s.failoverOpt = o
		for _, addr := range o.SentinelAddrs {
			s.sentinels = append(s.sentinels, redis.NewSentinelClient(&redis.Options{Addr: addr,
				Username: o.SentinelUsername, Password: o.SentinelPassword, TLSConfig: o.TLSConfig,
				DialTimeout: dial, ReadTimeout: rw, WriteTimeout: rw, PoolTimeout: s.timeout,
				MaxRetries: -1, PoolSize: 1, ContextTimeoutEnabled: true}))
		}
		mo := *o
		mo.DB, mo.PoolSize = t.metaDB, 4
		s.meta = redis.NewFailoverClient(&mo)
	case "cluster":
		o := t.cluster
		o.MaxRetries, o.DialTimeout, o.ReadTimeout, o.WriteTimeout, o.PoolTimeout = -1, dial, rw, rw, s.timeout
		o.ContextTimeoutEnabled, o.PoolSize, o.DialerRetries = true, pool, 1
		s.clusterOpt = o
		s.cluster = redis.NewClusterClient(o)
		s.c = s.cluster
		s.slots = newSlotTags()
		s.indexArgs = make([]any, numSlots)
		for slot := range s.indexArgs {
			s.indexArgs[slot] = s.slotBase(uint16(slot)) + "i"
		}
		s.pendingGrace = defaultPendingGrace(s.timeout)
	}
	if t.metaDB >= 0 {
		s.metaDB, s.userDB = strconv.Itoa(t.metaDB), strconv.Itoa(t.userDB)
	}
	// Redis may come up after Vela (docker-compose): an unreachable Redis is logged, not fatal;
	// commands fail with a clear error until it answers.
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.c.Ping(ctx).Err(); err != nil {
		s.log.Warn("redis store: Redis not reachable yet", "url", redactURL(cfg.URL), "err", err)
	}
	return s, nil
}

// redactURL hides the password of a URL for error messages.
func redactURL(raw string) string {
	if i := strings.Index(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + "…@" + raw[i+1:]
		}
	}
	return raw
}

// Shared reports that other clients of the backing Redis change its keys too, so Vela cannot
// isolate a transaction on this store (commands refuse MULTI and WATCH).
func (s *Store) Shared() bool { return true }

// Close closes the connections. It is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errs []error
	s.closeLoopPipes()
	if s.pipe != nil {
		s.pipe.close()
	}
	s.closeIdleTx()
	if s.meta != nil {
		errs = append(errs, s.meta.Close())
	}
	for _, sc := range s.sentinels {
		errs = append(errs, sc.Close())
	}
	errs = append(errs, s.c.Close())
	return errors.Join(errs...)
}

// Client returns the go-redis client, for parts of Vela that keep their own state in the same
// Redis (FETCHLOCK leases, near-cache invalidation).
func (s *Store) Client() redis.UniversalClient { return s.c }

// Start pipelines a GET or a SET without tags on the shared connections (see pipe); other ops,
// and every op in Cluster or Sentinel mode, return nil.
func (s *Store) Start(_ context.Context, key []byte, op store.Op) store.Call {
	if s.pipe == nil || s.closed.Load() {
		return nil
	}
	if op.Kind != store.Get && (op.Kind != store.Set || len(op.Tags) > 0) {
		return nil
	}
	if op.WithExpiry {
		return nil // two replies for one call: only the loops' pipes (and Do) ask for PTTL too
	}
	return s.pipe.start(s, key, &op)
}

// errCompareAndSet: the redis store does not implement store.CondSame.
var errCompareAndSet = errors.New("redis store: compare-and-set (CondSame) is not supported")

// Do runs op as the matching Redis command (or, where tags must follow, a Lua script).
func (s *Store) Do(ctx context.Context, key []byte, op store.Op) (store.Result, error) {
	if s.closed.Load() {
		return store.Result{}, store.ErrClosed
	}
	if s.cluster != nil && reserved(key) {
		return store.Result{}, ErrReservedKey
	}
	if op.Kind == store.Get && op.WithExpiry {
		return s.getWithExpiry(ctx, key, !op.NoShare)
	}
	if op.Kind == store.Get || (op.Kind == store.GetEx && op.TTL == store.TTLKeep) {
		return s.get(ctx, key, !op.NoShare || op.Kind != store.Get)
	}
	if op.Cond&store.CondSame != 0 {
		// Only the in-process lease manager asks for it; on this store leases live in Redis
		// and their fills are fenced by Lua scripts (leases.go).
		return store.Result{}, errCompareAndSet
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if writes(&op) {
		h := xxhash.Sum64(key)
		s.wrote(h)
		defer s.wrote(h)
	}
	res, err := s.do(ctx, string(key), &op)
	if err != nil {
		return store.Result{}, s.mapErr(ctx, err)
	}
	return res, nil
}

// get reads key.
func (s *Store) get(ctx context.Context, key []byte, share bool) (store.Result, error) {
	k := string(key)
	return s.shared(ctx, s.flightID("", key), share, func(cctx context.Context) (store.Result, error) {
		v, err := s.c.Get(cctx, k).Bytes()
		if errors.Is(err, redis.Nil) {
			return store.Result{}, nil
		}
		if err != nil {
			return store.Result{}, s.mapErr(cctx, err)
		}
		return store.Result{Found: true, Value: v}, nil
	})
}

// getWithExpiry reads key and its expiry, GET and PTTL in one round trip.
func (s *Store) getWithExpiry(ctx context.Context, key []byte, share bool) (store.Result, error) {
	k := string(key)
	return s.shared(ctx, s.flightID("pttl", key), share, func(cctx context.Context) (store.Result, error) {
		sentAt := time.Now().UnixMilli()
		var get *redis.StringCmd
		var pttl *redis.Cmd
		_, err := s.c.Pipelined(cctx, func(p redis.Pipeliner) error {
			get = p.Get(cctx, k)
			pttl = p.Do(cctx, "pttl", k)
			return nil
		})
		v, gerr := get.Bytes()
		if errors.Is(gerr, redis.Nil) {
			return store.Result{}, nil
		}
		if gerr != nil {
			return store.Result{}, s.mapErr(cctx, gerr)
		}
		res := store.Result{Found: true, Value: v, ExpireAt: -1}
		if ms, perr := pttl.Int64(); err == nil && perr == nil {
			res.ExpireAt = expireFromPTTL(sentAt, ms)
		}
		return res, nil
	})
}

// shared runs fetch for the callers asking for the same call (named by id) at the same time,
// once: it runs under its own deadline so that one caller going away does not fail the others.
// The callers that joined get a Shared result. Without share the call runs on its own.
func (s *Store) shared(ctx context.Context, id string, share bool, fetch func(context.Context) (store.Result, error)) (store.Result, error) {
	if !share {
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		return fetch(cctx)
	}
	ran := false // set by this caller's fetch only, read after its result is received
	ch := s.gets.DoChan(id, func() (any, error) {
		ran = true
		cctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		defer cancel()
		res, err := fetch(cctx)
		if err != nil {
			return nil, err
		}
		return res, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return store.Result{}, r.Err
		}
		res := r.Val.(store.Result)
		res.Shared = !ran
		return res, nil
	case <-ctx.Done():
		return store.Result{}, fmt.Errorf("redis store: %w", ctx.Err())
	}
}

// expireFromPTTL turns a PTTL reply into an expiry no later than the key's: the remaining time
// counted from sentAt, the moment before the request left (Redis measured it later). -1 (no
// expiry) gives 0; -2 (the key went between the GET and the PTTL) gives sentAt, already past.
func expireFromPTTL(sentAt, pttl int64) int64 {
	switch {
	case pttl == -1:
		return 0
	case pttl < 0:
		return sentAt
	}
	return sentAt + pttl
}

func (s *Store) do(ctx context.Context, k string, op *store.Op) (store.Result, error) {
	var res store.Result
	keys := []string{k}
	switch op.Kind {
	case store.Inspect:
		// MULTI, not a script: Lua numbers are doubles and would round a far expiry.
		// TYPE too, because STRLEN fails on a key of another type that other clients of the
		// Redis may have made; EXEC still runs the commands after a failed one.
		var at *redis.Cmd
		var typ *redis.StatusCmd
		var n *redis.IntCmd
		_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
			at = p.Do(ctx, "pexpiretime", k)
			typ = p.Type(ctx, k)
			n = p.StrLen(ctx, k)
			return nil
		})
		if err != nil && (at.Err() != nil || typ.Err() != nil) {
			return res, err
		}
		if v, _ := at.Int64(); v != -2 {
			res.Found = true
			if t := typ.Val(); t != "string" {
				res.Type = t
			} else {
				res.Int = n.Val()
			}
			if v > 0 {
				res.ExpireAt = v
			}
		}
		return res, nil

	case store.Touch:
		n, err := s.c.Touch(ctx, k).Result()
		res.Found = n > 0
		return res, err

	case store.Set:
		return s.set(ctx, k, op)

	case store.Delete:
		var v any
		var err error
		if s.cluster != nil {
			bk := s.keyBook(k)
			v, err = clusterDel.Run(ctx, s.c, []string{k, bk.recs, bk.index}, boolArg(op.ReturnOld)).Result()
		} else {
			v, err = scriptDel.Run(ctx, s.c, keys, s.metaDB, boolArg(op.ReturnOld)).Result()
		}
		if errors.Is(err, redis.Nil) {
			return res, nil
		}
		if err != nil {
			return res, err
		}
		switch v := v.(type) {
		case string:
			res.Found, res.Done, res.Value = true, true, []byte(v)
		case int64:
			res.Found, res.Done = v > 0, v > 0
		}
		return res, nil

	case store.IncrBy:
		n, err := s.update(ctx, k, "INCRBY", op.Delta, op.ExpireAt).Int64()
		res.Int = n
		return res, err

	case store.IncrByFloat:
		v, err := s.update(ctx, k, "INCRBYFLOAT", op.Value, op.ExpireAt).Text()
		res.Value = []byte(v)
		return res, err

	case store.Append:
		n, err := s.update(ctx, k, "APPEND", op.Value, op.ExpireAt).Int64()
		res.Int = n
		return res, err

	case store.SetRange:
		n, err := s.update(ctx, k, "SETRANGE", op.Delta, op.ExpireAt, op.Value).Int64()
		res.Int, res.Done = n, err == nil && len(op.Value) > 0
		return res, err

	case store.SetBit:
		n, err := s.update(ctx, k, "SETBIT", op.Delta, op.ExpireAt, op.Value).Int64()
		res.Int, res.Done = n, err == nil // Redis does not say whether the value changed
		return res, err

	case store.BitField:
		return s.bitField(ctx, k, op)

	case store.Expire:
		args := append([]any{"pexpireat", k, op.ExpireAt}, condArgs(op.Cond)...)
		n, err := s.c.Do(ctx, args...).Int64()
		res.Found, res.Done = n == 1, n == 1
		return res, err

	case store.Persist:
		n, err := s.c.Do(ctx, "persist", k).Int64()
		res.Found, res.Done = n == 1, n == 1
		return res, err

	case store.GetEx:
		var cmd *redis.Cmd
		if op.TTL == store.TTLClear {
			cmd = s.c.Do(ctx, "getex", k, "persist")
		} else {
			cmd = s.c.Do(ctx, "getex", k, "pxat", op.ExpireAt)
		}
		v, err := cmd.Text()
		if errors.Is(err, redis.Nil) {
			return res, nil
		}
		res.Found, res.Value = err == nil, []byte(v)
		res.ExpireAt = -1 // GETEX does not say which expiry the key had
		return res, err
	}
	return res, fmt.Errorf("redis store: unknown op kind %d", op.Kind)
}

// update runs INCRBY, INCRBYFLOAT, APPEND or SETRANGE (whose value comes as extra). A default
// TTL (expireAt) applies only to a key the command creates, and a tagged key's fingerprint
// follows its new value, so both need a script.
func (s *Store) update(ctx context.Context, k, cmd string, arg any, expireAt int64, extra ...any) *redis.Cmd {
	if s.cluster != nil {
		bk := s.keyBook(k)
		return clusterUpdate.Run(ctx, s.c, []string{k, bk.recs, bk.index}, append([]any{cmd, arg, expireAt}, extra...)...)
	}
	return scriptUpdate.Run(ctx, s.c, []string{k}, append([]any{s.metaDB, cmd, arg, expireAt, s.userDB}, extra...)...)
}

// bitField runs BITFIELD's writes in Redis, through the update script, which answers the bytes
// each operation covers as they were before; the replies are worked out from those
// (bitmap.Replay), exactly as Redis worked them out.
func (s *Store) bitField(ctx context.Context, k string, op *store.Op) (store.Result, error) {
	var res store.Result
	ops, err := bitmap.DecodeFields(op.Value)
	if err != nil {
		return res, err
	}
	extra := make([]any, 0, 8*len(ops))
	for _, f := range ops {
		first, last := f.Span()
		extra = append(extra, first, last)
	}
	for _, f := range ops {
		if f.Kind != bitmap.FieldGet {
			for _, a := range f.Args() {
				extra = append(extra, a)
			}
		}
	}
	v, err := s.update(ctx, k, "BITFIELD", len(ops), op.ExpireAt, extra...).Slice()
	if err != nil {
		return res, err
	}
	if len(v) != 2+len(ops) {
		return res, fmt.Errorf("redis store: the BITFIELD script answered %d values for %d operations", len(v), len(ops))
	}
	existed, _ := v[0].(int64)
	oldLen, _ := v[1].(int64)
	spans := make([][]byte, len(ops))
	for i := range ops {
		b, _ := v[2+i].(string)
		spans[i] = []byte(b)
	}
	results, changed := bitmap.Replay(ops, spans, uint64(oldLen), existed == 1)
	res.Found, res.Done, res.Value = existed == 1, changed, bitmap.EncodeResults(results)
	return res, nil
}

// set runs a Set: a plain SET, or with tags the script that also records them.
func (s *Store) set(ctx context.Context, k string, op *store.Op) (store.Result, error) {
	var res store.Result
	cond := ""
	switch {
	case op.Cond&store.CondNX != 0:
		cond = "NX"
	case op.Cond&store.CondXX != 0:
		cond = "XX"
	}
	ttl := ""
	switch {
	case op.TTL == store.TTLKeep:
		ttl = "KEEPTTL"
	case op.ExpireAt != 0:
		ttl = "PXAT"
	}
	if len(op.Tags) > 0 {
		if s.cluster != nil {
			return s.clusterSetTagged(ctx, k, op, cond, ttl)
		}
		args := make([]any, 0, 6+len(op.Tags))
		args = append(args, s.metaDB, op.Value, cond, boolArg(op.ReturnOld), ttl, op.ExpireAt)
		for _, t := range op.Tags {
			args = append(args, t)
		}
		v, err := scriptSet.Run(ctx, s.c, []string{k}, args...).Slice()
		if err != nil {
			return res, err
		}
		if len(v) > 0 {
			n, _ := v[0].(int64)
			res.Done = n == 1
		}
		if len(v) > 1 {
			if sv, ok := v[1].(string); ok {
				res.Found, res.Value = true, []byte(sv)
			}
		}
		return res, nil
	}
	args := make([]any, 3, 7)
	args[0], args[1], args[2] = "set", k, op.Value
	if cond != "" {
		args = append(args, cond)
	}
	if op.ReturnOld {
		args = append(args, "get")
	}
	switch ttl {
	case "PXAT":
		args = append(args, "pxat", op.ExpireAt)
	case "KEEPTTL":
		args = append(args, "keepttl")
	}
	v, err := s.c.Do(ctx, args...).Result()
	if errors.Is(err, redis.Nil) {
		err, v = nil, nil
	}
	if err != nil {
		return res, err
	}
	if op.ReturnOld {
		if sv, ok := v.(string); ok {
			res.Found, res.Value = true, []byte(sv)
		}
		res.Done = (cond == "NX" && !res.Found) || (cond == "XX" && res.Found) || cond == ""
	} else {
		res.Done = v != nil
	}
	return res, nil
}

// SetMulti is MSET or MSETNX (a script when there is an expiry). The keys lose their tags as with
// any plain write (their fingerprints no longer match). In cluster mode the keys must share a
// hash slot, as for Redis's MSET.
func (s *Store) SetMulti(ctx context.Context, pairs []store.KV, expireAt int64, onlyIfNoneExist bool) (bool, error) {
	if s.closed.Load() {
		return false, store.ErrClosed
	}
	for _, kv := range pairs {
		s.wroteKey(kv.Key)
	}
	defer func() {
		for _, kv := range pairs {
			s.wroteKey(kv.Key)
		}
	}()
	if s.cluster != nil {
		for _, kv := range pairs {
			if reserved(kv.Key) {
				return false, ErrReservedKey
			}
		}
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var n int64
	var err error
	if expireAt != 0 {
		keys := make([]string, len(pairs))
		args := make([]any, 0, 2+len(pairs))
		args = append(args, boolArg(onlyIfNoneExist), expireAt)
		for i, kv := range pairs {
			keys[i] = string(kv.Key)
			args = append(args, kv.Value)
		}
		n, err = scriptMSet.Run(ctx, s.c, keys, args...).Int64()
	} else {
		args := make([]any, 0, 1+2*len(pairs))
		args = append(args, "mset")
		if onlyIfNoneExist {
			args[0] = "msetnx"
		}
		for _, kv := range pairs {
			args = append(args, string(kv.Key), kv.Value)
		}
		var v any
		v, err = s.c.Do(ctx, args...).Result()
		n = 1
		if nv, ok := v.(int64); ok {
			n = nv
		}
	}
	if err != nil {
		return false, s.mapErr(ctx, err)
	}
	return n == 1, nil
}

// InvalidateTags deletes every key carrying any of tags and returns them: atomically on one
// Redis, key by key on Redis Cluster (each round trip under its own deadline).
func (s *Store) InvalidateTags(ctx context.Context, tags [][]byte) ([][]byte, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	if s.cluster != nil {
		keys, err := s.clusterInvalidate(ctx, tags)
		if err != nil {
			err = s.mapErr(ctx, err)
		}
		for _, k := range keys {
			s.wroteKey(k)
		}
		return keys, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	args := make([]any, 0, 2+len(tags))
	args = append(args, s.metaDB, s.userDB)
	for _, t := range tags {
		args = append(args, t)
	}
	v, err := scriptInvalidate.Run(ctx, s.c, nil, args...).StringSlice()
	if err != nil {
		return nil, s.mapErr(ctx, err)
	}
	out := make([][]byte, len(v))
	for i, k := range v {
		out[i] = []byte(k)
		s.wroteKey(out[i])
	}
	return out, nil
}

// Len is DBSIZE (in cluster mode summed over the masters, without the bookkeeping keys).
func (s *Store) Len(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if s.cluster != nil {
		n, err := s.clusterLen(ctx)
		if err != nil {
			return 0, s.mapErr(ctx, err)
		}
		return n, nil
	}
	n, err := s.c.DBSize(ctx).Result()
	if err != nil {
		return 0, s.mapErr(ctx, err)
	}
	return n, nil
}

// Expires reports the keys with an expiry, from Redis's INFO keyspace line of the user database
// (summed over the masters in cluster mode; bookkeeping keys never expire).
func (s *Store) Expires(ctx context.Context) (int64, error) {
	if s.cluster != nil {
		ctx, cancel := context.WithTimeout(ctx, s.timeout)
		defer cancel()
		n, err := s.clusterExpires(ctx)
		if err != nil {
			return 0, s.mapErr(ctx, err)
		}
		return n, nil
	}
	return s.userKeyspace(ctx, "expires=")
}

// AvgTTL reports Redis's own avg_ttl estimate for the user database, in milliseconds (0 on a
// cluster, where the masters' estimates are not combined).
func (s *Store) AvgTTL(ctx context.Context) (int64, error) {
	if s.cluster != nil {
		return 0, nil
	}
	return s.userKeyspace(ctx, "avg_ttl=")
}

// userKeyspace reads one field of the user database's INFO keyspace line (one Redis).
func (s *Store) userKeyspace(ctx context.Context, field string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	info, err := s.c.Info(ctx, "keyspace").Result()
	if err != nil {
		return 0, s.mapErr(ctx, err)
	}
	return keyspaceField(info, "db"+s.userDB+":", field), nil
}

// Scan passes SCAN through (the meta database is separate, so only user keys appear). In cluster
// mode it scans the masters one after the other and leaves the bookkeeping keys out.
func (s *Store) Scan(ctx context.Context, cursor uint64, pattern []byte, count int) ([][]byte, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	match := ""
	if len(pattern) > 0 {
		match = string(pattern)
	}
	if s.cluster != nil {
		keys, next, err := s.clusterScan(ctx, cursor, match, count)
		if err != nil {
			return nil, 0, s.mapErr(ctx, err)
		}
		return keys, next, nil
	}
	keys, next, err := s.c.Scan(ctx, cursor, match, int64(max(count, 1))).Result()
	if err != nil {
		return nil, 0, s.mapErr(ctx, err)
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out, next, nil
}

// Flush empties the user database and, with it, the tag bookkeeping.
func (s *Store) Flush(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	s.wroteAll()
	defer s.wroteAll()
	var err error
	switch {
	case s.cluster != nil:
		err = s.cluster.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			return c.FlushDB(ctx).Err()
		})
	default:
		err = scriptFlush.Run(ctx, s.c, nil, s.metaDB).Err()
	}
	if err != nil {
		return s.mapErr(ctx, err)
	}
	return nil
}

// Sweep drops tag-set members that no longer carry their tag (keys that expired or were
// overwritten by clients writing to Redis directly) and, in cluster mode, leases that ran out
// and abandoned tagged writes. Redis expires keys itself, so Sweep reports no removed entries.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	if s.closed.Load() {
		return 0, nil
	}
	if s.cluster != nil {
		cleaned, err := s.clusterSweep(ctx)
		if cleaned > 0 {
			s.log.Debug("redis store: stale tag entries dropped", "count", cleaned)
		}
		if err != nil {
			return 0, s.mapErr(ctx, err)
		}
		return 0, nil
	}
	if s.meta == nil {
		return 0, nil
	}
	var cursor uint64
	cleaned := 0
	for {
		cctx, cancel := context.WithTimeout(ctx, s.timeout)
		keys, next, err := s.meta.Scan(cctx, cursor, "t:*", 100).Result()
		for _, tk := range keys {
			if err != nil {
				break
			}
			var n int64
			n, err = scriptCleanTag.Run(cctx, s.meta, []string{tk}, s.metaDB, s.userDB).Int64()
			cleaned += int(n)
		}
		cancel()
		if err != nil {
			return 0, s.mapErr(ctx, err)
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if cleaned > 0 {
		s.log.Debug("redis store: stale tag members dropped", "count", cleaned)
	}
	return 0, nil
}

// condArgs turns expire conditions into PEXPIREAT's options.
func condArgs(c store.Cond) []any {
	var out []any
	if c&store.CondNX != 0 {
		out = append(out, "NX")
	}
	if c&store.CondXX != 0 {
		out = append(out, "XX")
	}
	if c&store.CondGT != 0 {
		out = append(out, "GT")
	}
	if c&store.CondLT != 0 {
		out = append(out, "LT")
	}
	return out
}

func boolArg(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// Redis error texts that have store sentinels.
var redisErrors = []struct {
	text string
	err  error
}{
	{"ERR value is not an integer or out of range", store.ErrNotInteger},
	{"ERR increment or decrement would overflow", store.ErrOverflow},
	{"ERR value is not a valid float", store.ErrNotFloat},
	{"ERR increment would produce NaN or Infinity", store.ErrNaN},
	{"ERR string exceeds maximum allowed size", store.ErrTooLarge},
	// A bit offset past the backing Redis's proto-max-bulk-len (Vela checked its own).
	{"ERR bit offset is not an integer or out of range", store.ErrTooLarge},
	{"OOM ", store.ErrOOM},
	{"WRONGTYPE ", store.ErrWrongType},
}

// mapErr turns a go-redis error into what the command layer expects: a store sentinel, a Redis
// error reply to pass on verbatim, or a clear "redis store: …" failure.
func (s *Store) mapErr(ctx context.Context, err error) error {
	var re redis.Error
	if errors.As(err, &re) {
		msg := re.Error()
		if i := strings.Index(msg, " script: "); i >= 0 { // an error raised inside a script
			msg = msg[:i]
		}
		for _, e := range redisErrors {
			if strings.HasPrefix(msg, e.text) {
				return e.err
			}
		}
		return store.ServerError(msg)
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("redis store: no reply from Redis within %v", s.timeout)
	}
	if errors.Is(err, redis.ErrClosed) {
		return store.ErrClosed
	}
	return fmt.Errorf("redis store: %w", err)
}

// objectFields are OBJECT's subcommands, by store.ObjectField.
var objectFields = [...]string{"encoding", "refcount", "idletime", "freq"}

// Object asks Redis the one OBJECT subcommand field (store.Describer): the answer, and any
// error such as an idle time asked under an LFU policy, is Redis's own, as its policy decides.
func (s *Store) Object(ctx context.Context, key []byte, field store.ObjectField) (store.Object, bool, error) {
	if s.closed.Load() {
		return store.Object{}, false, store.ErrClosed
	}
	if s.cluster != nil && reserved(key) {
		return store.Object{}, false, ErrReservedKey
	}
	cmd := redis.NewCmd(ctx, "object", objectFields[field], string(key))
	cmd.SetFirstKeyPos(2) // the key is not the first argument: route by it in a Redis Cluster
	err := s.c.Process(ctx, cmd)
	if errors.Is(err, redis.Nil) {
		return store.Object{}, false, nil
	}
	if err != nil {
		return store.Object{}, false, s.mapErr(ctx, err)
	}
	obj := store.Object{Idle: -1, Freq: -1}
	switch v := cmd.Val().(type) {
	case string:
		obj.Encoding = v
	case int64:
		switch field {
		case store.ObjectRefCount:
			obj.RefCount = v
		case store.ObjectIdleTime:
			obj.Idle = v
		case store.ObjectFreq:
			obj.Freq = v
		}
	default:
		return store.Object{}, false, fmt.Errorf("redis store: unexpected OBJECT reply %T", v)
	}
	return obj, true, nil
}

// KeySize returns what Redis says key costs it, MEMORY USAGE with its default sampling
// (store.Sizer). The sets that hold the key's tags are not counted: they are shared by every key
// of a tag. Redis's MEMORY USAGE reports a key that has expired but is not deleted yet; an
// EXISTS sent first deletes such a key, so that an expired key has no size here either.
func (s *Store) KeySize(ctx context.Context, key []byte) (int64, bool, error) {
	if s.closed.Load() {
		return 0, false, store.ErrClosed
	}
	if s.cluster != nil && reserved(key) {
		return 0, false, ErrReservedKey
	}
	var usage *redis.IntCmd
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Exists(ctx, string(key))
		usage = p.MemoryUsage(ctx, string(key))
		return nil
	})
	n, uerr := usage.Result()
	if errors.Is(uerr, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, s.mapErr(ctx, err)
	}
	return n, true, nil
}

var _ store.Mover = (*Store)(nil)

// errMoveCluster refuses RENAME, RENAMENX and COPY on Redis Cluster, where a key's tag records
// live in its own slot and one script cannot move them to another.
var errMoveCluster = errors.New("redis store: RENAME, RENAMENX and COPY are not supported on Redis Cluster")

// Move implements store.Mover: RENAME, RENAMENX or COPY run in Redis by one script, which gives
// the destination the tags the source carried. A rename of a key to itself answers as Redis
// does; on Redis Cluster it is refused.
func (s *Store) Move(ctx context.Context, src, dst []byte, how store.MoveKind) (int64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	if s.cluster != nil {
		return 0, errMoveCluster
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	replace := "0"
	if how == store.MoveCopyReplace {
		replace = "1"
	}
	r, err := scriptMove.Run(ctx, s.c, []string{string(src), string(dst)}, s.metaDB, s.userDB, how.String(), replace).Int64()
	if err != nil {
		return 0, s.mapErr(ctx, err)
	}
	if r != 0 {
		s.wroteKey(dst)
		if how != store.MoveCopy && how != store.MoveCopyReplace {
			s.wroteKey(src)
		}
	}
	if r == 0 && string(src) == string(dst) && how == store.MoveRename {
		return 1, nil // RENAME of a key to itself: OK, as Redis answers
	}
	return r, nil
}

var _ store.BitOperator = (*Store)(nil)

// ReadCommand runs a read-only command on one key (args[1]) in Redis and returns its reply as
// go-redis gives it: an int64, a string, nil for a null, or a []any of those. The bit reads use
// it, so that a bit of a large value costs no transfer of the value.
func (s *Store) ReadCommand(ctx context.Context, args [][]byte) (any, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	a := make([]any, len(args))
	for i, b := range args {
		a[i] = b
	}
	v, err := s.c.Do(ctx, a...).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, s.mapErr(ctx, err)
	}
	return v, nil
}

// scriptBitOp: KEYS the destination, then the sources; ARGV the operation, pxat ("0": none).
// BITOP, and the default TTL on its result.
var scriptBitOp = redis.NewScript(`
local r = redis.call('BITOP', ARGV[1], unpack(KEYS))
if r > 0 and ARGV[2] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return r
`)

// BitOp implements store.BitOperator. On Redis Cluster the keys must share a slot, as there.
func (s *Store) BitOp(ctx context.Context, op string, dst []byte, srcs [][]byte, expireAt int64) (int64, error) {
	if s.closed.Load() {
		return 0, store.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	keys := make([]string, 0, 1+len(srcs))
	keys = append(keys, string(dst))
	for _, k := range srcs {
		keys = append(keys, string(k))
	}
	r, err := scriptBitOp.Run(ctx, s.c, keys, op, expireAt).Int64()
	if err != nil {
		return 0, s.mapErr(ctx, err)
	}
	s.wroteKey(dst)
	return r, nil
}

var _ store.Sampler = (*Store)(nil)

// RandomKey implements store.Sampler with Redis's RANDOMKEY. On Redis Cluster, where it asks one
// master and may find Vela's bookkeeping keys, it asks again (up to 16 times) past those.
func (s *Store) RandomKey(ctx context.Context) ([]byte, bool, error) {
	if s.closed.Load() {
		return nil, false, store.ErrClosed
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	for range 16 {
		k, err := s.c.RandomKey(ctx).Result()
		switch {
		case errors.Is(err, redis.Nil):
			return nil, false, nil
		case err != nil:
			return nil, false, s.mapErr(ctx, err)
		case s.cluster == nil || !reserved([]byte(k)):
			return []byte(k), true, nil
		}
	}
	return nil, false, nil
}
