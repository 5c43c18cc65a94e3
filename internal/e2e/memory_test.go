package e2e_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// memoryUsageErrors are MEMORY forms whose replies must be Redis's: errors, and null for a
// missing key.
var memoryUsageErrors = [][]any{
	{"MEMORY", "USAGE", "nokey"},
	{"MEMORY", "USAGE", "k", "SAMPLES", "-1"},
	{"MEMORY", "USAGE", "k", "SAMPLES", "x"},
	{"MEMORY", "USAGE", "k", "SAMPLES", "+5"},
	{"MEMORY", "USAGE", "k", "SAMPLES"},
	{"MEMORY", "USAGE", "k", "FOO"},
	{"MEMORY", "USAGE", "k", "samples", "3", "extra"},
	{"MEMORY", "USAGE"},
	{"MEMORY"},
	{"MEMORY", "NOSUCH"},
}

// TestMemoryUsage checks MEMORY USAGE on every store and through a cluster member:
//
//   - its argument checks and its null for a missing key are Redis's (the same forms sent to a
//     real redis-server);
//   - on the memory store the figures are the store's own accounting: summed over every key
//     (some tagged, some with a TTL, values from 10 B to 4 KiB), they come within 2 % of
//     INFO's used_memory_dataset, and a key grows with its value and its tags;
//   - on the disk store a key grows with its value, its tags and its TTL;
//   - on the redis store it is Redis's own MEMORY USAGE of the key;
//   - through a member of a partitioned cluster, it is the owner's answer.
func TestMemoryUsage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	redisAddr := redistest.Start(t).Addr
	want := respclient.Dial(t, redisAddr)
	want.Do("SET", "k", "v").OK()

	checkForms := func(t *testing.T, addr string) {
		c := respclient.Dial(t, addr)
		defer c.Close()
		c.Do("SET", "k", "v").OK()
		for _, form := range memoryUsageErrors {
			w, g := want.Do(form...).Value, c.Do(form...).Value
			if fmt.Sprint(w) != fmt.Sprint(g) {
				t.Errorf("%v:\n redis: %v\n  vela: %v", form, w, g)
			}
		}
	}
	usage := func(t *testing.T, c *redis.Client, key string) int64 {
		t.Helper()
		n, err := c.MemoryUsage(ctx, key).Result()
		if err != nil {
			t.Fatalf("MEMORY USAGE %s: %v", key, err)
		}
		return n
	}
	// grows checks that a key's usage grows with its value, its tags and (tagsAndTTL) its TTL.
	grows := func(t *testing.T, c *redis.Client, ttlCounts bool) {
		c.Set(ctx, "g", "v", 0)
		small := usage(t, c, "g")
		c.Set(ctx, "g", strings.Repeat("v", 2000), 0)
		big := usage(t, c, "g")
		c.Do(ctx, "SET", "g", strings.Repeat("v", 2000), "TAGS", "tag-one", "tag-two")
		tagged := usage(t, c, "g")
		if !(small > 0 && big >= small+1999 && tagged > big) {
			t.Errorf("usage: 1-byte value %d, 2000-byte %d, with two tags %d", small, big, tagged)
		}
		if ttlCounts {
			c.Expire(ctx, "g", time.Hour)
			if withTTL := usage(t, c, "g"); withTTL <= tagged {
				t.Errorf("usage with a TTL %d, without %d", withTTL, tagged)
			}
		}
	}

	t.Run("memory", func(t *testing.T) {
		addr := testnode.StartDefault(t).Addr()
		checkForms(t, addr)
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		grows(t, c, false)
		c.FlushAll(ctx)
		for i := range 5000 {
			args := []any{"SET", fmt.Sprintf("key:%d", i), strings.Repeat("x", 10+i%4096)}
			if i%3 == 0 {
				args = append(args, "EX", 3600)
			}
			if i%5 == 0 {
				args = append(args, "TAGS", fmt.Sprintf("tag:%d", i%7), "tag:all")
			}
			if err := c.Do(ctx, args...).Err(); err != nil {
				t.Fatal(err)
			}
		}
		var sum int64
		for i := range 5000 {
			sum += usage(t, c, fmt.Sprintf("key:%d", i))
		}
		info := c.Info(ctx, "memory").Val()
		m := regexp.MustCompile(`used_memory_dataset:(\d+)`).FindStringSubmatch(info)
		if m == nil {
			t.Fatalf("no used_memory_dataset in %q", info)
		}
		dataset, _ := strconv.ParseInt(m[1], 10, 64)
		if ratio := float64(sum) / float64(dataset); ratio < 0.98 || ratio > 1.02 {
			t.Errorf("MEMORY USAGE summed over the keys: %d; used_memory_dataset %d (ratio %.3f)", sum, dataset, ratio)
		} else {
			t.Logf("MEMORY USAGE summed %d, used_memory_dataset %d (ratio %.4f)", sum, dataset, ratio)
		}
	})
	t.Run("disk", func(t *testing.T) {
		addr := testnode.Start(t, scriptStoreConfig(t, "disk")).Addr()
		checkForms(t, addr)
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		grows(t, c, true)
	})
	t.Run("redis", func(t *testing.T) {
		backing := redistest.Start(t)
		cfg := testnode.Config()
		cfg.Store.Type = "redis"
		cfg.Store.RedisURL = "redis://" + backing.Addr + "/0"
		addr := testnode.Start(t, cfg).Addr()
		checkForms(t, addr)
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		direct := redis.NewClient(&redis.Options{Addr: backing.Addr})
		defer direct.Close()
		for _, size := range []int{1, 100, 5000} {
			c.Set(ctx, "r", strings.Repeat("v", size), 0)
			if got, want := usage(t, c, "r"), usage(t, direct, "r"); got != want {
				t.Errorf("%d-byte value: Vela says %d, its Redis %d", size, got, want)
			}
		}
	})
	t.Run("partitioned", func(t *testing.T) {
		nodes := testnode.StartCluster(t, 3, nil)
		testnode.WaitConverged(t, 10*time.Second, nodes...)
		checkForms(t, nodes[0].Addr())
		clients := make([]*redis.Client, len(nodes))
		for i, n := range nodes {
			clients[i] = redis.NewClient(&redis.Options{Addr: n.Addr()})
			defer clients[i].Close()
		}
		for i := range 30 {
			key := fmt.Sprintf("p:%d", i)
			clients[0].Set(ctx, key, strings.Repeat("v", 1+i*100), 0)
			first := usage(t, clients[0], key)
			for j, c := range clients[1:] {
				if got := usage(t, c, key); got != first {
					t.Errorf("%s: member 1 says %d, member %d says %d", key, first, j+2, got)
				}
			}
		}
	})
}
