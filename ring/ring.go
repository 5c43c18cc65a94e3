// Package ring places keys on cluster members with consistent hashing: each member owns many
// points (virtual nodes) on a 64-bit circle, and a key belongs to the member owning the first
// point at or after the key's hash. Adding a member moves only the keys that now hash to its
// points; no key moves between the members that were already there.
//
// A Ring is immutable: membership changes build a new one (New) and publish it with a Holder,
// so lookups never take a lock and every node given the same member names computes the same
// owners. Keys follow Redis Cluster's hash tags: when a key contains "{…}" with at least one byte
// between the first '{' and the next '}', only those bytes are hashed, so related keys live
// together.
package ring

import (
	"slices"
	"sort"
	"strconv"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// DefaultVNodes is the number of points per member. With xxhash, 2048 points keep every member's
// share within about 5 % of even for 3–10 members (512 strays past 10 %, see TestBalance).
// Lookups are a binary search over members×vnodes points, so more points cost little.
const DefaultVNodes = 2048

// HashFunc hashes a key (after hash-tag extraction) or a virtual node name.
type HashFunc func([]byte) uint64

// Config configures a Ring. The zero value uses DefaultVNodes and xxhash.
type Config struct {
	// VNodes is the number of points per member (default DefaultVNodes).
	VNodes int
	// Hash replaces xxhash; tests use it to place points deterministically.
	Hash HashFunc
}

// Ring maps keys to members. It is immutable and safe for concurrent use.
type Ring struct {
	version uint64
	vnodes  int
	hash    HashFunc
	members []string // sorted, distinct
	points  []uint64 // sorted hashes of the virtual nodes
	owner   []int32  // owner[i] is the index in members of points[i]
}

// New builds a ring of members (duplicates and order do not matter) tagged with version.
func New(members []string, version uint64, cfg Config) *Ring {
	if cfg.VNodes <= 0 {
		cfg.VNodes = DefaultVNodes
	}
	if cfg.Hash == nil {
		cfg.Hash = xxhash.Sum64
	}
	ms := slices.Clone(members)
	sort.Strings(ms)
	ms = slices.Compact(ms)
	r := &Ring{version: version, vnodes: cfg.VNodes, hash: cfg.Hash, members: ms}
	type point struct {
		h     uint64
		owner int32
	}
	pts := make([]point, 0, len(ms)*cfg.VNodes)
	var buf []byte
	for i, m := range ms {
		for v := 0; v < cfg.VNodes; v++ {
			buf = strconv.AppendInt(append(append(buf[:0], m...), '#'), int64(v), 10)
			pts = append(pts, point{cfg.Hash(buf), int32(i)})
		}
	}
	// Ties (equal hashes) are broken by member name, so every node orders them alike.
	sort.Slice(pts, func(a, b int) bool {
		if pts[a].h != pts[b].h {
			return pts[a].h < pts[b].h
		}
		return pts[a].owner < pts[b].owner
	})
	r.points = make([]uint64, len(pts))
	r.owner = make([]int32, len(pts))
	for i, p := range pts {
		r.points[i], r.owner[i] = p.h, p.owner
	}
	return r
}

// Version is the version the ring was built with.
func (r *Ring) Version() uint64 { return r.version }

// VNodes is the number of points per member.
func (r *Ring) VNodes() int { return r.vnodes }

// Members returns the members, sorted. The slice must not be modified.
func (r *Ring) Members() []string { return r.members }

// Len is the number of members.
func (r *Ring) Len() int { return len(r.members) }

// Has reports whether name is a member.
func (r *Ring) Has(name string) bool {
	_, ok := slices.BinarySearch(r.members, name)
	return ok
}

// HashTag returns the part of key that is hashed: the bytes between the first '{' and the next
// '}' when there is at least one, else the whole key (Redis Cluster's rule).
func HashTag(key []byte) []byte {
	for i, c := range key {
		if c == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j == i+1 {
						return key // "{}": the whole key is hashed
					}
					return key[i+1 : j]
				}
			}
			return key
		}
	}
	return key
}

// KeyHash is the position of key on the circle.
func (r *Ring) KeyHash(key []byte) uint64 { return r.hash(HashTag(key)) }

// search returns the index of the first point at or after h, wrapping around.
func (r *Ring) search(h uint64) int {
	// A hand-written binary search: sort.Search's closure would escape and allocate.
	lo, hi := 0, len(r.points)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.points[mid] < h {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(r.points) {
		lo = 0
	}
	return lo
}

// Owner returns the member owning key, or "" when the ring is empty. It does not allocate.
func (r *Ring) Owner(key []byte) string {
	if len(r.points) == 0 {
		return ""
	}
	return r.members[r.owner[r.search(r.KeyHash(key))]]
}

// OwnerOfAll returns the member owning every one of keys, and false when they have several
// owners (Redis Cluster's CROSSSLOT). It does not allocate.
func (r *Ring) OwnerOfAll(keys [][]byte) (string, bool) {
	if len(keys) == 0 {
		return "", true
	}
	owner := r.Owner(keys[0])
	for _, k := range keys[1:] {
		if r.Owner(k) != owner {
			return "", false
		}
	}
	return owner, true
}

// Owners appends to dst the n members holding key's copies: its owner, then the next distinct
// members clockwise. Fewer than n are returned when the ring has fewer members. It does not
// allocate when dst has room.
func (r *Ring) Owners(key []byte, n int, dst []string) []string {
	if len(r.points) == 0 || n <= 0 {
		return dst
	}
	n = min(n, len(r.members))
	start := len(dst)
	i := r.search(r.KeyHash(key))
	for seen := 0; seen < len(r.points) && len(dst)-start < n; seen++ {
		m := r.members[r.owner[i]]
		if !slices.Contains(dst[start:], m) {
			dst = append(dst, m)
		}
		if i++; i == len(r.points) {
			i = 0
		}
	}
	return dst
}

// IsOwner reports whether name is among the n members holding key's copies. It does not
// allocate.
func (r *Ring) IsOwner(key []byte, n int, name string) bool {
	var buf [8]string
	dst := buf[:0]
	if n > len(buf) {
		dst = make([]string, 0, n)
	}
	return slices.Contains(r.Owners(key, n, dst), name)
}

// Holder publishes the current ring. Readers Load it without locking; a membership change
// Stores a freshly built one.
type Holder struct {
	p atomic.Pointer[Ring]
}

// Load returns the current ring, or an empty one before the first Store.
func (h *Holder) Load() *Ring {
	if r := h.p.Load(); r != nil {
		return r
	}
	return empty
}

// Store publishes r.
func (h *Holder) Store(r *Ring) { h.p.Store(r) }

var empty = New(nil, 0, Config{})
