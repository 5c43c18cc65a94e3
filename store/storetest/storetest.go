// Package storetest is the conformance suite every store runs, so that the semantics of the Ops
// (store.Apply's for the memory and disk stores, Redis's own for the Redis store) cannot drift
// apart. A store's test calls Run with a constructor; optional abilities (Keyspace, MultiSetter,
// Sweeper, Tagger) are tested when the store has them.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vela-cache/vela/bitmap"
	"github.com/vela-cache/vela/store"
)

// NewStore returns an empty store for one test; it must arrange its own Close with t.Cleanup.
type NewStore func(t *testing.T) store.Store

// Run runs every conformance test against stores made by newStore, each test on a fresh store.
func Run(t *testing.T, newStore NewStore) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Get", testGet},
		{"GetWithExpiry", testGetWithExpiry},
		{"Set", testSet},
		{"SetConditions", testSetConditions},
		{"SetCompareAndSet", testSetSame},
		{"SetTTL", testSetTTL},
		{"Delete", testDelete},
		{"IncrBy", testIncrBy},
		{"IncrByFloat", testIncrByFloat},
		{"Append", testAppend},
		{"SetRange", testSetRange},
		{"SetBit", testSetBit},
		{"BitField", testBitField},
		{"Expire", testExpire},
		{"Persist", testPersist},
		{"GetEx", testGetEx},
		{"Expiry", testExpiry},
		{"SetMulti", testSetMulti},
		{"Keyspace", testKeyspace},
		{"ScanComplete", testScanComplete},
		{"ScanUnderWrites", testScanUnderWrites},
		{"Sweep", testSweep},
		{"Tags", testTags},
		{"TagsLifecycle", testTagsLifecycle},
		{"KeyTags", testKeyTags},
		{"TagKeys", testTagKeys},
		{"Concurrent", testConcurrent},
		{"Pipelined", testPipelined},
		{"KeySize", testKeySize},
		{"Object", testObject},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var ctx = context.Background()

func now() int64 { return time.Now().UnixMilli() }

// far is an expiry far enough ahead that no test outlives it, fixed so results compare exactly.
var far = now() + 3600_000

func do(t *testing.T, s store.Store, key string, op store.Op) store.Result {
	t.Helper()
	res, err := s.Do(ctx, []byte(key), op)
	if err != nil {
		t.Fatalf("%s %v: %v", key, op.Kind, err)
	}
	return res
}

func doErr(t *testing.T, s store.Store, key string, op store.Op, want error) {
	t.Helper()
	_, err := s.Do(ctx, []byte(key), op)
	if !errors.Is(err, want) {
		t.Fatalf("%s %v: err %v, want %v", key, op.Kind, err, want)
	}
}

func set(t *testing.T, s store.Store, key, val string) {
	t.Helper()
	if res := do(t, s, key, store.Op{Kind: store.Set, Value: []byte(val)}); !res.Done {
		t.Fatalf("set %s: not done", key)
	}
}

// get returns the value and whether the key is live.
func get(t *testing.T, s store.Store, key string) (string, bool) {
	t.Helper()
	res := do(t, s, key, store.Op{Kind: store.Get})
	return string(res.Value), res.Found
}

func wantValue(t *testing.T, s store.Store, key, want string) {
	t.Helper()
	v, ok := get(t, s, key)
	if !ok || v != want {
		t.Fatalf("get %s = %q (found %v), want %q", key, v, ok, want)
	}
}

func wantMissing(t *testing.T, s store.Store, key string) {
	t.Helper()
	if v, ok := get(t, s, key); ok {
		t.Fatalf("get %s = %q, want missing", key, v)
	}
}

// expireAt returns the key's expiry per Inspect (-1: missing).
func expireAt(t *testing.T, s store.Store, key string) int64 {
	t.Helper()
	res := do(t, s, key, store.Op{Kind: store.Inspect})
	if !res.Found {
		return -1
	}
	return res.ExpireAt
}

func testGet(t *testing.T, s store.Store) {
	wantMissing(t, s, "k")
	if res := do(t, s, "k", store.Op{Kind: store.Inspect}); res.Found {
		t.Fatal("inspect of a missing key found it")
	}
	set(t, s, "k", "hello")
	wantValue(t, s, "k", "hello")
	res := do(t, s, "k", store.Op{Kind: store.Inspect})
	if !res.Found || res.Int != 5 || res.ExpireAt != 0 {
		t.Fatalf("inspect = %+v, want found, len 5, no expiry", res)
	}
	if res := do(t, s, "k", store.Op{Kind: store.Touch}); !res.Found {
		t.Fatal("touch did not find the key")
	}
	set(t, s, "empty", "")
	if v, ok := get(t, s, "empty"); !ok || v != "" {
		t.Fatalf("empty value: %q %v", v, ok)
	}
	bin := string([]byte{0, 1, 2, '\r', '\n', 255})
	set(t, s, bin, bin)
	wantValue(t, s, bin, bin)
}

// testGetWithExpiry checks the expiry a Get with WithExpiry reports: none, or one no later than
// the key's (a store may measure it after the fact) and not far before it.
func testGetWithExpiry(t *testing.T, s store.Store) {
	op := store.Op{Kind: store.Get, WithExpiry: true}
	if res := do(t, s, "k", op); res.Found {
		t.Fatalf("missing key found: %+v", res)
	}
	set(t, s, "k", "v")
	if res := do(t, s, "k", op); !res.Found || string(res.Value) != "v" || res.ExpireAt != 0 {
		t.Fatalf("key without expiry = %+v, want v and expiry 0", res)
	}
	at := time.Now().UnixMilli() + 60_000
	do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("w"), TTL: store.TTLSet, ExpireAt: at})
	res := do(t, s, "k", op)
	if !res.Found || string(res.Value) != "w" || res.ExpireAt > at || res.ExpireAt < at-2000 {
		t.Fatalf("key expiring at %d = %+v, want w and an expiry in [%d, %d]", at, res, at-2000, at)
	}
}

func testSet(t *testing.T, s store.Store) {
	res := do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("a"), ReturnOld: true})
	if !res.Done || res.Found {
		t.Fatalf("set GET on a new key = %+v", res)
	}
	res = do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("b"), ReturnOld: true})
	if !res.Done || !res.Found || string(res.Value) != "a" {
		t.Fatalf("set GET on a live key = %+v", res)
	}
	wantValue(t, s, "k", "b")
	// The caller's buffer may be reused after Do returns.
	buf := []byte("value")
	do(t, s, "alias", store.Op{Kind: store.Set, Value: buf})
	copy(buf, "XXXXX")
	wantValue(t, s, "alias", "value")
}

