// Package store defines the seam between Vela's commands and the places values live, and the
// semantics every store shares.
//
// # Operations
//
// A Store applies one Op to one key atomically and returns a Result. Ops are declarative (set
// with conditions, increment, append, expire…) rather than callbacks, so that each store can apply
// them its own way: the memory and disk stores run Apply under their lock or transaction, the
// Redis store turns each Op into the matching Redis command, and a cluster topology can ship an
// Op to the key's owner. Apply in this package is the one definition of what every Op means.
//
// # Time
//
// Expiry times are absolute Unix milliseconds; 0 means no expiry. An entry whose expiry is at or
// before now is gone: no Op ever sees it.
//
// # Optional abilities
//
// Whole-keyspace operations (Len, Scan, Flush), the atomic multi-key write MSETNX needs, and the
// background sweep are separate small interfaces, found with a type assertion.
package store

import (
	"context"
	"errors"

	"github.com/vela-cache/vela/resp"
)

// Store holds string values with per-key expiry. Implementations are safe for concurrent use and
// apply each Do atomically with respect to every other operation on the same key.
type Store interface {
	// Do applies op to key. key and op's byte slices may alias a connection's read buffer: a
	// store copies what it keeps. The Result's Value may alias stored memory, which a store never
	// mutates in place, so callers may read it but not modify it.
	Do(ctx context.Context, key []byte, op Op) (Result, error)
	// Close releases the store's resources; calls after Close fail.
	Close() error
}

// RemovalNotifier is implemented by stores that remove keys on their own, when they expire or
// are evicted. Client tracking needs to hear of those (a client caching the key is told), and
// keyspace notifications publish them ("expired", "evicted").
type RemovalNotifier interface {
	// NotifyRemovals makes the store call fn with each key it removes on its own, evicted or
	// expired. fn must be quick and must not call the store: it may run with the store's locks
	// held. Call it before the store is used.
	NotifyRemovals(fn func(key []byte, evicted bool))
}

// PubSub is implemented by a store that is itself a Redis server (the redis store): Pub/Sub
// then happens there, shared by its own clients and every Vela node in front of it.
type PubSub interface {
	// Publish publishes msg on channel (a shard channel when shard is set: SPUBLISH) and
	// returns the deliveries.
	Publish(ctx context.Context, shard bool, channel, msg []byte) (int64, error)
	// PubSubChannels, PubSubNumSub and PubSubNumPat answer PUBSUB CHANNELS, NUMSUB (the
	// subscribers of each channel, in order) and NUMPAT; with shard set, SHARDCHANNELS and
	// SHARDNUMSUB.
	PubSubChannels(ctx context.Context, shard bool, pattern string) ([]string, error)
	PubSubNumSub(ctx context.Context, shard bool, channels []string) ([]int64, error)
	PubSubNumPat(ctx context.Context) (int64, error)
	// Subscribe opens one client's subscriptions, whose messages go to deliver (pattern "" for
	// a channel subscription's), from a goroutine of the subscription's.
	Subscribe(deliver func(pattern, channel string, payload []byte)) Subscription
}

// Subscription is one client's subscriptions in a PubSub store.
type Subscription interface {
	// Change runs verb ("subscribe", "psubscribe", "ssubscribe", "unsubscribe",
	// "punsubscribe" or "sunsubscribe") on names and returns once the server has confirmed it,
	// want times (an UNSUBSCRIBE of no names drops them all: want is how many it held).
	Change(ctx context.Context, verb string, names []string, want int) error
	// Close ends the subscriptions.
	Close()
}

// Keyspace is implemented by stores that can enumerate and clear their keys.
type Keyspace interface {
	// Len returns the number of keys, live or not yet swept; the count Redis's DBSIZE gives.
	Len(ctx context.Context) (int64, error)
	// Scan returns up to about count keys matching pattern (Redis glob, "" for all) from the
	// position cursor and the cursor to continue from; 0 when the iteration is complete. Keys
	// present for the whole iteration are returned at least once. Cursors are below
	// 1<<CursorBits.
	Scan(ctx context.Context, cursor uint64, pattern []byte, count int) (keys [][]byte, next uint64, err error)
	// Flush deletes every key.
	Flush(ctx context.Context) error
}

