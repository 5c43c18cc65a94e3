package replicate

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// tombstoneTTL is how long a member remembers a delete, a FLUSHALL's tags or a TAGINVALIDATE:
// a copy older than one of them that arrives later (a write in flight, or a member's state
// after a network partition) is refused for that long. A partition that outlasts it can bring
// back a key deleted on one side and left alone on the other.
const tombstoneTTL = 10 * time.Minute

const versionShards = 256

// versions remembers, for every key written through the topology, the stamp of the write that
// gave the key its present state, and for a deleted key the stamp of the delete (a tombstone),
// so that a member applies another member's copy only when it is newer. It also keeps the
// stamps of the last FLUSHALL and of each tag's last TAGINVALIDATE. Entries of live keys stay
// as long as the key; tombstones and the entries of keys gone by expiry or eviction are
// dropped by gc after tombstoneTTL.
type versions struct {
	shards  [versionShards]versionShard
	changes atomic.Uint64 // bumped by every change, so the saver can tell whether to save
	newest  atomic.Uint64 // the greatest Stamp.Time recorded (load restores the clock from it)

	floorMu sync.RWMutex     // guards flush and tags
	flush   Stamp            // the newest FLUSHALL: every copy older than it is refused
	tags    map[string]Stamp // tag → its newest TAGINVALIDATE
}

type versionShard struct {
	mu sync.Mutex // guards m
	m  map[string]entry
}

// entry is a key's last write: its stamp, and whether it deleted the key.
type entry struct {
	stamp Stamp
	gone  bool
}

func newVersions() *versions {
	v := &versions{tags: map[string]Stamp{}}
	for i := range v.shards {
		v.shards[i].m = map[string]entry{}
	}
	return v
}

func (v *versions) shard(key []byte) *versionShard {
	return &v.shards[xxhash.Sum64(key)%versionShards]
}

// get returns key's entry (the zero entry when it has none).
func (v *versions) get(key []byte) entry {
	s := v.shard(key)
	s.mu.Lock()
	e := s.m[string(key)]
	s.mu.Unlock()
	return e
}

// put records key's last write.
func (v *versions) put(key []byte, e entry) {
	s := v.shard(key)
	s.mu.Lock()
	s.m[string(key)] = e
	s.mu.Unlock()
	v.changes.Add(1)
	for {
		n := v.newest.Load()
		if e.stamp.Time <= n || v.newest.CompareAndSwap(n, e.stamp.Time) {
			return
		}
	}
}

// drop forgets key.
func (v *versions) drop(key []byte) {
	s := v.shard(key)
	s.mu.Lock()
	delete(s.m, string(key))
	s.mu.Unlock()
	v.changes.Add(1)
}

// len returns the number of entries, tombstones included.
func (v *versions) len() int {
	n := 0
	for i := range v.shards {
		s := &v.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// floor returns the stamp a copy carrying tags must be newer than to be applied: the last
// FLUSHALL's, or the last TAGINVALIDATE's of one of the tags when newer.
func (v *versions) floor(tags [][]byte) Stamp {
	v.floorMu.RLock()
	defer v.floorMu.RUnlock()
	f := v.flush
	for _, t := range tags {
		if s := v.tags[string(t)]; s.After(f) {
			f = s
		}
	}
	return f
}

// setFlush records a FLUSHALL stamped s and reports whether it is newer than the last one.
func (v *versions) setFlush(s Stamp) bool {
	v.floorMu.Lock()
	defer v.floorMu.Unlock()
	if !s.After(v.flush) {
		return false
	}
	v.flush = s
	v.changes.Add(1)
	return true
}

// flushStamp returns the last FLUSHALL's stamp.
func (v *versions) flushStamp() Stamp {
	v.floorMu.Lock()
	defer v.floorMu.Unlock()
	return v.flush
}

// setTags records a TAGINVALIDATE of tags stamped s, and returns the tags for which it is newer
// than the last one.
func (v *versions) setTags(tags [][]byte, s Stamp) [][]byte {
	v.floorMu.Lock()
	defer v.floorMu.Unlock()
	var newer [][]byte
	for _, t := range tags {
		if s.After(v.tags[string(t)]) {
			v.tags[string(t)] = s
			newer = append(newer, t)
			v.changes.Add(1)
		}
	}
	return newer
}

// tagFloors returns a copy of the tags' invalidation stamps.
func (v *versions) tagFloors() map[string]Stamp {
	v.floorMu.Lock()
	defer v.floorMu.Unlock()
	out := make(map[string]Stamp, len(v.tags))
	for t, s := range v.tags {
		out[t] = s
	}
	return out
}

// newerThan returns the keys whose entries are newer than s (live or not).
func (v *versions) newerThan(s Stamp) []string {
	var keys []string
	for i := range v.shards {
		sh := &v.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.stamp.After(s) {
				keys = append(keys, k)
			}
		}
		sh.mu.Unlock()
	}
	return keys
}

// dropOlder forgets every entry not newer than s: a FLUSHALL stamped s supersedes them.
func (v *versions) dropOlder(s Stamp) {
	for i := range v.shards {
		sh := &v.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if !e.stamp.After(s) {
				delete(sh.m, k)
			}
		}
		sh.mu.Unlock()
	}
}

// tombstones calls fn with every tombstone of shard i (fn must not call back into v).
func (v *versions) tombstones(i int, fn func(key string, s Stamp)) {
	sh := &v.shards[i]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for k, e := range sh.m {
		if e.gone {
			fn(k, e.stamp)
		}
	}
}

// oldKeys returns the keys of shard i whose last write is older than cutoff (wall-clock ms):
// candidates for gc.
func (v *versions) oldKeys(i int, cutoff int64) []string {
	sh := &v.shards[i]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	var keys []string
	for k, e := range sh.m {
		if wallMillis(e.stamp.Time) < cutoff {
			keys = append(keys, k)
		}
	}
	return keys
}

// gcFloors forgets TAGINVALIDATE stamps older than cutoff (wall-clock ms).
func (v *versions) gcFloors(cutoff int64) {
	v.floorMu.Lock()
	defer v.floorMu.Unlock()
	for t, s := range v.tags {
		if wallMillis(s.Time) < cutoff {
			delete(v.tags, t)
		}
	}
}

// shardOf returns the shard index of key, as shard computes it.
func shardOf(key string) uint64 { return xxhash.Sum64String(key) % versionShards }
