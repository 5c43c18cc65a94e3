package partition_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/peer"
	"github.com/vela-cache/vela/ring"
	"github.com/vela-cache/vela/server"
)

// The tests in this file hold a node's handoff copies back on their way to the new owner (the
// sender believes them sent and waits for the replies), change the keys on the new owner
// meanwhile, then let the copies through: the newer change must win.

// holdback is a peer dialer whose connections can hold back what a node sends. Once armed, the
// first write on a connection that contains match, and everything written on that connection
// after it, is kept until release, in order.
type holdback struct {
	match []byte
	mu    sync.Mutex // guards everything below and serialises writes with release
	armed bool
	held  []*heldConn
}

type heldConn struct {
	net.Conn
	h       *holdback
	holding bool
	buf     []byte
}

func newHoldback(match string) *holdback { return &holdback{match: []byte(match)} }

func (h *holdback) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &heldConn{Conn: c, h: h}, nil
}

func (c *heldConn) Write(b []byte) (int, error) {
	h := c.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if !c.holding && h.armed && bytes.Contains(b, h.match) {
		c.holding = true
		h.held = append(h.held, c)
	}
	if c.holding {
		c.buf = append(c.buf, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (h *holdback) arm() {
	h.mu.Lock()
	h.armed = true
	h.mu.Unlock()
}

// release sends everything held, in order, and stops holding.
func (h *holdback) release(t testing.TB) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.armed = false
	for _, c := range h.held {
		if _, err := c.Conn.Write(c.buf); err != nil {
			t.Errorf("releasing held writes: %v", err)
		}
		c.buf, c.holding = nil, false
	}
	h.held = nil
}

// holds reports whether every one of parts is among the held bytes.
func (h *holdback) holds(parts ...string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range parts {
		found := false
		for _, c := range h.held {
			if bytes.Contains(c.buf, []byte("\r\n"+p+"\r\n")) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// startHeld runs a cluster member whose peer connections go through h, with a forward timeout
// long enough for a held handoff to wait on a loaded machine.
func startHeld(t *testing.T, name string, h *holdback, seeds ...string) *server.Server {
	t.Helper()
	return startHeldTimeout(t, name, h, 3*time.Second, seeds...)
}

// startHeldTimeout is startHeld with the given forward timeout: how long a held-back request
// waits before it fails, and a TAKE for a key on its way elsewhere before it is answered.
func startHeldTimeout(t *testing.T, name string, h *holdback, timeout time.Duration, seeds ...string) *server.Server {
	t.Helper()
	cfg := testnode.ClusterConfig(name, seeds...)
	cfg.Cluster.ForwardTimeout = timeout
	return testnode.Start(t, cfg, server.WithPeerDialer(h.dial))
}

// joinHeld starts node-1 with peer connections through hold, writes n keys named prefix:i set
// to value through it that move to node-2 when node-2 joins, then starts node-2 and waits until
// node-1's copies of them are held back. It returns the two members, a client of node-1 and the
// keys.
func joinHeld(t *testing.T, hold *holdback, prefix string, n int, value string) (*server.Server, *server.Server, *redis.Client, []string) {
	t.Helper()
	return joinHeldVia(t, hold, newHoldback("never"), prefix, n, value)
}

// joinHeldVia is joinHeld with node-2's peer connections going through hold2.
func joinHeldVia(t *testing.T, hold, hold2 *holdback, prefix string, n int, value string) (*server.Server, *server.Server, *redis.Client, []string) {
	t.Helper()
	n1 := startHeld(t, "node-1", hold)
	testnode.WaitConverged(t, 10*time.Second, n1)
	keys := movingKeys(prefix, n, []string{"node-1"}, "node-1", []string{"node-1", "node-2"}, "node-2")
	c1 := client(t, n1)
	for _, k := range keys {
		if err := c1.Set(context.Background(), k, value, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	hold.arm()
	n2 := startHeld(t, "node-2", hold2, n1.Cluster().GossipAddr())
	waitFor(t, 10*time.Second, "node-1 to send its copies to node-2", func() bool { return hold.holds(keys...) })
	return n1, n2, c1, keys
}

// startThree starts node-1, node-2 and node-3 (startHeld), node-1's peer connections through
// hold1 and node-3's through hold3 (nil: none held), and waits until they agree.
func startThree(t *testing.T, hold1, hold3 *holdback) (*server.Server, *server.Server, *server.Server) {
	t.Helper()
	return startThreeTimeout(t, 3*time.Second, hold1, hold3)
}

// startThreeTimeout is startThree with the given forward timeout (startHeldTimeout).
func startThreeTimeout(t *testing.T, timeout time.Duration, hold1, hold3 *holdback) (*server.Server, *server.Server, *server.Server) {
	t.Helper()
	or := func(h *holdback) *holdback {
		if h == nil {
			return newHoldback("never")
		}
		return h
	}
	n1 := startHeldTimeout(t, "node-1", or(hold1), timeout)
	n2 := startHeldTimeout(t, "node-2", newHoldback("never"), timeout, n1.Cluster().GossipAddr())
	n3 := startHeldTimeout(t, "node-3", or(hold3), timeout, n1.Cluster().GossipAddr())
	testnode.WaitConverged(t, 10*time.Second, n1, n2, n3)
	return n1, n2, n3
}

// shutdownLater shuts srv down gracefully in the background (20 s at most): its handoff may be
// held back meanwhile. The channel gets Shutdown's result.
func shutdownLater(srv *server.Server) <-chan error {
	left := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		left <- srv.Shutdown(ctx)
	}()
	return left
}

// peerClient talks to srv as a cluster member does (VELA PEER): its commands run on srv as they
// are, the way a member whose ring has not caught up yet sends them.
func peerClient(t testing.TB, srv *server.Server) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), ReadTimeout: 10 * time.Second, MaxRetries: -1,
		OnConnect: func(ctx context.Context, cn *redis.Conn) error {
			return cn.Do(ctx, "VELA", "PEER", peer.Token("test-secret")).Err()
		}})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// movingKeys returns n keys named prefix:i that before owns in a ring of members before and
// after owns once the ring has the members after.
func movingKeys(prefix string, n int, before []string, from string, after []string, to string) []string {
	rb, ra := ring.New(before, 0, ring.Config{}), ring.New(after, 0, ring.Config{})
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := prefix + ":" + strconv.Itoa(i)
		if rb.Owner([]byte(k)) == from && ra.Owner([]byte(k)) == to {
			keys = append(keys, k)
		}
	}
	return keys
}

func mustGetNil(t *testing.T, c *redis.Client, key, why string) {
	t.Helper()
	v, err := c.Get(context.Background(), key).Result()
	if !errors.Is(err, redis.Nil) {
		t.Errorf("%s: GET %s through %s = %q, %v; want no key", why, key, c.Options().Addr, v, err)
	}
}

func mustGet(t *testing.T, c *redis.Client, key, want, why string) {
	t.Helper()
	v, err := c.Get(context.Background(), key).Result()
	if err != nil || v != want {
		t.Errorf("%s: GET %s through %s = %q, %v; want %q", why, key, c.Options().Addr, v, err, want)
	}
}

// TestJoinWindowKeepsNewerChanges: a member joins; while the old owner's copies of the keys the
// newcomer now owns are held back, the newcomer deletes, expires, overwrites and invalidates
// some of them, a member that has not seen the join deletes one through the old owner, and a
// pull races a peer's write and delete. Once the copies land, every one of those changes holds
// and the untouched keys have arrived.
func TestJoinWindowKeepsNewerChanges(t *testing.T) {
	ctx := context.Background()
	hold1, hold2 := newHoldback("RESTORE"), newHoldback("TAKE")
	n1 := startHeld(t, "node-1", hold1)
	testnode.WaitConverged(t, 10*time.Second, n1)
	keys := movingKeys("join", 12, []string{"node-1"}, "node-1", []string{"node-1", "node-2"}, "node-2")
	kDel, kGetDel, kExpire, kOver, kTag, kStale, kPull := keys[0], keys[1], keys[2], keys[3], keys[4], keys[5], keys[6]
	kept := keys[7:]
	c1 := client(t, n1)
	for _, k := range keys {
		args := []any{"SET", k, "old:" + k}
		if k == kTag {
			args = append(args, "TAGS", "join-tag")
		}
		if err := c1.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
	}

	hold1.arm()
	n2 := startHeld(t, "node-2", hold2, n1.Cluster().GossipAddr())
	waitFor(t, 10*time.Second, "node-1 to send its copies to node-2", func() bool { return hold1.holds(keys...) })
	c2 := client(t, n2)

	// Changes through the new owner, each a command that reads the key first (so the key is
	// pulled from node-1, which still has it: its handoff is only waiting for replies).
	if n, err := c2.Del(ctx, kDel).Result(); err != nil || n != 1 {
		t.Fatalf("DEL %s = %d, %v", kDel, n, err)
	}
	if v, err := c2.GetDel(ctx, kGetDel).Result(); err != nil || v != "old:"+kGetDel {
		t.Fatalf("GETDEL %s = %q, %v", kGetDel, v, err)
	}
	if ok, err := c2.Expire(ctx, kExpire, -time.Second).Result(); err != nil || !ok {
		t.Fatalf("EXPIRE %s -1 = %v, %v", kExpire, ok, err)
	}
	if err := c2.Set(ctx, kOver, "new", 50*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the overwrite to expire", func() bool {
		return errors.Is(c2.Get(ctx, kOver).Err(), redis.Nil)
	})
	if err := c2.Do(ctx, "TAGINVALIDATE", "join-tag").Err(); err != nil {
		t.Fatal(err)
	}

	// A member whose ring is behind sends a DEL to the old owner, after its copy left.
	staleDel := make(chan error, 1)
	go func() { staleDel <- peerClient(t, n1).Del(ctx, kStale).Err() }()
	waitFor(t, 5*time.Second, "the stale member's DEL to be served", func() bool {
		select {
		case err := <-staleDel:
			staleDel <- err
			return true
		default:
			return hold1.holds(kStale, "FINAL") // passed on to node-2, behind the copies
		}
	})

	// The same member's FETCHLOCK on a new key that moved: the lease is taken on the new owner,
	// where the fill (through the new owner) finds it.
	kLease := movingKeys("lease", 1, []string{"node-1"}, "node-1", []string{"node-1", "node-2"}, "node-2")[0]
	lock, err := peerClient(t, n1).Do(ctx, "FETCHLOCK", kLease).StringSlice()
	if err != nil || len(lock) != 2 || lock[0] != "LOCKED" {
		t.Fatalf("FETCHLOCK %s through the old owner = %q, %v", kLease, lock, err)
	}
	if err := c2.Do(ctx, "FETCHFILL", kLease, lock[1], "filled").Err(); err != nil {
		t.Fatalf("FETCHFILL %s through the new owner: %v", kLease, err)
	}
	mustGet(t, c2, kLease, "filled", "filled under a lease taken through the old owner")

	// A pull in flight (its TAKE held back) while a peer writes and deletes the key on node-2.
	hold2.arm()
	pulled := make(chan error, 1)
	go func() { pulled <- c2.Get(ctx, kPull).Err() }()
	waitFor(t, 5*time.Second, "node-2 to pull "+kPull, func() bool { return hold2.holds(kPull) })
	p2 := peerClient(t, n2)
	if err := p2.Set(ctx, kPull, "new", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := p2.Del(ctx, kPull).Err(); err != nil {
		t.Fatal(err)
	}
	hold2.release(t)
	if err := <-pulled; err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("GET %s during the pull: %v", kPull, err)
	}

	hold1.release(t)
	if err := <-staleDel; err != nil {
		t.Fatalf("stale DEL: %v", err)
	}
	testnode.WaitConverged(t, 10*time.Second, n1, n2)
	for _, c := range []*redis.Client{c1, c2} {
		mustGetNil(t, c, kDel, "deleted while its copy was in flight")
		mustGetNil(t, c, kGetDel, "GETDEL while its copy was in flight")
		mustGetNil(t, c, kExpire, "expired by EXPIRE while its copy was in flight")
		mustGetNil(t, c, kOver, "overwritten (then expired) while its copy was in flight")
		mustGetNil(t, c, kTag, "invalidated while its copy was in flight")
		mustGetNil(t, c, kStale, "deleted through the old owner after its copy left")
		mustGetNil(t, c, kPull, "written and deleted while a pull was in flight")
		for _, k := range kept {
			mustGet(t, c, k, "old:"+k, "untouched key handed over")
		}
	}
	// The copies of the deleted, expired, overwritten and invalidated keys were refused (the
	// stale DEL ran after its copy, on node-2, and the pull found kPull gone on node-1).
	info, err := c2.Info(ctx, "vela").Result()
	if err != nil || !strings.Contains(info, "cluster_copies_refused:") || strings.Contains(info, "cluster_copies_refused:0\r") {
		t.Errorf("INFO vela on node-2 shows no refused copy: %q, %v", info, err)
	}
	if l := localLen(t, n2); l != int64(len(kept))+1 {
		t.Errorf("node-2 holds %d keys, want the %d untouched ones and the filled one", l, len(kept))
	}
}

// TestJoinWindowPeerReadsFirst: a member joins; while the old owner's copies are held back,
// members forward commands on the moved keys to the newcomer. Those whose outcome depends on
// the key's value (INCRBY, APPEND, GET, DEL, EXPIRE, SET NX, MGET) find it: the newcomer pulls
// it from the old owner first, as it does for its own clients. A blind overwrite needs no pull.
// Before, they ran on a missing key and the copy was then refused: INCRBY k 5 left 5, not 15.
func TestJoinWindowPeerReadsFirst(t *testing.T) {
	ctx := context.Background()
	hold1 := newHoldback("RESTORE")
	n1, n2, c1, keys := joinHeld(t, hold1, "rmw", 12, "10")
	kIncr, kAppend, kGet, kDel, kExpire, kSetNX, kBlind, kM1, kM2 := keys[0], keys[1], keys[2], keys[3], keys[4], keys[5], keys[6], keys[7], keys[8]
	kept := keys[9:]

	// What node-1 forwards to node-2 for its clients, sent as node-1 sends it.
	p2 := peerClient(t, n2)
	if n, err := p2.IncrBy(ctx, kIncr, 5).Result(); err != nil || n != 15 {
		t.Errorf("INCRBY %s 5 = %d, %v; want 15", kIncr, n, err)
	}
	if n, err := p2.Append(ctx, kAppend, "x").Result(); err != nil || n != 3 {
		t.Errorf("APPEND %s x = %d, %v; want 3", kAppend, n, err)
	}
	if v, err := p2.Get(ctx, kGet).Result(); err != nil || v != "10" {
		t.Errorf("GET %s = %q, %v; want 10", kGet, v, err)
	}
	if n, err := p2.Del(ctx, kDel).Result(); err != nil || n != 1 {
		t.Errorf("DEL %s = %d, %v; want 1", kDel, n, err)
	}
	if ok, err := p2.Expire(ctx, kExpire, time.Hour).Result(); err != nil || !ok {
		t.Errorf("EXPIRE %s 3600 = %v, %v; want true", kExpire, ok, err)
	}
	if ok, err := p2.SetNX(ctx, kSetNX, "new", 0).Result(); err != nil || ok {
		t.Errorf("SET %s new NX = %v, %v; want not set", kSetNX, ok, err)
	}
	if err := p2.Set(ctx, kBlind, "new", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if vs, err := p2.MGet(ctx, kM1, kM2).Result(); err != nil || len(vs) != 2 || vs[0] != "10" || vs[1] != "10" {
		t.Errorf("MGET %s %s = %q, %v; want both 10", kM1, kM2, vs, err)
	}

	hold1.release(t)
	testnode.WaitConverged(t, 10*time.Second, n1, n2)
	for _, c := range []*redis.Client{c1, client(t, n2)} {
		mustGet(t, c, kIncr, "15", "INCRBY forwarded before the copy arrived")
		mustGet(t, c, kAppend, "10x", "APPEND forwarded before the copy arrived")
		mustGetNil(t, c, kDel, "DEL forwarded before the copy arrived")
		mustGet(t, c, kExpire, "10", "EXPIRE forwarded before the copy arrived")
		mustGet(t, c, kSetNX, "10", "SET NX forwarded before the copy arrived")
		mustGet(t, c, kBlind, "new", "SET forwarded before the copy arrived")
		for _, k := range append([]string{kGet, kM1, kM2}, kept...) {
			mustGet(t, c, k, "10", "read or untouched while its copy was in flight")
		}
	}
	if ttl, err := c1.TTL(ctx, kExpire).Result(); err != nil || ttl <= 0 {
		t.Errorf("TTL %s = %v, %v; want the hour EXPIRE set", kExpire, ttl, err)
	}
}

// TestJoinWindowConcurrentPulls: two clients of the joiner increment a key that has not
// arrived yet, at once. The previous owner gives the key to the first pull (VELA TAKE) and
// answers nil to any second; a command that went on at that nil before the first pull had
// installed the key ran on a missing key, and the copy was then refused (the counter restarted
// from 0). Now the second waits for the pull under way: one TAKE is sent, both INCRs count.
func TestJoinWindowConcurrentPulls(t *testing.T) {
	ctx := context.Background()
	hold1, hold2 := newHoldback("RESTORE"), newHoldback("TAKE")
	n1, n2, _, keys := joinHeldVia(t, hold1, hold2, "pull", 1, "10")
	hold2.arm()
	c2 := client(t, n2)
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- c2.Incr(ctx, keys[0]).Err() }()
	}
	waitFor(t, 10*time.Second, "node-2 to pull the key", func() bool { return hold2.holds("TAKE") })
	time.Sleep(300 * time.Millisecond) // room for a second pull to be sent, were it sent
	hold2.mu.Lock()
	takes := 0
	for _, c := range hold2.held {
		takes += bytes.Count(c.buf, []byte("\r\nTAKE\r\n"))
	}
	hold2.mu.Unlock()
	hold2.release(t)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if takes != 1 {
		t.Errorf("%d pulls of one key were sent at once, want 1", takes)
	}
	hold1.release(t)
	testnode.WaitConverged(t, 10*time.Second, n1, n2)
	for _, srv := range []*server.Server{n1, n2} {
		mustGet(t, client(t, srv), keys[0], "12", "two INCRs while the key was pulled")
	}
}