// Sampler is implemented by stores that can pick a key at random (RANDOMKEY).
type Sampler interface {
	// RandomKey returns a live key chosen at random, and false when the store holds none.
	RandomKey(ctx context.Context) ([]byte, bool, error)
}

// CursorBits bounds the cursors Keyspace.Scan returns: below 2^43, a cluster can put a member
// index above them and the whole cursor still stays below 2^53, which clients that keep cursors
// as floating-point numbers (JavaScript's node-redis parses them with Number) hold exactly.
const CursorBits = 43

// Sizer is implemented by stores that can tell what one key costs them (MEMORY USAGE).
type Sizer interface {
	// KeySize returns the bytes key's entry costs the store, as its bounds and INFO's
	// used_memory count them, and false when key is missing or expired. It is not an access
	// (no LRU/LFU bookkeeping, no hit or miss).
	KeySize(ctx context.Context, key []byte) (int64, bool, error)
}

// MultiSetter is implemented by stores that can write several keys atomically.
type MultiSetter interface {
	// SetMulti writes every pair with the given expiry (0: none). With onlyIfNoneExist it writes
	// nothing, and reports false, when any of the keys is live.
	SetMulti(ctx context.Context, pairs []KV, expireAt int64, onlyIfNoneExist bool) (bool, error)
}

// Batcher is implemented by stores for which one op on many keys at once costs less than a call
// per key: the disk store commits them together, with one fsync, instead of one per key.
type Batcher interface {
	// DoBatch applies op to each key, as Do would one by one, and returns a result for each key
	// it applied op to, in order, and the first error (it may stop at that key).
	DoBatch(ctx context.Context, keys [][]byte, op Op) ([]Result, error)
}

// Sweeper is implemented by stores that hold expired entries until something removes them.
type Sweeper interface {
	// Sweep removes expired entries and returns how many it removed.
	Sweep(ctx context.Context) (int, error)
}

// Tagger is implemented by stores that keep the tag index behind SET … TAGS and TAGINVALIDATE.
// A store that implements it must drop a key from its tags whenever the key is deleted, expires,
// is evicted, flushed or overwritten (a Set replaces the tags with Op.Tags, nil meaning none), so
// that the index never leaks.
type Tagger interface {
	// InvalidateTags deletes every live key carrying any of tags and returns the deleted keys
	// (each once), so callers can notify what watches those keys (leases, near caches).
	InvalidateTags(ctx context.Context, tags [][]byte) ([][]byte, error)
}

// TagReader is implemented by stores that can report a key's tags, so that a cluster handing a
// key to another member, or copying it to a replica, keeps them.
type TagReader interface {
	// KeyTags returns the tags of key (nil when it has none or does not exist).
	KeyTags(ctx context.Context, key []byte) ([][]byte, error)
}

// TagLister is implemented by stores that can list the keys under a tag, so that a replicated
// cluster can delete, of a tag's keys, only those written before a TAGINVALIDATE stamped
// elsewhere.
type TagLister interface {
	// TagKeys returns the keys carrying tag, each once (an expired key not swept yet may be
	// among them).
	TagKeys(ctx context.Context, tag []byte) ([][]byte, error)
}

// Pipeliner is implemented by stores whose operations cross a network and can overlap, so that
// the commands a client pipelines travel together instead of one round trip each.
type Pipeliner interface {
	// Start begins op on key and returns without waiting, or returns nil when op cannot be
	// pipelined (the caller then uses Do). key and op may be reused once Start returns. Calls on
	// one key complete in the order they were started; a caller must not mix Start and Do on a
	// key without waiting for its started calls first.
	Start(ctx context.Context, key []byte, op Op) Call
}

// Drainer is implemented by Pipeliners, so that a caller can wait for the calls other callers
// have started: Drain returns once every call started before it has completed.
type Drainer interface {
	Drain(ctx context.Context) error
}

// Grouper is implemented by a store that can make a run of operations one durable unit: the disk
// store commits a transaction's (EXEC's) operations in one bbolt transaction, so that a crash
// keeps all of them or none, as Redis's AOF does.
type Grouper interface {
	// Group returns a context under which the store's operations, until end is called, form
	// one unit: each sees the ones before it, and none is durable before end, which commits
	// them and reports whether that worked. The operations must come from one goroutine, one
	// at a time, and every operation that goroutine makes until end must use the context.
	Group(ctx context.Context) (gctx context.Context, end func() error)
}

