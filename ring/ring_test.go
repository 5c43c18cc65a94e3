package ring

import (
	"fmt"
	"math"
	"strconv"
	"testing"
)

// numHash reads the hashed bytes as a decimal number and vnode names "m#v" as m*10+v... the
// groupcache trick: points and keys land exactly where the test says.
func numHash(b []byte) uint64 {
	s := string(b)
	for i := 0; i < len(s); i++ {
		if s[i] == '#' {
			base, _ := strconv.ParseUint(s[:i], 10, 64)
			v, _ := strconv.ParseUint(s[i+1:], 10, 64)
			return base + v*100
		}
	}
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

func TestPlacement(t *testing.T) {
	// Members "2", "4", "6" with 3 vnodes each: points 2,102,202 / 4,104,204 / 6,106,206.
	r := New([]string{"6", "4", "2"}, 1, Config{VNodes: 3, Hash: numHash})
	cases := []struct {
		name, key, owner string
		owners           []string
	}{
		{"exact point", "2", "2", []string{"2", "4"}},
		{"between points", "3", "4", []string{"4", "6"}},
		{"second round", "105", "6", []string{"6", "2"}},
		{"after last point wraps", "207", "2", []string{"2", "4"}},
		{"zero", "0", "2", []string{"2", "4"}},
		{"hashtag used", "foo{11}bar", "2", []string{"2", "4"}},
		{"tag 103", "{103}", "4", []string{"4", "6"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := r.Owner([]byte(c.key)); got != c.owner {
				t.Fatalf("Owner(%q) = %q, want %q", c.key, got, c.owner)
			}
			got := r.Owners([]byte(c.key), 2, nil)
			if fmt.Sprint(got) != fmt.Sprint(c.owners) {
				t.Fatalf("Owners(%q, 2) = %v, want %v", c.key, got, c.owners)
			}
			if all := r.Owners([]byte(c.key), 10, nil); len(all) != 3 {
				t.Fatalf("Owners(%q, 10) = %v, want all 3 members", c.key, all)
			}
		})
	}
	// Adding member "8" takes only the keys just below its points.
	r2 := New([]string{"2", "4", "6", "8"}, 2, Config{VNodes: 3, Hash: numHash})
	if got := r2.Owner([]byte("7")); got != "8" {
		t.Fatalf("after adding 8, Owner(7) = %q", got)
	}
	if got := r2.Owner([]byte("5")); got != "6" {
		t.Fatalf("after adding 8, Owner(5) = %q", got)
	}
}

func TestHashTag(t *testing.T) {
	cases := []struct{ name, key, tag string }{
		{"no braces", "user:1", "user:1"},
		{"tag", "{user1}:name", "user1"},
		{"tag in middle", "a{b}c", "b"},
		{"empty tag hashes whole key", "{}x", "{}x"},
		{"only first braces", "{a}{b}", "a"},
		{"first open, next close", "x{{a}}", "{a"},
		{"unclosed", "{abc", "{abc"},
		{"close before open", "}a{b}", "b"},
		{"empty key", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(HashTag([]byte(c.key))); got != c.tag {
				t.Fatalf("HashTag(%q) = %q, want %q", c.key, got, c.tag)
			}
		})
	}
	r := New([]string{"a", "b", "c", "d", "e"}, 1, Config{})
	for i := 0; i < 1000; i++ {
		k1 := fmt.Sprintf("{order:%d}:items", i)
		k2 := fmt.Sprintf("{order:%d}:total", i)
		if r.Owner([]byte(k1)) != r.Owner([]byte(k2)) {
			t.Fatalf("%s and %s have different owners", k1, k2)
		}
	}
}

func TestDeterminism(t *testing.T) {
	a := New([]string{"n1", "n2", "n3", "n4"}, 7, Config{})
	b := New([]string{"n4", "n2", "n2", "n3", "n1"}, 7, Config{})
	var ka [1]byte
	for i := 0; i < 100000; i++ {
		key := strconv.AppendInt(ka[:0], int64(i), 10)
		if a.Owner(key) != b.Owner(key) {
			t.Fatalf("key %s: %s vs %s", key, a.Owner(key), b.Owner(key))
		}
		oa, ob := a.Owners(key, 3, nil), b.Owners(key, 3, nil)
		if fmt.Sprint(oa) != fmt.Sprint(ob) {
			t.Fatalf("key %s owners: %v vs %v", key, oa, ob)
		}
	}
	if a.Len() != 4 || !a.Has("n3") || a.Has("n9") {
		t.Fatalf("members %v", a.Members())
	}
}