// TestJoinWindowReplicasReadFirst: with replicas = 2, a member joins and becomes the owner of
// keys whose copies are held back; a peer's INCRBY and APPEND on them reach it first. It reads
// the key from one of its other holders (VELA PEEK) before writing: without that the write
// started from a missing key, and its result, copied to the holders, overwrote their copies.
// Then a member whose ring lags sends an INCRBY to the key's owner before: it is passed on to
// the owner now, not run on the stale copy there.
func TestJoinWindowReplicasReadFirst(t *testing.T) {
	ctx := context.Background()
	hold1, hold2 := newHoldback("RESTORE"), newHoldback("RESTORE")
	start := func(name string, h *holdback, seeds ...string) *server.Server {
		cfg := testnode.ClusterConfig(name, seeds...)
		cfg.Cluster.ForwardTimeout = 3 * time.Second
		cfg.Cluster.Replicas = 2
		return testnode.Start(t, cfg, server.WithPeerDialer(h.dial))
	}
	n1 := start("node-1", hold1)
	n2 := start("node-2", hold2, n1.Cluster().GossipAddr())
	testnode.WaitConverged(t, 10*time.Second, n1, n2)
	keys := movingKeys("rep", 4, []string{"node-1", "node-2"}, "node-1", []string{"node-1", "node-2", "node-3"}, "node-3")
	keys = append(keys, movingKeys("rep", 4, []string{"node-1", "node-2"}, "node-2", []string{"node-1", "node-2", "node-3"}, "node-3")...)
	lag := movingKeys("lag", 1, []string{"node-1", "node-2"}, "node-2", []string{"node-1", "node-2", "node-3"}, "node-3")[0]
	c1 := client(t, n1)
	for _, k := range append(keys, lag) {
		if err := c1.Set(ctx, k, "10", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	hold1.arm()
	hold2.arm()
	hold3 := newHoldback("RESTORE")
	n3 := start("node-3", hold3, n1.Cluster().GossipAddr())
	waitFor(t, 10*time.Second, "node-3 to see the cluster", func() bool { return len(n3.Cluster().RingMembers()) == 3 })

	p3 := peerClient(t, n3)
	for i, k := range keys {
		if i%2 == 0 {
			if n, err := p3.IncrBy(ctx, k, 5).Result(); err != nil || n != 15 {
				t.Errorf("INCRBY %s 5 on the joiner = %d, %v; want 15", k, n, err)
			}
		} else if n, err := p3.Append(ctx, k, "x").Result(); err != nil || n != 3 {
			t.Errorf("APPEND %s x on the joiner = %d, %v; want 3", k, n, err)
		}
	}
	hold1.release(t)
	hold2.release(t)
	testnode.WaitConverged(t, 10*time.Second, n1, n2, n3)
	for _, c := range []*redis.Client{c1, client(t, n2), client(t, n3)} {
		for i, k := range keys {
			want := "15"
			if i%2 == 1 {
				want = "10x"
			}
			mustGet(t, c, k, want, "written on the joiner before its copy arrived")
		}
	}

	// A member whose ring lags the join sends an INCRBY of lag to node-2, its owner before and
	// a holder now, while node-3's copy of its own INCRBY is still on its way to node-2.
	// node-2 passes it on to node-3: run on node-2's stale copy, its result would have been
	// copied over node-3's.
	hold3.arm()
	mine := make(chan error, 1)
	go func() { mine <- p3.IncrBy(ctx, lag, 5).Err() }()
	waitFor(t, 10*time.Second, "node-3 to copy its INCRBY", func() bool { return hold3.holds(lag) })
	lagged := make(chan error, 1)
	go func() {
		n, err := peerClient(t, n2).IncrBy(ctx, lag, 5).Result()
		if err == nil && n != 20 {
			err = fmt.Errorf("INCRBY %s 5 through its owner before = %d, want 20", lag, n)
		}
		lagged <- err
	}()
	waitFor(t, 10*time.Second, "node-2 to answer or pass the INCRBY on", func() bool {
		hold3.mu.Lock()
		defer hold3.mu.Unlock()
		return len(lagged) > 0 || len(hold3.held) > 0 && bytes.Count(hold3.held[0].buf, []byte(lag)) >= 2
	})
	hold3.release(t)
	for _, ch := range []chan error{mine, lagged} {
		if err := <-ch; err != nil {
			t.Error(err)
		}
	}
	for _, c := range []*redis.Client{c1, client(t, n2), client(t, n3)} {
		mustGet(t, c, lag, "20", "INCRBY through the owner before and the owner now")
	}
}

// TestJoinWindowFlushAll: a FLUSHALL while a joining member's copies are in flight leaves the
// cluster empty but for what was written after it.
func TestJoinWindowFlushAll(t *testing.T) {
	ctx := context.Background()
	hold1 := newHoldback("RESTORE")
	n1, n2, c1, keys := joinHeld(t, hold1, "flush", 20, "old")
	c2 := client(t, n2)
	if err := c2.FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c2.Set(ctx, keys[0], "after-flush", 0).Err(); err != nil {
		t.Fatal(err)
	}
	hold1.release(t)
	testnode.WaitConverged(t, 10*time.Second, n1, n2)
	mustGet(t, c1, keys[0], "after-flush", "written after FLUSHALL")
	for _, k := range keys[1:] {
		mustGetNil(t, c1, k, "flushed while its copy was in flight")
	}
	if n := dbsize(t, c2); n != 1 {
		t.Errorf("DBSIZE after FLUSHALL and one SET = %d, want 1", n)
	}
}

// TestJoinDuringLeave measures how many of 300 counters, incremented through two members while
// a third leaves gracefully (its handoff held back) and a fourth joins, lose acknowledged
// increments. It is a measurement, not yet a guarantee (README "Cluster": 62–73 of 300 in
// every run three sessions ago; 10 of 60 runs lost some before the fixes
// TestFinalOvertakenByJoin and TestPullAsksPastALeavingMember check, 4 of 60 after them; with
// those handed.go's tests check, two runs at a time on two cores, 1 of 120 runs lost
// increments on one counter, against 12 of 120 on 1–13 counters before; one run at a time,
// none of 30 after, 0–3 of 30 before), so it runs only with VELA_MEASURE_JOIN_LEAVE=1 and
// fails when any counter lost an increment.
func TestJoinDuringLeave(t *testing.T) {
	if os.Getenv("VELA_MEASURE_JOIN_LEAVE") == "" {
		t.Skip("a measurement: set VELA_MEASURE_JOIN_LEAVE=1")
	}
	hold3 := newHoldback("RESTORE")
	n1, n2, n3 := startThree(t, nil, hold3)
	w := startCounters(t, client(t, n1), client(t, n2))

	hold3.arm()
	left := shutdownLater(n3)
	waitFor(t, 10*time.Second, "node-3 to send its copies", func() bool {
		hold3.mu.Lock()
		defer hold3.mu.Unlock()
		return len(hold3.held) > 0
	})
	n4 := startHeld(t, "node-4", newHoldback("never"), n1.Cluster().GossipAddr())
	time.Sleep(time.Second)
	hold3.release(t)
	if err := <-left; err != nil {
		t.Fatalf("node-3 shutdown: %v", err)
	}
	testnode.WaitConverged(t, 10*time.Second, n1, n2, n4)
	time.Sleep(200 * time.Millisecond)
	w.stop()
	t.Logf("RESULT %d of %d counters lost increments", w.check(t), numCounters)
}

// TestLeaveWindowKeepsNewerChanges: a member leaves gracefully; while its copies are held
// back, the members that take its keys delete and invalidate some of them through their own
// clients. The changes hold once the copies land, and the untouched keys survive the leave.
func TestLeaveWindowKeepsNewerChanges(t *testing.T) {
	ctx := context.Background()
	hold1 := newHoldback("RESTORE")
	n1, n2, n3 := startThree(t, hold1, nil)
	all, rest := []string{"node-1", "node-2", "node-3"}, []string{"node-2", "node-3"}
	to2 := movingKeys("leave", 6, all, "node-1", rest, "node-2")
	to3 := movingKeys("leave", 6, all, "node-1", rest, "node-3")
	c1, c2, c3 := client(t, n1), client(t, n2), client(t, n3)
	for _, k := range append(append([]string{}, to2...), to3...) {
		args := []any{"SET", k, "old:" + k}
		if k == to2[2] || k == to3[2] {
			args = append(args, "TAGS", "leave-tag")
		}
		if err := c1.Do(ctx, args...).Err(); err != nil {
			t.Fatal(err)
		}
	}

	hold1.arm()
	left := shutdownLater(n1)
	// The handoff queues every copy, then writes each peer's batch when it waits for its first
	// reply: one batch is held, the other goes out after the release. Both were read before.
	waitFor(t, 10*time.Second, "node-1 to send its copies", func() bool {
		return hold1.holds(to2...) || hold1.holds(to3...)
	})
	// Deletes through the members taking the keys over: each its own key, and each the key the
	// other one takes.
	for _, d := range []struct {
		c   *redis.Client
		key string
	}{{c2, to2[0]}, {c3, to3[0]}, {c2, to3[1]}, {c3, to2[1]}} {
		if err := d.c.Del(ctx, d.key).Err(); err != nil {
			t.Fatalf("DEL %s through %s: %v", d.key, d.c.Options().Addr, err)
		}
	}
	if err := c3.Do(ctx, "TAGINVALIDATE", "leave-tag").Err(); err != nil {
		t.Fatal(err)
	}
	hold1.release(t)
	if err := <-left; err != nil {
		t.Fatalf("node-1 shutdown: %v", err)
	}
	testnode.WaitConverged(t, 10*time.Second, n2, n3)
	for _, c := range []*redis.Client{c2, c3} {
		for _, k := range []string{to2[0], to2[1], to3[0], to3[1]} {
			mustGetNil(t, c, k, "deleted while its copy was in flight")
		}
		mustGetNil(t, c, to2[2], "invalidated while its copy was in flight")
		mustGetNil(t, c, to3[2], "invalidated while its copy was in flight")
		for _, k := range append(append([]string{}, to2[3:]...), to3[3:]...) {
			mustGet(t, c, k, "old:"+k, "untouched key handed over")
		}
	}
}

// TestLeavingMemberPassesFinalOn: a member whose ring still has a leaving member passes a
// command back to it (VELA FINAL) after the key's new owner has taken the key. The leaving
// member's copy is gone (or stale): it passes the command on once more (VELA LAST) to the
// owner in its ring, where it runs on the current copy. Run on the leaving member, the INCRBY
// started from a missing key and was lost with it.
func TestLeavingMemberPassesFinalOn(t *testing.T) {
	ctx := context.Background()
	hold3 := newHoldback("RESTORE")
	n1, n2, n3 := startThree(t, nil, hold3)
	k := movingKeys("last", 1, []string{"node-1", "node-2", "node-3"}, "node-3", []string{"node-1", "node-2"}, "node-2")[0]
	if err := client(t, n1).Set(ctx, k, "10", 0).Err(); err != nil {
		t.Fatal(err)
	}

	hold3.arm() // node-3's handoff is held back: it leaves only once released
	left := shutdownLater(n3)
	waitFor(t, 10*time.Second, "node-1 and node-2 to route around node-3", func() bool {
		return len(n1.Cluster().RingMembers()) == 2 && len(n2.Cluster().RingMembers()) == 2
	})
	// node-1 and node-2 route around node-3 once its gossip marks it leaving, which can be
	// before node-3's handoff has read k: node-2's pull below would then take k first, node-3
	// would find nothing to send, hold nothing back and be gone before VELA FINAL (EOF). Wait
	// until node-3's copy of k is held: from then on node-3 waits for node-2's reply.
	waitFor(t, 10*time.Second, "node-3's copy of "+k+" to be held back", func() bool { return hold3.holds(k) })
	// node-2, the owner now, pulls the key from node-3 for its client's INCRBY.
	if n, err := client(t, n2).IncrBy(ctx, k, 5).Result(); err != nil || n != 15 {
		t.Fatalf("INCRBY %s 5 through node-2 = %d, %v; want 15", k, n, err)
	}
	// What a member whose ring still has node-3 as the owner passes on to it.
	passed := make(chan error, 1)
	go func() {
		n, err := peerClient(t, n3).Do(ctx, "VELA", "FINAL", "INCRBY", k, "5").Int64()
		if err == nil && n != 20 {
			err = fmt.Errorf("VELA FINAL INCRBY %s 5 on the leaving member = %d, want 20", k, n)
		}
		passed <- err
	}()
	waitFor(t, 10*time.Second, "node-3 to answer or pass the INCRBY on", func() bool {
		return len(passed) > 0 || hold3.holds("LAST")
	})
	hold3.release(t)
	if err := <-passed; err != nil {
		t.Error(err)
	}
	if err := <-left; err != nil {
		t.Fatalf("node-3 shutdown: %v", err)
	}
	testnode.WaitConverged(t, 10*time.Second, n1, n2)
	for _, srv := range []*server.Server{n1, n2} {
		mustGet(t, client(t, srv), k, "20", "an INCRBY passed back to the leaving member")
	}
}

// TestFinalOvertakenByJoin: a leaving member passes a peer's command on (VELA FINAL) by its
// ring, which has no joiner yet; the command is delayed on its way (here: held back with the
// leaving member's handoff), and meanwhile a member joins, becomes the key's owner and takes
// the leaving member's copy. The member the command lands on now places the key on the joiner:
// it passes the command on there (VELA LAST) instead of running it on the copy pushed ahead of
// it, which nobody reads any more. Run there, the INCRBY was acknowledged and lost.
func TestFinalOvertakenByJoin(t *testing.T) {
	ctx := context.Background()
	hold3 := newHoldback("RESTORE")
	// node-3's held requests must outlast the join, the members' convergence on it (gossip
	// can take seconds on a loaded machine) and the joiner's TAKE, which waits half a forward
	// timeout for the held copy: with 3 s they sometimes did not, and the handoff gave up
	// before the test released it.
	const timeout = 8 * time.Second
	n1, n2, n3 := startThreeTimeout(t, timeout, nil, hold3)
	r123 := ring.New([]string{"node-1", "node-2", "node-3"}, 0, ring.Config{})
	r12 := ring.New([]string{"node-1", "node-2"}, 0, ring.Config{})
	r124 := ring.New([]string{"node-1", "node-2", "node-4"}, 0, ring.Config{})
	r1234 := ring.New([]string{"node-1", "node-2", "node-3", "node-4"}, 0, ring.Config{})
	var k string
	for i := 0; k == ""; i++ {
		c := []byte("onward:" + strconv.Itoa(i))
		if r123.Owner(c) == "node-3" && r12.Owner(c) == "node-1" && r124.Owner(c) == "node-4" && r1234.Owner(c) == "node-4" {
			k = string(c)
		}
	}
	if err := client(t, n1).Set(ctx, k, "10", 0).Err(); err != nil {
		t.Fatal(err)
	}

	hold3.arm() // node-3's handoff, and what it passes on to node-1 after it, are held back
	left := shutdownLater(n3)
	waitFor(t, 10*time.Second, "node-1 and node-2 to route around node-3", func() bool {
		return len(n1.Cluster().RingMembers()) == 2 && len(n2.Cluster().RingMembers()) == 2
	})
	// What a member whose ring still has node-3 sends it: node-3 passes it on to node-1, the
	// owner in its ring, with its copy ahead of it; both are held back.
	incr := make(chan error, 1)
	go func() {
		n, err := peerClient(t, n3).IncrBy(ctx, k, 5).Result()
		if err == nil && n != 15 {
			err = fmt.Errorf("INCRBY %s 5 through the leaving member = %d, want 15", k, n)
		}
		incr <- err
	}()
	waitFor(t, 10*time.Second, "node-3 to pass the INCRBY on", func() bool { return hold3.holds(k, "FINAL") })

	// node-4 joins and takes the key from node-3 for its client's read.
	n4 := startHeldTimeout(t, "node-4", newHoldback("never"), timeout, n1.Cluster().GossipAddr())
	waitFor(t, 10*time.Second, "node-1, node-2 and node-4 to place the key on node-4", func() bool {
		// node-4 alone, before its join completes, places every key on itself too.
		if !n4.Cluster().Ready() || len(n4.Cluster().RingMembers()) < 3 {
			return false
		}
		for _, srv := range []*server.Server{n1, n2, n4} {
			if srv.Cluster().Owner([]byte(k)) != "node-4" {
				return false
			}
		}
		return true
	})
	mustGet(t, client(t, n4), k, "10", "read through the joiner")

	hold3.release(t)
	if err := <-incr; err != nil {
		t.Error(err)
	}
	if err := <-left; err != nil {
		t.Fatalf("node-3 shutdown: %v", err)
	}
	testnode.WaitConverged(t, 10*time.Second, n1, n2, n4)
	for _, srv := range []*server.Server{n1, n2, n4} {
		mustGet(t, client(t, srv), k, "15", "an INCRBY passed on by a ring without the joiner")
	}
}