// Transactor is implemented by a store whose keys other processes change too, but whose server
// can run a client's transaction itself: the redis store on one Redis. WATCH and MULTI … EXEC
// then go to Redis on a connection of their own, so Redis decides, as it would for a client of
// its own, whether a watched key changed.
type Transactor interface {
	// TxConn returns a connection of the transaction's own.
	TxConn(ctx context.Context) (TxConn, error)
}

// TxConn is one client's connection to the store's server during a transaction.
type TxConn interface {
	// Do sends cmds in one write and returns their replies, in order. writes names the keys
	// the commands may change, so that the store's own bookkeeping (request coalescing) treats
	// them as written.
	Do(ctx context.Context, cmds [][][]byte, writes [][]byte) ([]resp.Reply, error)
	// Release gives the connection back. clean reports that it holds no WATCH and no MULTI,
	// so it may serve another transaction; otherwise it is closed.
	Release(clean bool)
}

// Mover is implemented by a store whose keys other processes change too, but whose server can
// move and copy a key itself in one step: the redis store on one Redis runs RENAME, RENAMENX and
// COPY there, its tag bookkeeping following the key.
type Mover interface {
	// Move moves or copies src to dst as how says and returns the command's integer reply (1
	// done, 0 not: the destination exists and may not be replaced), or -1 when src does not
	// exist and how is a rename (Redis's "no such key"). RENAME answers 1 when done.
	Move(ctx context.Context, src, dst []byte, how MoveKind) (int64, error)
}

// BitOperator is implemented by a store whose keys other processes change too, but whose
// server runs BITOP itself, reading the sources and writing the destination in one step (the
// redis store). The destination's tags end as on any write without TAGS.
type BitOperator interface {
	// BitOp runs BITOP op (AND, OR, XOR or NOT) of srcs into dst and returns the result's
	// length; expireAt, when not 0, is the result's expiry (a default TTL).
	BitOp(ctx context.Context, op string, dst []byte, srcs [][]byte, expireAt int64) (int64, error)
}

// AccessSetter is implemented by a store that keeps each key's access statistics itself (the
// memory store, for OBJECT IDLETIME and FREQ and for LRU and LFU eviction): RESTORE's IDLETIME
// and FREQ set them, as in Redis.
type AccessSetter interface {
	// SetAccess sets key's statistics, as Redis's objectSetLRUOrLFU does: under an LFU policy
	// the counter to freq, under any other the last access to idle seconds ago; a value of -1
	// was not given and changes nothing. It reports whether the key was there.
	SetAccess(ctx context.Context, key []byte, idle, freq int64) (bool, error)
}

// MoveKind is what Mover.Move does.
type MoveKind uint8

// Move kinds.
const (
	MoveRename      MoveKind = iota + 1 // RENAME: dst is replaced
	MoveRenameNX                        // RENAMENX: only when dst does not exist
	MoveCopy                            // COPY: only when dst does not exist
	MoveCopyReplace                     // COPY … REPLACE
)

// String returns the command of k, upper-case.
func (k MoveKind) String() string {
	switch k {
	case MoveRename:
		return "RENAME"
	case MoveRenameNX:
		return "RENAMENX"
	default:
		return "COPY"
	}
}

// EventLoop is an event loop that commands run on (resp.Loop), as a store that lets the loop
// drive its network calls sees it. Watch and Unwatch are called on the loop's goroutine; Post
// from any goroutine.
type EventLoop interface {
	// Watch makes the loop call fn with the epoll events whenever fd becomes readable or
	// writable (edge-triggered).
	Watch(fd int, fn func(events uint32)) error
	// Unwatch stops watching fd; it is called before fd is closed.
	Unwatch(fd int)
	// Post runs fn on the loop's goroutine soon; false when the loop has stopped.
	Post(fn func()) bool
}

// LoopPipeliner is a Pipeliner whose calls an event loop can drive itself: the requests of
// every client the loop serves leave on the store's connection for that loop in one write, and
// the loop reads the replies when their socket is readable, with no goroutine in between.
type LoopPipeliner interface {
	Pipeliner
	// OnLoops reports whether StartOn may be used (for example, not over TLS).
	OnLoops() bool
	// StartOn is Start for a caller running on loop's goroutine; the call it returns is a
	// NotifyingCall. It returns nil exactly when Start would.
	StartOn(loop EventLoop, key []byte, op Op) Call
}

