package partition

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/ring"
	"github.com/vela-cache/vela/store"
)

// TestLaggingRingFollowsAHandedOnKey: node-3 leaves while node-4 joins. node-4 has the key now
// (it took it from node-3 with VELA TAKE, or node-3's handoff pass sent it there) and has
// incremented it. node-2's ring lags: it has seen node-3 leave, not node-4 join, so it takes
// itself for the key's owner, lacks the key, and pulls it from node-3, which no longer holds it.
// node-3 answers where the key went: node-2 sends the INCR there (VELA FINAL; a FINAL it was
// sent goes on as VELA LAST) instead of starting from a missing key, whether the INCR came from
// its own client, from a member forwarding it, or as a FINAL. Before, node-3 answered LEAVING,
// nobody node-2 knows had the key, and the INCR answered 1: one of the two counts was lost.
func TestLaggingRingFollowsAHandedOnKey(t *testing.T) {
	r123 := ring.New([]string{"node-1", "node-2", "node-3"}, 1, ring.Config{})
	r12 := ring.New([]string{"node-1", "node-2"}, 2, ring.Config{})
	r124 := ring.New([]string{"node-1", "node-2", "node-4"}, 3, ring.Config{})
	k := keyOwnedByEach([]*ring.Ring{r123, r12, r124}, "node-3", "node-2", "node-4")
	incr := [][]byte{[]byte("INCR"), k}
	for _, handed := range []string{"take", "handoff"} {
		for _, via := range []string{"client", "peer", "final"} {
			t.Run(handed+"/"+via, func(t *testing.T) {
				n2, n3, n4 := serveMember(t, "node-2"), serveMember(t, "node-3"), serveMember(t, "node-4")
				all := map[string]string{"node-1": "", "node-2": n2.addr, "node-3": n3.addr, "node-4": n4.addr}
				lagging := map[string]string{"node-1": "", "node-2": n2.addr, "node-3": n3.addr}
				// node-3 is leaving and has seen node-4 join; node-4 joined knowing of the leave.
				n3.cl.leaving.Store(true)
				v3 := &view{ring: r124, addrs: all}
				n3.cl.openWindow(&view{ring: r123}, v3, time.Now())
				n3.cl.storeView(v3)
				if _, err := n3.st.Do(context.Background(), k, store.Op{Kind: store.Set, Value: []byte("10"), TTL: store.TTLSet}); err != nil {
					t.Fatal(err)
				}
				v4 := &view{ring: r124, addrs: all, prev: r123, since: time.Now()}
				n4.cl.openWindow(&view{ring: ring.New([]string{"node-4"}, 0, ring.Config{})}, v4, time.Now())
				n4.cl.storeView(v4)
				if handed == "handoff" {
					if st, err := n3.cl.handoff(context.Background(), r123, v3); err != nil || st.dropped != 1 {
						t.Fatalf("node-3's handoff: %+v, %v; want the key moved and dropped", st, err)
					}
				}
				if r := n4.node.Exec(&commands.Ctx{Node: n4.node}, incr); r.IsError() || r.Int != 11 {
					t.Fatalf("INCR %s through node-4 = %d %q, want 11", k, r.Int, r.Str)
				}
				// node-2's view, as setView builds it once node-3 announced its leave.
				v2 := &view{ring: r12, addrs: lagging, prev: r123, since: time.Now(), gone: []string{"node-3"}}
				n2.cl.openWindow(&view{ring: r123}, v2, time.Now())
				n2.cl.storeView(v2)

				run := func() resp.Reply {
					switch via {
					case "peer":
						return n2.node.Exec(&commands.Ctx{Node: n2.node, Peer: true}, incr)
					case "final":
						r, err := n2.cl.final(&commands.Ctx{Node: n2.node, Peer: true}, append([][]byte{[]byte("VELA"), []byte("FINAL")}, incr...))
						if err != nil {
							return resp.Error(err.Error())
						}
						return settled(r)
					}
					return n2.node.Exec(&commands.Ctx{Node: n2.node}, incr)
				}
				// Twice: the second INCR goes where node-2 now knows the key is.
				for want := int64(12); want <= 13; want++ {
					if r := settled(run()); r.IsError() || r.Int != want {
						t.Fatalf("INCR %s through node-2 (%s) = %d %q, want %d", k, via, r.Int, r.Str, want)
					}
				}
				heldOnlyBy(t, k, n4, "13", n2, n3)
			})
		}
	}
}

