package e2e_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/vela-cache/vela/internal/testnode"
)

// TestRueidisClientSideCache runs rueidis, which turns client tracking on (CLIENT TRACKING ON
// OPTIN) for every connection it opens, with its defaults, against Vela (one node, and a member
// of a partitioned cluster) and Redis: a cached
// GET is served from the client's memory the second time, and a change made by another
// client reaches the cache through the invalidation message, as do a delete and FLUSHALL.
func TestRueidisClientSideCache(t *testing.T) {
	servers := targets(t)
	members := testnode.StartCluster(t, 2, nil)
	testnode.WaitConverged(t, 10*time.Second, members...)
	servers["vela-partitioned"] = members[0].Addr() // the other member owns some of the keys
	for name, addr := range servers {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}})
			if err != nil {
				t.Fatalf("rueidis cannot connect: %v", err)
			}
			defer c.Close()
			other, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			do := func(cl rueidis.Client, cmd rueidis.Completed) {
				t.Helper()
				if err := cl.Do(ctx, cmd).Error(); err != nil {
					t.Fatal(err)
				}
			}
			cached := func(key string) (string, bool) {
				t.Helper()
				r := c.DoCache(ctx, c.B().Get().Key(key).Cache(), time.Minute)
				v, err := r.ToString()
				if rueidis.IsRedisNil(err) {
					return "(nil)", r.IsCacheHit()
				}
				if err != nil {
					t.Fatal(err)
				}
				return v, r.IsCacheHit()
			}
			// eventually waits for the invalidation: it travels apart from any reply.
			eventually := func(key, want string) {
				t.Helper()
				deadline := time.Now().Add(5 * time.Second)
				for {
					v, _ := cached(key)
					if v == want {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("GET %s from the cache = %q, want %q: no invalidation arrived", key, v, want)
					}
					time.Sleep(10 * time.Millisecond)
				}
				if v, hit := cached(key); v != want || !hit {
					t.Fatalf("GET %s again = %q (cache hit %v), want %q from the cache", key, v, hit, want)
				}
			}
			do(other, other.B().Flushall().Build())
			do(other, other.B().Set().Key("csc:a").Value("1").Build())
			if v, hit := cached("csc:a"); v != "1" || hit {
				t.Fatalf("first GET = %q (cache hit %v), want 1 from the server", v, hit)
			}
			if v, hit := cached("csc:a"); v != "1" || !hit {
				t.Fatalf("second GET = %q (cache hit %v), want 1 from the cache", v, hit)
			}
			do(other, other.B().Set().Key("csc:a").Value("2").Build())
			eventually("csc:a", "2")
			do(other, other.B().Del().Key("csc:a").Build())
			eventually("csc:a", "(nil)")
			do(other, other.B().Set().Key("csc:b").Value("x").Build())
			eventually("csc:b", "x")
			do(other, other.B().Flushall().Build())
			eventually("csc:b", "(nil)")
		})
	}
}
