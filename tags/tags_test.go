package tags

import (
	"fmt"
	"sort"
	"sync"
	"testing"
)

func bs(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

func sorted(ss []string) []string {
	sort.Strings(ss)
	return ss
}

func TestIndex(t *testing.T) {
	x := New()
	steps := []struct {
		name       string
		key        string
		tags       []string
		wantBefore int
		wantAfter  int
	}{
		{"tag a key", "k1", []string{"a", "b"}, 0, 2},
		{"duplicates count once", "k2", []string{"b", "b", "c"}, 0, 2},
		{"replace keeps one, adds one", "k1", []string{"b", "d"}, 2, 2},
		{"untagged key costs nothing", "k3", nil, 0, 0},
		{"remove by setting none", "k2", nil, 2, 0},
	}
	for _, st := range steps {
		before, after := x.Set([]byte(st.key), bs(st.tags...))
		if before != st.wantBefore || after != st.wantAfter {
			t.Fatalf("%s: Set = %d, %d; want %d, %d", st.name, before, after, st.wantBefore, st.wantAfter)
		}
	}
	queries := []struct {
		name string
		tags []string
		want []string
	}{
		{"a left with the replace", []string{"a"}, nil},
		{"b", []string{"b"}, []string{"k1"}},
		{"c left with k2", []string{"c"}, nil},
		{"union without duplicates", []string{"b", "d", "zzz"}, []string{"k1"}},
	}
	for _, q := range queries {
		if got := sorted(x.Keys(bs(q.tags...))); fmt.Sprint(got) != fmt.Sprint(sorted(q.want)) {
			t.Errorf("%s: Keys(%v) = %v, want %v", q.name, q.tags, got, q.want)
		}
	}
	if !x.HasAny([]byte("k1"), bs("x", "d")) || x.HasAny([]byte("k1"), bs("a")) || x.HasAny([]byte("k2"), bs("b")) {
		t.Error("HasAny disagrees with the tags set")
	}
	if got := sorted(x.Tags([]byte("k1"))); fmt.Sprint(got) != "[b d]" {
		t.Errorf("Tags(k1) = %v", got)
	}
	if tags, keys := x.Len(); tags != 2 || keys != 1 {
		t.Errorf("Len = %d tags, %d keys; want 2, 1", tags, keys)
	}
	if n := x.Remove([]byte("k1")); n != 2 {
		t.Errorf("Remove = %d", n)
	}
	if tags, keys := x.Len(); tags != 0 || keys != 0 {
		t.Errorf("after removing everything Len = %d, %d", tags, keys)
	}
}

// TestConcurrent tags and untags distinct keys from several goroutines (callers serialise per
// key, not across keys) and checks the index is exact and then empty.
func TestConcurrent(t *testing.T) {
	x := New()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				key := []byte(fmt.Sprintf("g%d:%d", g, i))
				x.Set(key, bs("shared", fmt.Sprintf("t%d", i%10)))
			}
		}()
	}
	wg.Wait()
	if n := len(x.Keys(bs("shared"))); n != 16000 {
		t.Fatalf("shared has %d keys, want 16000", n)
	}
	if n := len(x.Keys(bs("t3", "t4"))); n != 3200 {
		t.Fatalf("t3|t4 have %d keys, want 3200", n)
	}
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				x.Remove([]byte(fmt.Sprintf("g%d:%d", g, i)))
			}
		}()
	}
	wg.Wait()
	if tags, keys := x.Len(); tags != 0 || keys != 0 {
		t.Fatalf("Len = %d, %d after removing every key", tags, keys)
	}
}
