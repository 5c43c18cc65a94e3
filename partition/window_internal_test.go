package partition

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/ring"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/memory"
)

// windowCluster is a cluster of one member ("b") that has not started, with a handoff window
// open as if it had just taken keys from "a": b owns in ring {a, b} what it owns, and held
// nothing in ring {a}.
func windowCluster(t *testing.T, tombstones int) (*Cluster, *commands.Node) {
	t.Helper()
	st := memory.New(memory.Config{})
	node := commands.NewNode(st, commands.Config{}, nil, nil)
	cl, err := New(node, st, Config{NodeName: "b", Tombstones: tombstones})
	if err != nil {
		t.Fatal(err)
	}
	v := &view{ring: ring.New([]string{"a", "b"}, 1, ring.Config{}), addrs: map[string]string{}}
	cl.openWindow(&view{ring: ring.New([]string{"a"}, 0, ring.Config{})}, v, time.Now())
	cl.view.Store(v)
	return cl, node
}

// keyOwnedBy returns a key that member owns in ring r.
func keyOwnedBy(r *ring.Ring, member string, from int) string {
	for i := from; ; i++ {
		if k := "k:" + strconv.Itoa(i); r.Owner([]byte(k)) == member {
			return k
		}
	}
}

func copyOp(tags ...string) store.Op {
	op := store.Op{Kind: store.Set, Value: []byte("old"), TTL: store.TTLSet}
	for _, t := range tags {
		op.Tags = append(op.Tags, []byte(t))
	}
	return op
}

func mustInstall(t *testing.T, cl *Cluster, key string, want bool, op store.Op) {
	t.Helper()
	done, err := cl.install(context.Background(), []byte(key), op)
	if err != nil || done != want {
		t.Fatalf("install %s = %v, %v; want %v", key, done, err, want)
	}
}

func TestInstallRefusesNotedKeys(t *testing.T) {
	cl, node := windowCluster(t, 100)
	v := cl.view.Load()
	c := &commands.Ctx{Node: node}
	del := node.Lookup([][]byte{[]byte("del")})
	k1, k2 := keyOwnedBy(v.ring, "b", 0), keyOwnedBy(v.ring, "b", 1000)
	// A DEL of a key that has not arrived yet is noted: the copy that arrives later is refused.
	cl.localInWindow(c, v, del, []byte(k1))
	node.ExecLocal(c, del, [][]byte{[]byte("DEL"), []byte(k1)})
	mustInstall(t, cl, k1, false, copyOp())
	mustInstall(t, cl, k2, true, copyOp())
	mustInstall(t, cl, k2, false, copyOp()) // present: kept
	if got := cl.refused.Load(); got != 1 {
		t.Fatalf("refused = %d, want 1", got)
	}
	// Reads note nothing.
	get := node.Lookup([][]byte{[]byte("get")})
	k3 := keyOwnedBy(v.ring, "b", 2000)
	cl.localInWindow(c, v, get, []byte(k3))
	mustInstall(t, cl, k3, true, copyOp())
}

func TestInstallRefusesInvalidatedTagsAndFlush(t *testing.T) {
	cl, node := windowCluster(t, 100)
	v := cl.view.Load()
	inv := node.Lookup([][]byte{[]byte("taginvalidate")})
	cl.noteWide(inv, [][]byte{[]byte("TAGINVALIDATE"), []byte("t1")})
	mustInstall(t, cl, keyOwnedBy(v.ring, "b", 0), false, copyOp("t0", "t1"))
	mustInstall(t, cl, keyOwnedBy(v.ring, "b", 1000), true, copyOp("t0"))
	mustInstall(t, cl, keyOwnedBy(v.ring, "b", 2000), true, copyOp())
	flush := node.Lookup([][]byte{[]byte("flushall")})
	cl.noteWide(flush, [][]byte{[]byte("FLUSHALL")})
	mustInstall(t, cl, keyOwnedBy(v.ring, "b", 3000), false, copyOp())
}