func testSetConditions(t *testing.T, s store.Store) {
	if res := do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("1"), Cond: store.CondXX}); res.Done {
		t.Fatal("XX on a missing key was done")
	}
	wantMissing(t, s, "k")
	if res := do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("1"), Cond: store.CondNX}); !res.Done {
		t.Fatal("NX on a missing key was not done")
	}
	if res := do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("2"), Cond: store.CondNX, ReturnOld: true}); res.Done || !res.Found || string(res.Value) != "1" {
		t.Fatalf("NX GET on a live key = %+v", res)
	}
	if res := do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("3"), Cond: store.CondXX}); !res.Done {
		t.Fatal("XX on a live key was not done")
	}
	wantValue(t, s, "k", "3")
}

// testSetSame checks store.CondSame, the compare-and-set FETCHLOCK refresh fills use. A store
// that does not offer it must refuse it with an error rather than ignore the condition.
func testSetSame(t *testing.T, s store.Store) {
	do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("seen")})
	res, err := s.Do(ctx, []byte("k"), store.Op{Kind: store.Set, Value: []byte("fill"), Cond: store.CondSame, Expect: []byte("seen")})
	if err != nil {
		wantValue(t, s, "k", "seen")
		t.Skipf("store does not offer compare-and-set: %v", err)
	}
	if !res.Done {
		t.Fatal("CondSame with the current value was not done")
	}
	wantValue(t, s, "k", "fill")
	if res := do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("late"), Cond: store.CondSame, Expect: []byte("seen")}); res.Done {
		t.Fatal("CondSame after another write was done")
	}
	wantValue(t, s, "k", "fill")
	if res := do(t, s, "gone", store.Op{Kind: store.Set, Value: []byte("v"), Cond: store.CondSame, Expect: []byte("seen")}); !res.Done {
		t.Fatal("CondSame on a missing key was not done")
	}
	wantValue(t, s, "gone", "v")
}

func testSetTTL(t *testing.T, s store.Store) {
	do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("v"), TTL: store.TTLSet, ExpireAt: far})
	if got := expireAt(t, s, "k"); got != far {
		t.Fatalf("expiry %d, want %d", got, far)
	}
	do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("w"), TTL: store.TTLKeep})
	if got := expireAt(t, s, "k"); got != far {
		t.Fatalf("KEEPTTL: expiry %d, want %d", got, far)
	}
	do(t, s, "k", store.Op{Kind: store.Set, Value: []byte("x")})
	if got := expireAt(t, s, "k"); got != 0 {
		t.Fatalf("plain set kept expiry %d", got)
	}
	// The farthest expiry Redis accepts survives exactly (no rounding through a double).
	const farthest = 9223372036854775806
	do(t, s, "max", store.Op{Kind: store.Set, Value: []byte("v"), TTL: store.TTLSet, ExpireAt: farthest})
	if got := expireAt(t, s, "max"); got != farthest {
		t.Fatalf("expiry %d, want %d", got, farthest)
	}
	// A default TTL rides on TTLClear's ExpireAt.
	do(t, s, "d", store.Op{Kind: store.Set, Value: []byte("x"), ExpireAt: far})
	if got := expireAt(t, s, "d"); got != far {
		t.Fatalf("default TTL: expiry %d, want %d", got, far)
	}
	// KEEPTTL on a missing key: no expiry.
	do(t, s, "n", store.Op{Kind: store.Set, Value: []byte("x"), TTL: store.TTLKeep})
	if got := expireAt(t, s, "n"); got != 0 {
		t.Fatalf("KEEPTTL on a new key: expiry %d", got)
	}
	// An expiry in the past deletes the key.
	set(t, s, "p", "v")
	do(t, s, "p", store.Op{Kind: store.Set, Value: []byte("v2"), TTL: store.TTLSet, ExpireAt: now() - 1000})
	wantMissing(t, s, "p")
}

func testDelete(t *testing.T, s store.Store) {
	if res := do(t, s, "k", store.Op{Kind: store.Delete}); res.Found || res.Done {
		t.Fatalf("delete of a missing key = %+v", res)
	}
	set(t, s, "k", "v")
	res := do(t, s, "k", store.Op{Kind: store.Delete, ReturnOld: true})
	if !res.Found || !res.Done || string(res.Value) != "v" {
		t.Fatalf("GETDEL = %+v", res)
	}
	wantMissing(t, s, "k")
}

func testIncrBy(t *testing.T, s store.Store) {
	if res := do(t, s, "n", store.Op{Kind: store.IncrBy, Delta: 5}); res.Int != 5 {
		t.Fatalf("incr of a missing key = %d", res.Int)
	}
	if res := do(t, s, "n", store.Op{Kind: store.IncrBy, Delta: -7}); res.Int != -2 {
		t.Fatalf("incr = %d", res.Int)
	}
	wantValue(t, s, "n", "-2")
	set(t, s, "s", "abc")
	doErr(t, s, "s", store.Op{Kind: store.IncrBy, Delta: 1}, store.ErrNotInteger)
	set(t, s, "sp", " 1")
	doErr(t, s, "sp", store.Op{Kind: store.IncrBy, Delta: 1}, store.ErrNotInteger)
	set(t, s, "max", "9223372036854775807")
	doErr(t, s, "max", store.Op{Kind: store.IncrBy, Delta: 1}, store.ErrOverflow)
	set(t, s, "min", "-9223372036854775808")
	doErr(t, s, "min", store.Op{Kind: store.IncrBy, Delta: -1}, store.ErrOverflow)
	wantValue(t, s, "max", "9223372036854775807")
	set(t, s, "big", "9223372036854775800") // beyond a double's precision
	if res := do(t, s, "big", store.Op{Kind: store.IncrBy, Delta: 5}); res.Int != 9223372036854775805 {
		t.Fatalf("incr of a big value = %d", res.Int)
	}
	wantValue(t, s, "big", "9223372036854775805")
	// INCR keeps an existing expiry.
	do(t, s, "t", store.Op{Kind: store.Set, Value: []byte("1"), TTL: store.TTLSet, ExpireAt: far})
	do(t, s, "t", store.Op{Kind: store.IncrBy, Delta: 1})
	if got := expireAt(t, s, "t"); got != far {
		t.Fatalf("incr dropped the expiry: %d", got)
	}
}

