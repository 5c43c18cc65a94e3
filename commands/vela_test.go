package commands_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

// client starts a node with cfg and returns a go-redis client speaking proto to it.
func client(t *testing.T, cfg config.Config, proto int) *redis.Client {
	t.Helper()
	srv := testnode.Start(t, cfg)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: proto})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// recorder is a KeyWatcher that remembers what it was told.
type recorder struct {
	mu   sync.Mutex
	keys map[string]int
	all  int
}

func (r *recorder) KeyChanged(key []byte) {
	r.mu.Lock()
	r.keys[string(key)]++
	r.mu.Unlock()
}

func (r *recorder) AllChanged() {
	r.mu.Lock()
	r.all++
	r.mu.Unlock()
}

// TestTagInvalidateOverlapping tags 1,000 keys with overlapping tags (every key i carries
// "m2" when i%2==0, "m3" when i%3==0, "m5" when i%5==0, and "all"), leaves 200 more untagged,
// lets some tagged keys expire, and checks every TAGINVALIDATE count exactly.
func TestTagInvalidateOverlapping(t *testing.T) {
	rec := &recorder{keys: map[string]int{}}
	srv := testnode.Start(t, testnode.Config(), server.WithKeyWatcher(rec))
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()

	tagsOf := func(i int) []string {
		var tags []string
		for _, m := range []int{2, 3, 5} {
			if i%m == 0 {
				tags = append(tags, "m"+strconv.Itoa(m))
			}
		}
		return append(tags, "all")
	}
	pipe := c.Pipeline()
	for i := 0; i < 1000; i++ {
		args := []any{"SET", fmt.Sprintf("k%d", i), "v"}
		if i%7 == 0 { // these expire before the invalidations
			args = append(args, "PX", 50)
		}
		args = append(args, "TAGS")
		for _, tag := range tagsOf(i) {
			args = append(args, tag)
		}
		pipe.Do(ctx, args...)
	}
	for i := 0; i < 200; i++ {
		pipe.Set(ctx, fmt.Sprintf("untagged%d", i), "u", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the i%7==0 keys expire (they are not swept yet)
	rec.mu.Lock()
	rec.keys = map[string]int{} // forget the SETs: count what TAGINVALIDATE reports
	rec.mu.Unlock()

	live := func(pred func(i int) bool) (n int) {
		for i := 0; i < 1000; i++ {
			if i%7 != 0 && pred(i) {
				n++
			}
		}
		return n
	}
	// m2 and m3 together: keys divisible by 2 or 3, live ones only.
	want := live(func(i int) bool { return i%2 == 0 || i%3 == 0 })
	if got, err := c.Do(ctx, "TAGINVALIDATE", "m2", "m3").Int(); err != nil || got != want {
		t.Fatalf("TAGINVALIDATE m2 m3 = %d, %v; want %d", got, err, want)
	}
	// m5 now: only the keys divisible by 5 but not by 2 or 3 remain.
	want5 := live(func(i int) bool { return i%5 == 0 && i%2 != 0 && i%3 != 0 })
	if got, err := c.Do(ctx, "TAGINVALIDATE", "m5").Int(); err != nil || got != want5 {
		t.Fatalf("TAGINVALIDATE m5 = %d, %v; want %d", got, err, want5)
	}
	if got, err := c.Do(ctx, "TAGINVALIDATE", "m2", "nosuchtag").Int(); err != nil || got != 0 {
		t.Fatalf("TAGINVALIDATE m2 again = %d, %v; want 0", got, err)
	}
	wantRest := live(func(i int) bool { return i%2 != 0 && i%3 != 0 && i%5 != 0 })
	if got, err := c.Do(ctx, "TAGINVALIDATE", "all").Int(); err != nil || got != wantRest {
		t.Fatalf("TAGINVALIDATE all = %d, %v; want %d", got, err, wantRest)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 200 {
		t.Fatalf("DBSIZE = %d, %v; want the 200 untagged keys", n, err)
	}
	for i := 0; i < 200; i++ {
		if v, err := c.Get(ctx, fmt.Sprintf("untagged%d", i)).Result(); err != nil || v != "u" {
			t.Fatalf("untagged%d = %q, %v", i, v, err)
		}
	}
	rec.mu.Lock()
	notified := len(rec.keys)
	rec.mu.Unlock()
	if total := want + want5 + wantRest; notified != total {
		t.Fatalf("watchers heard of %d keys, want %d", notified, total)
	}
	stats := statsMap(t, c)
	if stats["tag_invalidations"] != int64(want+want5+wantRest) {
		t.Fatalf("tag_invalidations = %d, want %d", stats["tag_invalidations"], want+want5+wantRest)
	}
	if stats["expirations"] != 143 { // 0, 7, …, 994: removed lazily by TAGINVALIDATE
		t.Fatalf("expirations = %d, want 143", stats["expirations"])
	}
	info, err := c.Info(ctx, "vela").Result()
	if err != nil || !strings.Contains(info, "tags:0\r\n") || !strings.Contains(info, "tagged_keys:0\r\n") {
		t.Fatalf("tag index not empty after invalidating every tag:\n%s (%v)", info, err)
	}
}

// TestSetTags covers the TAGS option: overwriting without TAGS clears the tags, GET/NX/EX
// combine with it, and a bare TAGS is a syntax error.
func TestSetTags(t *testing.T) {
	c := client(t, testnode.Config(), 3)
	must := func(cmd *redis.Cmd) any {
		t.Helper()
		v, err := cmd.Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("%v: %v", cmd.Args(), err)
		}
		return v
	}
	must(c.Do(ctx, "SET", "a", "1", "EX", "100", "TAGS", "t1", "t2"))
	must(c.Do(ctx, "SET", "b", "1", "TAGS", "t2"))
	must(c.Do(ctx, "SET", "a", "2")) // overwrite without TAGS: a leaves t1 and t2
	if n := must(c.Do(ctx, "TAGINVALIDATE", "t1", "t2")); n != int64(1) {
		t.Fatalf("TAGINVALIDATE after overwrite = %v, want 1 (only b)", n)
	}
	if v := must(c.Do(ctx, "GET", "a")); v != "2" {
		t.Fatalf("a = %v", v)
	}
	if v := must(c.Do(ctx, "SET", "a", "3", "GET", "TAGS", "t3")); v != "2" {
		t.Fatalf("SET GET TAGS = %v", v)
	}
	if v := must(c.Do(ctx, "SET", "a", "4", "NX", "TAGS", "t4")); v != nil {
		t.Fatalf("SET NX on an existing key = %v", v)
	}
	if n := must(c.Do(ctx, "TAGINVALIDATE", "t4")); n != int64(0) {
		t.Fatalf("a refused SET NX must not tag: %v", n)
	}
	must(c.Do(ctx, "INCR", "counter"))
	must(c.Do(ctx, "SET", "counter", "10", "KEEPTTL", "TAGS", "t3", "t3"))
	must(c.Do(ctx, "INCR", "counter")) // a modification keeps the tags
	must(c.Do(ctx, "EXPIRE", "counter", "100"))
	if n := must(c.Do(ctx, "TAGINVALIDATE", "t3")); n != int64(2) {
		t.Fatalf("TAGINVALIDATE t3 = %v, want 2", n)
	}
	must(c.Do(ctx, "SET", "f1", "1", "TAGS", "flushed"))
	must(c.Do(ctx, "FLUSHALL"))
	must(c.Do(ctx, "SET", "f2", "1"))
	if n := must(c.Do(ctx, "TAGINVALIDATE", "flushed")); n != int64(0) {
		t.Fatalf("TAGINVALIDATE after FLUSHALL = %v, want 0", n)
	}
	if err := c.Do(ctx, "SET", "a", "1", "TAGS").Err(); err == nil || err.Error() != "ERR syntax error" {
		t.Fatalf("SET … TAGS without a tag: %v", err)
	}
	if err := c.Do(ctx, "TAGINVALIDATE").Err(); err == nil || err.Error() != "ERR wrong number of arguments for 'taginvalidate' command" {
		t.Fatalf("TAGINVALIDATE without a tag: %v", err)
	}
}

// statsMap reads STATS through go-redis in whatever protocol c speaks.
func statsMap(t *testing.T, c *redis.Client) map[string]int64 {
	t.Helper()
	v, err := c.Do(ctx, "STATS").Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	switch v := v.(type) {
	case map[any]any: // RESP3 map
		for k, val := range v {
			out[k.(string)] = val.(int64)
		}
	case []any: // RESP2 flat array
		for i := 0; i+1 < len(v); i += 2 {
			out[v[i].(string)] = v[i+1].(int64)
		}
	default:
		t.Fatalf("STATS reply %T", v)
	}
	return out
}

var statsOrder = []string{"hits", "misses", "writes", "deletes", "evictions", "expirations",
	"tag_invalidations", "fetch_locks", "fetch_waits", "fetch_timeouts", "l1_hits", "l1_misses", "forwards"}

// TestStats checks STATS in RESP2 (flat array in the documented order) and RESP3 (map), that
// the counters move with commands, and that stats_enabled=false counts nothing.
func TestStats(t *testing.T) {
	for _, proto := range []int{2, 3} {
		t.Run(fmt.Sprintf("resp%d", proto), func(t *testing.T) {
			c := client(t, testnode.Config(), proto)
			c.Set(ctx, "a", "1", 0)
			c.Set(ctx, "b", "1", 0)
			c.Get(ctx, "a")
			c.Get(ctx, "a")
			c.Get(ctx, "nope")
			c.MGet(ctx, "a", "b", "nope")
			c.Del(ctx, "a", "nope")
			c.Do(ctx, "SET", "t", "1", "TAGS", "x")
			c.Do(ctx, "TAGINVALIDATE", "x")
			want := map[string]int64{"hits": 4, "misses": 2, "writes": 3, "deletes": 1, "tag_invalidations": 1}
			got := statsMap(t, c)
			for name, n := range want {
				if got[name] != n {
					t.Errorf("%s = %d, want %d (all: %v)", name, got[name], n, got)
				}
			}
			if len(got) != len(statsOrder) {
				t.Errorf("STATS has %d fields, want %d", len(got), len(statsOrder))
			}
			if proto == 2 {
				flat, err := c.Do(ctx, "STATS").Slice()
				if err != nil {
					t.Fatal(err)
				}
				for i, name := range statsOrder {
					if flat[2*i] != name {
						t.Fatalf("field %d = %v, want %s", i, flat[2*i], name)
					}
				}
			}
			if err := c.Do(ctx, "STATS", "x").Err(); err == nil || err.Error() != "ERR wrong number of arguments for 'stats' command" {
				t.Fatalf("STATS x: %v", err)
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		cfg := testnode.Config()
		cfg.StatsEnabled = false
		c := client(t, cfg, 3)
		c.Set(ctx, "a", "1", 0)
		c.Get(ctx, "a")
		c.Get(ctx, "b")
		c.Set(ctx, "e", "1", time.Millisecond)
		time.Sleep(5 * time.Millisecond)
		c.Get(ctx, "e")
		for name, n := range statsMap(t, c) {
			if n != 0 {
				t.Errorf("stats disabled but %s = %d", name, n)
			}
		}
	})
}

// TestInfoAndDBSize checks INFO's keyspace, stats and memory fields against what happened, and
// that DBSIZE never counts an expired key.
func TestInfoAndDBSize(t *testing.T) {
	cfg := testnode.Config()
	cfg.SweepInterval = 0 // expiry only on access, so the counts below are exact
	c := client(t, cfg, 2)
	for i := 0; i < 10; i++ {
		c.Set(ctx, fmt.Sprintf("p%d", i), "v", 0)
	}
	for i := 0; i < 5; i++ {
		c.Set(ctx, fmt.Sprintf("t%d", i), "v", time.Hour)
	}
	for i := 0; i < 4; i++ {
		c.Set(ctx, fmt.Sprintf("e%d", i), "v", 10*time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond)
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 15 {
		t.Fatalf("DBSIZE = %d, %v; want 15 (expired keys not counted)", n, err)
	}
	info, err := c.Info(ctx, "keyspace").Result()
	if err != nil || !strings.Contains(info, "db0:keys=15,expires=5,") {
		t.Fatalf("keyspace:\n%s (%v)", info, err)
	}
	// avg_ttl: the mean remaining TTL in ms of the five keys that expire in an hour.
	_, avg, _ := strings.Cut(info, "avg_ttl=")
	if ms, err := strconv.ParseInt(strings.TrimSpace(avg), 10, 64); err != nil || ms <= 3_500_000 || ms > 3_600_000 {
		t.Fatalf("avg_ttl = %q (%v), want just under 3600000", avg, err)
	}
	c.Get(ctx, "e0")
	c.Get(ctx, "e1")
	fields := infoFields(t, c, "stats")
	if fields["expired_keys"] != "2" || fields["keyspace_misses"] != "2" || fields["evicted_keys"] != "0" {
		t.Fatalf("stats: expired_keys=%s keyspace_misses=%s evicted_keys=%s",
			fields["expired_keys"], fields["keyspace_misses"], fields["evicted_keys"])
	}
	mem := infoFields(t, c, "memory")
	if used, _ := strconv.Atoi(mem["used_memory"]); used <= 0 {
		t.Fatalf("used_memory = %q", mem["used_memory"])
	}
	if ds, _ := strconv.Atoi(mem["used_memory_dataset"]); ds <= 0 {
		t.Fatalf("used_memory_dataset = %q", mem["used_memory_dataset"])
	}
	vela := infoFields(t, c, "vela")
	if vela["store"] != "memory" || vela["eviction_policy"] != "ttl_only" || vela["hits"] != "0" || vela["misses"] != "2" {
		t.Fatalf("vela section: %v", vela)
	}
}

func infoFields(t *testing.T, c *redis.Client, section string) map[string]string {
	t.Helper()
	info, err := c.Info(ctx, section).Result()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out
}

// TestOOM checks the ttl_only policy through a client: Redis's exact OOM text at the bound,
// while overwrites that do not grow the store still succeed.
func TestOOM(t *testing.T) {
	cfg := testnode.Config()
	cfg.MaxSize = 100
	c := client(t, cfg, 3)
	for i := 0; i < 100; i++ {
		if err := c.Set(ctx, fmt.Sprintf("k%d", i), "v", 0).Err(); err != nil {
			t.Fatalf("SET k%d: %v", i, err)
		}
	}
	const oom = "OOM command not allowed when used memory > 'maxmemory'."
	if err := c.Set(ctx, "one-too-many", "v", 0).Err(); err == nil || err.Error() != oom {
		t.Fatalf("SET beyond max_size: %v", err)
	}
	if err := c.MSet(ctx, "x1", "v", "x2", "v").Err(); err == nil || err.Error() != oom {
		t.Fatalf("MSET beyond max_size: %v", err)
	}
	if err := c.Set(ctx, "k5", "an update that fits", 0).Err(); err != nil {
		t.Fatalf("update at the bound: %v", err)
	}
	if err := c.Incr(ctx, "k6").Err(); err == nil || !strings.HasPrefix(err.Error(), "ERR value is not an integer") {
		t.Fatalf("INCR: %v", err)
	}
	c.Del(ctx, "k7")
	if err := c.Set(ctx, "one-too-many", "v", 0).Err(); err != nil {
		t.Fatalf("SET after a DEL made room: %v", err)
	}
	if n, _ := c.DBSize(ctx).Result(); n != 100 {
		t.Fatalf("DBSIZE = %d", n)
	}
}

// TestInfoRedisSections checks the sections of INFO that health checks and dashboards read,
// in Redis's order, and the CONFIG GET parameters tools ask for.
func TestInfoRedisSections(t *testing.T) {
	cfg := testnode.Config()
	cfg.LogLevel = "warn"
	c := client(t, cfg, 2)
	info, err := c.Info(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var headers []string
	for _, line := range strings.Split(info, "\r\n") {
		if strings.HasPrefix(line, "# ") {
			headers = append(headers, line[2:])
		}
	}
	want := "Server Clients Memory Persistence Stats Replication Cpu Errorstats Cluster Keyspace Vela"
	if got := strings.Join(headers, " "); got != want {
		t.Fatalf("INFO sections: %s, want %s", got, want)
	}
	if f := infoFields(t, c, "replication"); f["role"] != "master" || f["connected_slaves"] != "0" || len(f["master_replid"]) != 40 {
		t.Fatalf("replication: %v", f)
	}
	if f := infoFields(t, c, "persistence"); f["loading"] != "0" {
		t.Fatalf("persistence: %v", f)
	}
	if f := infoFields(t, c, "cluster"); f["cluster_enabled"] != "0" {
		t.Fatalf("cluster: %v", f)
	}
	// Linux splits a process's run time between user and system by where its clock ticks
	// landed: a young process may show all of it as system time. Their sum is never 0.
	cpu := infoFields(t, c, "cpu")
	user, err1 := strconv.ParseFloat(cpu["used_cpu_user"], 64)
	sys, err2 := strconv.ParseFloat(cpu["used_cpu_sys"], 64)
	if err1 != nil || err2 != nil || user < 0 || sys < 0 || user+sys <= 0 {
		t.Fatalf("used_cpu_user = %v (%v), used_cpu_sys = %v (%v)", user, err1, sys, err2)
	}
	got, err := c.ConfigGet(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]string{"bind": "127.0.0.1", "port": "0", "loglevel": "warning", "cluster-enabled": "no",
		"maxmemory-samples": "5", "notify-keyspace-events": ""} {
		if gv, ok := got[name]; !ok || gv != v {
			t.Errorf("CONFIG GET %s = %q, want %q", name, got[name], v)
		}
	}
}
