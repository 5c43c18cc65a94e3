package memory

import "unsafe"

// maxPrefetch bounds the keys one Prefetch call looks at.
const maxPrefetch = 32

// tableSize is the bytes of a table: its header and inline buckets span three or four lines.
const tableSize = unsafe.Sizeof(table{})

// Prefetch brings into the CPU's caches what looking up keys will read: each key's table (its
// header, and the buckets kept inline), its home bucket and the entry there. A lookup in a large
// keyspace takes about three dependent cache misses, one after the other; a pipelined batch of
// commands, prefetched before it runs, takes them for all its keys at once, as Valkey does for
// its batches. It changes nothing a command sees: it only reads, under the shards' read locks,
// and a key that moves meanwhile costs a wasted prefetch.
func (s *Store) Prefetch(keys [][]byte) {
	n := min(len(keys), maxPrefetch)
	var hs [maxPrefetch]uint64
	var ts [maxPrefetch]*table
	var shs [maxPrefetch]*shard
	// Stage 1: the tables, whose addresses need no memory read. Issued back to back, their
	// misses overlap.
	for i := range n {
		h, sh, t := s.locate(keys[i])
		hs[i], shs[i], ts[i] = h, sh, t
		p := unsafe.Pointer(t)
		for off := uintptr(0); off < tableSize; off += 64 {
			prefetch(unsafe.Add(p, off))
		}
		prefetch(unsafe.Add(p, tableSize-1)) // the last line, when the table straddles one more
	}
	// Stage 2: the home buckets of tables too large to keep them inline.
	for i := range n {
		t := ts[i]
		shs[i].mu.RLock()
		if c := len(t.items); c > inlineCap {
			j := home(uint32(hs[i]>>32), c)
			prefetch(unsafe.Pointer(&t.items[j]))
			prefetch(unsafe.Pointer(&t.fps[j]))
		}
		shs[i].mu.RUnlock()
	}
	// Stage 3: the entries in the home buckets (their headers hold the key).
	for i := range n {
		t := ts[i]
		shs[i].mu.RLock()
		if c := len(t.items); c > 0 {
			if p := t.items[home(uint32(hs[i]>>32), c)]; p != nil {
				prefetch(unsafe.Pointer(p))
			}
		}
		shs[i].mu.RUnlock()
	}
}
