package velaclient_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
	"github.com/vela-cache/vela/velaclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newClient(t *testing.T, srv *server.Server, pool int) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: pool, ReadTimeout: 10 * time.Second,
		PoolTimeout: 10 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// 100 concurrent GetOrFetch calls on a cold key run fetch once and all return its value.
func TestGetOrFetchRunsFetchOnce(t *testing.T) {
	srv := testnode.StartDefault(t)
	c := newClient(t, srv, 128) // every caller may wait on its own connection
	var calls atomic.Int64
	fetch := func(ctx context.Context) ([]byte, error) {
		calls.Add(1)
		time.Sleep(100 * time.Millisecond) // a slow source: everybody else arrives meanwhile
		return []byte("from-db"), nil
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := velaclient.GetOrFetch(context.Background(), c, "cold", fetch,
				velaclient.Options{TTL: time.Minute, Timeout: 8 * time.Second, Lease: 30 * time.Second})
			if err != nil || string(v) != "from-db" {
				t.Errorf("GetOrFetch = %q, %v", v, err)
			}
		}()
	}
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("fetch ran %d times, want 1", n)
	}
	if ttl := c.PTTL(context.Background(), "cold").Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("PTTL = %v, want the TTL option", ttl)
	}
}

// When fetch fails, its caller gets the error and the lease goes to a waiter, whose fetch fills
// the key for everybody else.
func TestGetOrFetchReleasesOnError(t *testing.T) {
	srv := testnode.StartDefault(t)
	c := newClient(t, srv, 32)
	var calls atomic.Int64
	boom := errors.New("source down")
	fetch := func(ctx context.Context) ([]byte, error) {
		time.Sleep(50 * time.Millisecond)
		if calls.Add(1) == 1 {
			return nil, boom
		}
		return []byte("v"), nil
	}
	var wg sync.WaitGroup
	var failed, ok atomic.Int64
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := velaclient.GetOrFetch(context.Background(), c, "k", fetch, velaclient.Options{Timeout: 5 * time.Second})
			switch {
			case errors.Is(err, boom):
				failed.Add(1)
			case err == nil && string(v) == "v":
				ok.Add(1)
			default:
				t.Errorf("GetOrFetch = %q, %v", v, err)
			}
		}()
	}
	wg.Wait()
	if calls.Load() != 2 || failed.Load() != 1 || ok.Load() != 9 {
		t.Fatalf("fetch ran %d times, %d callers failed, %d succeeded; want 2, 1, 9", calls.Load(), failed.Load(), ok.Load())
	}
}

// On TIMEOUT, GetOrFetch follows Options.OnTimeout: an error, or a fetch whose value is not cached.
func TestGetOrFetchOnTimeout(t *testing.T) {
	srv := testnode.StartDefault(t)
	c := newClient(t, srv, 4)
	ctx := context.Background()
	holder := newClient(t, srv, 1)
	if s := holder.Do(ctx, "FETCHLOCK", "k", "LEASE", 60000).Val(); fmt.Sprint(s) == "" {
		t.Fatal("no lease")
	}
	fetched := false
	fetch := func(context.Context) ([]byte, error) { fetched = true; return []byte("direct"), nil }
	_, err := velaclient.GetOrFetch(ctx, c, "k", fetch, velaclient.Options{Timeout: 50 * time.Millisecond, OnTimeout: velaclient.ReturnError})
	if !errors.Is(err, velaclient.ErrLockTimeout) || fetched {
		t.Fatalf("ReturnError: err %v, fetched %v", err, fetched)
	}
	v, err := velaclient.GetOrFetch(ctx, c, "k", fetch, velaclient.Options{Timeout: 50 * time.Millisecond})
	if err != nil || string(v) != "direct" || !fetched {
		t.Fatalf("FetchAnyway: %q, %v, fetched %v", v, err, fetched)
	}
	if err := c.Get(ctx, "k").Err(); err != redis.Nil {
		t.Fatalf("a value fetched without the lease was cached: %v", err)
	}
}

// Early refresh: the caller offered REFRESH refetches (inline, or in the background) and the key
// gets a new value and TTL before it expires.
func TestGetOrFetchRefresh(t *testing.T) {
	srv := testnode.StartDefault(t)
	c := newClient(t, srv, 4)
	ctx := context.Background()
	for _, background := range []bool{false, true} {
		key := fmt.Sprintf("r-%v", background)
		c.Set(ctx, key, "old", 2*time.Second)
		opts := velaclient.Options{TTL: time.Minute, Refresh: 5 * time.Second, BackgroundRefresh: background}
		v, err := velaclient.GetOrFetch(ctx, c, key, func(context.Context) ([]byte, error) { return []byte("new"), nil }, opts)
		want := "new"
		if background {
			want = "old" // returned at once; the refresh lands shortly after
		}
		if err != nil || string(v) != want {
			t.Fatalf("background=%v: GetOrFetch = %q, %v; want %q", background, v, err, want)
		}
		deadline := time.Now().Add(5 * time.Second)
		for c.Get(ctx, key).Val() != "new" && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if got := c.Get(ctx, key).Val(); got != "new" {
			t.Fatalf("background=%v: value after refresh %q", background, got)
		}
		if ttl := c.PTTL(ctx, key).Val(); ttl < 50*time.Second {
			t.Fatalf("background=%v: PTTL after refresh %v, want the new TTL", background, ttl)
		}
	}
}

// SetWithTags and GetOrFetch's Tags tag keys; InvalidateTags deletes them.
func TestTags(t *testing.T) {
	srv := testnode.StartDefault(t)
	c := newClient(t, srv, 4)
	ctx := context.Background()
	if err := velaclient.SetWithTags(ctx, c, "a", []byte("1"), time.Minute, "user:1"); err != nil {
		t.Fatal(err)
	}
	if err := velaclient.SetWithTags(ctx, c, "b", []byte("2"), 0, "user:1", "team:7"); err != nil {
		t.Fatal(err)
	}
	if _, err := velaclient.GetOrFetch(ctx, c, "c", func(context.Context) ([]byte, error) { return []byte("3"), nil },
		velaclient.Options{Tags: []string{"team:7"}}); err != nil {
		t.Fatal(err)
	}
	c.Set(ctx, "untagged", "x", 0)
	n, err := velaclient.InvalidateTags(ctx, c, "user:1", "team:7")
	if err != nil || n != 3 {
		t.Fatalf("InvalidateTags = %d, %v; want 3", n, err)
	}
	if left := c.Exists(ctx, "a", "b", "c", "untagged").Val(); left != 1 {
		t.Fatalf("%d keys left, want only the untagged one", left)
	}
	if _, err := velaclient.InvalidateTags(ctx, c); err == nil {
		t.Fatal("InvalidateTags without tags succeeded")
	}
}
