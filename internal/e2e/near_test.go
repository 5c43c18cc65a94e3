package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

// nearNode starts Vela on the redis store with the near cache, waits until the cache serves, and
// returns it with a go-redis client of Vela and one of the backing Redis (a "foreign" writer
// Vela knows nothing of).
func nearNode(t *testing.T, ttl time.Duration) (*server.Server, *redis.Client, *redis.Client) {
	return nearNodeLoops(t, ttl, 0)
}

// nearNodeLoops is nearNode with that many event loops (0: the default).
func nearNodeLoops(t *testing.T, ttl time.Duration, loops int) (*server.Server, *redis.Client, *redis.Client) {
	t.Helper()
	backing := redistest.Start(t)
	cfg := testnode.Config()
	if loops > 0 {
		cfg.EventLoops = loops
	}
	cfg.Store.Type = "redis"
	cfg.Store.RedisURL = "redis://" + backing.Addr + "/0"
	cfg.NearCache.Enabled = true
	if ttl > 0 {
		cfg.NearCache.L1TTL = ttl
	}
	vela := testnode.Start(t, cfg)
	redistest.WaitFor(t, "the near cache to go live", vela.Node().NearCache().Live)
	vc := redis.NewClient(&redis.Options{Addr: vela.Addr()})
	rc := redis.NewClient(&redis.Options{Addr: backing.Addr})
	t.Cleanup(func() { _ = vc.Close(); _ = rc.Close() })
	return vela, vc, rc
}

func l1Hits(vela *server.Server) uint64 { return vela.Node().Stats().L1Hits.Load() }

// A repeated GET is answered by the near cache; a write made directly in Redis reaches Vela's
// clients promptly (the tracking push), without waiting for l1_ttl.
func TestNearCacheForeignWrite(t *testing.T) {
	vela, vc, rc := nearNode(t, time.Hour)
	ctx := context.Background()
	want(t, "SET", vc.Set(ctx, "k", "v1", 0).Val(), nil, "OK")
	// The SET's own invalidation may arrive after the first GET kept a copy, and drop it: read
	// until a GET is answered from the near cache.
	redistest.WaitFor(t, "a GET answered from the near cache", func() bool {
		vc.Get(ctx, "k")
		before := l1Hits(vela)
		return vc.Get(ctx, "k").Val() == "v1" && l1Hits(vela) == before+1
	})
	var worst time.Duration
	for i := range 50 {
		v := fmt.Sprint("v", i+2)
		start := time.Now()
		if err := rc.Set(ctx, "k", v, 0).Err(); err != nil {
			t.Fatal(err)
		}
		redistest.WaitFor(t, "Vela to serve the foreign write", func() bool { return vc.Get(ctx, "k").Val() == v })
		worst = max(worst, time.Since(start))
		vc.Get(ctx, "k") // a copy of v, for the next write to invalidate
	}
	t.Logf("a write made in Redis reached Vela's readers within %v (worst of 50)", worst)
	if got := infoField(t, vc, "vela", "near_cache_live"); got != "1" {
		t.Fatalf("INFO vela near_cache_live = %q", got)
	}
}

// A client reads its own writes through the near cache, pipelined or not: every write drops
// the copy before it leaves for Redis.
func TestNearCacheReadYourWrites(t *testing.T) {
	_, vc, _ := nearNode(t, time.Hour)
	ctx := context.Background()
	rng := rand.New(rand.NewSource(1))
	for round := range 300 {
		k := fmt.Sprint("k", rng.Intn(5))
		vc.Get(ctx, k) // fill (or miss)
		v := fmt.Sprint(round)
		cmds, err := vc.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.Get(ctx, k)
			switch round % 5 {
			case 0:
				p.Set(ctx, k, v, 0)
			case 1:
				p.Set(ctx, k, v, time.Hour)
			case 2:
				p.Del(ctx, k)
				p.Append(ctx, k, v)
			case 3:
				p.MSet(ctx, k, v, "other", "x")
			case 4:
				p.Set(ctx, k, "pre", 0)
				p.SetArgs(ctx, k, v, redis.SetArgs{Mode: "XX"})
			}
			p.Get(ctx, k)
			p.Get(ctx, k)
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		for _, c := range cmds[len(cmds)-2:] {
			if got := c.(*redis.StringCmd).Val(); got != v {
				t.Fatalf("round %d: after writing %q, %v read %q", round, v, c.Args(), got)
			}
		}
	}
}

