package partition

import (
	"testing"
	"time"

	"github.com/vela-cache/vela/nearcache"
)

// A reader that has copies from an owner and stops hearing from it drops every copy: the
// owner's invalidations may be getting lost. Copies that have all lapsed expect nothing.
func TestNearReaderDropsCopiesOfQuietOwner(t *testing.T) {
	c, err := nearcache.New(100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Resume()
	r := newNearReader(c, time.Minute)
	keep := func(k string) { c.Fill([]byte(k), c.Begin([]byte(k)), []byte("v"), 0) }
	held := func(k string) bool { _, ok := c.Get([]byte(k)); return ok }

	keep("a")
	r.filled("owner", time.Now().Add(time.Minute).UnixMilli())
	r.check()
	if !held("a") {
		t.Fatal("dropped while the owner is heard from")
	}
	r.mu.Lock()
	r.heard["owner"] = time.Now().Add(-beatLost - time.Millisecond).UnixMilli()
	r.mu.Unlock()
	r.check()
	if held("a") {
		t.Fatal("a copy from a quiet owner was kept")
	}

	keep("b")
	r.filled("other", time.Now().Add(-time.Millisecond).UnixMilli()) // its copies have lapsed
	r.mu.Lock()
	r.heard["other"] = 0
	r.mu.Unlock()
	r.check()
	if !held("b") {
		t.Fatal("an owner whose copies lapsed made the reader drop everything")
	}
}

// The owner forgets lapsed registrations and tells each live reader of a changed key once.
func TestNearOwnerRegistrations(t *testing.T) {
	o := newNearOwner(&Cluster{})
	now := time.Now().UnixMilli()
	o.register([]byte("k"), "r1", now+60_000)
	o.register([]byte("k"), "r1", now+60_000)
	o.register([]byte("k"), "r2", now-1) // lapsed
	o.register([]byte("j"), "r2", now-1)
	if n := o.count.Load(); n != 3 {
		t.Fatalf("%d registrations, want 3", n)
	}
	o.KeyChanged([]byte("k"))
	if got := o.out["r1"].keys; len(got) != 1 || string(got[0]) != "k" {
		t.Fatalf("r1's outbox = %q, want [k]", got)
	}
	if ob := o.out["r2"]; ob != nil && len(ob.keys) > 0 {
		t.Fatalf("a lapsed registration was told: %q", ob.keys)
	}
	o.sweep()
	if n := o.count.Load(); n != 0 {
		t.Fatalf("%d registrations after the sweep, want 0", n)
	}
}