func testIncrByFloat(t *testing.T, s store.Store) {
	for _, tc := range []struct{ start, incr, want string }{
		{"", "1.5", "1.5"},
		{"10.50", "0.1", "10.6"},
		{"5.0e3", "2.0e2", "5200"},
		{"3", "-3", "0"},
		{"1", "1.1", "2.1"},
	} {
		key := "f" + tc.start + tc.incr
		if tc.start != "" {
			set(t, s, key, tc.start)
		}
		res := do(t, s, key, store.Op{Kind: store.IncrByFloat, Value: []byte(tc.incr)})
		if string(res.Value) != tc.want {
			t.Errorf("%s + %s = %s, want %s", tc.start, tc.incr, res.Value, tc.want)
		}
		wantValue(t, s, key, tc.want)
	}
	set(t, s, "s", "abc")
	doErr(t, s, "s", store.Op{Kind: store.IncrByFloat, Value: []byte("1")}, store.ErrNotFloat)
	set(t, s, "x", "1")
	doErr(t, s, "x", store.Op{Kind: store.IncrByFloat, Value: []byte("inf")}, store.ErrNaN)
	wantValue(t, s, "x", "1")
}

func testAppend(t *testing.T, s store.Store) {
	if res := do(t, s, "a", store.Op{Kind: store.Append, Value: []byte("ab")}); res.Int != 2 {
		t.Fatalf("append to a missing key = %d", res.Int)
	}
	if res := do(t, s, "a", store.Op{Kind: store.Append, Value: []byte("cde")}); res.Int != 5 {
		t.Fatalf("append = %d", res.Int)
	}
	wantValue(t, s, "a", "abcde")
	do(t, s, "t", store.Op{Kind: store.Set, Value: []byte("x"), TTL: store.TTLSet, ExpireAt: far})
	do(t, s, "t", store.Op{Kind: store.Append, Value: []byte("y")})
	if got := expireAt(t, s, "t"); got != far {
		t.Fatalf("append dropped the expiry: %d", got)
	}
}

func testSetRange(t *testing.T, s store.Store) {
	if res := do(t, s, "a", store.Op{Kind: store.SetRange, Delta: 3}); res.Int != 0 || res.Done {
		t.Fatalf("empty setrange of a missing key = %+v", res)
	}
	wantMissing(t, s, "a")
	if res := do(t, s, "a", store.Op{Kind: store.SetRange, Delta: 2, Value: []byte("xy")}); res.Int != 4 || !res.Done {
		t.Fatalf("setrange of a missing key = %+v", res)
	}
	wantValue(t, s, "a", "\x00\x00xy")
	do(t, s, "a", store.Op{Kind: store.SetRange, Delta: 1, Value: []byte("Q")})
	wantValue(t, s, "a", "\x00Qxy")
	if res := do(t, s, "a", store.Op{Kind: store.SetRange, Delta: 9}); res.Int != 4 || res.Done {
		t.Fatalf("empty setrange of a key = %+v", res)
	}
	do(t, s, "t", store.Op{Kind: store.Set, Value: []byte("x"), TTL: store.TTLSet, ExpireAt: far})
	do(t, s, "t", store.Op{Kind: store.SetRange, Delta: 0, Value: []byte("y")})
	if got := expireAt(t, s, "t"); got != far {
		t.Fatalf("setrange dropped the expiry: %d", got)
	}
	doErr(t, s, "big", store.Op{Kind: store.SetRange, Delta: 1 << 40, Value: []byte("x")}, store.ErrTooLarge)
}

func testSetBit(t *testing.T, s store.Store) {
	if res := do(t, s, "a", store.Op{Kind: store.SetBit, Delta: 9, Value: []byte("1")}); res.Int != 0 || !res.Done {
		t.Fatalf("setbit of a missing key = %+v", res)
	}
	wantValue(t, s, "a", "\x00\x40")
	if res := do(t, s, "a", store.Op{Kind: store.SetBit, Delta: 9, Value: []byte("0")}); res.Int != 1 {
		t.Fatalf("setbit of a set bit = %+v", res)
	}
	wantValue(t, s, "a", "\x00\x00")
	do(t, s, "t", store.Op{Kind: store.Set, Value: []byte("x"), TTL: store.TTLSet, ExpireAt: far})
	do(t, s, "t", store.Op{Kind: store.SetBit, Delta: 0, Value: []byte("1")})
	wantValue(t, s, "t", "\xf8")
	if got := expireAt(t, s, "t"); got != far {
		t.Fatalf("setbit dropped the expiry: %d", got)
	}
	do(t, s, "new", store.Op{Kind: store.SetBit, Delta: 0, Value: []byte("1"), ExpireAt: far})
	if got := expireAt(t, s, "new"); got != far {
		t.Fatalf("setbit of a new key: expiry %d, want %d", got, far)
	}
}

func testBitField(t *testing.T, s store.Store) {
	ops := []bitmap.FieldOp{
		{Kind: bitmap.FieldSet, Width: 8, Offset: 8, Arg: 255},
		{Kind: bitmap.FieldIncrBy, Signed: true, Width: 64, Offset: 16, Arg: -1 << 63},
		{Kind: bitmap.FieldIncrBy, Width: 8, Offset: 8, Arg: 1, Overflow: bitmap.Fail},
		{Kind: bitmap.FieldGet, Width: 4, Offset: 8},
	}
	res := do(t, s, "f", store.Op{Kind: store.BitField, Value: bitmap.EncodeFields(ops), ExpireAt: far})
	got, err := bitmap.DecodeResults(res.Value)
	want := []bitmap.FieldResult{{Value: 0}, {Value: -1 << 63}, {Null: true}, {Value: 15}}
	if err != nil || !slices.Equal(got, want) || !res.Done {
		t.Fatalf("bitfield = %+v (%v), done %v; want %+v", got, err, res.Done, want)
	}
	wantValue(t, s, "f", "\x00\xff\x80\x00\x00\x00\x00\x00\x00\x00")
	if got := expireAt(t, s, "f"); got != far {
		t.Fatalf("bitfield of a new key: expiry %d, want %d", got, far)
	}
	// Writing what is there changes nothing.
	same := []bitmap.FieldOp{{Kind: bitmap.FieldSet, Width: 8, Offset: 8, Arg: 255}}
	if res := do(t, s, "f", store.Op{Kind: store.BitField, Value: bitmap.EncodeFields(same)}); res.Done {
		t.Fatal("a bitfield write of the same bits counts as a change")
	}
	doErr(t, s, "big", store.Op{Kind: store.BitField, Value: bitmap.EncodeFields([]bitmap.FieldOp{
		{Kind: bitmap.FieldSet, Width: 8, Offset: 1 << 45}})}, store.ErrTooLarge)
}