// A copy never outlives its key: a key with a TTL is gone for Vela's clients when it expires,
// whether the TTL was set through Vela or in Redis directly, before Redis gets round to
// reporting the expiry.
func TestNearCacheKeyExpiry(t *testing.T) {
	_, vc, rc := nearNode(t, time.Hour)
	ctx := context.Background()
	for _, setter := range []*redis.Client{vc, rc} {
		for i := range 20 {
			k := fmt.Sprint("ttl", i)
			if err := setter.Set(ctx, k, "v", 80*time.Millisecond).Err(); err != nil {
				t.Fatal(err)
			}
			set := time.Now()
			vc.Get(ctx, k)
			for time.Since(set) < 150*time.Millisecond {
				// The key expires before set+80ms (Redis ran the SET earlier), and Redis itself
				// serves a key until the millisecond after its expiry: 82 ms leaves that out.
				asked := time.Since(set)
				v, err := vc.Get(ctx, k).Result()
				if err == nil && asked >= 82*time.Millisecond {
					t.Fatalf("%s (PX 80) read %q when asked %v after it was set", k, v, asked)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
}

// l1_ttl bounds a copy's life even with no invalidation at all.
func TestNearCacheTTL(t *testing.T) {
	vela, vc, _ := nearNode(t, 100*time.Millisecond)
	ctx := context.Background()
	vc.Set(ctx, "k", "v", 0)
	redistest.WaitFor(t, "a GET answered from the near cache", func() bool {
		vc.Get(ctx, "k")
		before := l1Hits(vela)
		vc.Get(ctx, "k")
		return l1Hits(vela) == before+1
	})
	time.Sleep(120 * time.Millisecond)
	before := l1Hits(vela)
	vc.Get(ctx, "k")
	if l1Hits(vela) != before {
		t.Fatal("a copy older than l1_ttl was served")
	}
}

// FLUSHALL in Redis, and the loss of the invalidation channel, drop every copy.
func TestNearCacheFlushAndChannelLoss(t *testing.T) {
	vela, vc, rc := nearNode(t, time.Hour)
	ctx := context.Background()
	vc.Set(ctx, "k", "v1", 0)
	vc.Get(ctx, "k")
	rc.FlushAll(ctx)
	redistest.WaitFor(t, "FLUSHALL to reach Vela", func() bool { return vc.Get(ctx, "k").Err() == redis.Nil })

	vc.Set(ctx, "k", "v1", 0)
	vc.Get(ctx, "k")
	id := trackingClientID(t, rc)
	flushes := infoField(t, vc, "vela", "near_cache_flushes")
	// Kill the channel, then write at once: Redis reports nothing to anyone, so only the
	// channel's loss can take the copy away.
	if err := rc.Do(ctx, "client", "kill", "id", id).Err(); err != nil {
		t.Fatal(err)
	}
	rc.Set(ctx, "k", "v2", 0)
	redistest.WaitFor(t, "the lost channel to flush the near cache", func() bool {
		return infoField(t, vc, "vela", "near_cache_flushes") != flushes
	})
	want(t, "GET after the channel was lost", vc.Get(ctx, "k").Val(), nil, "v2")
	redistest.WaitFor(t, "a new channel", vela.Node().NearCache().Live)
	if trackingClientID(t, rc) == id {
		t.Fatal("the channel did not reconnect")
	}
	vc.Get(ctx, "k")
	rc.Set(ctx, "k", "v3", 0)
	redistest.WaitFor(t, "the new channel to invalidate", func() bool { return vc.Get(ctx, "k").Val() == "v3" })
}

// trackingClientID is the CLIENT ID of the near cache's connection to Redis.
func trackingClientID(t *testing.T, rc *redis.Client) string {
	t.Helper()
	list, err := rc.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name=vela-near-cache-inv ") && strings.Contains(line, "flags=t") {
			return strings.TrimPrefix(strings.Fields(line)[0], "id=")
		}
	}
	t.Fatalf("no tracking connection in CLIENT LIST:\n%s", list)
	return ""
}

func infoField(t *testing.T, c *redis.Client, section, field string) string {
	t.Helper()
	info, err := c.Info(context.Background(), section).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return v
		}
	}
	t.Fatalf("INFO %s has no %s", section, field)
	return ""
}

