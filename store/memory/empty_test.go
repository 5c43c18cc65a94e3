package memory

import (
	"context"
	"runtime"
	"testing"

	"github.com/vela-cache/vela/store"
)

// TestEmptyKeyAndValue stores the empty key with an empty value, whose item ends right after its
// header, and keeps the slices reads return across collections. Slices pointing one past the end
// of the item crashed the garbage collector ("marked free object"); under -race, checkptr
// reports such pointer arithmetic at once.
func TestEmptyKeyAndValue(t *testing.T) {
	s := New(Config{})
	ctx := context.Background()
	var kept [][]byte
	for i := 0; i < 1000; i++ {
		for _, key := range []string{"", "k"} {
			if _, err := s.Do(ctx, []byte(key), store.Op{Kind: store.Set, Value: []byte{}}); err != nil {
				t.Fatal(err)
			}
			r, err := s.Do(ctx, []byte(key), store.Op{Kind: store.Get})
			if err != nil || !r.Found || r.Value == nil || len(r.Value) != 0 {
				t.Fatalf("GET %q = %q (found %v), %v", key, r.Value, r.Found, err)
			}
			kept = append(kept, r.Value)
		}
		if i%100 == 0 {
			keys, _, err := s.Scan(ctx, 0, nil, 100)
			if err != nil || len(keys) != 2 {
				t.Fatalf("SCAN = %q, %v", keys, err)
			}
			kept = append(kept, keys...)
			runtime.GC()
		}
	}
	runtime.KeepAlive(kept)
}