// NotifyingCall is a Call that says when it completes, so that an event loop never blocks in
// Wait.
type NotifyingCall interface {
	Call
	// Notify arranges for fn to be called once, on the loop's goroutine, when Wait will no
	// longer block, and reports true; it reports false, and never calls fn, when the call is
	// complete already.
	Notify(fn func()) bool
	// Flush sends the requests queued so far; the loop calls it once every ready client has
	// queued its own.
	Flush()
}

// Call is an operation begun with Pipeliner.Start.
type Call interface {
	// Wait blocks until the operation completes, which the store bounds by its deadline, and
	// returns what Do would have. It may be called more than once.
	Wait() (Result, error)
}

// KV is one key and value for SetMulti.
type KV struct {
	Key, Value []byte
	// Created is set by a MultiSetter that reports it (memory, disk): the write added the key,
	// which was not live before (keyspace notifications' "new").
	Created bool
}

// Kind says what an Op does.
type Kind uint8

// Op kinds. The Result fields each one fills are listed beside it.
const (
	// Get reads the value: Found, Value, and with WithExpiry ExpireAt.
	Get Kind = iota + 1
	// Inspect reads metadata without the value: Found, ExpireAt, Int (value length), and Type
	// for a key that is not a string.
	Inspect
	// Touch is Inspect that also counts as an access for LRU/LFU: Found.
	Touch
	// Set writes Value subject to Cond (None, NX, XX) and TTL: Done, and with ReturnOld Found
	// and Value (the old value).
	Set
	// Delete removes the key: Found (it existed), and with ReturnOld Value.
	Delete
	// IncrBy adds Delta to an integer value (a missing key counts as 0): Int.
	IncrBy
	// IncrByFloat adds Float to a numeric value: Value (the new value as Redis formats it).
	IncrByFloat
	// Append appends Value (a missing key counts as empty): Int (the new length).
	Append
	// Expire sets the expiry to ExpireAt subject to Cond (None, NX, XX, GT, LT); an expiry in the
	// past deletes the key: Done.
	Expire
	// Persist removes the expiry: Done.
	Persist
	// GetEx reads the value and changes its expiry per TTL: Found, Value, and ExpireAt, the
	// expiry the key had (0: none; -1: the store cannot tell).
	GetEx
	// SetRange overwrites the value from byte Delta with Value, padding with zero bytes (a
	// missing key counts as empty; an empty Value changes nothing): Int (the new length), Done
	// (it wrote). ExpireAt applies only to a new key.
	SetRange
	// SetBit sets the bit at offset Delta (0: the first byte's most significant bit) to Value,
	// "1" or "0", growing the value with zero bytes to hold it (a missing key counts as empty):
	// Int (the bit's old value), Done (the key was created or grown, or the bit changed: Redis
	// then counts a change). ExpireAt applies only to a new key.
	SetBit
	// BitField runs the BITFIELD operations Value holds (bitmap.EncodeFields), at least one of
	// them a SET or INCRBY, growing the value with zero bytes to hold every field written:
	// Value (bitmap.EncodeResults), Done (an operation changed the value). ExpireAt applies
	// only to a new key.
	BitField
)

// Cond restricts when a Set or Expire applies. Conditions are bits so that EXPIRE's XX can be
// combined with GT or LT, as Redis allows.
type Cond uint8

// Conditions.
const (
	CondNone Cond = 0
	CondNX   Cond = 1 << 0 // only when the key (Set) or its expiry (Expire) does not exist
	CondXX   Cond = 1 << 1 // only when the key (Set) or its expiry (Expire) exists
	CondGT   Cond = 1 << 2 // Expire only: only when the new expiry is later (none counts as infinite)
	CondLT   Cond = 1 << 3 // Expire only: only when the new expiry is earlier
	// CondSame is for Set only: write only when the key is absent or still holds Op.Expect. It
	// fences a FETCHLOCK refresh: a fill must not overwrite a value written since the lease.
	CondSame Cond = 1 << 4
)

// TTLMode says what a write does to the key's expiry.
type TTLMode uint8

// TTL modes.
const (
	TTLClear TTLMode = iota // Set: no expiry (ExpireAt, if not 0, is a default TTL to apply)
	TTLSet                  // set the expiry to ExpireAt
	TTLKeep                 // keep the current expiry (SET KEEPTTL, GETEX without options)
)