// TestNotesOnlyKeysThatMayArrive: a key this node held before the change and still holds is
// not noted (no copy of it can come); one it gained, or does not hold, is.
func TestNotesOnlyKeysThatMayArrive(t *testing.T) {
	st := memory.New(memory.Config{})
	node := commands.NewNode(st, commands.Config{}, nil, nil)
	cl, err := New(node, st, Config{NodeName: "b"})
	if err != nil {
		t.Fatal(err)
	}
	before := ring.New([]string{"a", "b"}, 1, ring.Config{})
	after := ring.New([]string{"a", "b", "c"}, 2, ring.Config{})
	v := &view{ring: after, addrs: map[string]string{}}
	cl.openWindow(&view{ring: before}, v, time.Now())
	cl.view.Store(v)
	var kept, lost string // b's in both rings; b's before, c's after
	for i := 0; kept == "" || lost == ""; i++ {
		k := []byte("k:" + strconv.Itoa(i))
		switch {
		case before.Owner(k) == "b" && after.Owner(k) == "b":
			kept = string(k)
		case before.Owner(k) == "b" && after.Owner(k) == "c":
			lost = string(k)
		}
	}
	if cl.moving(v, []byte(kept)) {
		t.Errorf("%s stayed on b but counts as moving", kept)
	}
	if !cl.moving(v, []byte(lost)) {
		t.Errorf("%s is not b's any more but does not count as moving", lost)
	}
	cl.note(v, []byte(kept))
	cl.note(v, []byte(lost))
	if n := v.fence.count.Load(); n != 1 {
		t.Fatalf("%d keys noted, want 1", n)
	}
}

// TestTombstoneLimit: past the limit the window refuses every copy (a missing key, never an
// older one), and the notes end with the window.
func TestTombstoneLimit(t *testing.T) {
	cl, node := windowCluster(t, 3)
	v := cl.view.Load()
	c := &commands.Ctx{Node: node}
	set := node.Lookup([][]byte{[]byte("set")})
	for i := 0; i < 5; i++ {
		cl.localInWindow(c, v, set, []byte(keyOwnedBy(v.ring, "b", i*1000)))
	}
	if n, full := v.fence.count.Load(), v.fence.full.Load(); n != 3 || !full {
		t.Fatalf("noted %d, full %v; want 3, true", n, full)
	}
	fresh := keyOwnedBy(v.ring, "b", 9000)
	mustInstall(t, cl, fresh, false, copyOp())

	// The window runs out: the notes go, copies are installed when absent again.
	v.fence.until.Store(time.Now().Add(-time.Second).UnixNano())
	v.changeEnd = time.Now().Add(-time.Second)
	if cl.closeWindows() {
		t.Fatal("the window is still open after it ran out")
	}
	if cl.view.Load().fence != nil {
		t.Fatal("the fence outlived its window")
	}
	mustInstall(t, cl, fresh, true, copyOp())
}

// TestLocalPathAllocatesNothingOutsideAWindow: with no window open, a routed local write (a
// client's or a peer's) costs the allocations of the same write on a node with no cluster (the
// store's copy of the value), nothing more.
func TestLocalPathAllocatesNothingOutsideAWindow(t *testing.T) {
	cl, node := windowCluster(t, 100)
	nv := *cl.view.Load()
	nv.fence, nv.from = nil, nil
	nv.ring = ring.New([]string{"b"}, 3, ring.Config{})
	cl.view.Store(&nv)
	plain := commands.NewNode(memory.New(memory.Config{}), commands.Config{}, nil, nil)
	set := [][]byte{[]byte("SET"), []byte("k"), []byte("v")}
	allocs := func(n *commands.Node, peer bool) float64 {
		c := &commands.Ctx{Node: n, Peer: peer}
		if r := n.Exec(c, set); r.IsError() {
			t.Fatal(r.Str)
		}
		return testing.AllocsPerRun(1000, func() { n.Exec(c, set) })
	}
	want := allocs(plain, false)
	if got := allocs(node, false); got != want {
		t.Fatalf("a routed local SET allocates %.1f times outside a window, a local node's %.1f", got, want)
	}
	if got := allocs(node, true); got != want {
		t.Fatalf("a peer's SET allocates %.1f times outside a window, a local node's %.1f", got, want)
	}
	if cl.view.Load().fence != nil {
		t.Fatal("a window opened")
	}
}

