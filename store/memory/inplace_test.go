package memory

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/vela-cache/vela/bitmap"
	"github.com/vela-cache/vela/store"
)

// TestInPlaceMatchesCopy: SETBIT, BITFIELD, SETRANGE and APPEND on large values, changed in place,
// answer and leave what store.Apply (the copying path every other store shares) answers and
// leaves, growth within and past an item's allocation included; a value handed to a reader
// before a change stays as it was read (the change copies it), one only peeked at does not.
func TestInPlaceMatchesCopy(t *testing.T) {
	s := New(Config{})
	ref := map[string][]byte{}
	rng := rand.New(rand.NewPCG(5, 6))
	keys := []string{"a", "b", "c"}
	for _, k := range keys {
		v := make([]byte, inPlaceMin+rng.IntN(20000))
		for i := range v {
			v[i] = byte(rng.IntN(256))
		}
		if _, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Set, Value: v}); err != nil {
			t.Fatal(err)
		}
		ref[k] = v
	}
	inPlace := 0
	var held, heldCopy []byte // a value handed to a reader, and what it was then
	for step := range 4000 {
		k := keys[rng.IntN(len(keys))]
		if rng.IntN(5) == 0 { // a reader takes the value: the item is lent
			read, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Get})
			if err != nil || !bytes.Equal(read.Value, ref[k]) {
				t.Fatalf("step %d: %s holds %d bytes, want %d", step, k, len(read.Value), len(ref[k]))
			}
			held, heldCopy = read.Value, bytes.Clone(read.Value)
		} else { // a peek: the item is not lent
			var peeked []byte
			res, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Get, Peek: func(v []byte) { peeked = bytes.Clone(v) }})
			if err != nil || !res.Found || res.Value != nil || !bytes.Equal(peeked, ref[k]) {
				t.Fatalf("step %d: peek at %s: %d bytes, want %d (answered %d bytes)", step, k, len(peeked), len(ref[k]), len(res.Value))
			}
		}
		end := len(ref[k]) + 9000 // sometimes past the end: growth
		var op store.Op
		switch rng.IntN(4) {
		case 0:
			op = store.Op{Kind: store.SetBit, Delta: int64(rng.IntN(end * 8)), Value: []byte(strconv.Itoa(rng.IntN(2)))}
		case 1:
			ops := make([]bitmap.FieldOp, 1+rng.IntN(3))
			for i := range ops {
				ops[i] = bitmap.FieldOp{Kind: bitmap.FieldKind(rng.IntN(3)), Signed: true, Width: uint8(1 + rng.IntN(64)),
					Offset: uint64(rng.IntN(end * 8)), Arg: rng.Int64N(1000) - 500, Overflow: bitmap.Overflow(rng.IntN(3))}
			}
			op = store.Op{Kind: store.BitField, Value: bitmap.EncodeFields(ops)}
		case 2:
			op = store.Op{Kind: store.SetRange, Delta: int64(rng.IntN(end)), Value: bytes.Repeat([]byte{byte(step)}, rng.IntN(50))}
		default:
			op = store.Op{Kind: store.Append, Value: bytes.Repeat([]byte{byte(step)}, rng.IntN(3000))}
		}
		before := s.item(k)
		got, err := s.Do(ctx, []byte(k), op)
		if err != nil {
			t.Fatal(err)
		}
		next, _, want, err := store.Apply(store.Entry{Value: ref[k]}, true, &op, 0, s.maxLen)
		if err != nil {
			t.Fatal(err)
		}
		if got.Int != want.Int || got.Done != want.Done || !bytes.Equal(got.Value, want.Value) {
			t.Fatalf("step %d: %v answered %+v, store.Apply %+v", step, op.Kind, got, want)
		}
		if len(next.Value) > 0 {
			ref[k] = next.Value
		}
		if s.item(k) == before {
			inPlace++
		}
		if !bytes.Equal(held, heldCopy) {
			t.Fatalf("step %d: a value read before a change changed under its reader", step)
		}
		if obj, _, _ := s.Object(ctx, []byte(k), store.ObjectEncoding); obj.Encoding != "raw" {
			t.Fatalf("step %d: encoding %q after a change, want raw", step, obj.Encoding)
		}
	}
	if inPlace < 1000 || inPlace > 3700 {
		t.Fatalf("%d of 4000 changes were made in place: the test does not exercise both paths", inPlace)
	}
}

// item returns key's item, for tests.
func (s *Store) item(key string) item {
	h, sh, t := s.locate([]byte(key))
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return t.items[t.find([]byte(key), h)]
}

// BenchmarkSetBitLarge: SETBIT on a 1 MiB value changes it in place: no allocation, no copy.
func BenchmarkSetBitLarge(b *testing.B) {
	s := New(Config{})
	if _, err := s.Do(ctx, []byte("big"), store.Op{Kind: store.Set, Value: make([]byte, 1<<20)}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		op := store.Op{Kind: store.SetBit, Delta: int64(i*7919) % (8 << 20), Value: []byte{'1'}}
		if _, err := s.Do(ctx, []byte("big"), op); err != nil {
			b.Fatal(err)
		}
	}
}
