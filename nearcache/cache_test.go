package nearcache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func newLive(t *testing.T, size int, ttl time.Duration) *Cache {
	t.Helper()
	c, err := New(size, ttl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.Resume()
	return c
}

func fill(c *Cache, key, value string, expireAt int64) {
	c.Fill([]byte(key), c.Begin([]byte(key)), []byte(value), expireAt)
}

func TestFillThenGet(t *testing.T) {
	c := newLive(t, 100, time.Minute)
	if _, ok := c.Get([]byte("k")); ok {
		t.Fatal("hit in an empty cache")
	}
	fill(c, "k", "v", 0)
	if v, ok := c.Get([]byte("k")); !ok || string(v) != "v" {
		t.Fatalf("Get = %q, %v; want v", v, ok)
	}
	c.Invalidate([]byte("k"))
	if _, ok := c.Get([]byte("k")); ok {
		t.Fatal("hit after Invalidate")
	}
}

// A fetch that an invalidation overtook must keep nothing: its value may predate the change.
func TestInvalidationDuringFetchDropsFill(t *testing.T) {
	c := newLive(t, 100, time.Minute)
	tk := c.Begin([]byte("k"))
	c.Invalidate([]byte("k"))
	c.Fill([]byte("k"), tk, []byte("old"), 0)
	if v, ok := c.Get([]byte("k")); ok {
		t.Fatalf("stale fill kept: %q", v)
	}
	tk = c.Begin([]byte("k"))
	c.Flush()
	c.Fill([]byte("k"), tk, []byte("old"), 0)
	if _, ok := c.Get([]byte("k")); ok {
		t.Fatal("fill begun before Flush kept")
	}
}

func TestExpiryBoundsCopy(t *testing.T) {
	c := newLive(t, 100, time.Minute)
	fill(c, "short", "v", time.Now().UnixMilli()+60)
	fill(c, "past", "v", time.Now().UnixMilli()-1)
	fill(c, "unknown", "v", -1)
	if _, ok := c.Get([]byte("short")); !ok {
		t.Fatal("copy of a live key not kept")
	}
	for _, k := range []string{"past", "unknown"} {
		if _, ok := c.Get([]byte(k)); ok {
			t.Fatalf("%s: kept a copy with an expiry that is past or unknown", k)
		}
	}
	time.Sleep(80 * time.Millisecond)
	if _, ok := c.Get([]byte("short")); ok {
		t.Fatal("copy served past the key's expiry")
	}
}

func TestTTLBoundsCopy(t *testing.T) {
	c := newLive(t, 100, 50*time.Millisecond)
	fill(c, "k", "v", 0)
	if _, ok := c.Get([]byte("k")); !ok {
		t.Fatal("not kept")
	}
	time.Sleep(70 * time.Millisecond)
	if _, ok := c.Get([]byte("k")); ok {
		t.Fatal("copy served past l1_ttl")
	}
}

func TestSuspendedServesAndKeepsNothing(t *testing.T) {
	c := newLive(t, 100, time.Minute)
	fill(c, "k", "v", 0)
	tk := c.Begin([]byte("j"))
	c.Suspend()
	if _, ok := c.Get([]byte("k")); ok {
		t.Fatal("suspended cache served a copy")
	}
	fill(c, "k", "v", 0)
	c.Resume()
	if _, ok := c.Get([]byte("k")); ok {
		t.Fatal("kept a copy filled while suspended")
	}
	c.Fill([]byte("j"), tk, []byte("v"), 0)
	if _, ok := c.Get([]byte("j")); ok {
		t.Fatal("kept a fill begun before the suspension")
	}
	fill(c, "k", "v2", 0)
	if v, ok := c.Get([]byte("k")); !ok || string(v) != "v2" {
		t.Fatalf("after Resume: Get = %q, %v", v, ok)
	}
}

func TestSizeBounded(t *testing.T) {
	c := newLive(t, 100, time.Minute)
	for i := range 5000 {
		fill(c, fmt.Sprint("k", i), "v", 0)
	}
	c.c.CleanUp()
	if n := c.Len(); n > 100 {
		t.Fatalf("%d copies held, bound 100", n)
	}
}

// Fills racing invalidations of the same keys: once the writers stop and each key is invalidated
// after its last write, no copy of an old value may be served.
func TestConcurrentFillAndInvalidate(t *testing.T) {
	c := newLive(t, 1000, time.Minute)
	var mu sync.Mutex
	version := map[string]int{}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := fmt.Sprint("k", (i+w)%20)
				if w%2 == 0 { // a writer: change, then invalidate
					mu.Lock()
					version[k]++
					mu.Unlock()
					c.Invalidate([]byte(k))
					continue
				}
				tk := c.Begin([]byte(k)) // a reader: ticket, fetch, fill
				mu.Lock()
				v := fmt.Sprint(version[k])
				mu.Unlock()
				c.Fill([]byte(k), tk, []byte(v), 0)
			}
		}()
	}
	wg.Wait()
	for k, v := range version {
		if got, ok := c.Get([]byte(k)); ok && string(got) != fmt.Sprint(v) {
			t.Fatalf("%s: served %s, current version %d", k, got, v)
		}
	}
}