// TestPeerAheadOpensAWindow: a member whose ring changed writes, through a peer's command, a
// key this node does not hold in its own ring (or passes one on as VELA FINAL, or wraps it in
// VELA FENCED): this node opens a window and notes that key, but not the ones it holds.
func TestPeerAheadOpensAWindow(t *testing.T) {
	for _, wrap := range []string{"", "FENCED", "FINAL"} {
		t.Run("wrap="+wrap, func(t *testing.T) {
			cl, node := windowCluster(t, 100)
			nv := *cl.view.Load()
			nv.fence, nv.from = nil, nil // no change seen here
			cl.view.Store(&nv)
			c := &commands.Ctx{Node: node, Peer: true}
			notMine, mine := keyOwnedBy(nv.ring, "a", 0), keyOwnedBy(nv.ring, "b", 0)
			run := func(c *commands.Ctx, k string) (int64, error) {
				if wrap == "" {
					r := node.Exec(c, [][]byte{[]byte("DEL"), []byte(k)})
					if r.IsError() {
						return 0, errors.New(r.Str)
					}
					return r.Int, nil
				}
				h := map[string]commands.Handler{"FENCED": cl.fenced, "FINAL": cl.final}[wrap]
				r, err := h(c, [][]byte{[]byte("VELA"), []byte(wrap), []byte("DEL"), []byte(k)})
				if err == nil && r.IsError() {
					err = errors.New(r.Str)
				}
				return r.Int, err
			}
			if n, err := run(c, mine); err != nil || n != 0 {
				t.Fatalf("DEL %s = %d, %v", mine, n, err)
			}
			if wrap == "" && cl.view.Load().fence != nil {
				t.Fatal("a peer's DEL of a key this node holds opened a window")
			}
			if n, err := run(c, notMine); err != nil || n != 0 {
				t.Fatalf("DEL %s = %d, %v", notMine, n, err)
			}
			if cl.view.Load().fence == nil {
				t.Fatal("no window opened")
			}
			mustInstall(t, cl, notMine, false, copyOp())
			mustInstall(t, cl, mine, true, copyOp())
			if wrap != "" {
				if _, err := run(&commands.Ctx{Node: node}, "x"); err == nil || err.Error() != errPeerOnly.Error() {
					t.Fatalf("a client ran VELA %s: %v", wrap, err)
				}
			}
		})
	}
}