// Op is one operation on one key. The zero value of each field is the plain case.
type Op struct {
	Kind Kind
	Cond Cond
	TTL  TTLMode
	// ReturnOld asks a Set or Delete for the value it replaced.
	ReturnOld bool
	// WithExpiry asks a Get to report the key's expiry in Result.ExpireAt as well (0: none), for
	// a near cache that must not keep a copy past it. A store that cannot tell reports -1; one
	// that reads the expiry after the value reports it no later than it is (so a copy kept
	// until then never outlives the key).
	WithExpiry bool
	// Enc is, for a Set that installs another store's entry (a cluster's copy of a key), how
	// that entry's value was written; a store keeps it for OBJECT ENCODING.
	Enc Encoding
	// NoShare asks a Get to be read on its own, not joined to another caller's read in flight
	// (request coalescing): that read may have reached the server before this caller's last
	// command did, and a client that read after WATCH must see every write before its WATCH.
	NoShare bool
	// The flags come first so that they share one word: an Op is passed by value on the hot
	// path, and its size shows there.

	Value    []byte
	Delta    int64
	Float    float64
	ExpireAt int64 // absolute unix ms; for IncrBy/IncrByFloat/Append it applies only to a new key
	// Expect is the value CondSame compares with.
	Expect []byte
	// Tags replaces the key's tags on Set (nil: no tags). Stores without tag support ignore it.
	Tags [][]byte
	// Now, when not 0, is the time (unix ms) at which the op judges expiry, instead of the
	// store's clock: the commands of one EXEC share the instant it started, so that, as in
	// Redis 7, a key does not expire halfway through a transaction. The redis store ignores it.
	Now int64
	// Peek, on a Get, lets a store that holds its values hand the live value to Peek, under its
	// lock, instead of answering a copy of it: a command that reads a few bits of a large value
	// (GETBIT, BITCOUNT) then copies nothing. Peek must be quick and must not call the store;
	// the slice is valid only during the call. A store that called it answers Found and a nil
	// Value; any other store answers the value, and the caller reads that.
	Peek func(value []byte)
}

// Result is what an Op produced; see each Kind for the fields it fills.
type Result struct {
	Found bool
	Done  bool
	// Shared is set on a Get answered by a read another caller began earlier (request
	// coalescing): the value may predate a change the caller has since been told of, so a near
	// cache must not keep it.
	Shared bool
	// Enc is how the value a Get found was written (OBJECT ENCODING); stores that hold their
	// values themselves fill it.
	Enc      Encoding
	Value    []byte
	Int      int64
	ExpireAt int64
	// Type is set by Inspect only for a key that is not a string: one that another client of a
	// shared Redis made a list, hash or other type ("list", "hash"…). Vela itself writes only
	// strings, so every other store leaves it empty.
	Type string
}

// ServerError is an error reply from a server behind a store (an external Redis) that has no
// sentinel below, such as READONLY from a replica. Its text is the complete reply, prefix
// included, and reaches the client verbatim.
type ServerError string

// Error implements error: the server's reply, verbatim.
func (e ServerError) Error() string { return string(e) }

// Errors every store reports for the same conditions. Command code maps them to Redis's texts.
var (
	// ErrNotInteger: the value is not an integer or out of range.
	ErrNotInteger = errors.New("store: value is not an integer or out of range")
	// ErrOverflow: an increment would overflow a 64-bit integer.
	ErrOverflow = errors.New("store: increment or decrement would overflow")
	// ErrNotFloat: the value is not a valid float.
	ErrNotFloat = errors.New("store: value is not a valid float")
	// ErrNaN: an increment would produce NaN or Infinity.
	ErrNaN = errors.New("store: increment would produce NaN or Infinity")
	// ErrTooLarge: the value would exceed the largest allowed string.
	ErrTooLarge = errors.New("store: string exceeds maximum allowed size")
	// ErrOOM: the write needs room the store may not take (ttl_only policy at its bound).
	ErrOOM = errors.New("store: command not allowed when used memory > 'maxmemory'")
	// ErrWrongType: the key holds another type than a string (a key another client of a shared
	// Redis made a list, say).
	ErrWrongType = errors.New("store: key holds the wrong kind of value")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store: closed")
)