// Writers through Vela and directly in Redis race readers through Vela. Once they stop and the
// channel has caught up, every key reads through Vela as it is in Redis: no stale copy is left.
func TestNearCacheConverges(t *testing.T) {
	vela, vc, rc := nearNode(t, time.Hour)
	ctx := context.Background()
	const keys = 20
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for i := range 1500 {
				k := fmt.Sprint("c", rng.Intn(keys))
				switch {
				case w < 2:
					vc.Set(ctx, k, fmt.Sprint(w, ":", i), 0)
				case w < 4:
					rc.Set(ctx, k, fmt.Sprint(w, ":", i), 0)
				default:
					vc.Get(ctx, k)
				}
			}
		}()
	}
	wg.Wait()
	// A marker written last in Redis: once Vela reads it, every earlier push has been applied
	// (Redis sends them in order on the one channel).
	rc.Set(ctx, "marker", "1", 0)
	vc.Get(ctx, "marker")
	rc.Set(ctx, "marker", "2", 0)
	redistest.WaitFor(t, "the channel to catch up", func() bool { return vc.Get(ctx, "marker").Val() == "2" })
	for i := range keys {
		k := fmt.Sprint("c", i)
		if got, exp := vc.Get(ctx, k).Val(), rc.Get(ctx, k).Val(); got != exp {
			t.Fatalf("%s: Vela reads %q, Redis holds %q", k, got, exp)
		}
	}
	t.Logf("l1_hits %d", l1Hits(vela))
}

// A GET that joins another client's GET of the same key, sent before a write made in Redis, may
// answer the value from before it (the two GETs were concurrent), but must not keep it: the
// write's invalidation may have been applied before this GET asked. Once the shared GET is
// done, readers get the new value, not the old one until l1_ttl.
func TestNearCacheJoinedGetKeepsNothing(t *testing.T) {
	_, vc, rc := nearNode(t, time.Hour)
	ctx := context.Background()
	for round := range 3 {
		rc.Set(ctx, "k", strings.Repeat("o", 50<<20), 0)
		done := make(chan struct{})
		go func() { defer close(done); vc.MGet(ctx, "k") }() // a slow read of the old value
		time.Sleep(3 * time.Millisecond)
		v := fmt.Sprint("new", round)
		rc.Set(ctx, "k", v, 0)           // in Redis, behind Vela's back
		time.Sleep(3 * time.Millisecond) // its invalidation arrives
		vc.MGet(ctx, "k")                // may join the slow read
		<-done
		redistest.WaitFor(t, "readers to get the value written in Redis", func() bool { return vc.Get(ctx, "k").Val() == v })
	}
}

// A client that wrote a key through Vela reads its write back, even while another client's GET
// of the key, sent before the write, is still in flight.
func TestNearCacheNoJoinAcrossOwnWrite(t *testing.T) {
	_, vc, rc := nearNode(t, time.Hour)
	ctx := context.Background()
	rc.Set(ctx, "k", strings.Repeat("o", 20<<20), 0)
	for round := range 3 {
		done := make(chan struct{})
		go func() { defer close(done); vc.MGet(ctx, "k") }() // a slow read of the old value
		time.Sleep(3 * time.Millisecond)
		v := fmt.Sprint("new", round)
		//lint:ignore SA1019 the test is about the SETEX command itself
		want(t, "SETEX", vc.SetEx(ctx, "k", v, time.Hour).Val(), nil, "OK")
		if got := vc.MGet(ctx, "k").Val(); len(got) != 1 || got[0] != v {
			t.Fatalf("round %d: MGET after SETEX = %.20q, want %q", round, got, v)
		}
		want(t, "GET after SETEX", vc.Get(ctx, "k").Val(), nil, v)
		<-done
		rc.Set(ctx, "k", strings.Repeat("o", 20<<20), 0)
	}
}

