package nearcache

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/redistest"
)

// startTracked returns a live cache tracking a fresh redis-server, and a client of that server.
func startTracked(t *testing.T) (*Cache, *redis.Client, *redistest.Server) {
	t.Helper()
	srv := redistest.Start(t)
	c, err := New(1000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tr := Track(c, TrackerConfig{
		Masters: func(context.Context) ([]string, error) { return []string{srv.Addr}, nil },
		Dial:    func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) },
		Timeout: 300 * time.Millisecond,
		Ping:    200 * time.Millisecond,
		Log:     slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	t.Cleanup(tr.Close)
	redistest.WaitFor(t, "the tracker to go live", c.Live)
	rc := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 2})
	t.Cleanup(func() { _ = rc.Close() })
	return c, rc, srv
}

func held(c *Cache, key string) func() bool {
	return func() bool { _, ok := c.Get([]byte(key)); return ok }
}

// A write made directly in Redis, by a client Vela knows nothing of, drops the copy promptly.
func TestTrackerInvalidatesOnForeignWrite(t *testing.T) {
	c, rc, _ := startTracked(t)
	ctx := context.Background()
	for _, write := range []func(){
		func() { rc.Set(ctx, "k", "v2", 0) },
		func() { rc.Del(ctx, "k") },
		func() { rc.Expire(ctx, "k", time.Hour) },
		func() { rc.Append(ctx, "k", "x") },
	} {
		rc.Set(ctx, "k", "v1", 0)
		time.Sleep(20 * time.Millisecond) // let the set's own invalidation arrive first
		fill(c, "k", "v1", 0)
		if !held(c, "k")() {
			t.Fatal("copy not kept")
		}
		write()
		redistest.WaitFor(t, "the copy to be dropped", func() bool { return !held(c, "k")() })
	}
}

func TestTrackerFlushAllDropsEverything(t *testing.T) {
	c, rc, _ := startTracked(t)
	fill(c, "a", "1", 0)
	fill(c, "b", "2", 0)
	rc.FlushAll(context.Background())
	redistest.WaitFor(t, "FLUSHALL to drop the copies", func() bool { return !held(c, "a")() && !held(c, "b")() })
}

// Redis expiring a key is a change too.
func TestTrackerSeesExpiry(t *testing.T) {
	c, rc, _ := startTracked(t)
	rc.Set(context.Background(), "k", "v", 100*time.Millisecond)
	time.Sleep(20 * time.Millisecond)
	fill(c, "k", "v", 0) // as if the expiry were unknown to the cache: only Redis's push can drop it
	redistest.WaitFor(t, "the expiry to drop the copy", func() bool { return !held(c, "k")() })
}

// Losing the channel suspends the cache; it comes back by itself when Redis does.
func TestTrackerReconnects(t *testing.T) {
	c, rc, srv := startTracked(t)
	ctx := context.Background()
	fill(c, "k", "v", 0)
	ids, err := rc.Do(ctx, "client", "kill", "type", "normal", "skipme", "yes").Int()
	if err != nil || ids < 1 {
		t.Fatalf("CLIENT KILL: %d, %v", ids, err)
	}
	redistest.WaitFor(t, "the cache to be suspended", func() bool { return !c.Live() })
	if held(c, "k")() {
		t.Fatal("a suspended cache served a copy")
	}
	redistest.WaitFor(t, "the tracker to reconnect", c.Live)
	fill(c, "k", "v", 0)
	if !held(c, "k")() {
		t.Fatal("not kept after reconnecting")
	}
	rc.Set(ctx, "k", "v2", 0)
	redistest.WaitFor(t, "the new channel to invalidate", func() bool { return !held(c, "k")() })

	srv.Stop()
	redistest.WaitFor(t, "the cache to be suspended with Redis gone", func() bool { return !c.Live() })
	srv.Restart(t)
	redistest.WaitFor(t, "the tracker to come back with Redis", c.Live)
}

// testWriter sends a logger's lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// A key longer than the read buffer is invalidated too (it is read into a scratch buffer).
func TestTrackerLongKey(t *testing.T) {
	c, rc, _ := startTracked(t)
	key := strings.Repeat("k", 10000)
	rc.Set(context.Background(), key, "v1", 0)
	time.Sleep(20 * time.Millisecond)
	fill(c, key, "v1", 0)
	if !held(c, key)() {
		t.Fatal("not kept")
	}
	rc.Set(context.Background(), key, "v2", 0)
	redistest.WaitFor(t, "the long key's copy to be dropped", func() bool { return !held(c, key)() })
}