func testExpire(t *testing.T, s store.Store) {
	exp := func(key string, at int64, c store.Cond) bool {
		t.Helper()
		return do(t, s, key, store.Op{Kind: store.Expire, ExpireAt: at, Cond: c}).Done
	}
	if exp("missing", far, 0) {
		t.Fatal("expire of a missing key was done")
	}
	set(t, s, "k", "v")
	if exp("k", far, store.CondXX) {
		t.Fatal("XX without an expiry was done")
	}
	if exp("k", far, store.CondGT) {
		t.Fatal("GT without an expiry was done (none counts as infinite)")
	}
	if !exp("k", far, store.CondLT) {
		t.Fatal("LT without an expiry was not done")
	}
	if exp("k", far+1000, store.CondNX) {
		t.Fatal("NX with an expiry was done")
	}
	if exp("k", far-1000, store.CondGT) {
		t.Fatal("GT with an earlier time was done")
	}
	if !exp("k", far+1000, store.CondGT) {
		t.Fatal("GT with a later time was not done")
	}
	if exp("k", far+2000, store.CondLT) {
		t.Fatal("LT with a later time was done")
	}
	if !exp("k", far, store.CondXX|store.CondLT) {
		t.Fatal("XX LT with an earlier time was not done")
	}
	if got := expireAt(t, s, "k"); got != far {
		t.Fatalf("expiry %d, want %d", got, far)
	}
	if !exp("k", now()-1000, 0) {
		t.Fatal("expire in the past was not done")
	}
	wantMissing(t, s, "k")
}

func testPersist(t *testing.T, s store.Store) {
	p := func(key string) bool { return do(t, s, key, store.Op{Kind: store.Persist}).Done }
	if p("missing") {
		t.Fatal("persist of a missing key was done")
	}
	set(t, s, "k", "v")
	if p("k") {
		t.Fatal("persist without an expiry was done")
	}
	do(t, s, "k", store.Op{Kind: store.Expire, ExpireAt: far})
	if !p("k") {
		t.Fatal("persist with an expiry was not done")
	}
	if got := expireAt(t, s, "k"); got != 0 {
		t.Fatalf("expiry after persist: %d", got)
	}
	wantValue(t, s, "k", "v")
}

func testGetEx(t *testing.T, s store.Store) {
	if res := do(t, s, "missing", store.Op{Kind: store.GetEx, TTL: store.TTLSet, ExpireAt: far}); res.Found {
		t.Fatal("getex found a missing key")
	}
	set(t, s, "k", "v")
	res := do(t, s, "k", store.Op{Kind: store.GetEx, TTL: store.TTLSet, ExpireAt: far})
	if !res.Found || string(res.Value) != "v" {
		t.Fatalf("getex = %+v", res)
	}
	if got := expireAt(t, s, "k"); got != far {
		t.Fatalf("getex EX: expiry %d", got)
	}
	do(t, s, "k", store.Op{Kind: store.GetEx, TTL: store.TTLKeep})
	if got := expireAt(t, s, "k"); got != far {
		t.Fatalf("getex without options changed the expiry: %d", got)
	}
	do(t, s, "k", store.Op{Kind: store.GetEx, TTL: store.TTLClear})
	if got := expireAt(t, s, "k"); got != 0 {
		t.Fatalf("getex PERSIST: expiry %d", got)
	}
	res = do(t, s, "k", store.Op{Kind: store.GetEx, TTL: store.TTLSet, ExpireAt: now() - 1000})
	if !res.Found || string(res.Value) != "v" {
		t.Fatalf("getex with a past time = %+v", res)
	}
	wantMissing(t, s, "k")
}

func testExpiry(t *testing.T, s store.Store) {
	at := now() + 400 // time enough for the writes and the first read under the race detector
	do(t, s, "short", store.Op{Kind: store.Set, Value: []byte("v"), TTL: store.TTLSet, ExpireAt: at})
	do(t, s, "incr", store.Op{Kind: store.Set, Value: []byte("1"), TTL: store.TTLSet, ExpireAt: at})
	wantValue(t, s, "short", "v")
	time.Sleep(time.Until(time.UnixMilli(at + 50)))
	wantMissing(t, s, "short")
	if res := do(t, s, "short", store.Op{Kind: store.Inspect}); res.Found {
		t.Fatal("inspect found an expired key")
	}
	// A write to an expired key sees it as missing.
	if res := do(t, s, "incr", store.Op{Kind: store.IncrBy, Delta: 1}); res.Int != 1 {
		t.Fatalf("incr of an expired key = %d, want 1", res.Int)
	}
	if got := expireAt(t, s, "incr"); got != 0 {
		t.Fatalf("the recreated key kept the old expiry %d", got)
	}
	if res := do(t, s, "short", store.Op{Kind: store.Set, Value: []byte("n"), Cond: store.CondNX}); !res.Done {
		t.Fatal("NX on an expired key was not done")
	}
}

