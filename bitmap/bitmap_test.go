package bitmap

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestBitAndSetBit(t *testing.T) {
	v, old, changed := SetBit(nil, 9, 1)
	if !bytes.Equal(v, []byte{0, 0x40}) || old != 0 || !changed {
		t.Fatalf("SetBit(nil, 9, 1) = %x %d %v", v, old, changed)
	}
	if Bit(v, 9) != 1 || Bit(v, 8) != 0 || Bit(v, 100) != 0 {
		t.Fatal("Bit reads the wrong bits")
	}
	next, old, changed := SetBit(v, 9, 1)
	if old != 1 || changed || &next[0] == &v[0] {
		t.Fatalf("setting a set bit: old %d changed %v, fresh slice %v", old, changed, &next[0] != &v[0])
	}
	if _, old, changed = SetBit(v, 9, 0); old != 1 || !changed {
		t.Fatalf("clearing a set bit: old %d changed %v", old, changed)
	}
}

// naiveCount and naivePos are BITCOUNT and BITPOS bit by bit over the resolved range.
func naiveCount(v []byte, first, last int64) int64 {
	n := int64(0)
	for i := first; i <= last; i++ {
		n += int64(Bit(v, uint64(i)))
	}
	return n
}

func TestCountAndPosMatchBitByBit(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 3000 {
		v := make([]byte, rng.IntN(12))
		for i := range v {
			v[i] = [...]byte{0, 0xff, byte(rng.IntN(256))}[rng.IntN(3)]
		}
		r := Range{Start: rng.Int64N(120) - 60, End: rng.Int64N(120) - 60, HasEnd: rng.IntN(3) > 0, Bits: rng.IntN(2) == 0}
		first, last, ok := r.span(int64(len(v)))
		want := int64(0)
		if ok && !(r.Start < 0 && r.End < 0 && r.Start > r.End) {
			want = naiveCount(v, first, last)
		}
		rr := r
		rr.HasEnd = true
		if got := Count(v, &rr); got != want && r.HasEnd {
			t.Fatalf("Count(%x, %+v) = %d, want %d", v, rr, got, want)
		}
		for bit := range 2 {
			want := int64(-1)
			if ok {
				for i := first; i <= last; i++ {
					if Bit(v, uint64(i)) == bit {
						want = i
						break
					}
				}
				if want == -1 && bit == 0 && !r.HasEnd {
					want = (last/8 + 1) * 8
				}
			}
			if got := Pos(v, bit, &r); got != want {
				t.Fatalf("Pos(%x, %d, %+v) = %d, want %d", v, bit, r, got, want)
			}
		}
	}
}

func TestCombine(t *testing.T) {
	a, b := []byte{0xf0, 0x0f, 0xff}, []byte{0xff, 0xff}
	for _, c := range []struct {
		name string
		op   Operator
		srcs [][]byte
		want []byte
	}{
		{"and", And, [][]byte{a, b}, []byte{0xf0, 0x0f, 0}},
		{"and, shorter first", And, [][]byte{b, a}, []byte{0xf0, 0x0f, 0}},
		{"or", Or, [][]byte{a, b}, []byte{0xff, 0xff, 0xff}},
		{"xor", Xor, [][]byte{a, b, nil}, []byte{0x0f, 0xf0, 0xff}},
		{"not", Not, [][]byte{a}, []byte{0x0f, 0xf0, 0}},
		{"all empty", Or, [][]byte{nil, {}}, nil},
	} {
		if got := Combine(c.op, c.srcs); !bytes.Equal(got, c.want) {
			t.Errorf("%s: %x, want %x", c.name, got, c.want)
		}
	}
}

