package redisstore_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	fl "github.com/vela-cache/vela/fetchlock" // the package; fetchlock is leases_test.go's helper
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/redisstore"
)

// TestWritesEndLeases checks, on lease keepers without a server, that writes end the leases
// they make stale and only those (see writesEndLeases; TestCluster runs the same on Redis
// Cluster).
func TestWritesEndLeases(t *testing.T) {
	r := redistest.Start(t)
	writesEndLeases(t, "redis://"+r.Addr+"/0")
}

// keeper is one Vela node's lease machinery without its server: a store and its Leases.
type keeper struct {
	s *redisstore.Store
	l *redisstore.Leases
}

// newKeeper opens a keeper on the Redis at url, closed (the Leases first) when t ends.
func newKeeper(t *testing.T, url string) keeper {
	t.Helper()
	s := open(t, url)
	l, err := s.NewLeases(redisstore.LeasesConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() }) // before the store's Close, registered earlier
	return keeper{s: s, l: l}
}

// write applies op to key and reports it to the leases, as a node does after every write.
func (k keeper) write(t *testing.T, key string, op store.Op) {
	t.Helper()
	if _, err := k.s.Do(context.Background(), []byte(key), op); err != nil {
		t.Fatal(err)
	}
	k.l.KeyChanged([]byte(key))
}

// setDel writes key and deletes it again: the write the lease checks in Redis cannot see.
func (k keeper) setDel(t *testing.T, key string) {
	t.Helper()
	k.write(t, key, store.Op{Kind: store.Set, Value: []byte("v")})
	k.write(t, key, store.Op{Kind: store.Delete})
}

// lock runs FETCHLOCK key with a one-second lease.
func (k keeper) lock(t *testing.T, key string, timeout time.Duration) fl.LockResult {
	t.Helper()
	res, err := k.l.Lock(context.Background(), []byte(key), fl.LockRequest{Timeout: timeout, Lease: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// fill runs FETCHFILL key token.
func (k keeper) fill(key string, token fl.Token) error {
	return k.l.Fill(context.Background(), []byte(key), token, fl.FillRequest{Value: []byte("filled")})
}

// waitKnows waits until k has heard of a lease on key (its grant is announced through Redis).
func (k keeper) waitKnows(t *testing.T, key string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !k.l.KnowsLease(key) {
		if time.Now().After(deadline) {
			t.Fatalf("the grant of a lease on %q was not announced", key)
		}
		time.Sleep(time.Millisecond)
	}
}

// writesEndLeases runs two lease keepers ("nodes") on the Redis at url.
func writesEndLeases(t *testing.T, url string) {
	a, b := newKeeper(t, url), newKeeper(t, url)

	t.Run("SameNode", func(t *testing.T) {
		held := a.lock(t, "same", 0)
		if held.Status != fl.Locked {
			t.Fatalf("FETCHLOCK = %v", held.Status)
		}
		a.setDel(t, "same")
		if err := a.fill("same", held.Token); !errors.Is(err, fl.ErrNotHeld) {
			t.Fatalf("fill after SET and DEL through the same node: %v, want ErrNotHeld", err)
		}
		if res := a.lock(t, "same", 0); res.Status != fl.Locked {
			t.Fatalf("FETCHLOCK after the write ended the lease = %v, want LOCKED", res.Status)
		}
	})

	t.Run("OtherNode", func(t *testing.T) {
		held := a.lock(t, "other", 0)
		if held.Status != fl.Locked {
			t.Fatalf("FETCHLOCK = %v", held.Status)
		}
		b.waitKnows(t, "other")
		b.setDel(t, "other")
		// Through a, which started no end: the lease is ended once b's end reaches Redis, well
		// before the one-second lease would run out.
		res := a.lock(t, "other", 500*time.Millisecond)
		if res.Status != fl.Locked || res.Token == held.Token {
			t.Fatalf("FETCHLOCK through a after SET and DEL through b = %v, want a new LOCKED", res.Status)
		}
		if err := a.fill("other", held.Token); !errors.Is(err, fl.ErrNotHeld) {
			t.Fatalf("fill of the lease a write through the other node ended: %v, want ErrNotHeld", err)
		}
		if err := a.fill("other", res.Token); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("GrantAfterWriteSurvives", func(t *testing.T) {
		// A node whose ends wait until the test lets them go.
		c := newKeeper(t, url)
		started, proceed := make(chan struct{}, 1), make(chan struct{})
		letGo := sync.OnceFunc(func() { close(proceed) })
		t.Cleanup(letGo) // before c closes, which waits for its ends
		c.l.BeforeEnd(func() {
			started <- struct{}{}
			<-proceed
		})
		first, err := c.l.Lock(context.Background(), []byte("late"),
			fl.LockRequest{Lease: 200 * time.Millisecond})
		if err != nil || first.Status != fl.Locked {
			t.Fatalf("FETCHLOCK = %v %v", first.Status, err)
		}
		c.setDel(t, "late")
		select { // the end of the first lease is under way, held before its Redis call
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatal("the write started no end of the lease")
		}
		// The first lease runs out meanwhile; b is granted the next one after the write.
		second := b.lock(t, "late", 5*time.Second)
		if second.Status != fl.Locked {
			t.Fatalf("FETCHLOCK once the first lease ran out = %v, want LOCKED", second.Status)
		}
		letGo()
		// FETCHRELEASE through c waits for c's end: the first lease is not held either way.
		if err := c.l.Release(context.Background(), []byte("late"), first.Token); !errors.Is(err, fl.ErrNotHeld) {
			t.Fatalf("release of the first lease: %v, want ErrNotHeld", err)
		}
		// The end of the first lease, run after the grant, left the second alone.
		if err := b.fill("late", second.Token); err != nil {
			t.Fatalf("fill of the lease granted after the write: %v", err)
		}
	})
}
