package bitmap

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strconv"
)

// FieldKind is what one BITFIELD subcommand does.
type FieldKind uint8

// BITFIELD's subcommands (OVERFLOW is a setting of the ones after it: FieldOp.Overflow).
const (
	FieldGet FieldKind = iota
	FieldSet
	FieldIncrBy
)

// Overflow is BITFIELD's OVERFLOW setting: what SET and INCRBY do with a result the field
// cannot hold.
type Overflow uint8

// Overflow settings.
const (
	Wrap Overflow = iota // keep the low bits (two's complement for signed fields); the default
	Sat                  // stop at the field's minimum or maximum
	Fail                 // write nothing and answer a null
)

// FieldOp is one BITFIELD subcommand: a field of Width bits (1–64 signed, 1–63 unsigned) at bit
// Offset.
type FieldOp struct {
	Kind     FieldKind
	Signed   bool
	Width    uint8
	Overflow Overflow
	Offset   uint64
	// Arg is SET's value or INCRBY's increment.
	Arg int64
}

// FieldResult is one subcommand's reply: an integer, or a null when an OVERFLOW FAIL kept it
// from writing.
type FieldResult struct {
	Value int64
	Null  bool
}

// ParseType reads a field type, "i16" or "u8": signed, its width, and ok false for anything
// Redis refuses (u64 among them). As Redis does, it reads s as a C string: "i8\x00x" is i8.
func ParseType(s []byte) (signed bool, width uint8, ok bool) {
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	if len(s) < 2 || (s[0] != 'i' && s[0] != 'u') {
		return false, 0, false
	}
	signed = s[0] == 'i'
	n, err := strconv.ParseInt(string(s[1:]), 10, 64)
	if err != nil || n < 1 || n > 64 || (!signed && n > 63) || !canonical(s[1:]) {
		return false, 0, false
	}
	return signed, uint8(n), true
}

// canonical reports whether s is an integer written as Redis's string2ll accepts it: no sign
// but a minus, no leading zero, no space.
func canonical(s []byte) bool {
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(s) > 0 && (s[0] != '0' || len(s) == 1)
}

// Exec runs ops on v as Redis's BITFIELD runs them, and returns the new value, one result per
// op, and whether any op changed the value (a write that grew it counts). When ops contain a
// SET or INCRBY the value is first grown with zero bytes to hold the farthest field written,
// and the new value is a fresh slice; otherwise it is v itself.
func Exec(v []byte, ops []FieldOp) (next []byte, results []FieldResult, changed bool) {
	size := Size(uint64(len(v)), ops)
	next = v
	if writesAny(ops) {
		next = make([]byte, size)
		copy(next, v)
	}
	results, changed = Run(next, ops, size != uint64(len(v)))
	return next, results, changed
}

// Size is the length a value of n bytes has once ops have run: n, or more to hold the farthest
// field a SET or INCRBY writes.
func Size(n uint64, ops []FieldOp) uint64 {
	for _, op := range ops {
		if op.Kind != FieldGet {
			_, last := op.Span()
			n = max(n, last+1)
		}
	}
	return n
}

// Run runs ops on v in place, v holding every field they write (Size), and returns one result
// per op and whether any op changed the value; grown says v was grown for them, which counts as
// a change for every write that ran.
func Run(v []byte, ops []FieldOp, grown bool) (results []FieldResult, changed bool) {
	results = make([]FieldResult, len(ops))
	for i, op := range ops {
		var c bool
		results[i], c = op.run(v, op.Offset)
		changed = changed || c || (grown && op.Kind != FieldGet && !results[i].Null)
	}
	return results, changed
}

func writesAny(ops []FieldOp) bool {
	for _, op := range ops {
		if op.Kind != FieldGet {
			return true
		}
	}
	return false
}

