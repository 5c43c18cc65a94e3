package memory

// table is one slot's hash table: open addressing with linear probing over item pointers, plus
// one fingerprint byte per bucket so that probing past other keys rarely touches their items.
// Deletion shifts later entries back instead of leaving tombstones, so lookups never slow down
// with churn. Capacities are not powers of two: a key's home bucket is its 32-bit hash scaled to
// the capacity, so the table can grow by half at a time and stay at 53–80 % load.
//
// A table is guarded by its shard's lock.
type table struct {
	items []item  // nil: empty bucket; in inlItems when the capacity allows
	fps   []uint8 // fingerprint of the item in the same bucket; in inlFps likewise
	n     int     // items held
	// A small table keeps its buckets and fingerprints here, beside the header a lookup reads
	// first, rather than in allocations of their own: one dependent cache miss fewer per lookup
	// in a keyspace of up to about 150,000 keys (16,384 slots of up to 9 keys). A table is never
	// copied (it lives in its shard's array), so items and fps may point into it.
	inlItems [inlineCap]item
	inlFps   [inlineCap]uint8
}

// inlineCap is the largest capacity kept inside the table: the first two (8 and 12).
const inlineCap = 12

const (
	minTableCap = 8
	maxLoadNum  = 4 // grow beyond 4/5 full
	maxLoadDen  = 5
)

// fingerprint is the byte of the hash kept beside each bucket (bits unused by slot and home).
func fingerprint(h uint64) uint8 { return uint8(h >> 16) }

// home is the first bucket a key with hash h32 may occupy in a table of capacity c.
func home(h32 uint32, c int) int { return int((uint64(h32) * uint64(c)) >> 32) }

// tableBytes is what a table of capacity c costs: its item array and fingerprint array.
func tableBytes(c int) int64 {
	if c == 0 {
		return 0
	}
	if c <= inlineCap {
		return 0 // inside the table
	}
	return allocSize(8*c) + allocSize(c)
}

// find returns the bucket holding key, or -1.
func (t *table) find(key []byte, h uint64) int {
	c := len(t.items)
	if t.n == 0 {
		return -1
	}
	fp := fingerprint(h)
	for i := home(uint32(h>>32), c); ; {
		p := t.items[i]
		if p == nil {
			return -1
		}
		if t.fps[i] == fp && string(keyOf(p)) == string(key) {
			return i
		}
		if i++; i == c {
			i = 0
		}
	}
}

// insert puts p (whose key is not in the table) in the table and returns the change in the
// table's cost in bytes (non-zero when it had to grow).
func (t *table) insert(p item, fp uint8) int64 {
	var grown int64
	if (t.n+1)*maxLoadDen > len(t.items)*maxLoadNum {
		grown = t.resize(max(minTableCap, len(t.items)+len(t.items)/2))
	}
	t.place(p, fp)
	t.n++
	return grown
}

// place puts p in the first free bucket from its home.
func (t *table) place(p item, fp uint8) {
	c := len(t.items)
	i := home(hdr(p).hash, c)
	for t.items[i] != nil {
		if i++; i == c {
			i = 0
		}
	}
	t.items[i] = p
	t.fps[i] = fp
}

// removeAt empties bucket i and shifts the entries after it back so that every entry stays
// reachable from its home. It returns the change in the table's cost (non-zero when it shrank).
func (t *table) removeAt(i int) int64 {
	c := len(t.items)
	t.items[i] = nil
	t.n--
	// Backward-shift deletion: move each following entry into the hole when its home does not
	// lie cyclically between the hole and its current bucket.
	hole := i
	for j := i + 1; ; j++ {
		if j == c {
			j = 0
		}
		p := t.items[j]
		if p == nil {
			break
		}
		// p may fill the hole when its home is no further along than the hole.
		if dist(home(hdr(p).hash, c), j, c) >= dist(hole, j, c) {
			t.items[hole], t.fps[hole] = p, t.fps[j]
			t.items[j] = nil
			hole = j
		}
	}
	if c > minTableCap && t.n*5 < c {
		return t.resize(max(minTableCap, t.n*3/2+1))
	}
	return 0
}

// dist is how many buckets forward b is from a in a table of capacity c.
func dist(a, b, c int) int {
	if b >= a {
		return b - a
	}
	return b + c - a
}

// resize rebuilds the table with capacity c (0 frees it) and returns the change in its cost.
func (t *table) resize(c int) int64 {
	before := tableBytes(len(t.items))
	old, oldFps := t.items, t.fps
	wasInline := len(old) > 0 && &old[0] == &t.inlItems[0]
	if wasInline { // the new buckets may be the same arrays: move the old ones aside
		var items [inlineCap]item
		var fps [inlineCap]uint8
		old, oldFps = items[:copy(items[:], old)], fps[:copy(fps[:], oldFps)]
		clear(t.inlItems[:]) // no stale pointers keep items alive
	}
	if c == 0 {
		t.items, t.fps = nil, nil
		return -before
	}
	if c <= inlineCap {
		t.items, t.fps = t.inlItems[:c:c], t.inlFps[:c:c]
		clear(t.fps)
	} else {
		t.items, t.fps = make([]item, c), make([]uint8, c)
	}
	for i, p := range old {
		if p != nil {
			t.place(p, oldFps[i])
		}
	}
	return tableBytes(c) - before
}