// testSetMulti writes keys of one hash tag, so that a store on Redis Cluster (where MSET's keys
// must share a slot) runs it too.
func testSetMulti(t *testing.T, s store.Store) {
	ms, ok := s.(store.MultiSetter)
	if !ok {
		t.Skip("store has no SetMulti")
	}
	kvs := func(kv ...string) []store.KV {
		var out []store.KV
		for i := 0; i < len(kv); i += 2 {
			out = append(out, store.KV{Key: []byte(kv[i]), Value: []byte(kv[i+1])})
		}
		return out
	}
	if ok, err := ms.SetMulti(ctx, kvs("{m}a", "1", "{m}b", "2"), 0, false); err != nil || !ok {
		t.Fatalf("MSET: %v %v", ok, err)
	}
	wantValue(t, s, "{m}a", "1")
	wantValue(t, s, "{m}b", "2")
	if ok, err := ms.SetMulti(ctx, kvs("{m}b", "3", "{m}c", "4"), 0, true); err != nil || ok {
		t.Fatalf("MSETNX with a live key: %v %v", ok, err)
	}
	wantMissing(t, s, "{m}c")
	wantValue(t, s, "{m}b", "2")
	if ok, err := ms.SetMulti(ctx, kvs("{m}c", "3", "{m}d", "4"), far, true); err != nil || !ok {
		t.Fatalf("MSETNX: %v %v", ok, err)
	}
	if got := expireAt(t, s, "{m}d"); got != far {
		t.Fatalf("MSET default TTL: %d", got)
	}
	do(t, s, "{m}a", store.Op{Kind: store.Expire, ExpireAt: far})
	if ok, err := ms.SetMulti(ctx, kvs("{m}a", "9"), 0, false); err != nil || !ok {
		t.Fatalf("MSET: %v %v", ok, err)
	}
	if got := expireAt(t, s, "{m}a"); got != 0 {
		t.Fatalf("MSET kept the expiry %d", got)
	}
}

func keyspace(t *testing.T, s store.Store) store.Keyspace {
	ks, ok := s.(store.Keyspace)
	if !ok {
		t.Skip("store has no keyspace")
	}
	return ks
}

// scanAll runs a whole SCAN iteration and returns the keys seen, sorted, with repeats.
func scanAll(t *testing.T, ks store.Keyspace, pattern string, count int, between func()) []string {
	t.Helper()
	var out []string
	var cursor uint64
	for i := 0; ; i++ {
		if i > 1_000_000 {
			t.Fatal("scan does not terminate")
		}
		var pat []byte
		if pattern != "" {
			pat = []byte(pattern)
		}
		keys, next, err := ks.Scan(ctx, cursor, pat, count)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			out = append(out, string(k))
		}
		if next == 0 {
			break
		}
		if next >= 1<<store.CursorBits {
			t.Fatalf("cursor %d is not below 2^%d", next, store.CursorBits)
		}
		cursor = next
		if between != nil {
			between()
		}
	}
	sort.Strings(out)
	return out
}

func testKeyspace(t *testing.T, s store.Store) {
	ks := keyspace(t, s)
	if n, err := ks.Len(ctx); err != nil || n != 0 {
		t.Fatalf("len of an empty store: %d %v", n, err)
	}
	for i := range 20 {
		set(t, s, fmt.Sprintf("key:%d", i), "v")
	}
	do(t, s, "gone", store.Op{Kind: store.Set, Value: []byte("v"), TTL: store.TTLSet, ExpireAt: now() + 100})
	time.Sleep(150 * time.Millisecond)
	// Len may count an expired key until something reclaims it (Redis's active expiry runs every
	// 100 ms, later on a loaded machine): wait for that, within a bound.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n, err := ks.Len(ctx)
		if err == nil && n == 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("len: %d %v, want 20", n, err)
		}
	}
	if got := scanAll(t, ks, "key:1*", 5, nil); !slices.Equal(got, []string{"key:1", "key:10", "key:11", "key:12", "key:13", "key:14", "key:15", "key:16", "key:17", "key:18", "key:19"}) {
		t.Fatalf("scan MATCH key:1* = %v", got)
	}
	if got := scanAll(t, ks, "", 1000, nil); len(got) != 20 {
		t.Fatalf("scan returned %d keys, want 20 (expired keys must not appear)", len(got))
	}
	if err := ks.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := ks.Len(ctx); n != 0 {
		t.Fatalf("len after flush: %d", n)
	}
	wantMissing(t, s, "key:1")
	if got := scanAll(t, ks, "", 10, nil); len(got) != 0 {
		t.Fatalf("scan after flush: %v", got)
	}
	set(t, s, "after", "v")
	wantValue(t, s, "after", "v")
}

func testScanComplete(t *testing.T, s store.Store) {
	ks := keyspace(t, s)
	want := make([]string, 0, 500)
	for i := range 500 {
		k := fmt.Sprintf("k%03d", i)
		set(t, s, k, "v")
		want = append(want, k)
	}
	sort.Strings(want)
	for _, count := range []int{1, 7, 100, 1000} {
		got := slices.Compact(scanAll(t, ks, "", count, nil))
		if !slices.Equal(got, want) {
			t.Fatalf("COUNT %d: scan returned %d distinct keys, want %d", count, len(got), len(want))
		}
	}
}

// testScanUnderWrites checks SCAN's guarantee: a key present for the whole iteration is returned,
// whatever is added and removed between calls.
func testScanUnderWrites(t *testing.T, s store.Store) {
	ks := keyspace(t, s)
	var stable []string
	for i := range 300 {
		k := fmt.Sprintf("stable:%d", i)
		set(t, s, k, "v")
		stable = append(stable, k)
	}
	for i := range 300 {
		set(t, s, fmt.Sprintf("churn:%d", i), "v")
	}
	step := 0
	got := scanAll(t, ks, "", 10, func() {
		for range 10 {
			do(t, s, fmt.Sprintf("churn:%d", step), store.Op{Kind: store.Delete})
			set(t, s, fmt.Sprintf("new:%d", step), "v")
			step++
		}
	})
	seen := make(map[string]bool, len(got))
	for _, k := range got {
		seen[k] = true
	}
	for _, k := range stable {
		if !seen[k] {
			t.Fatalf("scan under writes missed %s", k)
		}
	}
}

func testSweep(t *testing.T, s store.Store) {
	sw, ok := s.(store.Sweeper)
	if !ok {
		t.Skip("store has no sweep")
	}
	at := now() + 1000 // time enough for 50 durable writes under the race detector
	for i := range 50 {
		do(t, s, fmt.Sprintf("e%d", i), store.Op{Kind: store.Set, Value: []byte("v"), TTL: store.TTLSet, ExpireAt: at})
	}
	set(t, s, "keep", "v")
	time.Sleep(time.Until(time.UnixMilli(at + 50)))
	// A store whose backend expires keys itself (Redis) has nothing left to remove and reports 0.
	n, err := sw.Sweep(ctx)
	if err != nil || (n != 50 && n != 0) {
		t.Fatalf("sweep removed %d (%v), want 50", n, err)
	}
	if n, _ := sw.Sweep(ctx); n != 0 {
		t.Fatalf("second sweep removed %d", n)
	}
	wantValue(t, s, "keep", "v")
	if ks, ok := s.(store.Keyspace); ok && n == 50 {
		if n, _ := ks.Len(ctx); n != 1 {
			t.Fatalf("len after sweep: %d", n)
		}
	}
}

