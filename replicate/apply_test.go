package replicate

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/store/memory"
)

func soloCluster(t *testing.T) *Cluster {
	st := memory.New(memory.Config{})
	node := commands.NewNode(st, commands.Config{}, nil, nil)
	cl, err := New(node, st, Config{NodeName: "solo"})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func (cl *Cluster) valueOf(t *testing.T, key string) (string, bool) {
	t.Helper()
	st, err := cl.readState(context.Background(), []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return string(st.value), st.found
}

// A copy newer than the key's state here but older than a TAGINVALIDATE of one of its tags was
// deleted on the members that applied it in time: here it must end deleted too, not leave the
// older value.
func TestCopyOlderThanItsTagsInvalidationDeletes(t *testing.T) {
	cl := soloCluster(t)
	ctx := context.Background()
	at := func(n uint64) Stamp { return Stamp{Time: n << counterBits, Node: 7} }
	if ok, err := cl.apply(ctx, []byte("k"), state{found: true, value: []byte("old"), stamp: at(10)}); err != nil || !ok {
		t.Fatalf("first copy: %v %v", ok, err)
	}
	cl.versions.setTags([][]byte{[]byte("t")}, at(30))
	ok, err := cl.apply(ctx, []byte("k"), state{found: true, value: []byte("tagged"), tags: [][]byte{[]byte("t")}, stamp: at(20)})
	if err != nil || !ok {
		t.Fatalf("the invalidated copy: %v %v", ok, err)
	}
	if v, found := cl.valueOf(t, "k"); found {
		t.Fatalf("k = %q, want it deleted", v)
	}
	if e := cl.versions.get([]byte("k")); !e.gone || e.stamp != at(20) {
		t.Fatalf("entry %+v, want a tombstone at the copy's stamp", e)
	}
	// An older copy still loses to the tombstone.
	if ok, _ := cl.apply(ctx, []byte("k"), state{found: true, value: []byte("older"), stamp: at(15)}); ok {
		t.Fatal("a copy older than the tombstone was applied")
	}
}

// Two copies with equal stamps (unstamped keys from before a disk-store restart, say) keep the
// greater value.
func TestUnstampedCopiesKeepTheGreaterValue(t *testing.T) {
	cl := soloCluster(t)
	ctx := context.Background()
	for _, v := range []string{"b", "a", "c"} {
		if _, err := cl.apply(ctx, []byte("k"), state{found: true, value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := cl.valueOf(t, "k"); v != "c" {
		t.Fatalf("k = %q, want the greatest value", v)
	}
	if ok, _ := cl.apply(ctx, []byte("k"), state{}); ok {
		t.Fatal("an unstamped delete was applied")
	}
	// Equal stamps with different values (a disk member killed before it saved a write's
	// stamp): the same rule, so members still agree.
	s := Stamp{Time: 9 << counterBits, Node: 4}
	for _, v := range []string{"m", "z", "a"} {
		if _, err := cl.apply(ctx, []byte("s"), state{found: true, value: []byte(v), stamp: s}); err != nil {
			t.Fatal(err)
		}
	}
	if v, _ := cl.valueOf(t, "s"); v != "z" {
		t.Fatalf("s = %q, want the greatest value among equal stamps", v)
	}
}

func TestStampsSaveAndLoad(t *testing.T) {
	v := newVersions()
	at := func(n uint64) Stamp { return Stamp{Time: n << counterBits, Node: 3} }
	v.put([]byte("live"), entry{stamp: at(5)})
	v.put([]byte("gone\x00bin"), entry{stamp: at(9), gone: true})
	v.setFlush(at(2))
	v.setTags([][]byte{[]byte("t")}, at(7))
	path := t.TempDir() + "/x.stamps"
	if err := v.save(path); err != nil {
		t.Fatal(err)
	}
	w := newVersions()
	if err := w.load(path); err != nil {
		t.Fatal(err)
	}
	if e := w.get([]byte("live")); e.stamp != at(5) || e.gone {
		t.Fatalf("live = %+v", e)
	}
	if e := w.get([]byte("gone\x00bin")); e.stamp != at(9) || !e.gone {
		t.Fatalf("gone = %+v", e)
	}
	if w.flushStamp() != at(2) || w.floor([][]byte{[]byte("t")}) != at(7) || w.newest.Load() != at(9).Time {
		t.Fatal("floors or newest stamp not restored")
	}
	if err := w.load(t.TempDir() + "/missing"); err != nil {
		t.Fatalf("a missing file: %v", err)
	}
	bad := t.TempDir() + "/bad"
	if err := os.WriteFile(bad, []byte("VELASTAMPS\x01\x05"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := newVersions().load(bad); !errors.Is(err, errStampsFile) {
		t.Fatalf("a truncated file: %v", err)
	}
}

// A read-modify-write that changes nothing (EXPIRE of a key missing here, whose SET may still be
// on its way from another member) is not stamped nor copied: its absence, stamped now, would
// delete that SET everywhere.
func TestNoOpWriteIsNotCopied(t *testing.T) {
	cl := soloCluster(t)
	ctx := &commands.Ctx{Node: cl.node}
	for _, args := range [][]string{{"EXPIRE", "k", "100"}, {"PERSIST", "k"}, {"SET", "k", "x", "XX"}, {"DEL", "k"}} {
		var a [][]byte
		for _, x := range args {
			a = append(a, []byte(x))
		}
		if r := cl.node.Exec(ctx, a); r.IsError() {
			t.Fatalf("%v: %s", args, r.Str)
		}
		if e := cl.versions.get([]byte("k")); !e.stamp.IsZero() {
			t.Fatalf("%v changed nothing but was stamped: %+v", args, e)
		}
	}
	if r := cl.node.Exec(ctx, [][]byte{[]byte("SET"), []byte("k"), []byte("v")}); r.IsError() {
		t.Fatal(r.Str)
	}
	if e := cl.versions.get([]byte("k")); e.stamp.IsZero() || e.gone {
		t.Fatalf("a SET was not stamped: %+v", e)
	}
}

// A TAGINVALIDATE stamped before a key's write (a joiner receiving an old invalidation in the
// whole state, or the two sides of a healed partition) deletes the tag's older keys only.
func TestInvalidationKeepsNewerKeys(t *testing.T) {
	cl := soloCluster(t)
	ctx := context.Background()
	at := func(n uint64) Stamp { return Stamp{Time: n << counterBits, Node: 5} }
	tags := [][]byte{[]byte("t")}
	if _, err := cl.apply(ctx, []byte("older"), state{found: true, value: []byte("o"), tags: tags, stamp: at(10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.apply(ctx, []byte("newer"), state{found: true, value: []byte("n"), tags: tags, stamp: at(30)}); err != nil {
		t.Fatal(err)
	}
	peerCtx := &commands.Ctx{Node: cl.node, Peer: true}
	r, err := cl.rtags(peerCtx, [][]byte{[]byte("VELA"), []byte("RTAGS"), u64(at(20).Time), u64(at(20).Node), []byte("t")})
	if err != nil || r.Int != 1 {
		t.Fatalf("RTAGS = %+v, %v; want 1 key deleted", r, err)
	}
	if _, found := cl.valueOf(t, "older"); found {
		t.Fatal("the older key survived")
	}
	if v, found := cl.valueOf(t, "newer"); !found || v != "n" {
		t.Fatalf("the newer key = %q, %v; it must stay", v, found)
	}
}