// With several event loops, another client may fill the copy from a read Redis ran before this
// client's SET: the client's own GET, sent before the SET's reply came back, must still read
// its write (it goes to Redis behind the SET instead of to the copy).
func TestNearCacheOwnPipelinedWriteAcrossLoops(t *testing.T) {
	_, vc, _ := nearNodeLoops(t, time.Hour, 2)
	ctx := context.Background()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewClient(&redis.Options{Addr: vc.Options().Addr, PoolSize: 1})
			defer c.Close()
			for {
				select {
				case <-stop:
					return
				default:
					c.Get(ctx, "rk")
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	w := respclient.Dial(t, vc.Options().Addr)
	for i := range 2000 {
		v := fmt.Sprint("v", i)
		w.Send("SET", "rk", v)
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		w.Send("GET", "rk") // a write of its own, before the SET's reply is read
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if _, _, err := w.Receive(); err != nil {
			t.Fatal(err)
		}
		_, got, err := w.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != fmt.Sprintf("$%d\r\n%s\r\n", len(v), v) {
			t.Fatalf("round %d: GET after SET %s read %q", i, v, got)
		}
	}
}

// Over Sentinel the near cache tracks the master Sentinel names, and follows a failover: once
// the replica is promoted, a write made directly in the new master reaches Vela's readers.
func TestNearCacheSentinelFailover(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", fmt.Sprint(master.Port))
	sentinel := redistest.StartSentinel(t, "mymaster", master)
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	defer sc.Close()
	ctx := context.Background()
	cfg := testnode.Config()
	cfg.Store.Type = "redis"
	cfg.Store.RedisURL = "redis+sentinel://" + sentinel + "/mymaster/0"
	cfg.NearCache.Enabled = true
	cfg.NearCache.L1TTL = time.Hour
	vela := testnode.Start(t, cfg)
	redistest.WaitFor(t, "the near cache to go live", vela.Node().NearCache().Live)
	vc := redis.NewClient(&redis.Options{Addr: vela.Addr()})
	defer vc.Close()

	// foreign writes to the server at addr reach Vela's readers, who keep copies in between.
	follows := func(addr, prefix string) time.Duration {
		direct := redis.NewClient(&redis.Options{Addr: addr})
		defer direct.Close()
		var worst time.Duration
		for i := range 10 {
			v := fmt.Sprint(prefix, i)
			redistest.WaitFor(t, "a GET answered from the near cache", func() bool {
				vc.Get(ctx, "k")
				before := l1Hits(vela)
				vc.Get(ctx, "k")
				return l1Hits(vela) == before+1
			})
			start := time.Now()
			if err := direct.Set(ctx, "k", v, 0).Err(); err != nil {
				t.Fatal(err)
			}
			redistest.WaitFor(t, "Vela to serve the write made in "+addr, func() bool { return vc.Get(ctx, "k").Val() == v })
			worst = max(worst, time.Since(start))
		}
		return worst
	}
	if err := vc.Set(ctx, "k", "v0", 0).Err(); err != nil {
		t.Fatal(err)
	}
	t.Logf("before the failover, a write in the master reached Vela's readers within %v", follows(master.Addr, "a"))

	// Sentinel refuses (NOGOODSLAVE) until it has heard from the replica.
	start := time.Now()
	for {
		err := sc.Failover(ctx, "mymaster").Err()
		if err == nil {
			break
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("SENTINEL FAILOVER: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	start = time.Now()
	redistest.WaitFor(t, "Sentinel to name the replica master", func() bool {
		hp, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		return err == nil && len(hp) == 2 && hp[0]+":"+hp[1] == replica.Addr
	})
	t.Logf("Sentinel named the new master %v after the failover began", time.Since(start))
	promoted := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer promoted.Close()
	start = time.Now()
	if err := promoted.Set(ctx, "k", "c", 0).Err(); err != nil {
		t.Fatal(err)
	}
	redistest.WaitFor(t, "Vela to serve the first write in the new master", func() bool { return vc.Get(ctx, "k").Val() == "c" })
	t.Logf("the first write in the new master reached Vela's readers within %v", time.Since(start))
	d := follows(replica.Addr, "b")
	t.Logf("after the failover, a write in the new master reached Vela's readers within %v", d)
	if d > time.Second {
		t.Fatalf("a write in the new master took %v to reach Vela's readers", d)
	}
}