// TestLastPullsWhatItLacks: node-3 leaves while node-4 joins, and node-4's ring has not seen the
// leave: it places the key on node-3, and passes its peers' INCRs there (VELA FINAL). node-3
// handed the key to node-2 (its handoff pass ran by a ring without node-4) and passes the INCR
// on to node-4, the owner in its ring, as VELA LAST. node-4 lacks the key: it pulls it, though
// its own ring places the key elsewhere (node-3 answers where the key went, node-2 hands it
// out), then runs the INCR. Before, the LAST ran on the missing key: the INCR answered 1, and
// node-2's copy was later refused.
func TestLastPullsWhatItLacks(t *testing.T) {
	r123 := ring.New([]string{"node-1", "node-2", "node-3"}, 1, ring.Config{})
	r12 := ring.New([]string{"node-1", "node-2"}, 2, ring.Config{})
	r124 := ring.New([]string{"node-1", "node-2", "node-4"}, 3, ring.Config{})
	r1234 := ring.New([]string{"node-1", "node-2", "node-3", "node-4"}, 3, ring.Config{})
	k := keyOwnedByEach([]*ring.Ring{r123, r12, r124, r1234}, "node-3", "node-2", "node-4", "node-3")
	n2, n3, n4 := serveMember(t, "node-2"), serveMember(t, "node-3"), serveMember(t, "node-4")
	addrs := map[string]string{"node-1": "", "node-2": n2.addr, "node-3": n3.addr, "node-4": n4.addr}
	for _, m := range []*servedMember{n2, n3} {
		v := &view{ring: r124, addrs: addrs}
		m.cl.openWindow(&view{ring: r123}, v, time.Now())
		m.cl.storeView(v)
	}
	n3.cl.leaving.Store(true)
	if _, err := n3.st.Do(context.Background(), k, store.Op{Kind: store.Set, Value: []byte("10"), TTL: store.TTLSet}); err != nil {
		t.Fatal(err)
	}
	if st, err := n3.cl.handoff(context.Background(), r123, &view{ring: r12, addrs: addrs}); err != nil || st.dropped != 1 {
		t.Fatalf("node-3's handoff: %+v, %v; want the key moved to node-2 and dropped", st, err)
	}
	// node-4's view, as setView builds it for a joiner that has not heard of the leave.
	v4 := &view{ring: r1234, addrs: addrs, prev: r123, since: time.Now()}
	n4.cl.openWindow(&view{ring: ring.New([]string{"node-4"}, 0, ring.Config{})}, v4, time.Now())
	n4.cl.storeView(v4)

	r, err := n3.cl.final(&commands.Ctx{Node: n3.node, Peer: true}, [][]byte{[]byte("VELA"), []byte("FINAL"), []byte("INCR"), k})
	if r = settled(r); err != nil || r.IsError() || r.Int != 11 {
		t.Fatalf("VELA FINAL INCR %s on node-3 = %d %q, %v; want 11", k, r.Int, r.Str, err)
	}
	heldOnlyBy(t, k, n4, "11", n2, n3)
}

// gatedConn holds back every write that contains "RESTORE" until release is closed: a handoff
// copy on its way.
type gatedConn struct {
	net.Conn
	release <-chan struct{}
}

func (g *gatedConn) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("RESTORE")) {
		<-g.release
	}
	return g.Conn.Write(b)
}

// TestTakeWaitsForAHandoffInFlight: node-3 leaves by a ring without node-4, which has just
// joined: its handoff pass sends the key to node-2, and the copy is slow to land. node-4, the
// owner in its own ring, asks node-3 for the key meanwhile (for its client's INCR, or for one
// node-3 passed on to it as VELA LAST). node-3 does not hand the key out while its copy is on
// its way, nor push it ahead of the LAST: the key would then live on node-2 and node-4, each
// taking itself for its owner while their rings disagree. Once the copy has landed node-3
// answers that the key went to node-2, and node-4 takes it from there. Before, node-3 handed it
// out (or pushed it) at once, and node-2 then installed the handoff's copy too.
func TestTakeWaitsForAHandoffInFlight(t *testing.T) {
	r123 := ring.New([]string{"node-1", "node-2", "node-3"}, 1, ring.Config{})
	r12 := ring.New([]string{"node-1", "node-2"}, 2, ring.Config{})
	r124 := ring.New([]string{"node-1", "node-2", "node-4"}, 3, ring.Config{})
	k := keyOwnedByEach([]*ring.Ring{r123, r12, r124}, "node-3", "node-2", "node-4")
	incr := [][]byte{[]byte("INCR"), k}
	for _, via := range []string{"take", "last"} {
		t.Run(via, func(t *testing.T) {
			release := make(chan struct{})
			gated := func(cfg *Config) {
				cfg.PeerDial = func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return &gatedConn{Conn: c, release: release}, nil
				}
			}
			n2, n3, n4 := serveMember(t, "node-2"), serveMember(t, "node-3", gated), serveMember(t, "node-4")
			addrs := map[string]string{"node-1": "", "node-2": n2.addr, "node-3": n3.addr, "node-4": n4.addr}
			for _, m := range []*servedMember{n2, n3} {
				v := &view{ring: r124, addrs: addrs}
				m.cl.openWindow(&view{ring: r123}, v, time.Now())
				m.cl.storeView(v)
			}
			n3.cl.leaving.Store(true)
			if _, err := n3.st.Do(context.Background(), k, store.Op{Kind: store.Set, Value: []byte("10"), TTL: store.TTLSet}); err != nil {
				t.Fatal(err)
			}
			handedOff := make(chan error, 1)
			go func() {
				_, err := n3.cl.handoff(context.Background(), r123, &view{ring: r12, addrs: addrs})
				handedOff <- err
			}()
			deadline := time.Now().Add(5 * time.Second)
			for m, _ := n3.cl.handing.to(k); m != "node-2"; m, _ = n3.cl.handing.to(k) {
				if time.Now().After(deadline) {
					t.Fatal("node-3's handoff never sent the key")
				}
				time.Sleep(time.Millisecond)
			}
			v4 := &view{ring: r124, addrs: addrs, prev: r123, since: time.Now()}
			n4.cl.openWindow(&view{ring: ring.New([]string{"node-4"}, 0, ring.Config{})}, v4, time.Now())
			n4.cl.storeView(v4)

			done := make(chan resp.Reply, 1)
			go func() {
				if via == "take" {
					done <- n4.node.Exec(&commands.Ctx{Node: n4.node}, incr)
					return
				}
				r, err := n3.cl.final(&commands.Ctx{Node: n3.node, Peer: true}, append([][]byte{[]byte("VELA"), []byte("FINAL")}, incr...))
				if err != nil {
					r = resp.Error(err.Error())
				}
				done <- settled(r)
			}()
			var r resp.Reply
			answered := false
			select {
			case r = <-done:
				answered = true
				t.Errorf("INCR (%s) answered %d %q while node-3's copy was on its way", via, r.Int, r.Str)
			case <-time.After(200 * time.Millisecond):
			}
			close(release)
			if err := <-handedOff; err != nil {
				t.Fatalf("node-3's handoff: %v", err)
			}
			if !answered {
				r = <-done
			}
			if r.IsError() || r.Int != 11 {
				t.Fatalf("INCR %s (%s) = %d %q, want 11", k, via, r.Int, r.Str)
			}
			heldOnlyBy(t, k, n4, "11", n2, n3)
		})
	}
}