// run executes op on p with the field at bit offset: for a write, p holds the whole field.
// It reports the result and whether the field's bits changed.
func (op FieldOp) run(p []byte, offset uint64) (FieldResult, bool) {
	old := getField(p, offset, op.Width)
	if op.Kind == FieldGet {
		return FieldResult{Value: op.signedValue(old)}, false
	}
	var next uint64
	var overflow bool
	if op.Signed {
		cur := op.signedValue(old)
		var n int64
		if op.Kind == FieldIncrBy {
			n, overflow = signedAdd(cur, op.Arg, op.Width, op.Overflow)
		} else {
			n, overflow = signedAdd(op.Arg, 0, op.Width, op.Overflow)
		}
		next = uint64(n)
	} else if op.Kind == FieldIncrBy {
		next, overflow = unsignedAdd(old, op.Arg, op.Width, op.Overflow)
	} else {
		next, overflow = unsignedAdd(uint64(op.Arg), 0, op.Width, op.Overflow)
	}
	if overflow && op.Overflow == Fail {
		return FieldResult{Null: true}, false
	}
	setField(p, offset, op.Width, next)
	res := op.signedValue(old) // SET answers the old value
	if op.Kind == FieldIncrBy {
		res = op.signedValue(next & widthMask(op.Width))
	}
	return FieldResult{Value: res}, old != next&widthMask(op.Width)
}

// signedValue is the field's raw bits as the reply shows them: sign-extended for a signed field.
func (op FieldOp) signedValue(raw uint64) int64 {
	raw &= widthMask(op.Width)
	if op.Signed && op.Width < 64 && raw&(1<<(op.Width-1)) != 0 {
		raw |= ^uint64(0) << op.Width
	}
	return int64(raw)
}

func widthMask(width uint8) uint64 {
	if width >= 64 {
		return ^uint64(0)
	}
	return 1<<width - 1
}

// unsignedAdd is Redis's checkUnsignedBitfieldOverflow and the sum: value+incr in an unsigned
// field of width bits, and whether it overflowed (the result is then what ow makes of it).
func unsignedAdd(value uint64, incr int64, width uint8, ow Overflow) (uint64, bool) {
	limit := widthMask(width)
	maxIncr := int64(limit - value)
	minIncr := -int64(value)
	switch {
	case value > limit || (incr > 0 && incr > maxIncr):
		if ow == Sat {
			return limit, true
		}
	case incr < 0 && incr < minIncr:
		if ow == Sat {
			return 0, true
		}
	default:
		return value + uint64(incr), false
	}
	return (value + uint64(incr)) & limit, true // WRAP (and FAIL, which writes nothing)
}

// signedAdd is Redis's checkSignedBitfieldOverflow and the sum for a signed field.
func signedAdd(value, incr int64, width uint8, ow Overflow) (int64, bool) {
	hi := int64(1)<<(width-1) - 1
	if width == 64 {
		hi = 1<<63 - 1
	}
	lo := -hi - 1
	maxIncr := int64(uint64(hi) - uint64(value))
	minIncr := lo - value
	switch {
	case value > hi || (width != 64 && incr > maxIncr) || (value >= 0 && incr > 0 && incr > maxIncr):
		if ow == Sat {
			return hi, true
		}
	case value < lo || (width != 64 && incr < minIncr) || (value < 0 && incr < 0 && incr < minIncr):
		if ow == Sat {
			return lo, true
		}
	default:
		return value + incr, false
	}
	c := uint64(value) + uint64(incr) // WRAP: two's complement in width bits
	if width < 64 {
		if c&(1<<(width-1)) != 0 {
			c |= ^uint64(0) << width
		} else {
			c &^= ^uint64(0) << width
		}
	}
	return int64(c), true
}

// getField reads width bits at bit offset of p, most significant first; bits beyond p are 0.
func getField(p []byte, offset uint64, width uint8) uint64 {
	var v uint64
	for j := uint8(0); j < width; j++ {
		v = v<<1 | uint64(Bit(p, offset+uint64(j)))
	}
	return v
}

// setField writes the low width bits of v at bit offset of p, which holds them.
func setField(p []byte, offset uint64, width uint8, v uint64) {
	for j := int(width) - 1; j >= 0; j-- {
		o := offset + uint64(j)
		mask := byte(1) << (7 - o&7)
		if v&1 != 0 {
			p[o>>3] |= mask
		} else {
			p[o>>3] &^= mask
		}
		v >>= 1
	}
}

// fieldSize is the size of one encoded FieldOp.
const fieldSize = 1 + 1 + 1 + 1 + 8 + 8

// errEncoding is DecodeFields's error for bytes EncodeFields did not write.
var errEncoding = errors.New("bitmap: malformed BITFIELD operations")

// EncodeFields writes ops as bytes, for a store operation to carry them.
func EncodeFields(ops []FieldOp) []byte {
	b := make([]byte, 0, len(ops)*fieldSize)
	for _, op := range ops {
		b = append(b, byte(op.Kind), boolByte(op.Signed), op.Width, byte(op.Overflow))
		b = binary.BigEndian.AppendUint64(b, op.Offset)
		b = binary.BigEndian.AppendUint64(b, uint64(op.Arg))
	}
	return b
}