func tagger(t *testing.T, s store.Store) store.Tagger {
	tg, ok := s.(store.Tagger)
	if !ok {
		t.Skip("store keeps no tags")
	}
	return tg
}

func setTags(t *testing.T, s store.Store, key, val string, tags ...string) {
	t.Helper()
	op := store.Op{Kind: store.Set, Value: []byte(val)}
	for _, tg := range tags {
		op.Tags = append(op.Tags, []byte(tg))
	}
	do(t, s, key, op)
}

func invalidate(t *testing.T, tg store.Tagger, tags ...string) []string {
	t.Helper()
	var in [][]byte
	for _, x := range tags {
		in = append(in, []byte(x))
	}
	return sortedNames(t)(tg.InvalidateTags(ctx, in))
}

// sortedNames returns a function that fails t on err, or returns names as sorted strings; it
// takes a store call's two results directly: sortedNames(t)(tl.TagKeys(ctx, tag)).
func sortedNames(t *testing.T) func(names [][]byte, err error) []string {
	return func(names [][]byte, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, 0, len(names))
		for _, n := range names {
			out = append(out, string(n))
		}
		sort.Strings(out)
		return out
	}
}

func testTags(t *testing.T, s store.Store) {
	tg := tagger(t, s)
	setTags(t, s, "u1", "a", "user", "team:1")
	setTags(t, s, "u2", "b", "user", "team:2")
	setTags(t, s, "u3", "c", "user", "user") // a repeated tag counts once
	setTags(t, s, "other", "d", "misc")
	if got := invalidate(t, tg, "nothing"); len(got) != 0 {
		t.Fatalf("unknown tag deleted %v", got)
	}
	if got := invalidate(t, tg, "team:1"); !slices.Equal(got, []string{"u1"}) {
		t.Fatalf("invalidate team:1 = %v", got)
	}
	wantMissing(t, s, "u1")
	if got := invalidate(t, tg, "user", "team:2"); !slices.Equal(got, []string{"u2", "u3"}) {
		t.Fatalf("invalidate user team:2 = %v (each key once)", got)
	}
	wantMissing(t, s, "u2")
	wantValue(t, s, "other", "d")
	if got := invalidate(t, tg, "user"); len(got) != 0 {
		t.Fatalf("second invalidate = %v", got)
	}
	// Binary tags.
	setTags(t, s, "bin", "x", "\x00\r\n tag")
	if got := invalidate(t, tg, "\x00\r\n tag"); !slices.Equal(got, []string{"bin"}) {
		t.Fatalf("binary tag = %v", got)
	}
}

// testKeyTags checks TagReader, which a cluster needs to copy or hand a key over with its tags.
func testKeyTags(t *testing.T, s store.Store) {
	tr, ok := s.(store.TagReader)
	if !ok {
		t.Skip("store cannot report a key's tags")
	}
	tagsOf := func(key string) []string {
		t.Helper()
		return sortedNames(t)(tr.KeyTags(ctx, []byte(key)))
	}
	setTags(t, s, "k", "v", "b", "a", "\x00bin")
	if got := tagsOf("k"); !slices.Equal(got, []string{"\x00bin", "a", "b"}) {
		t.Fatalf("KeyTags = %q", got)
	}
	set(t, s, "k", "w") // an overwrite without tags clears them
	if got := tagsOf("k"); len(got) != 0 {
		t.Fatalf("KeyTags after an untagged overwrite = %q", got)
	}
	if got := tagsOf("missing"); len(got) != 0 {
		t.Fatalf("KeyTags of a missing key = %q", got)
	}
	do(t, s, "gone", store.Op{Kind: store.Set, Value: []byte("x"), Tags: [][]byte{[]byte("t")}, TTL: store.TTLSet, ExpireAt: now() + 30})
	time.Sleep(60 * time.Millisecond)
	if got := tagsOf("gone"); len(got) != 0 {
		t.Fatalf("KeyTags of an expired key = %q", got)
	}
}

// testTagKeys checks TagLister, which a replicated cluster uses to invalidate only older keys.
func testTagKeys(t *testing.T, s store.Store) {
	tl, ok := s.(store.TagLister)
	if !ok {
		t.Skip("store cannot list a tag's keys")
	}
	keysOf := func(tag string) []string {
		t.Helper()
		return sortedNames(t)(tl.TagKeys(ctx, []byte(tag)))
	}
	setTags(t, s, "k1", "v", "a", "b")
	setTags(t, s, "k2\x00", "v", "a")
	setTags(t, s, "k3", "v", "b")
	setTags(t, s, "k4", "v", "ab") // a tag with another as its prefix
	if got := keysOf("a"); !slices.Equal(got, []string{"k1", "k2\x00"}) {
		t.Fatalf("TagKeys(a) = %q", got)
	}
	set(t, s, "k1", "w") // untagged now
	do(t, s, "k2\x00", store.Op{Kind: store.Delete})
	if got := keysOf("a"); len(got) != 0 {
		t.Fatalf("TagKeys(a) after an overwrite and a delete = %q", got)
	}
	if got := keysOf("nothing"); len(got) != 0 {
		t.Fatalf("TagKeys of an unknown tag = %q", got)
	}
}

