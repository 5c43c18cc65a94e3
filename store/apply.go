package store

import (
	"bytes"

	"github.com/vela-cache/vela/bitmap"
	"github.com/vela-cache/vela/redisnum"
)

// Entry is a live stored value as Apply sees it.
type Entry struct {
	Value    []byte
	ExpireAt int64 // absolute unix ms; 0: no expiry
	// Enc is how the command that last wrote the value leaves Redis holding it (OBJECT
	// ENCODING); Apply sets it on every Put.
	Enc Encoding
}

// Action says what a store must do with the entry after Apply.
type Action uint8

// Actions.
const (
	Keep   Action = iota // leave the entry as it was (or absent)
	Put                  // store the returned entry
	Remove               // delete the entry
)

// Expired reports whether an entry with this expiry is dead at now.
func Expired(expireAt, now int64) bool { return expireAt != 0 && expireAt <= now }

// Apply is the meaning of every Op, shared by the stores that hold values themselves. cur is the
// live entry (only when exists; a caller must treat an expired entry as absent), now the current
// unix ms, maxLen the largest value allowed. It returns what to store, what to do, and the Result.
// A Put entry never aliases op's slices, so the store may keep it as is; it may alias cur.Value
// when only the expiry changed. Apply has no side effects.
func Apply(cur Entry, exists bool, op *Op, now int64, maxLen int64) (Entry, Action, Result, error) {
	var res Result
	if exists {
		res.Found = true
	}
	switch op.Kind {
	case Get:
		if exists {
			res.Value, res.Enc = cur.Value, cur.Enc
			if op.WithExpiry {
				res.ExpireAt = cur.ExpireAt
			}
		}
		return cur, Keep, res, nil

	case Inspect, Touch:
		if exists {
			res.ExpireAt, res.Enc = cur.ExpireAt, cur.Enc
			res.Int = int64(len(cur.Value))
		}
		return cur, Keep, res, nil

	case Set:
		if op.ReturnOld && exists {
			res.Value = cur.Value
		}
		if (op.Cond&CondNX != 0 && exists) || (op.Cond&CondXX != 0 && !exists) ||
			(op.Cond&CondSame != 0 && exists && !bytes.Equal(cur.Value, op.Expect)) {
			return cur, Keep, res, nil
		}
		res.Done = true
		next := Entry{Value: clone(op.Value), ExpireAt: op.ExpireAt, Enc: op.Enc}
		if op.TTL == TTLKeep {
			next.ExpireAt = 0
			if exists {
				next.ExpireAt = cur.ExpireAt
			}
		}
		if Expired(next.ExpireAt, now) {
			return Entry{}, Remove, res, nil // Redis: a write with a past expiry deletes the key
		}
		return next, Put, res, nil

	case Delete:
		if !exists {
			return cur, Keep, res, nil
		}
		if op.ReturnOld {
			res.Value = cur.Value
		}
		res.Done = true
		return Entry{}, Remove, res, nil

	case IncrBy:
		var n int64
		next := Entry{ExpireAt: op.ExpireAt}
		if exists {
			var ok bool
			if n, ok = redisnum.ParseInt(cur.Value); !ok {
				return cur, Keep, res, ErrNotInteger
			}
			next.ExpireAt = cur.ExpireAt
		}
		if (op.Delta < 0 && n < 0 && op.Delta < -1<<63-n) || (op.Delta > 0 && n > 0 && op.Delta > 1<<63-1-n) {
			return cur, Keep, res, ErrOverflow
		}
		n += op.Delta
		next.Value = redisnum.AppendInt(make([]byte, 0, 20), n)
		res.Int = n
		return next, Put, res, nil

	case IncrByFloat:
		var v redisnum.LongDouble
		next := Entry{ExpireAt: op.ExpireAt}
		if exists {
			var ok bool
			if v, ok = redisnum.ParseLongDouble(cur.Value); !ok {
				return cur, Keep, res, ErrNotFloat
			}
			next.ExpireAt = cur.ExpireAt
		}
		incr, ok := redisnum.ParseLongDouble(op.Value)
		if !ok {
			return cur, Keep, res, ErrNotFloat
		}
		sum, ok := v.Add(incr)
		if !ok {
			return cur, Keep, res, ErrNaN
		}
		next.Value = sum.AppendHuman(nil)
		next.Enc = EncodeNoInt // Redis makes a string of the sum, never an integer
		res.Value = next.Value
		return next, Put, res, nil

	case Append:
		next := Entry{ExpireAt: op.ExpireAt}
		if exists {
			if int64(len(cur.Value))+int64(len(op.Value)) > maxLen {
				return cur, Keep, res, ErrTooLarge
			}
			next.ExpireAt = cur.ExpireAt
			// A fresh slice: the stored one may be referenced by replies in flight.
			next.Value = make([]byte, 0, len(cur.Value)+len(op.Value))
			next.Value = append(append(next.Value, cur.Value...), op.Value...)
			next.Enc = EncodeRaw // Redis appends in place, to a raw string
		} else {
			next.Value = clone(op.Value)
		}
		res.Int = int64(len(next.Value))
		return next, Put, res, nil

	case SetRange:
		if len(op.Value) == 0 {
			res.Int = int64(len(cur.Value)) // 0 when it does not exist
			return cur, Keep, res, nil
		}
		if op.Delta > maxLen-int64(len(op.Value)) {
			return cur, Keep, res, ErrTooLarge
		}
		next := Entry{ExpireAt: op.ExpireAt, Enc: EncodeRaw} // Redis writes in place, to a raw string
		if exists {
			next.ExpireAt = cur.ExpireAt
		}
		end := int(op.Delta) + len(op.Value)
		// A fresh slice: the stored one may be referenced by replies in flight.
		next.Value = make([]byte, max(len(cur.Value), end))
		copy(next.Value, cur.Value)
		copy(next.Value[op.Delta:], op.Value)
		res.Int, res.Done = int64(len(next.Value)), true
		return next, Put, res, nil

	case SetBit:
		if op.Delta < 0 || op.Delta>>3 >= maxLen {
			return cur, Keep, res, ErrTooLarge
		}
		next := Entry{ExpireAt: op.ExpireAt, Enc: EncodeRaw} // Redis unshares the value: raw
		if exists {
			next.ExpireAt = cur.ExpireAt
		}
		var old int
		var changed bool
		next.Value, old, changed = bitmap.SetBit(cur.Value, uint64(op.Delta), BitArg(op.Value))
		res.Int, res.Done = int64(old), changed || !exists
		return next, Put, res, nil

	case BitField:
		ops, err := bitmap.DecodeFields(op.Value)
		if err != nil {
			return cur, Keep, res, err
		}
		for _, f := range ops {
			// BITFIELD checks only a field's offset against the limit: its last byte may lie
			// up to 8 bytes past it, as in Redis.
			if _, last := f.Span(); f.Kind != bitmap.FieldGet && int64(last) >= maxLen+8 {
				return cur, Keep, res, ErrTooLarge
			}
		}
		next := Entry{ExpireAt: op.ExpireAt, Enc: EncodeRaw}
		if exists {
			next.ExpireAt = cur.ExpireAt
		}
		var results []bitmap.FieldResult
		next.Value, results, res.Done = bitmap.Exec(cur.Value, ops)
		res.Value = bitmap.EncodeResults(results)
		return next, Put, res, nil

	case Expire:
		if !exists {
			return cur, Keep, res, nil
		}
		if (op.Cond&CondNX != 0 && cur.ExpireAt != 0) ||
			(op.Cond&CondXX != 0 && cur.ExpireAt == 0) ||
			(op.Cond&CondGT != 0 && (cur.ExpireAt == 0 || op.ExpireAt <= cur.ExpireAt)) ||
			(op.Cond&CondLT != 0 && cur.ExpireAt != 0 && op.ExpireAt >= cur.ExpireAt) {
			return cur, Keep, res, nil
		}
		res.Done = true
		if Expired(op.ExpireAt, now) {
			return Entry{}, Remove, res, nil
		}
		return Entry{Value: cur.Value, ExpireAt: op.ExpireAt, Enc: cur.Enc}, Put, res, nil

	case Persist:
		if !exists || cur.ExpireAt == 0 {
			return cur, Keep, res, nil
		}
		res.Done = true
		return Entry{Value: cur.Value, Enc: cur.Enc}, Put, res, nil

	case GetEx:
		if !exists {
			return cur, Keep, res, nil
		}
		res.Value, res.ExpireAt = cur.Value, cur.ExpireAt
		switch op.TTL {
		case TTLKeep:
			return cur, Keep, res, nil
		case TTLClear:
			if cur.ExpireAt == 0 {
				return cur, Keep, res, nil
			}
			return Entry{Value: cur.Value, Enc: cur.Enc}, Put, res, nil
		default:
			if Expired(op.ExpireAt, now) {
				return Entry{}, Remove, res, nil
			}
			return Entry{Value: cur.Value, ExpireAt: op.ExpireAt, Enc: cur.Enc}, Put, res, nil
		}
	}
	return cur, Keep, res, nil
}

func clone(b []byte) []byte {
	c := make([]byte, len(b))
	copy(c, b)
	return c
}

// BitArg is SetBit's Value as a bit: 1 for "1", else 0.
func BitArg(v []byte) int {
	if len(v) == 1 && v[0] == '1' {
		return 1
	}
	return 0
}