// TestPullAsksPastAMemberThatLeft: node-4 joined while node-3 was leaving and has not learned
// of the leave; by now node-3 has handed its keys on (the key to node-2) and gone. node-4's
// pull of the key it owns finds node-3 unreachable and asks node-3's successor next, as it
// asks past a member that answers it is leaving. Before, it gave up and the INCR answered 1.
func TestPullAsksPastAMemberThatLeft(t *testing.T) {
	r123 := ring.New([]string{"node-1", "node-2", "node-3"}, 1, ring.Config{})
	r12 := ring.New([]string{"node-1", "node-2"}, 2, ring.Config{})
	r1234 := ring.New([]string{"node-1", "node-2", "node-3", "node-4"}, 3, ring.Config{})
	k := keyOwnedByEach([]*ring.Ring{r123, r12, r1234}, "node-3", "node-2", "node-4")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	_ = ln.Close()
	n2, n4 := serveMember(t, "node-2"), serveMember(t, "node-4")
	addrs := map[string]string{"node-1": "", "node-2": n2.addr, "node-3": gone, "node-4": n4.addr}
	v2 := &view{ring: ring.New([]string{"node-1", "node-2", "node-4"}, 3, ring.Config{}), addrs: addrs}
	n2.cl.storeView(v2)
	if _, err := n2.st.Do(context.Background(), k, store.Op{Kind: store.Set, Value: []byte("10"), TTL: store.TTLSet}); err != nil {
		t.Fatal(err)
	}
	v4 := &view{ring: r1234, addrs: addrs, prev: r123, since: time.Now()}
	n4.cl.openWindow(&view{ring: ring.New([]string{"node-4"}, 0, ring.Config{})}, v4, time.Now())
	n4.cl.storeView(v4)
	if r := n4.node.Exec(&commands.Ctx{Node: n4.node}, [][]byte{[]byte("INCR"), k}); r.IsError() || r.Int != 11 {
		t.Fatalf("INCR %s through node-4 = %d %q, want 11", k, r.Int, r.Str)
	}
	if res, err := n2.st.Do(context.Background(), k, store.Op{Kind: store.Inspect}); err != nil || res.Found {
		t.Errorf("node-2 kept its copy of %s (%v)", k, err)
	}
}

// heldOnlyBy checks that holder has key with value want and that none of others has a copy.
func heldOnlyBy(t *testing.T, key []byte, holder *servedMember, want string, others ...*servedMember) {
	t.Helper()
	if got, err := holder.st.Do(context.Background(), key, store.Op{Kind: store.Get}); err != nil || string(got.Value) != want {
		t.Errorf("%s on %s = %q, %v; want %s", key, holder.cl.self, got.Value, err, want)
	}
	for _, m := range others {
		if res, err := m.st.Do(context.Background(), key, store.Op{Kind: store.Inspect}); err != nil || res.Found {
			t.Errorf("%s has a copy of %s (%v)", m.cl.self, key, err)
		}
	}
}

// keyOwnedByEach returns the first key "k:N" that each of rings gives to the owner at its index
// (keyOwnedBy, for several rings at once).
func keyOwnedByEach(rings []*ring.Ring, owners ...string) []byte {
	for i := 0; ; i++ {
		k := []byte("k:" + strconv.Itoa(i))
		all := true
		for j, r := range rings {
			all = all && r.Owner(k) == owners[j]
		}
		if all {
			return k
		}
	}
}
