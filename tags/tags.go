// Package tags is Vela's tag index: which keys carry a tag (for TAGINVALIDATE) and which tags a
// key carries (so that overwriting, deleting, expiring or evicting the key can remove it from
// them). Stores that hold values themselves keep one Index beside their data.
//
// # Concurrency
//
// The index has its own locks, sharded by key and by tag, so that writers of unrelated keys and
// tags rarely meet and no operation takes an index-wide lock. The index does not order changes
// to one key itself: callers serialise them (the memory store changes a key's tags under that
// key's shard lock). Readers may run concurrently with any change and see either side of it.
//
// # Memory
//
// Maps in Go never shrink, so the index rebuilds a map that has emptied far below the largest
// size it reached, and drops a tag's key set when its last key leaves: after churn the index
// returns to its baseline size.
package tags

import (
	"sync"

	"github.com/cespare/xxhash/v2"
)

const (
	numShards = 64
	shardMask = numShards - 1
	// shrinkMin is the smallest peak size at which an emptied map is rebuilt; smaller maps cost
	// less than the rebuild.
	shrinkMin = 64
)

// Index maps tags to keys and keys to tags. The zero value is not usable; call New.
type Index struct {
	keys [numShards]keyShard
	tags [numShards]tagShard
}

// keyShard holds the tags of the keys that hash to it.
type keyShard struct {
	mu   sync.Mutex // guards m and peak
	m    map[string]keyTags
	peak int
	_    [40]byte // keep neighbouring shards' locks off one cache line
}

// keyTags is one tagged key: its own copy of the key (shared with the tag sets it is in) and
// the canonical names of its tags.
type keyTags struct {
	key  string
	tags []string
}

// tagShard holds the key sets of the tags that hash to it.
type tagShard struct {
	mu   sync.Mutex // guards m, peak and every set in m
	m    map[string]*keySet
	peak int
	_    [40]byte
}

// keySet is the keys carrying one tag.
type keySet struct {
	name string // the tag, shared by the key-side lists
	keys map[string]struct{}
	peak int
}

// New returns an empty index.
func New() *Index {
	x := &Index{}
	for i := range x.keys {
		x.keys[i].m = make(map[string]keyTags)
		x.tags[i].m = make(map[string]*keySet)
	}
	return x
}

func shardOf(b []byte) int { return int(xxhash.Sum64(b) & shardMask) }

func shardOfString(s string) int { return int(xxhash.Sum64String(s) & shardMask) }

// Set replaces the tags of key with tags (duplicates ignored); nil or empty removes the key from
// the index. It returns how many distinct tags the key carried before and carries now. Callers
// serialise Set and Remove calls for one key.
func (x *Index) Set(key []byte, tags [][]byte) (before, after int) {
	ks := &x.keys[shardOf(key)]
	ks.mu.Lock()
	old, had := ks.m[string(key)]
	ks.mu.Unlock()
	if !had && len(tags) == 0 {
		return 0, 0
	}
	keyStr := old.key
	if !had {
		keyStr = string(key)
	}

	// Canonical names of the new tags: reuse the old ones, add the key to the new ones.
	var names []string
	for i, t := range tags {
		if dupBefore(tags, i) {
			continue
		}
		if name, ok := findTag(old.tags, t); ok {
			names = append(names, name)
			continue
		}
		names = append(names, x.add(t, keyStr))
	}
	// Leave the tags that are no longer wanted.
	for _, name := range old.tags {
		if !containsTag(tags, name) {
			x.leave(name, keyStr)
		}
	}

	ks.mu.Lock()
	if len(names) == 0 {
		delete(ks.m, keyStr)
		ks.shrink()
	} else {
		ks.m[keyStr] = keyTags{key: keyStr, tags: names}
		ks.peak = max(ks.peak, len(ks.m))
	}
	ks.mu.Unlock()
	return len(old.tags), len(names)
}

// Remove drops key from every tag it carries and returns how many that was. Callers serialise it
// with Set for the same key.
func (x *Index) Remove(key []byte) int {
	n, _ := x.Set(key, nil)
	return n
}

// add puts key into tag's set, creating it, and returns the tag's canonical name.
func (x *Index) add(tag []byte, key string) string {
	ts := &x.tags[shardOf(tag)]
	ts.mu.Lock()
	set := ts.m[string(tag)]
	if set == nil {
		set = &keySet{name: string(tag), keys: make(map[string]struct{}, 1)}
		ts.m[set.name] = set
		ts.peak = max(ts.peak, len(ts.m))
	}
	set.keys[key] = struct{}{}
	set.peak = max(set.peak, len(set.keys))
	ts.mu.Unlock()
	return set.name
}

// leave removes key from tag's set, dropping the set when it empties.
func (x *Index) leave(tag, key string) {
	ts := &x.tags[shardOfString(tag)]
	ts.mu.Lock()
	if set := ts.m[tag]; set != nil {
		delete(set.keys, key)
		if len(set.keys) == 0 {
			delete(ts.m, tag)
			ts.shrink()
		} else if shouldShrink(len(set.keys), set.peak) {
			set.keys = rebuild(set.keys)
			set.peak = len(set.keys)
		}
	}
	ts.mu.Unlock()
}