// DecodeFields reads what EncodeFields wrote, checking every field as ParseType would.
func DecodeFields(b []byte) ([]FieldOp, error) {
	if len(b)%fieldSize != 0 {
		return nil, errEncoding
	}
	ops := make([]FieldOp, 0, len(b)/fieldSize)
	for ; len(b) > 0; b = b[fieldSize:] {
		op := FieldOp{Kind: FieldKind(b[0]), Signed: b[1] == 1, Width: b[2], Overflow: Overflow(b[3]),
			Offset: binary.BigEndian.Uint64(b[4:]), Arg: int64(binary.BigEndian.Uint64(b[12:]))}
		if op.Kind > FieldIncrBy || b[1] > 1 || op.Width < 1 || op.Width > 64 || (!op.Signed && op.Width > 63) ||
			op.Overflow > Fail || op.Offset > 1<<62 {
			return nil, errEncoding
		}
		ops = append(ops, op)
	}
	return ops, nil
}

// EncodeResults writes results as bytes, for a store's Result to carry them.
func EncodeResults(results []FieldResult) []byte {
	b := make([]byte, 0, len(results)*9)
	for _, r := range results {
		b = append(b, boolByte(r.Null))
		b = binary.BigEndian.AppendUint64(b, uint64(r.Value))
	}
	return b
}

// DecodeResults reads what EncodeResults wrote.
func DecodeResults(b []byte) ([]FieldResult, error) {
	if len(b)%9 != 0 {
		return nil, errEncoding
	}
	out := make([]FieldResult, 0, len(b)/9)
	for ; len(b) > 0; b = b[9:] {
		out = append(out, FieldResult{Null: b[0] == 1, Value: int64(binary.BigEndian.Uint64(b[1:]))})
	}
	return out, nil
}

func boolByte(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// Span is the bytes a field covers: the first and last, both included.
func (op FieldOp) Span() (first, last uint64) {
	return op.Offset >> 3, (op.Offset + uint64(op.Width) - 1) >> 3
}

// Args is op as BITFIELD arguments, its overflow setting always given so that any run of ops
// may be sent on its own.
func (op FieldOp) Args() []string {
	t := "u"
	if op.Signed {
		t = "i"
	}
	t += strconv.Itoa(int(op.Width))
	off := strconv.FormatUint(op.Offset, 10)
	switch op.Kind {
	case FieldSet:
		return []string{"OVERFLOW", [...]string{"WRAP", "SAT", "FAIL"}[op.Overflow], "SET", t, off, strconv.FormatInt(op.Arg, 10)}
	case FieldIncrBy:
		return []string{"OVERFLOW", [...]string{"WRAP", "SAT", "FAIL"}[op.Overflow], "INCRBY", t, off, strconv.FormatInt(op.Arg, 10)}
	}
	return []string{"GET", t, off}
}

// Replay computes ops' results, and whether they changed the value, from only the bytes each
// op covers as they were before the ops ran (spans[i] for ops[i], cut short where the value
// ended: the rest reads as zeros), the value's length before and whether it existed. A server
// that ran the writes itself, and returned those bytes, is answered exactly as Exec would.
func Replay(ops []FieldOp, spans [][]byte, oldLen uint64, existed bool) ([]FieldResult, bool) {
	known := make(map[uint64]byte)
	for i, op := range ops {
		first, last := op.Span()
		for b := first; b <= last; b++ {
			if _, ok := known[b]; !ok {
				var v byte
				if j := b - first; j < uint64(len(spans[i])) {
					v = spans[i][j]
				}
				known[b] = v
			}
		}
	}
	size := oldLen
	for _, op := range ops {
		if op.Kind != FieldGet {
			_, last := op.Span()
			size = max(size, last+1)
		}
	}
	grown := !existed || size != oldLen
	results := make([]FieldResult, len(ops))
	changed := false
	var win [9]byte
	for i, op := range ops {
		first, last := op.Span()
		for b := first; b <= last; b++ {
			win[b-first] = known[b]
		}
		var c bool
		results[i], c = op.run(win[:last-first+1], op.Offset-first*8)
		for b := first; b <= last; b++ {
			known[b] = win[b-first]
		}
		changed = changed || c || (grown && op.Kind != FieldGet && !results[i].Null)
	}
	return results, changed
}