// testTagsLifecycle checks that the index never leaks: a key overwritten, deleted, expired or
// flushed is no longer under its old tags.
func testTagsLifecycle(t *testing.T, s store.Store) {
	tg := tagger(t, s)
	setTags(t, s, "over", "v", "t")
	set(t, s, "over", "plain") // a write without TAGS replaces the tags
	setTags(t, s, "retag", "v", "t")
	setTags(t, s, "retag", "v2", "t2")
	setTags(t, s, "del", "v", "t")
	do(t, s, "del", store.Op{Kind: store.Delete})
	setTags(t, s, "del", "v") // recreated without tags
	setTags(t, s, "incr", "1", "t")
	do(t, s, "incr", store.Op{Kind: store.IncrBy, Delta: 1}) // other writes keep the tags
	do(t, s, "incr", store.Op{Kind: store.SetRange, Delta: 5, Value: []byte("z")})
	setTags(t, s, "revive", "1", "t")
	set(t, s, "revive", "5")                                   // a plain write ends the tags…
	do(t, s, "revive", store.Op{Kind: store.IncrBy, Delta: 1}) // …and a later INCR does not revive them
	do(t, s, "revive", store.Op{Kind: store.Append, Value: []byte("0")})
	do(t, s, "exp", store.Op{Kind: store.Set, Value: []byte("v"), TTL: store.TTLSet, ExpireAt: now() + 100, Tags: [][]byte{[]byte("t")}})
	time.Sleep(200 * time.Millisecond)
	set(t, s, "exp", "new") // recreated after expiry, untagged
	if got := invalidate(t, tg, "t"); !slices.Equal(got, []string{"incr"}) {
		t.Fatalf("invalidate t = %v, want [incr]", got)
	}
	wantValue(t, s, "over", "plain")
	wantValue(t, s, "del", "v")
	wantValue(t, s, "exp", "new")
	if got := invalidate(t, tg, "t2"); !slices.Equal(got, []string{"retag"}) {
		t.Fatalf("invalidate t2 = %v", got)
	}
	// An expired tagged key is not reported.
	do(t, s, "e2", store.Op{Kind: store.Set, Value: []byte("v"), TTL: store.TTLSet, ExpireAt: now() + 100, Tags: [][]byte{[]byte("t3")}})
	setTags(t, s, "l2", "v", "t3")
	time.Sleep(200 * time.Millisecond)
	if got := invalidate(t, tg, "t3"); !slices.Equal(got, []string{"l2"}) {
		t.Fatalf("invalidate t3 = %v, want [l2]", got)
	}
	// Flush drops the index.
	setTags(t, s, "f", "v", "t4")
	if ks, ok := s.(store.Keyspace); ok {
		if err := ks.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		set(t, s, "f", "v")
		if got := invalidate(t, tg, "t4"); len(got) != 0 {
			t.Fatalf("invalidate after flush = %v", got)
		}
		wantValue(t, s, "f", "v")
	}
}

