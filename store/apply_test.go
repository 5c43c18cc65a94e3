package store

import "testing"

func TestApplySetConditions(t *testing.T) {
	old := Entry{Value: []byte("old"), ExpireAt: 0}
	for _, tc := range []struct {
		name   string
		cur    Entry
		exists bool
		op     Op
		done   bool
	}{
		{"plain set over a key", old, true, Op{Kind: Set, Value: []byte("v")}, true},
		{"NX on an existing key", old, true, Op{Kind: Set, Value: []byte("v"), Cond: CondNX}, false},
		{"NX on a missing key", Entry{}, false, Op{Kind: Set, Value: []byte("v"), Cond: CondNX}, true},
		{"XX on a missing key", Entry{}, false, Op{Kind: Set, Value: []byte("v"), Cond: CondXX}, false},
		{"Same with the expected value", old, true, Op{Kind: Set, Value: []byte("v"), Cond: CondSame, Expect: []byte("old")}, true},
		{"Same after another write", old, true, Op{Kind: Set, Value: []byte("v"), Cond: CondSame, Expect: []byte("older")}, false},
		{"Same on a key that expired meanwhile", Entry{}, false, Op{Kind: Set, Value: []byte("v"), Cond: CondSame, Expect: []byte("old")}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, action, res, err := Apply(tc.cur, tc.exists, &tc.op, 1000, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			if res.Done != tc.done {
				t.Fatalf("Done = %v, want %v", res.Done, tc.done)
			}
			if tc.done && (action != Put || string(next.Value) != "v") {
				t.Fatalf("action %v value %q, want Put of \"v\"", action, next.Value)
			}
			if !tc.done && action != Keep {
				t.Fatalf("action %v, want Keep", action)
			}
		})
	}
}
