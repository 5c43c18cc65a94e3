// Package disk is Vela's durable store: every value lives in one bbolt file, every acknowledged
// write has been fsync'd, expiry is stored as an absolute time and tags are persisted, so a node
// killed with SIGKILL restarts with exactly the writes it acknowledged.
//
// # Layout
//
// The file has five buckets:
//
//	data   xxhash64(key) big-endian (8 bytes) + key  ->  record
//	exp    expireAt big-endian (8 bytes) + key        ->  empty   (the sweep's index)
//	tags   uvarint(len(tag)) + tag + key              ->  empty   (tag -> keys)
//	stage  sequence number big-endian (8 bytes)       ->  one mutation of data, exp or tags
//	meta   "version", "count", "expires"              ->  8-byte big-endian integers
//
// A record is expireAt (8 bytes, absolute unix ms, 0 for none), the key's tags (uvarint count,
// then uvarint length and bytes each) and the value. The per-key tags in the record and the tags
// bucket are kept in step inside every transaction, so deleting, expiring, overwriting or flushing
// a key always drops it from its tags.
//
// # Writes: group commit
//
// bbolt allows one writer at a time and each commit costs two fsyncs. Every write goes to one
// committer goroutine, which takes everything queued (up to Config.MaxBatch requests), applies it
// in one read-write transaction with store.Apply, commits (fsync) and only then answers each
// caller. While it commits, new writes queue up and form the next batch, so one client pays one
// commit per write and fifty clients share a commit between them, with no artificial delay.
// Reads run in their own read-only transactions and never wait for the committer.
//
// A transaction (EXEC) is a group (group.go, store.Grouper): its operations, reads included, go
// to the committer, which answers each as soon as it has applied it and keeps its transaction
// open for the group's next one, so that the whole group is one commit: a crash keeps all of it
// or none.
//
// # Staging log
//
// A B+tree write dirties the leaf that holds the key, so a commit of fifty writes to random keys
// would write some fifty pages. Instead, the committer appends each transaction's mutations to
// the stage bucket, whose keys only grow (a commit then writes the log's last page or two and the
// meta page), and keeps the resulting records in an in-memory overlay that reads consult before
// the data bucket. Every second, or when the log holds MaxStaged mutations, and before anything
// that reads the indexes or the key order (SCAN, DBSIZE, INFO's counts, TAGINVALIDATE, the sweep,
// FLUSHDB), the committer moves the log into place in one transaction — sorted by key, so many
// writes share each dirtied page — and empties the overlay. Everything is in the file, committed
// with fsync, before a write is acknowledged; a log left by a crash is moved into place when the
// file is opened.
//
// # Counting and restart
//
// The number of keys (and of keys with an expiry) is kept in the meta bucket and updated in the
// same transaction as the data, so opening a file never reads the keys: bbolt only rebuilds its
// free-page list from the page headers (the list is not written by each commit, which makes
// commits cheaper), about 0.14 s for a million keys. Len subtracts the expired-but-unswept keys by
// walking the head of the exp index.
//
// # SCAN
//
// Data keys are ordered by the 64-bit hash of the user key, so a SCAN cursor is simply the hash
// at which to resume. Writes between calls cannot move a key across the cursor: a key present for
// the whole iteration is returned exactly once (keys sharing a hash are never split between two
// calls).
//
// # Caveats
//
// bbolt limits keys to 32768 bytes: a key (plus 8 bytes) and each tag with the key must fit, or
// the write is refused with an error. The file is locked while open; a second process opening it
// waits one second and fails.
package disk
