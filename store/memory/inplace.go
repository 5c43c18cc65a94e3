package memory

import (
	"sync/atomic"
	"unsafe"

	"github.com/vela-cache/vela/bitmap"
	"github.com/vela-cache/vela/store"
)

// Large values are changed in place. A write to a value copies it into a new item, so that a
// reader holding the old one (a reply not yet written) keeps seeing it whole; for a large value
// that copy is the whole cost of a write that changes a few bytes (a SETBIT on a 1 MiB bitmap,
// an APPEND to a long log). So SETBIT, BITFIELD, SETRANGE and APPEND change a value of
// inPlaceMin bytes or more in its own item, under the shard's write lock, as Redis changes its
// string in place, unless the value has been handed to a reader: such an item is "lent" (a word
// just before its header, set atomically under the read lock), and the next change copies it
// into a new item, which is not. Reads that only look at a value under the lock (store.Op.Peek:
// GETBIT, BITCOUNT…) do not lend it.
//
// An item is allocated at the size the allocator gives it anyway (allocSize), so the bytes past
// a value up to the end of its allocation are its room to grow: zero, since a value never
// shrinks in place. A change that needs more copies the value into a new item, with room again,
// so a value that keeps growing is copied once per allocation step (8 KiB past 32 KiB) rather
// than once per write.

// inPlaceMin is the smallest value changed in place.
const inPlaceMin = 64 << 10

// lentSize is the size of the word before a large value's item.
const lentSize = 8

// prefixOf is the size of what precedes the item of a value of n bytes: its lent word when the
// value is large enough to be changed in place, else nothing.
func prefixOf(n int) int {
	if n >= inPlaceMin {
		return lentSize
	}
	return 0
}

// lend records that p's value is handed to a reader, when it is large enough for that to matter.
// It may run under the shard's read lock.
func lend(p item) {
	if int(hdr(p).vlen) >= inPlaceMin {
		if w := (*uint32)(unsafe.Add(p, -lentSize)); atomic.LoadUint32(w) == 0 {
			atomic.StoreUint32(w, 1)
		}
	}
}

// lent reports whether p's large value has been handed to a reader.
func lent(p item) bool { return atomic.LoadUint32((*uint32)(unsafe.Add(p, -lentSize))) != 0 }

// roomOf is how long p's large value may grow within p's allocation.
func roomOf(p item) int {
	h := hdr(p)
	return int(allocSize(lentSize+headerSize+h.keyLen()+int(h.vlen))) - lentSize - headerSize - h.keyLen()
}

// grownValue extends p's value to n bytes (n ≤ roomOf(p)) and returns it, aliasing the item.
func grownValue(p item, n int) []byte {
	h := hdr(p)
	h.vlen = uint32(n)
	return unsafe.Slice((*byte)(unsafe.Add(p, headerSize+h.keyLen())), n)
}

// changeInPlace runs op, a SetBit, BitField, SetRange or Append, on p's large live value in
// place, under the shard's write lock. It reports false, having changed nothing, when op is of
// another kind, the value is small, or the result would not fit p's allocation; the caller then
// writes a new item as for any write (store.Apply, which also refuses what is out of range).
func (s *Store) changeInPlace(p item, op *store.Op, now int64) (store.Result, bool) {
	v := valueOf(p)
	if len(v) < inPlaceMin || lent(p) {
		return store.Result{}, false
	}
	room := roomOf(p)
	res := store.Result{Found: true}
	switch op.Kind {
	case store.SetBit:
		if op.Delta < 0 || op.Delta>>3 >= min(s.maxLen, int64(room)) {
			return res, false
		}
		buf := grownValue(p, max(len(v), int(op.Delta>>3)+1))
		old, changed := bitmap.SetBitIn(buf, uint64(op.Delta), store.BitArg(op.Value))
		res.Int, res.Done = int64(old), changed || len(buf) != len(v)
	case store.BitField:
		ops, err := bitmap.DecodeFields(op.Value)
		if err != nil {
			return res, false
		}
		size := bitmap.Size(uint64(len(v)), ops)
		if size > uint64(room) || int64(size) > s.maxLen+8 {
			return res, false
		}
		buf := grownValue(p, int(size))
		var results []bitmap.FieldResult
		results, res.Done = bitmap.Run(buf, ops, len(buf) != len(v))
		res.Value = bitmap.EncodeResults(results)
	case store.SetRange:
		if len(op.Value) == 0 || op.Delta < 0 || op.Delta > int64(room-len(op.Value)) || op.Delta > s.maxLen-int64(len(op.Value)) {
			return res, false
		}
		buf := grownValue(p, max(len(v), int(op.Delta)+len(op.Value)))
		copy(buf[op.Delta:], op.Value)
		res.Int, res.Done = int64(len(buf)), true
	case store.Append:
		n := len(v) + len(op.Value)
		if n > room || int64(n) > s.maxLen {
			return res, false
		}
		copy(grownValue(p, n)[len(v):], op.Value)
		res.Int = int64(n)
	default:
		return res, false
	}
	h := hdr(p)
	h.klen = h.klen&^encMask | uint32(store.EncodeRaw)<<encShift // as Redis leaves a string it changed
	s.touch(h, now)
	return res, true
}