// FuzzTrackerFrame feeds arbitrary bytes to the tracker's frame reader: it must return an error
// or consume frames, never panic or loop, and a well-formed invalidation must drop its keys.
func FuzzTrackerFrame(f *testing.F) {
	f.Add([]byte(">2\r\n$10\r\ninvalidate\r\n*2\r\n$1\r\na\r\n$3\r\nbcd\r\n"))
	f.Add([]byte(">2\r\n$10\r\ninvalidate\r\n_\r\n+PONG\r\n"))
	f.Add([]byte(">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n"))
	f.Add([]byte(">2\r\n$10\r\ninvalidate\r\n*-1\r\n"))
	f.Add([]byte(">2\r\n$10\r\ninvalidate\r\n*1\r\n$99999999\r\nab"))
	f.Add([]byte(">1\r\n$10\r\ninvalidate\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := New(100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Resume()
		fill(c, "a", "v", 0)
		ch := &channel{t: &Tracker{c: c}}
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		for range len(in) + 1 {
			if err := ch.readFrame(br); err != nil {
				return
			}
		}
		t.Fatalf("%d frames read from %d bytes", len(in)+1, len(in))
	})
}

func TestTrackerFrameInvalidates(t *testing.T) {
	c := newLive(t, 100, time.Minute)
	for _, k := range []string{"a", "bcd", "keep"} {
		fill(c, k, "v", 0)
	}
	ch := &channel{t: &Tracker{c: c}}
	br := bufio.NewReaderSize(strings.NewReader(">2\r\n$10\r\ninvalidate\r\n*2\r\n$1\r\na\r\n$3\r\nbcd\r\n+PONG\r\n"), 16)
	for range 2 {
		if err := ch.readFrame(br); err != nil {
			t.Fatal(err)
		}
	}
	if held(c, "a")() || held(c, "bcd")() || !held(c, "keep")() {
		t.Fatal("the push did not drop exactly a and bcd")
	}
}

// With several masters (a Redis Cluster), the cache serves only while every master's channel
// tracks; a master that appears suspends it until its own channel does.
func TestTrackerSeveralMasters(t *testing.T) {
	a, b, c3 := redistest.Start(t), redistest.Start(t), redistest.Start(t)
	var mu sync.Mutex
	masters := []string{a.Addr, b.Addr}
	c, err := New(1000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tr := Track(c, TrackerConfig{
		Masters: func(context.Context) ([]string, error) {
			mu.Lock()
			defer mu.Unlock()
			return slices.Clone(masters), nil
		},
		Dial:    func(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, time.Second) },
		Timeout: 300 * time.Millisecond,
		Ping:    200 * time.Millisecond,
		Refresh: 50 * time.Millisecond,
	})
	t.Cleanup(tr.Close)
	redistest.WaitFor(t, "both channels to track", c.Live)
	ctx := context.Background()
	for _, srv := range []*redistest.Server{a, b} {
		rc := redis.NewClient(&redis.Options{Addr: srv.Addr})
		fill(c, "k", "v", 0)
		rc.Set(ctx, "k", "w", 0)
		redistest.WaitFor(t, "a write on "+srv.Addr+" to drop the copy", func() bool { return !held(c, "k")() })
		_ = rc.Close()
	}

	b.Stop()
	redistest.WaitFor(t, "a master's loss to suspend the cache", func() bool { return !c.Live() })
	b.Restart(t)
	redistest.WaitFor(t, "the cache to serve again", c.Live)

	// A new master: suspended (and so emptied) until its channel tracks, then its writes
	// invalidate too.
	fill(c, "j", "v", 0)
	flushes := c.Flushes()
	mu.Lock()
	masters = append(masters, c3.Addr)
	mu.Unlock()
	redistest.WaitFor(t, "a new master to suspend the cache", func() bool { return c.Flushes() > flushes })
	if held(c, "j")() {
		t.Fatal("a copy survived the suspension")
	}
	redistest.WaitFor(t, "the new master's channel", c.Live)
	rc := redis.NewClient(&redis.Options{Addr: c3.Addr})
	defer rc.Close()
	fill(c, "j", "v", 0)
	rc.Set(ctx, "j", "w", 0)
	redistest.WaitFor(t, "a write on the new master to drop the copy", func() bool { return !held(c, "j")() })

	// A master that goes away (its slots moved on) leaves the cache serving.
	mu.Lock()
	masters = masters[1:]
	mu.Unlock()
	time.Sleep(200 * time.Millisecond)
	if !c.Live() {
		t.Fatal("removing a master suspended the cache")
	}
}