// testConcurrent runs INCRs from several goroutines: every one must count.
func testConcurrent(t *testing.T, s store.Store) {
	const workers, each = 8, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if _, err := s.Do(ctx, []byte("counter"), store.Op{Kind: store.IncrBy, Delta: 1}); err != nil {
					errs <- err
					return
				}
				k := []byte(fmt.Sprintf("w%d:%d", w, i))
				if _, err := s.Do(ctx, k, store.Op{Kind: store.Set, Value: k}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	wantValue(t, s, "counter", fmt.Sprint(workers*each))
	for w := range workers {
		k := fmt.Sprintf("w%d:%d", w, each-1)
		v, ok := get(t, s, k)
		if !ok || !bytes.Equal([]byte(v), []byte(k)) {
			t.Fatalf("%s = %q", k, v)
		}
	}
}

// testPipelined checks that calls begun with Pipeliner.Start mean what Do means, complete in
// order per key, and can overlap. A store may decline an op (Start returns nil); the test then
// does what callers do: it waits for the calls started before and uses Do.
func testPipelined(t *testing.T, s store.Store) {
	p, ok := s.(store.Pipeliner)
	if !ok {
		t.Skip("store does not pipeline")
	}
	var started []store.Call
	start := func(key string, op store.Op) store.Call {
		t.Helper()
		if c := p.Start(ctx, []byte(key), op); c != nil {
			started = append(started, c)
			return c
		}
		if op.Kind == store.Set && len(op.Tags) == 0 {
			t.Fatalf("%s: a SET without tags was not pipelined", key)
		}
		for _, c := range started {
			c.Wait()
		}
		res, err := s.Do(ctx, []byte(key), op)
		return done{res, err}
	}
	wait := func(c store.Call) store.Result {
		t.Helper()
		res, err := c.Wait()
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// A whole pipeline on one key, started before any is waited for.
	ops := []store.Op{
		{Kind: store.Get},
		{Kind: store.Set, Value: []byte("1")},
		{Kind: store.Get},
		{Kind: store.Set, Value: []byte("2"), Cond: store.CondNX},
		{Kind: store.Set, Value: []byte("3"), Cond: store.CondXX, ReturnOld: true},
		{Kind: store.Get},
		{Kind: store.Set, Value: []byte("4"), TTL: store.TTLSet, ExpireAt: far, ReturnOld: true},
		{Kind: store.Set, Value: []byte("5"), TTL: store.TTLKeep, Cond: store.CondNX, ReturnOld: true},
		{Kind: store.Set, Value: []byte("x"), Cond: store.CondXX},
	}
	var calls []store.Call
	for i, op := range ops {
		key := "k"
		if i == len(ops)-1 {
			key = "n"
		}
		calls = append(calls, start(key, op))
	}
	want := []store.Result{
		{},
		{Done: true},
		{Found: true, Value: []byte("1")},
		{},
		{Done: true, Found: true, Value: []byte("1")},
		{Found: true, Value: []byte("3")},
		{Done: true, Found: true, Value: []byte("3")},
		{Found: true, Value: []byte("4")},
		{},
	}
	for i, c := range calls {
		got := wait(c)
		if ops[i].Kind == store.Set && !ops[i].ReturnOld {
			got.Found = false // says nothing without GET (SET NX may report the key it found)
		}
		if got.Found != want[i].Found || got.Done != want[i].Done || !bytes.Equal(got.Value, want[i].Value) {
			t.Errorf("call %d = %+v, want %+v", i, got, want[i])
		}
	}
	if got := expireAt(t, s, "k"); got != far {
		t.Fatalf("pipelined SET PXAT: expiry %d, want %d", got, far)
	}
	wantMissing(t, s, "n")
	// The empty key is a key like any other.
	for i, v := range []string{"x", "y"} {
		start("", store.Op{Kind: store.Set, Value: []byte(v)}).Wait()
		if got := wait(start("", store.Op{Kind: store.Get})); string(got.Value) != v {
			t.Fatalf("round %d: empty key = %q, want %q", i, got.Value, v)
		}
	}
	// Many keys at once, then read back through Do.
	var sets []store.Call
	for i := range 200 {
		sets = append(sets, start(fmt.Sprintf("p%d", i), store.Op{Kind: store.Set, Value: []byte(fmt.Sprint(i))}))
	}
	for _, c := range sets {
		if !wait(c).Done {
			t.Fatal("pipelined SET not done")
		}
	}
	for i := range 200 {
		wantValue(t, s, fmt.Sprintf("p%d", i), fmt.Sprint(i))
	}
	// Ops that cannot be pipelined say so.
	if c := p.Start(ctx, []byte("k"), store.Op{Kind: store.Set, Value: []byte("v"), Tags: [][]byte{[]byte("t")}}); c != nil {
		c.Wait()
		t.Fatal("a tagged SET was pipelined")
	}
}

// done is a call that has completed: what Do returned for an op a Pipeliner declined.
type done struct {
	res store.Result
	err error
}

func (d done) Wait() (store.Result, error) { return d.res, d.err }

// testKeySize: a store that tells a key's cost (store.Sizer, MEMORY USAGE) says false for a key
// that is missing, deleted or expired, and a size that grows with the value for a live one.
func testKeySize(t *testing.T, s store.Store) {
	sz, ok := s.(store.Sizer)
	if !ok {
		t.Skip("the store does not implement store.Sizer")
	}
	size := func(key string) (int64, bool) {
		t.Helper()
		n, found, err := sz.KeySize(ctx, []byte(key))
		if err != nil {
			t.Fatalf("KeySize(%s): %v", key, err)
		}
		return n, found
	}
	if _, found := size("missing"); found {
		t.Error("a missing key has a size")
	}
	set(t, s, "small", "v")
	set(t, s, "large", strings.Repeat("v", 5000))
	small, found1 := size("small")
	large, found2 := size("large")
	if !found1 || !found2 || small <= 0 || large < small+4999 {
		t.Errorf("sizes: 1-byte value %d (%v), 5000-byte %d (%v)", small, found1, large, found2)
	}
	do(t, s, "large", store.Op{Kind: store.Delete})
	if _, found := size("large"); found {
		t.Error("a deleted key has a size")
	}
	do(t, s, "brief", store.Op{Kind: store.Set, Value: []byte("v"), ExpireAt: now() + 50})
	time.Sleep(80 * time.Millisecond)
	if _, found := size("brief"); found {
		t.Error("an expired key has a size")
	}
}

// testObject: a store that answers OBJECT (store.Describer) gives Redis's encoding for a value by
// the command that wrote it, Redis's reference count for shared small integers, and nothing for
// a key that is missing, deleted or expired. The expectations are what Redis 7 answers with its
// defaults (no maxmemory), so the redis store, which asks Redis, must meet them too.
func testObject(t *testing.T, s store.Store) {
	d, ok := s.(store.Describer)
	if !ok {
		t.Skip("the store does not implement store.Describer")
	}
	describe := func(key string, field store.ObjectField) (store.Object, bool) {
		t.Helper()
		obj, found, err := d.Object(ctx, []byte(key), field)
		if err != nil {
			t.Fatalf("Object(%s, %d): %v", key, field, err)
		}
		return obj, found
	}
	check := func(key, encoding string, refcount int64) {
		t.Helper()
		enc, found1 := describe(key, store.ObjectEncoding)
		ref, found2 := describe(key, store.ObjectRefCount)
		if !found1 || !found2 || enc.Encoding != encoding || ref.RefCount != refcount {
			t.Errorf("%s: encoding %q (found %v), refcount %d (found %v); want %q, %d",
				key, enc.Encoding, found1, ref.RefCount, found2, encoding, refcount)
		}
	}
	if _, found := describe("missing", store.ObjectEncoding); found {
		t.Error("a missing key is described")
	}
	// Written whole: by the value.
	set(t, s, "small-int", "123")
	set(t, s, "large-int", "99999")
	set(t, s, "negative", "-5")
	set(t, s, "overflow", "12345678901234567890")
	set(t, s, "leading-zero", "0123")
	set(t, s, "emb", strings.Repeat("e", 44))
	set(t, s, "raw", strings.Repeat("r", 45))
	check("small-int", "int", store.SharedRefCount)
	check("large-int", "int", 1)
	check("negative", "int", 1)
	check("overflow", "embstr", 1)
	check("leading-zero", "embstr", 1)
	check("emb", "embstr", 1)
	check("raw", "raw", 1)
	do(t, s, "incr", store.Op{Kind: store.IncrBy, Delta: 20000})
	check("incr", "int", 1)
	do(t, s, "incr", store.Op{Kind: store.IncrBy, Delta: -19990})
	check("incr", "int", store.SharedRefCount)
	do(t, s, "new-append", store.Op{Kind: store.Append, Value: []byte("12")})
	check("new-append", "int", store.SharedRefCount)
	// INCRBYFLOAT's sum is a string even when it reads as an integer.
	do(t, s, "float", store.Op{Kind: store.IncrByFloat, Value: []byte("1.5")})
	do(t, s, "float", store.Op{Kind: store.IncrByFloat, Value: []byte("1.5")})
	check("float", "embstr", 1)
	// Changed in place: raw, even when nothing was added.
	do(t, s, "new-append", store.Op{Kind: store.Append, Value: []byte("")})
	check("new-append", "raw", 1)
	set(t, s, "empty", "")
	do(t, s, "empty", store.Op{Kind: store.Append, Value: []byte("")})
	check("empty", "raw", 1)
	do(t, s, "new-range", store.Op{Kind: store.SetRange, Delta: 2, Value: []byte("ab")})
	check("new-range", "raw", 1)
	set(t, s, "range", "7")
	do(t, s, "range", store.Op{Kind: store.SetRange, Value: []byte("")}) // no change
	check("range", "int", store.SharedRefCount)
	do(t, s, "range", store.Op{Kind: store.SetRange, Value: []byte("8")})
	check("range", "raw", 1)
	// The expiry does not change the value's encoding; a new SET does.
	do(t, s, "range", store.Op{Kind: store.Expire, ExpireAt: far})
	do(t, s, "range", store.Op{Kind: store.Persist})
	do(t, s, "range", store.Op{Kind: store.GetEx, TTL: store.TTLSet, ExpireAt: far})
	check("range", "raw", 1)
	set(t, s, "range", "8")
	check("range", "int", store.SharedRefCount)

	do(t, s, "raw", store.Op{Kind: store.Delete})
	if _, found := describe("raw", store.ObjectEncoding); found {
		t.Error("a deleted key is described")
	}
	do(t, s, "brief", store.Op{Kind: store.Set, Value: []byte("v"), ExpireAt: now() + 50})
	time.Sleep(80 * time.Millisecond)
	if _, found := describe("brief", store.ObjectRefCount); found {
		t.Error("an expired key is described")
	}
}
