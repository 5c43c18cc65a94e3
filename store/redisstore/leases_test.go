package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/velaclient"
)

// fetchlock sends FETCHLOCK and returns its reply as strings ("" for nil).
func fetchlock(t *testing.T, c *redis.Client, key string, opts ...any) []string {
	t.Helper()
	v, err := c.Do(context.Background(), append([]any{"fetchlock", key}, opts...)...).Slice()
	if err != nil {
		t.Fatalf("FETCHLOCK %s: %v", key, err)
	}
	out := make([]string, len(v))
	for i, e := range v {
		if s, ok := e.(string); ok {
			out[i] = s
		}
	}
	return out
}

// TestLeasesAcrossNodes runs two Vela nodes on one Redis and checks that FETCHLOCK's leases are
// shared (see leasesAcrossNodes; TestCluster runs the same on Redis Cluster).
func TestLeasesAcrossNodes(t *testing.T) {
	r := redistest.Start(t)
	leasesAcrossNodes(t, "redis://"+r.Addr+"/0")
}

// leasesAcrossNodes runs two Vela nodes on the Redis at url and checks that FETCHLOCK's leases
// are shared: one holder per key across both, waiters on one node woken by a fill, a release, a
// closed connection or a lease running out on the other, and fills fenced by writes made through
// either node.
func leasesAcrossNodes(t *testing.T, url string) {
	_, a := startNode(t, url)
	_, b := startNode(t, url)
	ctx := context.Background()

	t.Run("OneHolder", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make(chan string, 20)
		for i := range 20 {
			c := a
			if i%2 == 1 {
				c = b
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				results <- fetchlock(t, c, "one", "timeout", 0)[0]
			}()
		}
		wg.Wait()
		close(results)
		count := map[string]int{}
		for s := range results {
			count[s]++
		}
		if count["LOCKED"] != 1 || count["TIMEOUT"] != 19 {
			t.Fatalf("20 callers on two nodes: %v, want exactly one LOCKED", count)
		}
	})

	t.Run("FillWakesOtherNode", func(t *testing.T) {
		lock := fetchlock(t, a, "fill")
		if lock[0] != "LOCKED" {
			t.Fatalf("first FETCHLOCK = %v", lock)
		}
		got := make(chan []string, 1)
		go func() { got <- fetchlock(t, b, "fill", "timeout", 5000) }()
		time.Sleep(100 * time.Millisecond) // b is waiting
		if err := a.Do(ctx, "fetchfill", "fill", lock[1], "value", "px", 60000, "tags", "lt").Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case res := <-got:
			if res[0] != "HIT" || res[1] != "value" {
				t.Fatalf("waiter on the other node got %v", res)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("the waiter on the other node was not woken by the fill")
		}
		// The fill's tags are shared too.
		if n, err := tagInvalidate(ctx, b, "lt"); err != nil || n != 1 {
			t.Fatalf("TAGINVALIDATE of the filled key through the other node = %d %v", n, err)
		}
	})

	t.Run("ReleaseHandsOver", func(t *testing.T) {
		lock := fetchlock(t, a, "rel")
		got := make(chan []string, 1)
		go func() { got <- fetchlock(t, b, "rel", "timeout", 5000) }()
		time.Sleep(100 * time.Millisecond)
		if err := a.Do(ctx, "fetchrelease", "rel", lock[1]).Err(); err != nil {
			t.Fatal(err)
		}
		res := <-got
		if res[0] != "LOCKED" || res[1] == lock[1] {
			t.Fatalf("after release the waiter got %v", res)
		}
		// The old token no longer fills; the new one does.
		if err := a.Do(ctx, "fetchfill", "rel", lock[1], "old").Err(); err == nil || !strings.HasPrefix(err.Error(), "STALE") {
			t.Fatalf("fill with the released token: %v", err)
		}
		if err := b.Do(ctx, "fetchfill", "rel", res[1], "new").Err(); err != nil {
			t.Fatal(err)
		}
		if v := a.Get(ctx, "rel").Val(); v != "new" {
			t.Fatalf("rel = %q", v)
		}
	})

	t.Run("ClosedConnectionHandsOver", func(t *testing.T) {
		holder := redis.NewClient(&redis.Options{Addr: a.Options().Addr, PoolSize: 1, MaxRetries: -1})
		lock := fetchlock(t, holder, "gone")
		if lock[0] != "LOCKED" {
			t.Fatalf("FETCHLOCK = %v", lock)
		}
		got := make(chan []string, 1)
		go func() { got <- fetchlock(t, b, "gone", "timeout", 5000) }()
		time.Sleep(100 * time.Millisecond)
		_ = holder.Close()
		select {
		case res := <-got:
			if res[0] != "LOCKED" {
				t.Fatalf("after the holder left the waiter got %v", res)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("the lease of a closed connection did not end")
		}
	})

	t.Run("LeaseRunsOut", func(t *testing.T) {
		lock := fetchlock(t, a, "short", "lease", 200)
		start := time.Now()
		res := fetchlock(t, b, "short", "timeout", 5000)
		if res[0] != "LOCKED" {
			t.Fatalf("after the lease ran out the waiter got %v", res)
		}
		if took := time.Since(start); took < 100*time.Millisecond {
			t.Fatalf("the waiter got the lease after %v, before the 200 ms lease ran out", took)
		}
		if err := a.Do(ctx, "fetchfill", "short", lock[1], "late").Err(); err == nil {
			t.Fatal("a fill with an expired lease succeeded")
		}
	})

	t.Run("WriteFencesFill", func(t *testing.T) {
		lock := fetchlock(t, a, "fence")
		if err := b.Set(ctx, "fence", "newer", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := a.Do(ctx, "fetchfill", "fence", lock[1], "older").Err(); err == nil || !strings.HasPrefix(err.Error(), "STALE") {
			t.Fatalf("fill after a write through the other node: %v", err)
		}
		if v := a.Get(ctx, "fence").Val(); v != "newer" {
			t.Fatalf("fence = %q: a stale fill overwrote newer data", v)
		}
		if res := fetchlock(t, b, "fence"); res[0] != "HIT" || res[1] != "newer" {
			t.Fatalf("FETCHLOCK after the write = %v", res)
		}
	})

	t.Run("WriteEndsLease", func(t *testing.T) {
		// SET then GETDEL through the holder's node: the key is missing again, and the lease
		// the write ended must not make the next caller wait for it to run out.
		lock := fetchlock(t, a, "w", "lease", 4000)
		if lock[0] != "LOCKED" {
			t.Fatalf("first FETCHLOCK = %v", lock)
		}
		if err := a.Set(ctx, "w", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := a.GetDel(ctx, "w").Err(); err != nil {
			t.Fatal(err)
		}
		// Another client, with a TIMEOUT shorter than the lease: waiting for the lease the write
		// ended would answer TIMEOUT.
		other := redis.NewClient(&redis.Options{Addr: a.Options().Addr, MaxRetries: -1})
		defer other.Close()
		res := fetchlock(t, other, "w", "timeout", 2000)
		if res[0] != "LOCKED" || res[1] == lock[1] {
			t.Fatalf("FETCHLOCK after SET and GETDEL of a leased key = %v, want a new LOCKED", res)
		}
		if err := a.Do(ctx, "fetchfill", "w", lock[1], "old").Err(); err == nil || !strings.HasPrefix(err.Error(), "STALE") {
			t.Fatalf("fill with the lease a write ended: %v", err)
		}
		if err := a.Do(ctx, "fetchfill", "w", res[1], "new").Err(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("WriteAndDeleteFenceFill", func(t *testing.T) {
		// Every kind of write ends the lease, even when the key is missing again at the fill.
		writes := []struct {
			name  string
			write func(key string) error
		}{
			{"SET+DEL", func(key string) error {
				if err := a.Set(ctx, key, "x", 0).Err(); err != nil {
					return err
				}
				return a.Del(ctx, key).Err()
			}},
			{"SET+UNLINK", func(key string) error {
				if err := a.Set(ctx, key, "x", 0).Err(); err != nil {
					return err
				}
				return a.Unlink(ctx, key).Err()
			}},
			{"SET+PEXPIREAT past", func(key string) error {
				if err := a.Set(ctx, key, "x", 0).Err(); err != nil {
					return err
				}
				return a.PExpireAt(ctx, key, time.UnixMilli(1)).Err()
			}},
			{"SET TAGS+TAGINVALIDATE", func(key string) error {
				if err := a.Do(ctx, "set", key, "x", "tags", "tag:"+key).Err(); err != nil {
					return err
				}
				_, err := tagInvalidate(ctx, a, "tag:"+key)
				return err
			}},
		}
		for _, w := range writes {
			name, key := w.name, "f4:"+w.name
			lock := fetchlock(t, a, key)
			if lock[0] != "LOCKED" {
				t.Fatalf("%s: FETCHLOCK = %v", name, lock)
			}
			if err := w.write(key); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			err := a.Do(ctx, "fetchfill", key, lock[1], "y").Err()
			if err == nil || !strings.HasPrefix(err.Error(), "STALE") {
				t.Fatalf("%s between grant and fill: the fill answered %v, want STALE", name, err)
			}
			if n := a.Exists(ctx, key).Val(); n != 0 {
				t.Fatalf("%s: a stale fill wrote the key", name)
			}
		}
	})

	t.Run("WriteOnOtherNodeEndsLease", func(t *testing.T) {
		lock := fetchlock(t, a, "wb", "lease", 4000)
		if lock[0] != "LOCKED" {
			t.Fatalf("first FETCHLOCK = %v", lock)
		}
		time.Sleep(100 * time.Millisecond) // b hears of the grant
		if err := b.Set(ctx, "wb", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if err := b.Del(ctx, "wb").Err(); err != nil {
			t.Fatal(err)
		}
		for i, c := range []*redis.Client{b, a} {
			res := fetchlock(t, c, "wb", "timeout", 2000)
			if res[0] != "LOCKED" {
				t.Fatalf("FETCHLOCK %d after a write through the other node = %v, want LOCKED", i, res)
			}
			if err := c.Do(ctx, "fetchrelease", "wb", res[1]).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Do(ctx, "fetchfill", "wb", lock[1], "old").Err(); err == nil || !strings.HasPrefix(err.Error(), "STALE") {
			t.Fatalf("fill with the lease a write through the other node ended: %v", err)
		}
	})

	t.Run("Refresh", func(t *testing.T) {
		if err := a.Set(ctx, "warm", "v1", 2*time.Second).Err(); err != nil {
			t.Fatal(err)
		}
		first := fetchlock(t, a, "warm", "refresh", 10000)
		if first[0] != "REFRESH" || first[1] != "v1" {
			t.Fatalf("first caller near expiry = %v", first)
		}
		for i, c := range []*redis.Client{a, b} {
			if res := fetchlock(t, c, "warm", "refresh", 10000); res[0] != "HIT" || res[1] != "v1" {
				t.Fatalf("caller %d while the refresh lease is held = %v", i, res)
			}
		}
		if err := b.Do(ctx, "fetchfill", "warm", first[2], "v2", "ex", 60).Err(); err != nil {
			t.Fatal(err)
		}
		if v := b.Get(ctx, "warm").Val(); v != "v2" {
			t.Fatalf("warm = %q", v)
		}
	})

	t.Run("LeasesInvisible", func(t *testing.T) {
		fetchlock(t, a, fmt.Sprintf("hidden-%d", time.Now().UnixNano()))
		keys, err := a.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.HasPrefix(k, "l:") || strings.HasPrefix(k, "__vela:") || strings.HasPrefix(k, "hidden") {
				t.Fatalf("lease bookkeeping visible as a user key: %q", k)
			}
		}
		if n := b.DBSize(ctx).Val(); n != int64(len(keys)) {
			t.Fatalf("DBSIZE = %d while a lease is held, KEYS * lists %d keys", n, len(keys))
		}
	})
}

// TestSidecarsFetchOnce is the sidecar deployment: three Vela nodes in front of one Redis (see
// sidecarsFetchOnce; TestCluster runs the same on Redis Cluster).
func TestSidecarsFetchOnce(t *testing.T) {
	r := redistest.Start(t)
	sidecarsFetchOnce(t, "redis://"+r.Addr+"/0")
}

// sidecarsFetchOnce runs three Vela nodes in front of the Redis at url, each with its own
// application clients calling velaclient.GetOrFetch on the same cold keys at once. Exactly one
// fetch runs per key, whichever node the callers use, and all get its value.
func sidecarsFetchOnce(t *testing.T, url string) {
	var clients []*redis.Client
	for range 3 {
		_, c := startNode(t, url)
		clients = append(clients, c)
	}
	ctx := context.Background()
	for round := range 5 {
		key := fmt.Sprintf("cold:%d", round)
		var fetches atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, 30)
		for i := range 30 {
			c := clients[i%3]
			wg.Add(1)
			go func() {
				defer wg.Done()
				v, err := velaclient.GetOrFetch(ctx, c, key, func(context.Context) ([]byte, error) {
					fetches.Add(1)
					time.Sleep(50 * time.Millisecond) // a slow backend
					return []byte("fresh " + key), nil
				}, velaclient.Options{TTL: time.Minute, Timeout: 5 * time.Second, OnTimeout: velaclient.ReturnError})
				if err == nil && string(v) != "fresh "+key {
					err = fmt.Errorf("got %q", v)
				}
				if err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if n := fetches.Load(); n != 1 {
			t.Fatalf("round %d: %d fetches for 30 callers on 3 sidecars, want 1", round, n)
		}
	}
}