func members(n int) []string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf("vela-%d", i+1)
	}
	return ms
}

const balanceKeys = 1_000_000

func TestBalance(t *testing.T) {
	keys := balanceKeys
	if testing.Short() {
		keys = 200_000
	}
	for n := 3; n <= 10; n++ {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			r := New(members(n), 1, Config{})
			count := map[string]int{}
			buf := make([]byte, 0, 32)
			for i := 0; i < keys; i++ {
				buf = strconv.AppendInt(append(buf[:0], "key:"...), int64(i), 10)
				count[r.Owner(buf)]++
			}
			even := float64(keys) / float64(n)
			worst := 0.0
			for _, m := range r.Members() {
				dev := (float64(count[m]) - even) / even
				worst = math.Max(worst, math.Abs(dev))
				if math.Abs(dev) > 0.10 {
					t.Errorf("%d members: %s has %d keys, %.1f%% from even", n, m, count[m], 100*dev)
				}
			}
			t.Logf("%d members: worst share %.1f%% from even", n, 100*worst)
		})
	}
}

func TestMinimalMovement(t *testing.T) {
	keys := balanceKeys / 4
	for n := 3; n <= 9; n += 3 {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			old := New(members(n), 1, Config{})
			grown := New(members(n+1), 2, Config{})
			added := members(n + 1)[n]
			moved := 0
			buf := make([]byte, 0, 32)
			for i := 0; i < keys; i++ {
				buf = strconv.AppendInt(append(buf[:0], "key:"...), int64(i), 10)
				a, b := old.Owner(buf), grown.Owner(buf)
				if a == b {
					continue
				}
				moved++
				if b != added {
					t.Fatalf("key %s moved between old members %s -> %s", buf, a, b)
				}
			}
			want := float64(keys) / float64(n+1)
			if dev := math.Abs(float64(moved)-want) / want; dev > 0.10 {
				t.Fatalf("adding a member to %d moved %d keys, want about %.0f (%.1f%% off)", n, moved, want, 100*dev)
			}
			// Replica sets change minimally too: a key's owners change only by the new member.
			for i := 0; i < 10000; i++ {
				buf = strconv.AppendInt(append(buf[:0], "key:"...), int64(i), 10)
				before, after := old.Owners(buf, 2, nil), grown.Owners(buf, 2, nil)
				for _, m := range after {
					if m != added && !contains(before, m) {
						t.Fatalf("key %s: owners %v -> %v gained an old member", buf, before, after)
					}
				}
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestEmptyRing(t *testing.T) {
	var h Holder
	r := h.Load()
	if r.Owner([]byte("k")) != "" || len(r.Owners([]byte("k"), 2, nil)) != 0 || r.Len() != 0 {
		t.Fatal("empty ring should own nothing")
	}
	h.Store(New([]string{"a"}, 3, Config{}))
	if h.Load().Owner([]byte("k")) != "a" || h.Load().Version() != 3 {
		t.Fatal("stored ring not returned")
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	r := New(members(5), 1, Config{})
	key := []byte("user:{42}:profile")
	var dst [4]string
	allocs := testing.AllocsPerRun(1000, func() {
		_ = r.Owner(key)
		_ = r.Owners(key, 3, dst[:0])
		_ = r.IsOwner(key, 2, "vela-3")
	})
	if allocs != 0 {
		t.Fatalf("lookup allocates %.1f times", allocs)
	}
}

func BenchmarkOwner(b *testing.B) {
	for _, n := range []int{3, 10} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			r := New(members(n), 1, Config{})
			key := []byte("key:000000123456")
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_ = r.Owner(key)
			}
		})
	}
}

func BenchmarkOwners3(b *testing.B) {
	r := New(members(5), 1, Config{})
	key := []byte("key:000000123456")
	var dst [3]string
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = r.Owners(key, 3, dst[:0])
	}
}

func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = New(members(10), uint64(i), Config{})
	}
}
