package partition

import (
	"testing"
	"time"

	"github.com/vela-cache/vela/nearcache"
)

// liveReader returns a live near cache and a reader's side over it.
func liveReader(t *testing.T) (*nearcache.Cache, *nearReader) {
	t.Helper()
	c, err := nearcache.New(100, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	c.Resume()
	return c, newNearReader(c, time.Minute)
}

// A reader that has copies from an owner and stops hearing from it drops every copy: the
// owner's invalidations may be getting lost. Its own reads from the owner (fills) do not count
// as hearing from it. Copies that have all lapsed expect nothing.
func TestNearReaderDropsCopiesOfQuietOwner(t *testing.T) {
	c, r := liveReader(t)
	keep := func(k string) { c.Fill([]byte(k), c.Begin([]byte(k)), []byte("v"), 0) }
	held := func(k string) bool { _, ok := c.Get([]byte(k)); return ok }
	quiet := func(owner string) {
		r.mu.Lock()
		r.heard[owner] = time.Now().Add(-beatLost - time.Millisecond).UnixMilli()
		r.mu.Unlock()
	}
	minute := time.Now().Add(time.Minute).UnixMilli()

	keep("a")
	if !r.filling("owner", "i1", minute) {
		t.Fatal("a first copy refused")
	}
	r.check()
	if !held("a") {
		t.Fatal("dropped while the owner's first beat may still be on its way")
	}
	quiet("owner")
	r.filling("owner", "i1", minute) // more reads from the owner: not a word from it
	r.check()
	if held("a") {
		t.Fatal("a copy from a quiet owner was kept")
	}

	keep("b")
	r.filling("other", "j1", time.Now().Add(-time.Millisecond).UnixMilli()) // its copies have lapsed
	quiet("other")
	r.check()
	if !held("b") {
		t.Fatal("an owner whose copies lapsed made the reader drop everything")
	}
}

// An owner that restarted (a new incarnation) forgot the registrations: every copy goes.
func TestNearReaderDropsCopiesOfRestartedOwner(t *testing.T) {
	c, r := liveReader(t)
	c.Fill([]byte("a"), c.Begin([]byte("a")), []byte("v"), 0)
	r.filling("owner", "i1", time.Now().Add(time.Minute).UnixMilli())
	r.heardFrom("owner", "i1")
	if _, ok := c.Get([]byte("a")); !ok {
		t.Fatal("dropped by a beat of the same incarnation")
	}
	if r.filling("owner", "i2", time.Now().Add(time.Minute).UnixMilli()) {
		t.Fatal("a copy from a restarted owner was let in")
	}
	if _, ok := c.Get([]byte("a")); ok {
		t.Fatal("a copy from before the owner restarted was kept")
	}
	c.Fill([]byte("b"), c.Begin([]byte("b")), []byte("v"), 0)
	r.heardFrom("owner", "i3")
	if _, ok := c.Get([]byte("b")); ok {
		t.Fatal("a beat of a new incarnation left the copies")
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