// TestTakeWaitsForThisRing: a member whose ring has not seen a join yet still places the key
// here, and its clients' commands on it would run here after it is given up. VELA TAKE waits
// until this node's ring places the key elsewhere, then hands it out; when the ring never
// catches up, it hands it out after half the forward timeout.
func TestTakeWaitsForThisRing(t *testing.T) {
	st := memory.New(memory.Config{})
	node := commands.NewNode(st, commands.Config{}, nil, nil)
	cl, err := New(node, st, Config{NodeName: "a", ForwardTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	joined := ring.New([]string{"a", "b"}, 2, ring.Config{})
	k := keyOwnedBy(joined, "b", 0)
	peer := &commands.Ctx{Node: node, Peer: true}
	set := func(v string) {
		if _, err := st.Do(context.Background(), []byte(k), store.Op{Kind: store.Set, Value: []byte(v), TTL: store.TTLSet}); err != nil {
			t.Fatal(err)
		}
	}
	set("v1")
	got := make(chan string, 1)
	go func() {
		r, err := cl.take(peer, [][]byte{[]byte("VELA"), []byte("TAKE"), []byte(k)})
		if err != nil || len(r.Elems) < 2 {
			got <- "error"
			return
		}
		got <- string(r.Elems[0].Bytes)
	}()
	// The ring is {a} alone: TAKE waits (counted once), the key stays, and a write through this
	// node still lands on it.
	deadline := time.Now().Add(5 * time.Second)
	for cl.waitedPulls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case v := <-got:
		t.Fatalf("TAKE answered %q before this node's ring placed the key elsewhere", v)
	case <-time.After(50 * time.Millisecond):
	}
	set("v2")
	if cl.waitedPulls.Load() != 1 {
		t.Fatalf("waitedPulls = %d, want 1", cl.waitedPulls.Load())
	}
	cl.storeView(&view{ring: joined, addrs: map[string]string{"a": "", "b": ""}})
	if v := <-got; v != "v2" {
		t.Fatalf("TAKE = %q, want v2", v)
	}
	if res, _ := st.Do(context.Background(), []byte(k), store.Op{Kind: store.Inspect}); res.Found {
		t.Fatal("the key is still here after TAKE")
	}

	// A ring that never catches up: the key is handed out after half the forward timeout all the same.
	cl.cfg.ForwardTimeout = 40 * time.Millisecond
	cl.storeView(&view{ring: ring.New([]string{"a"}, 3, ring.Config{}), addrs: map[string]string{"a": ""}})
	set("v3")
	r, err := cl.take(peer, [][]byte{[]byte("VELA"), []byte("TAKE"), []byte(k)})
	if err != nil || len(r.Elems) < 2 || string(r.Elems[0].Bytes) != "v3" {
		t.Fatalf("TAKE = %v, %v; want v3", r, err)
	}
}

// servedMember is a member that serves peers on a listener of its own, with no membership: its
// view is set by hand.
type servedMember struct {
	cl   *Cluster
	node *commands.Node
	st   store.Store
	addr string
}

func serveMember(t *testing.T, name string, opts ...func(*Config)) *servedMember {
	t.Helper()
	st := memory.New(memory.Config{})
	node := commands.NewNode(st, commands.Config{}, nil, nil)
	cfg := Config{NodeName: name, Secret: "s", ForwardTimeout: 2 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	cl, err := New(node, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rs := resp.NewServer(resp.Config{Addr: "127.0.0.1:0"}, node)
	if err := rs.Listen(); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- rs.Serve() }()
	t.Cleanup(func() {
		_ = cl.Shutdown(context.Background())
		_ = rs.Shutdown(context.Background())
		<-served
	})
	return &servedMember{cl: cl, node: node, st: st, addr: rs.Addr().String()}
}

// TestPullAsksPastALeavingMember: node-4 joins while node-3 leaves, and has not learned of the
// leave: its ring still has node-3, and the key it now owns was node-3's in the ring it joined.
// node-3 has handed the key on already, to node-1 (its successor in that ring), and lacks it.
// Told so (node-3 answers that it is leaving), node-4 asks node-1 next. Before, node-3's nil
// ended the pull: node-4's INCR started from a missing key, and node-1's copy was then refused.
func TestPullAsksPastALeavingMember(t *testing.T) {
	n1, n3, n4 := serveMember(t, "node-1"), serveMember(t, "node-3"), serveMember(t, "node-4")
	addrs := map[string]string{"node-1": n1.addr, "node-2": "", "node-3": n3.addr, "node-4": n4.addr}
	r123 := ring.New([]string{"node-1", "node-2", "node-3"}, 1, ring.Config{})
	r12 := ring.New([]string{"node-1", "node-2"}, 2, ring.Config{})
	r124 := ring.New([]string{"node-1", "node-2", "node-4"}, 3, ring.Config{})
	r1234 := ring.New([]string{"node-1", "node-2", "node-3", "node-4"}, 3, ring.Config{})
	var k []byte
	for i := 0; k == nil; i++ {
		c := []byte("k:" + strconv.Itoa(i))
		if r123.Owner(c) == "node-3" && r12.Owner(c) == "node-1" && r124.Owner(c) == "node-4" && r1234.Owner(c) == "node-4" {
			k = c
		}
	}
	// node-3 is leaving and has handed the key to node-1, which has seen node-4 join.
	n3.cl.leaving.Store(true)
	n3.cl.storeView(&view{ring: r12, addrs: addrs})
	n1.cl.storeView(&view{ring: r124, addrs: addrs})
	if _, err := n1.st.Do(context.Background(), k, store.Op{Kind: store.Set, Value: []byte("10"), TTL: store.TTLSet}); err != nil {
		t.Fatal(err)
	}
	// node-4's view, as setView builds it for a joiner that has not heard of the leave.
	v := &view{ring: r1234, addrs: addrs, prev: r123, since: time.Now()}
	n4.cl.openWindow(&view{ring: ring.New([]string{"node-4"}, 0, ring.Config{})}, v, time.Now())
	n4.cl.storeView(v)
	if got := n4.cl.pullSources(v, k); len(got) != 1 || got[0] != "node-3" {
		t.Fatalf("node-4 pulls %s from %v, want node-3 alone", k, got)
	}

	c4 := &commands.Ctx{Node: n4.node}
	if r := n4.node.Exec(c4, [][]byte{[]byte("INCR"), k}); r.IsError() || r.Int != 11 {
		t.Fatalf("INCR %s through node-4 = %d %q, want 11", k, r.Int, r.Str)
	}
	if res, err := n1.st.Do(context.Background(), k, store.Op{Kind: store.Inspect}); err != nil || res.Found {
		t.Errorf("node-1 kept its copy after handing it to node-4 (%v)", err)
	}
}

// TestFinalBehindALeaveReachesTheNewOwner: node-1 has not heard yet that node-3, which joined
// lately, is leaving; a member that has sends node-1 an INCRBY (VELA FINAL) of a key node-1's
// ring now places on node-3 and placed on node-1 before node-3 joined. node-1 cannot tell this
// from a sender whose ring lacks a joiner, and passes it on as FINAL: node-3, leaving, passes it
// back as LAST with its copy ahead, and it runs on node-1, the owner once node-3 has left.
// Passed on as LAST, it ran on node-3's copy, being handed over, and was lost.
func TestFinalBehindALeaveReachesTheNewOwner(t *testing.T) {
	n1, n3 := serveMember(t, "node-1"), serveMember(t, "node-3")
	addrs := map[string]string{"node-1": n1.addr, "node-2": "", "node-3": n3.addr}
	r12 := ring.New([]string{"node-1", "node-2"}, 1, ring.Config{})
	r123 := ring.New([]string{"node-1", "node-2", "node-3"}, 2, ring.Config{})
	var k []byte
	for i := 0; k == nil; i++ {
		if c := []byte("k:" + strconv.Itoa(i)); r123.Owner(c) == "node-3" && r12.Owner(c) == "node-1" {
			k = c
		}
	}
	v := &view{ring: r123, addrs: addrs}
	n1.cl.openWindow(&view{ring: r12}, v, time.Now())
	n1.cl.storeView(v)
	n3.cl.leaving.Store(true)
	n3.cl.storeView(&view{ring: r12, addrs: addrs})
	if _, err := n3.st.Do(context.Background(), k, store.Op{Kind: store.Set, Value: []byte("10"), TTL: store.TTLSet}); err != nil {
		t.Fatal(err)
	}

	r, err := n1.cl.final(&commands.Ctx{Node: n1.node, Peer: true}, [][]byte{[]byte("VELA"), []byte("FINAL"), []byte("INCRBY"), k, []byte("5")})
	if err != nil || r.IsError() || r.Int != 15 {
		t.Fatalf("VELA FINAL INCRBY %s 5 on node-1 = %d %q, %v; want 15", k, r.Int, r.Str, err)
	}
	if got, err := n1.st.Do(context.Background(), k, store.Op{Kind: store.Get}); err != nil || string(got.Value) != "15" {
		t.Fatalf("%s on node-1 = %q, %v; want 15 (it ran on node-3's copy)", k, got.Value, err)
	}
}
