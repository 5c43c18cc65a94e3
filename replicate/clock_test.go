package replicate

import (
	"testing"
	"time"
)

func TestClockNeverRepeatsAndFollowsObservations(t *testing.T) {
	wall := time.UnixMilli(1_000_000)
	c := clock{now: func() time.Time { return wall }}
	a, b := c.next(), c.next()
	if b <= a {
		t.Fatalf("readings in one millisecond: %d then %d", a, b)
	}
	// Another member's wall clock is a minute ahead: a write made here after applying its
	// copy must still be newer.
	ahead := uint64(wall.Add(time.Minute).UnixMilli()) << counterBits
	c.observe(ahead)
	if n := c.next(); n <= ahead {
		t.Fatalf("after observing %d the clock gave %d", ahead, n)
	}
	// Observing an older reading changes nothing.
	before := c.last.Load()
	c.observe(a)
	if c.last.Load() != before {
		t.Fatal("observing an older reading moved the clock back")
	}
	if wallMillis(a) != 1_000_000 {
		t.Fatalf("wallMillis = %d", wallMillis(a))
	}
}

func TestStampOrder(t *testing.T) {
	older, newer := Stamp{Time: 5, Node: 9}, Stamp{Time: 6, Node: 1}
	if !newer.After(older) || older.After(newer) {
		t.Fatal("Time orders first")
	}
	tieLow, tieHigh := Stamp{Time: 6, Node: 1}, Stamp{Time: 6, Node: 2}
	if !tieHigh.After(tieLow) || tieLow.After(tieHigh) || tieLow.After(tieLow) {
		t.Fatal("Node breaks ties, and a stamp is not after itself")
	}
	if !(Stamp{}).IsZero() || newer.IsZero() || !newer.After(Stamp{}) {
		t.Fatal("the zero stamp is older than every write")
	}
}

func TestVersionsFloorsAndCollection(t *testing.T) {
	v := newVersions()
	s := func(ms int64) Stamp { return Stamp{Time: uint64(ms) << counterBits, Node: 1} }
	v.put([]byte("a"), entry{stamp: s(100)})
	v.put([]byte("b"), entry{stamp: s(300), gone: true})
	if !v.setFlush(s(200)) || v.setFlush(s(150)) {
		t.Fatal("setFlush must keep only the newest FLUSHALL")
	}
	if got := v.newerThan(s(200)); len(got) != 1 || got[0] != "b" {
		t.Fatalf("newerThan = %v", got)
	}
	v.dropOlder(s(200))
	if v.get([]byte("a")).stamp != (Stamp{}) || v.get([]byte("b")).stamp != s(300) {
		t.Fatal("dropOlder kept an older entry or dropped a newer one")
	}
	if got := v.setTags([][]byte{[]byte("t1"), []byte("t2")}, s(400)); len(got) != 2 {
		t.Fatalf("setTags = %q", got)
	}
	if got := v.setTags([][]byte{[]byte("t1")}, s(350)); len(got) != 0 {
		t.Fatalf("an older TAGINVALIDATE was taken: %q", got)
	}
	if f := v.floor(nil); f != s(200) {
		t.Fatalf("floor without tags = %v, want the FLUSHALL's", f)
	}
	if f := v.floor([][]byte{[]byte("x"), []byte("t2")}); f != s(400) {
		t.Fatalf("floor with t2 = %v", f)
	}
	if old := v.oldKeys(int(shardOf("b")), 301); len(old) != 1 {
		t.Fatalf("oldKeys = %v", old)
	}
	v.gcFloors(401)
	if f := v.floor([][]byte{[]byte("t2")}); f != s(200) {
		t.Fatalf("a collected TAGINVALIDATE still counts: %v", f)
	}
}
