// Package bitmap is Redis's bit operations on string values (bitops.c): reading and writing one
// bit, counting and finding bits in a range, combining strings with AND, OR, XOR and NOT, and
// BITFIELD's integers of any width at any bit offset. Bit 0 is the most significant bit of the
// first byte, as in Redis. The functions are pure: the stores run them on the values they hold,
// and the commands on values they read.
package bitmap

import "math/bits"

// Bit returns the bit at offset of v: 0 beyond its end.
func Bit(v []byte, offset uint64) int {
	i := offset >> 3
	if i >= uint64(len(v)) {
		return 0
	}
	return int(v[i]>>(7-offset&7)) & 1
}

// SetBit sets the bit at offset of v to bit (0 or 1), growing v with zero bytes to hold it. It
// returns the new value, which is a fresh slice (the old one may be referenced by replies in
// flight), the bit's old value, and whether the value changed: it was grown or the bit flipped.
func SetBit(v []byte, offset uint64, bit int) (next []byte, old int, changed bool) {
	size := max(uint64(len(v)), offset>>3+1)
	next = make([]byte, size)
	copy(next, v)
	old, changed = SetBitIn(next, offset, bit)
	return next, old, changed || size != uint64(len(v))
}

// SetBitIn sets the bit at offset of v, which holds it, to bit (0 or 1) in place, and returns
// the bit's old value and whether it flipped.
func SetBitIn(v []byte, offset uint64, bit int) (old int, changed bool) {
	old = Bit(v, offset)
	mask := byte(1) << (7 - offset&7)
	if bit != 0 {
		v[offset>>3] |= mask
	} else {
		v[offset>>3] &^= mask
	}
	return old, old != bit
}

// Range is a BITCOUNT or BITPOS range as the client gave it: Start and End count from the end
// of the value when negative; Bits says they count bits rather than bytes.
type Range struct {
	Start, End int64
	// HasEnd says End was given (BITPOS may be called with a start only).
	HasEnd bool
	Bits   bool
}

// span is r resolved against a value of n bytes, as Redis resolves it: first and last bit, both
// included, or ok false for an empty range.
func (r Range) span(n int64) (first, last int64, ok bool) {
	total := n
	if r.Bits {
		total = n * 8
	}
	start, end := r.Start, r.End
	if !r.HasEnd {
		end = total - 1
	}
	if start < 0 {
		start = max(total+start, 0)
	}
	if end < 0 {
		end = max(total+end, 0)
	}
	end = min(end, total-1)
	if start > end {
		return 0, 0, false
	}
	if r.Bits {
		return start, end, true
	}
	return start * 8, end*8 + 7, true
}

// Count is BITCOUNT: the number of set bits of v, within r when r is not nil.
func Count(v []byte, r *Range) int64 {
	if r == nil {
		return int64(popcount(v))
	}
	if r.Start < 0 && r.End < 0 && r.Start > r.End {
		return 0 // Redis answers before resolving the range
	}
	first, last, ok := r.span(int64(len(v)))
	if !ok {
		return 0
	}
	fb, lb := first>>3, last>>3
	n := int64(popcount(v[fb : lb+1]))
	// Take away the bits of the edge bytes outside the range.
	n -= int64(bits.OnesCount8(v[fb] &^ byte(0xff>>(first&7)))) // before first
	n -= int64(bits.OnesCount8(v[lb] & byte(0xff>>(last&7+1)))) // after last
	return n
}

func popcount(v []byte) int {
	n := 0
	for len(v) >= 8 {
		n += bits.OnesCount64(uint64(v[0])<<56 | uint64(v[1])<<48 | uint64(v[2])<<40 | uint64(v[3])<<32 |
			uint64(v[4])<<24 | uint64(v[5])<<16 | uint64(v[6])<<8 | uint64(v[7]))
		v = v[8:]
	}
	for _, b := range v {
		n += bits.OnesCount8(b)
	}
	return n
}

// Pos is BITPOS for a value that exists: the offset of the first bit equal to bit (0 or 1),
// within r when r is not nil, or -1. Looking for a 0 without an end given, a value of only ones
// answers the bit just past its end, as if it went on with zeros (Redis's rule); with an end
// given, or in an empty range, the answer is -1.
func Pos(v []byte, bit int, r *Range) int64 {
	first, last, ok := int64(0), int64(len(v))*8-1, len(v) > 0
	if r != nil {
		first, last, ok = r.span(int64(len(v)))
	}
	if !ok {
		return -1
	}
	var skip byte // the byte that holds no wanted bit
	if bit == 0 {
		skip = 0xff
	}
	for i := first; i <= last; {
		if i&7 == 0 && i+7 <= last && v[i>>3] == skip {
			i += 8
			continue
		}
		if Bit(v, uint64(i)) == bit {
			return i
		}
		i++
	}
	if bit == 1 || (r != nil && r.HasEnd) {
		return -1
	}
	return (last>>3 + 1) * 8
}

// Operator is a BITOP operation.
type Operator uint8

// BITOP's operations.
const (
	And Operator = iota
	Or
	Xor
	Not
)

// Combine is BITOP: the result of op over srcs (NOT takes one), as long as the longest source,
// shorter ones counting as padded with zero bytes (a missing key is an empty source).
func Combine(op Operator, srcs [][]byte) []byte {
	size := 0
	for _, s := range srcs {
		size = max(size, len(s))
	}
	if size == 0 {
		return nil
	}
	out := make([]byte, size)
	if op == Not {
		for i, b := range srcs[0] {
			out[i] = ^b
		}
		return out
	}
	copy(out, srcs[0])
	for _, s := range srcs[1:] {
		switch op {
		case And:
			for i := range out {
				if i < len(s) {
					out[i] &= s[i]
				} else {
					out[i] = 0
				}
			}
		case Or:
			for i, b := range s {
				out[i] |= b
			}
		case Xor:
			for i, b := range s {
				out[i] ^= b
			}
		}
	}
	return out
}
