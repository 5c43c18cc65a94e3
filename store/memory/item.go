package memory

import (
	"unsafe"

	"github.com/vela-cache/vela/store"
)

// An item is one stored entry in a single pointer-free allocation:
//
//	offset 0   expireAt int64   absolute unix ms, 0: none      (changed only under the shard's write lock)
//	offset 8   meta     uint32  LRU clock or LFU counter       (atomic: readers bump it under the read lock)
//	offset 12  hash     uint32  high half of the key's hash    (its place in the slot's table)
//	offset 16  klen     uint32  key length; top bit: tagged; the two below: store.Encoding
//	offset 20  vlen     uint32  value length
//	offset 24  key bytes, then value bytes
//
// One allocation per entry, with no pointers inside, costs the garbage collector nothing to scan
// and is about half of what a Go map entry with a string key and a []byte value costs. The value
// bytes of a value under 64 KiB are never modified after the item is published, so a value slice
// handed to a reader stays valid (and keeps the item alive) however the entry changes
// afterwards; a larger value is changed in place until it is first handed to a reader, and its
// item is preceded by the word that records that (inplace.go).
type item = unsafe.Pointer

// header is the fixed part of an item.
type header struct {
	expireAt int64
	meta     uint32
	hash     uint32
	klen     uint32
	vlen     uint32
}

const (
	headerSize = int(unsafe.Sizeof(header{}))
	taggedBit  = 1 << 31
	encShift   = 29
	encMask    = 3 << encShift
	// maxKeyLen and maxValueLen are what the header's length fields can hold.
	maxKeyLen   = 1<<encShift - 1
	maxValueLen = 1<<32 - 1
)

func hdr(p item) *header { return (*header)(p) }

func (h *header) keyLen() int { return int(h.klen &^ (taggedBit | encMask)) }

// enc is how the value was written, for OBJECT ENCODING.
func (h *header) enc() store.Encoding { return store.Encoding(h.klen & encMask >> encShift) }

func (h *header) tagged() bool { return h.klen&taggedBit != 0 }

// keyOf returns the item's key, aliasing the item.
func keyOf(p item) []byte {
	n := hdr(p).keyLen()
	if n == 0 {
		return unsafe.Slice((*byte)(p), 0) // see valueOf
	}
	return unsafe.Slice((*byte)(unsafe.Add(p, headerSize)), n)
}

// valueOf returns the item's value, aliasing the item. A zero-length value is a non-nil empty
// slice, so callers can tell it from a missing one. An empty key or value may end exactly where
// the allocation ends; a pointer there would point at the next object in memory, which the
// garbage collector would then mark (it crashes with "marked free object"), so empty slices
// point at the start of the item instead.
func valueOf(p item) []byte {
	h := hdr(p)
	if h.vlen == 0 {
		return unsafe.Slice((*byte)(p), 0)
	}
	return unsafe.Slice((*byte)(unsafe.Add(p, headerSize+h.keyLen())), int(h.vlen))
}

// newItem allocates an item holding key and value, written as enc says. It asks for the size
// the allocator gives anyway, so that a large value may grow into the rest; a large value's
// item starts after its lent word (inplace.go).
func newItem(key, value []byte, hash uint32, expireAt int64, meta uint32, tagged bool, enc store.Encoding) item {
	pre := prefixOf(len(value))
	b := make([]byte, allocSize(pre+headerSize+len(key)+len(value)))[pre:]
	copy(b[headerSize:], key)
	copy(b[headerSize+len(key):], value)
	p := unsafe.Pointer(&b[0])
	h := hdr(p)
	h.expireAt = expireAt
	h.meta = meta
	h.hash = hash
	h.klen = uint32(len(key)) | uint32(enc)<<encShift
	if tagged {
		h.klen |= taggedBit
	}
	h.vlen = uint32(len(value))
	return p
}

// itemCost is what the allocator really hands out for an item of this key and value length.
func itemCost(keyLen, valueLen int) int64 {
	return allocSize(prefixOf(valueLen) + headerSize + keyLen + valueLen)
}

// sizeClasses are the Go 1.26 runtime's small-object size classes (internal/runtime/gc), used to
// count each allocation at the size the allocator really gives it.
var sizeClasses = [...]int32{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224,
	240, 256, 288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280,
	1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912,
	8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432, 19072, 20480, 21760, 24576,
	27264, 28672, 32768}

// allocSize rounds n up to its size class; objects above 32 KiB take whole 8 KiB pages.
func allocSize(n int) int64 {
	if n <= 0 {
		return 0
	}
	if n > 32768 {
		return int64((n + 8191) &^ 8191)
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if int(sizeClasses[mid]) >= n {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return int64(sizeClasses[lo])
}