func TestFieldOverflow(t *testing.T) {
	for _, c := range []struct {
		name string
		op   FieldOp
		init []byte
		want FieldResult
		val  []byte
	}{
		{"u8 incr wraps", FieldOp{Kind: FieldIncrBy, Width: 8, Arg: 10}, []byte{250}, FieldResult{Value: 4}, []byte{4}},
		{"u8 incr saturates", FieldOp{Kind: FieldIncrBy, Width: 8, Arg: 10, Overflow: Sat}, []byte{250}, FieldResult{Value: 255}, []byte{255}},
		{"u8 incr fails", FieldOp{Kind: FieldIncrBy, Width: 8, Arg: 10, Overflow: Fail}, []byte{250}, FieldResult{Null: true}, []byte{250}},
		{"u8 decr saturates at 0", FieldOp{Kind: FieldIncrBy, Width: 8, Arg: -300, Overflow: Sat}, []byte{250}, FieldResult{Value: 0}, []byte{0}},
		{"i8 incr wraps negative", FieldOp{Kind: FieldIncrBy, Signed: true, Width: 8, Arg: 1}, []byte{127}, FieldResult{Value: -128}, []byte{0x80}},
		{"i8 set saturates", FieldOp{Kind: FieldSet, Signed: true, Width: 8, Arg: 200, Overflow: Sat}, []byte{5}, FieldResult{Value: 5}, []byte{127}},
		{"i64 incr saturates", FieldOp{Kind: FieldIncrBy, Signed: true, Width: 64, Arg: 2, Overflow: Sat},
			[]byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, FieldResult{Value: 1<<63 - 1}, []byte{0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{"u4 across bytes", FieldOp{Kind: FieldSet, Width: 4, Offset: 6, Arg: 15}, []byte{0, 0}, FieldResult{Value: 0}, []byte{3, 0xc0}},
		{"i5 get negative", FieldOp{Kind: FieldGet, Signed: true, Width: 5}, []byte{0xf8}, FieldResult{Value: -1}, []byte{0xf8}},
	} {
		v, res, _ := Exec(c.init, []FieldOp{c.op})
		if res[0] != c.want || !bytes.Equal(v, c.val) {
			t.Errorf("%s: %+v and %x, want %+v and %x", c.name, res[0], v, c.want, c.val)
		}
	}
}

// TestReplayMatchesExec: the redis store answers BITFIELD by Replay from the bytes each op
// covers; it must answer as Exec does on the whole value.
func TestReplayMatchesExec(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		v := make([]byte, rng.IntN(10))
		for i := range v {
			v[i] = byte(rng.IntN(256))
		}
		existed := len(v) > 0 || rng.IntN(2) == 0
		ops := make([]FieldOp, 1+rng.IntN(6))
		for i := range ops {
			op := FieldOp{Kind: FieldKind(rng.IntN(3)), Signed: rng.IntN(2) == 0, Overflow: Overflow(rng.IntN(3)),
				Offset: uint64(rng.IntN(100)), Arg: rng.Int64N(600) - 300}
			op.Width = uint8(1 + rng.IntN(63))
			if op.Signed {
				op.Width = uint8(1 + rng.IntN(64))
			}
			if rng.IntN(4) == 0 {
				op.Arg = int64(rng.Uint64())
			}
			ops[i] = op
		}
		_, want, wantChanged := Exec(v, ops)
		spans := make([][]byte, len(ops))
		for i, op := range ops {
			first, last := op.Span()
			if first < uint64(len(v)) {
				spans[i] = v[first:min(last+1, uint64(len(v)))]
			}
		}
		got, changed := Replay(ops, spans, uint64(len(v)), existed)
		if !existed {
			// a missing key: Exec saw an empty value, which any write grows
			wantChanged = wantChanged || writesAny(ops) && anyWritten(want, ops)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("op %d of %+v on %x: replay %+v, exec %+v", i, ops, v, got[i], want[i])
			}
		}
		if changed != wantChanged {
			t.Fatalf("%+v on %x: replay changed %v, exec %v", ops, v, changed, wantChanged)
		}
		enc, err := DecodeFields(EncodeFields(ops))
		if err != nil || len(enc) != len(ops) || enc[0] != ops[0] {
			t.Fatalf("fields do not survive encoding: %v", err)
		}
		res, err := DecodeResults(EncodeResults(want))
		if err != nil || len(res) != len(want) || res[0] != want[0] {
			t.Fatalf("results do not survive encoding: %v", err)
		}
	}
}

func anyWritten(res []FieldResult, ops []FieldOp) bool {
	for i, op := range ops {
		if op.Kind != FieldGet && !res[i].Null {
			return true
		}
	}
	return false
}

func TestParseType(t *testing.T) {
	for _, c := range []struct {
		in     string
		signed bool
		width  uint8
		ok     bool
	}{
		{"i64", true, 64, true}, {"u63", false, 63, true}, {"u1", false, 1, true},
		{"u64", false, 0, false}, {"i0", false, 0, false}, {"I8", false, 0, false},
		{"i08", false, 0, false}, {"i+8", false, 0, false}, {"i", false, 0, false}, {"", false, 0, false},
		{"i-1", false, 0, false}, {"u 8", false, 0, false}, {"i8\x00x", true, 8, true}, {"i\x008", false, 0, false},
	} {
		s, w, ok := ParseType([]byte(c.in))
		if s != c.signed || w != c.width || ok != c.ok {
			t.Errorf("ParseType(%q) = %v %d %v", c.in, s, w, ok)
		}
	}
}

func FuzzDecodeFields(f *testing.F) {
	f.Add(EncodeFields([]FieldOp{{Kind: FieldSet, Width: 8, Arg: 1}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ops, err := DecodeFields(b)
		if err != nil {
			return
		}
		if !bytes.Equal(EncodeFields(ops), b) {
			t.Fatal("decoded fields do not encode back to their bytes")
		}
		for _, op := range ops {
			op.Offset %= 1 << 12 // keep the value small
			Exec(nil, []FieldOp{op})
		}
	})
}