// shrink rebuilds the shard's map when it has emptied far below its peak. Caller holds ks.mu.
func (ks *keyShard) shrink() {
	if shouldShrink(len(ks.m), ks.peak) {
		ks.m = rebuild(ks.m)
		ks.peak = len(ks.m)
	}
}

// shrink is keyShard.shrink for tag shards. Caller holds ts.mu.
func (ts *tagShard) shrink() {
	if shouldShrink(len(ts.m), ts.peak) {
		ts.m = rebuild(ts.m)
		ts.peak = len(ts.m)
	}
}

// shouldShrink says when a map of n entries that once held peak is worth rebuilding: when it is
// empty and was more than one group (8 entries), or far below a large peak. Either way the
// rebuild is paid for by the deletions since the peak.
func shouldShrink(n, peak int) bool {
	return (n == 0 && peak > 8) || (peak >= shrinkMin && n < peak/8)
}

func rebuild[V any](m map[string]V) map[string]V {
	fresh := make(map[string]V, len(m))
	for k, v := range m {
		fresh[k] = v
	}
	return fresh
}

func dupBefore(tags [][]byte, i int) bool {
	for _, t := range tags[:i] {
		if string(t) == string(tags[i]) {
			return true
		}
	}
	return false
}

func findTag(names []string, tag []byte) (string, bool) {
	for _, n := range names {
		if n == string(tag) {
			return n, true
		}
	}
	return "", false
}

func containsTag(tags [][]byte, name string) bool {
	for _, t := range tags {
		if string(t) == name {
			return true
		}
	}
	return false
}

// Keys returns the keys carrying any of tags, each once. It is a snapshot: keys may be tagged or
// untagged while or after it runs, so callers recheck with HasAny under their own lock.
func (x *Index) Keys(tags [][]byte) []string {
	var out []string
	var seen map[string]struct{}
	if len(tags) > 1 {
		seen = make(map[string]struct{})
	}
	for _, t := range tags {
		ts := &x.tags[shardOf(t)]
		ts.mu.Lock()
		if set := ts.m[string(t)]; set != nil {
			for k := range set.keys {
				if seen != nil {
					if _, dup := seen[k]; dup {
						continue
					}
					seen[k] = struct{}{}
				}
				out = append(out, k)
			}
		}
		ts.mu.Unlock()
	}
	return out
}

// Tags returns the tags key carries (nil when none).
func (x *Index) Tags(key []byte) []string {
	ks := &x.keys[shardOf(key)]
	ks.mu.Lock()
	defer ks.mu.Unlock()
	kt, ok := ks.m[string(key)]
	if !ok {
		return nil
	}
	return append([]string(nil), kt.tags...)
}

// HasAny reports whether key carries at least one of tags.
func (x *Index) HasAny(key []byte, tags [][]byte) bool {
	ks := &x.keys[shardOf(key)]
	ks.mu.Lock()
	defer ks.mu.Unlock()
	kt, ok := ks.m[string(key)]
	if !ok {
		return false
	}
	for _, t := range tags {
		if _, found := findTag(kt.tags, t); found {
			return true
		}
	}
	return false
}

// Len returns the number of tags that have at least one key, and the number of tagged keys.
func (x *Index) Len() (tags, keys int) {
	for i := range x.tags {
		ts := &x.tags[i]
		ts.mu.Lock()
		tags += len(ts.m)
		ts.mu.Unlock()
		ks := &x.keys[i]
		ks.mu.Lock()
		keys += len(ks.m)
		ks.mu.Unlock()
	}
	return tags, keys
}

// Clear empties the index. Callers make sure no Set or Remove runs concurrently with it (the
// memory store holds every shard lock while it flushes).
func (x *Index) Clear() {
	for i := range x.tags {
		ts := &x.tags[i]
		ts.mu.Lock()
		ts.m = make(map[string]*keySet)
		ts.peak = 0
		ts.mu.Unlock()
		ks := &x.keys[i]
		ks.mu.Lock()
		ks.m = make(map[string]keyTags)
		ks.peak = 0
		ks.mu.Unlock()
	}
}

// EntryCost estimates the bytes the index holds for one key of keyLen bytes carrying n tags:
// the key's copy, its entry in the key map, its list of tag names and its place in each tag's
// key set (map slots counted at a typical 70 % load). Stores add it to their memory accounting.
func EntryCost(keyLen, n int) int64 {
	if n == 0 {
		return 0
	}
	const (
		keyMapSlot = (16 + 16 + 24) * 10 / 7 // string key, keyTags value
		setSlot    = 16 * 10 / 7             // string key, empty value
	)
	return roundAlloc(keyLen) + keyMapSlot + roundAlloc(16*n) + int64(n)*setSlot
}

// roundAlloc rounds n up to a multiple of 16, roughly what Go's small size classes cost.
func roundAlloc(n int) int64 { return int64((n + 15) &^ 15) }
