package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/redisstore"
	"github.com/vela-cache/vela/store/storetest"
)

// The subtests of TestCluster (node_test.go), each on a freshly flushed three-master cluster.

// client returns a go-redis cluster client on rc, to write behind Vela's back.
func (rc *redisCluster) client(t *testing.T) *redis.ClusterClient {
	t.Helper()
	var addrs []string
	for _, m := range rc.masters {
		addrs = append(addrs, m.Options().Addr)
	}
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// clusterCommands: single-key commands route to their owners, MSET works within one slot, DBSIZE
// and FLUSHDB span the masters, tags work, and bookkeeping names are refused as user keys.
func clusterCommands(t *testing.T, rc *redisCluster) {
	s := open(t, rc.url)
	ctx := context.Background()
	far := time.Now().Add(time.Hour).UnixMilli()
	for i := range 30 {
		k := []byte(fmt.Sprintf("key:%d", i))
		if _, err := s.Do(ctx, k, store.Op{Kind: store.Set, Value: k, TTL: store.TTLSet, ExpireAt: far}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		k := []byte(fmt.Sprintf("key:%d", i))
		res, err := s.Do(ctx, k, store.Op{Kind: store.Get})
		if err != nil || string(res.Value) != string(k) {
			t.Fatalf("get %s = %q %v", k, res.Value, err)
		}
	}
	if res, err := s.Do(ctx, []byte("n"), store.Op{Kind: store.IncrBy, Delta: 2, ExpireAt: far}); err != nil || res.Int != 2 {
		t.Fatalf("incr: %v %v", res, err)
	}
	if ok, err := s.SetMulti(ctx, []store.KV{{Key: []byte("{u}a"), Value: []byte("1")}, {Key: []byte("{u}b"), Value: []byte("2")}}, 0, true); err != nil || !ok {
		t.Fatalf("msetnx in one slot: %v %v", ok, err)
	}
	if res, err := s.Do(ctx, []byte("t"), store.Op{Kind: store.Set, Value: []byte("v"), Tags: [][]byte{[]byte("x")}}); err != nil || !res.Done {
		t.Fatalf("tagged set on a cluster: %+v %v", res, err)
	}
	if n, err := s.Len(ctx); err != nil || n != 34 {
		t.Fatalf("len over the masters = %d %v, want 34", n, err)
	}
	if _, book := rc.rawKeys(t); len(book) == 0 {
		t.Fatal("no bookkeeping keys on the masters after a tagged SET: the count above proved nothing")
	}
	if n, err := s.Expires(ctx); err != nil || n != 31 {
		t.Fatalf("expires over the masters = %d %v, want 31", n, err)
	}
	for _, k := range []string{"__vela:x", "__vela:{0}:r"} {
		if _, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Get}); !errors.Is(err, redisstore.ErrReservedKey) {
			t.Fatalf("GET %s: %v, want ErrReservedKey", k, err)
		}
	}
	if _, err := s.SetMulti(ctx, []store.KV{{Key: []byte("__vela:y"), Value: []byte("1")}}, 0, false); !errors.Is(err, redisstore.ErrReservedKey) {
		t.Fatalf("MSET __vela:y: %v", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Len(ctx); n != 0 {
		t.Fatalf("len after flush = %d", n)
	}
	if user, book := rc.rawKeys(t); len(user)+len(book) != 0 {
		t.Fatalf("left after flush: %v %v", user, book)
	}
}

// clusterKeySlot compares the store's slot computation with Redis's CLUSTER KEYSLOT, and checks
// that every slot's tag puts bookkeeping keys in that slot.
func clusterKeySlot(t *testing.T, rc *redisCluster) {
	s := open(t, rc.url)
	ctx := context.Background()
	r := rc.masters[0]
	keys := []string{"", "a", "key:1", "123456789", "{user}:1", "{user}:2", "foo{}bar", "{}", "{}{x}",
		"a{b}c{d}", "}{x}", "{x", "x}", "{{x}}", "a{}b}", "\x00\xff{\r\n}", "{\x00}"}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			b[i] = "ab{}\x00\xff"[rng.IntN(6)]
		}
		keys = append(keys, string(b))
	}
	for _, k := range keys {
		want, err := r.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got := redisstore.KeySlot(k); int64(got) != want {
			t.Fatalf("slot of %q = %d, Redis says %d", k, got, want)
		}
	}
	for slot := range uint16(16384) {
		tag := s.SlotTag(slot)
		if tag == "" || strings.ContainsAny(tag, "{}") {
			t.Fatalf("slot %d: tag %q", slot, tag)
		}
		if got := redisstore.KeySlot("__vela:{" + tag + "}:t:any{thing}"); got != slot {
			t.Fatalf("slot %d: a key tagged %q lands in %d", slot, tag, got)
		}
	}
	for _, slot := range []uint16{0, 1, 5460, 5461, 10922, 10923, 16383} {
		if got := r.ClusterKeySlot(ctx, "__vela:{"+s.SlotTag(slot)+"}:l").Val(); got != int64(slot) {
			t.Fatalf("Redis puts slot %d's bookkeeping in %d", slot, got)
		}
	}
}

// unpipelined is the store with everything but Start: on Redis Cluster, go-redis's pool carries
// every call and Start always declines, which the conformance suite's Pipelined test does not
// expect of a store.Pipeliner.
type unpipelined struct {
	store.Store
	store.Keyspace
	store.MultiSetter
	store.Sweeper
	store.Tagger
	store.Sizer
	store.Describer
}

// clusterConformance runs the store conformance suite on Redis Cluster.
func clusterConformance(t *testing.T, rc *redisCluster) {
	storetest.Run(t, func(t *testing.T) store.Store {
		rc.flush(t)
		s := open(t, rc.url)
		return unpipelined{s, s, s, s, s, s, s}
	})
}

// clusterTwoNodesShareTags runs two Vela nodes on the cluster: keys tagged through one, spread
// over the three masters, are invalidated through the other with the right counts; SCAN, KEYS and
// DBSIZE through either show the user keys only, while the bookkeeping sits beside them on the
// masters; and once every tag is invalidated no bookkeeping is left.
func clusterTwoNodesShareTags(t *testing.T, rc *redisCluster) {
	_, a := startNode(t, rc.url)
	_, b := startNode(t, rc.url)
	ctx := context.Background()
	const n = 30
	for i := range n {
		if err := a.Do(ctx, "set", fmt.Sprintf("user:%d", i), "v", "ex", 100, "tags", "users", fmt.Sprintf("team:%d", i%3)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for i, m := range rc.masters {
		if keys := m.Keys(ctx, "user:*").Val(); len(keys) == 0 {
			t.Fatalf("master %d holds none of the %d keys", i, n)
		}
	}
	if err := b.Set(ctx, "user:0", "plain", 0).Err(); err != nil { // no longer tagged
		t.Fatal(err)
	}
	if err := b.Do(ctx, "set", "user:1", "v2", "tags", "other").Err(); err != nil { // re-tagged
		t.Fatal(err)
	}

	user, book := rc.rawKeys(t)
	if len(user) != n || len(book) == 0 {
		t.Fatalf("masters hold %d user keys and %d bookkeeping keys, want %d and some", len(user), len(book), n)
	}
	for name, c := range map[string]*redis.Client{"a": a, "b": b} {
		if got := c.DBSize(ctx).Val(); got != n {
			t.Fatalf("DBSIZE through %s = %d, want %d", name, got, n)
		}
		keys, err := c.Keys(ctx, "*").Result()
		slices.Sort(keys)
		if err != nil || !slices.Equal(keys, user) {
			t.Fatalf("KEYS * through %s = %d keys %v, want the %d user keys", name, len(keys), err, n)
		}
		var scanned []string
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, "", 4).Result()
			if err != nil {
				t.Fatal(err)
			}
			scanned = append(scanned, keys...)
			if cursor = next; cursor == 0 {
				break
			}
		}
		slices.Sort(scanned)
		if scanned = slices.Compact(scanned); !slices.Equal(scanned, user) {
			t.Fatalf("SCAN COUNT 4 through %s = %v, want the %d user keys", name, scanned, n)
		}
		if keys := c.Keys(ctx, "__vela*").Val(); len(keys) != 0 {
			t.Fatalf("KEYS __vela* through %s = %v", name, keys)
		}
	}

	invalidate := func(c *redis.Client, tag string, want int64) {
		t.Helper()
		if got, err := tagInvalidate(ctx, c, tag); err != nil || got != want {
			t.Fatalf("TAGINVALIDATE %s = %d %v, want %d", tag, got, err, want)
		}
	}
	invalidate(b, "team:0", 9) // user:3, 6 … 27 (user:0 was overwritten without tags)
	for i := 3; i < n; i += 3 {
		if err := a.Get(ctx, fmt.Sprintf("user:%d", i)).Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("user:%d after invalidation through the other node: %v", i, err)
		}
	}
	invalidate(a, "users", 19) // i%3 != 0, but user:1 (re-tagged)
	invalidate(a, "users", 0)
	invalidate(b, "other", 1)
	invalidate(b, "team:1", 0)
	invalidate(b, "team:2", 0)
	if keys := a.Keys(ctx, "*").Val(); !slices.Equal(keys, []string{"user:0"}) {
		t.Fatalf("left: %v", keys)
	}
	if user, book := rc.rawKeys(t); len(user) != 1 || len(book) != 0 {
		t.Fatalf("after invalidating every tag the masters hold %v and bookkeeping %v", user, book)
	}
}

// clusterTagsNeverOrphaned ends tagged keys' lives every way there is — through Vela, through
// Redis directly, by expiry — and checks that after a sweep the bookkeeping names exactly the key
// that still carries its tag, and after its invalidation nothing.
func clusterTagsNeverOrphaned(t *testing.T, rc *redisCluster) {
	s := open(t, rc.url)
	direct := rc.client(t)
	ctx := context.Background()
	tag := endTaggedLives(t, s, direct)
	slotKey := func(key, suffix string) string {
		return "__vela:{" + s.SlotTag(redisstore.KeySlot(key)) + "}:" + suffix
	}
	tagHash := slotKey("t", "t:t")
	if members := direct.HKeys(ctx, tagHash).Val(); !slices.Equal(members, []string{"kept"}) {
		t.Fatalf("tag hash after sweep = %v, want [kept]", members)
	}
	want := []string{tagHash, slotKey("t", "i"), slotKey("kept", "r"), slotKey("kept", "i")}
	slices.Sort(want)
	if _, book := rc.rawKeys(t); !slices.Equal(slices.Compact(want), book) {
		t.Fatalf("bookkeeping after sweep = %v, want %v", book, want)
	}
	if keys, err := s.InvalidateTags(ctx, tag); err != nil || len(keys) != 1 || string(keys[0]) != "kept" {
		t.Fatalf("invalidate = %q %v, want [kept]", keys, err)
	}
	if _, book := rc.rawKeys(t); len(book) != 0 {
		t.Fatalf("bookkeeping left after the invalidation: %v", book)
	}
}

// clusterCrashedTagWrites leaves what a node that dies between the steps of SET … TAGS leaves
// (pending writes and tag entries no record confirms) and checks that TAGINVALIDATE does not
// count them, that the sweep keeps them while they are younger than the grace period (the write
// may still finish) and removes them after it, and that a writer the sweep gave up on starts over
// and ends up tagged.
func clusterCrashedTagWrites(t *testing.T, rc *redisCluster) {
	s := open(t, rc.url)
	direct := rc.client(t)
	ctx := context.Background()
	tags := func(ts ...string) [][]byte {
		var out [][]byte
		for _, x := range ts {
			out = append(out, []byte(x))
		}
		return out
	}
	hashOf := func(tag string) []string {
		t.Helper()
		keys := direct.HKeys(ctx, "__vela:{"+s.SlotTag(redisstore.KeySlot(tag))+"}:t:"+tag).Val()
		slices.Sort(keys)
		return keys
	}
	if _, err := s.Do(ctx, []byte("live"), store.Op{Kind: store.Set, Value: []byte("v"), Tags: tags("t")}); err != nil {
		t.Fatal(err)
	}
	for _, crash := range []struct {
		key  string
		tags []string
	}{{"live", []string{"t", "t2"}}, {"ghost", []string{"t"}}, {"slow", []string{"t3"}}} {
		if err := s.BeginTagWrite(ctx, crash.key, crash.tags...); err != nil {
			t.Fatal(err)
		}
	}
	if keys, err := s.InvalidateTags(ctx, tags("t")); err != nil || len(keys) != 1 || string(keys[0]) != "live" {
		t.Fatalf("invalidate t = %q %v, want [live]", keys, err)
	}
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	// The writes may still finish: their entries stay.
	if got := hashOf("t"); !slices.Equal(got, []string{"ghost", "live"}) {
		t.Fatalf("t's hash after a sweep within the grace period = %v", got)
	}
	if got := hashOf("t3"); !slices.Equal(got, []string{"slow"}) {
		t.Fatalf("t3's hash after a sweep within the grace period = %v", got)
	}
	s.SetPendingGrace(0)
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, book := rc.rawKeys(t); len(book) != 0 {
		t.Fatalf("bookkeeping after the sweep past the grace period = %v", book)
	}
	// A writer slower than the grace period: the sweep gives its write up between its steps, and
	// it starts over.
	attempts := 0
	s.AfterTagBegin(func() {
		if attempts++; attempts == 1 {
			if _, err := s.Sweep(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	if res, err := s.Do(ctx, []byte("ghost"), store.Op{Kind: store.Set, Value: []byte("v"), Tags: tags("t3")}); err != nil || !res.Done {
		t.Fatalf("tagged SET given up once: %+v %v", res, err)
	}
	s.AfterTagBegin(nil)
	if attempts != 2 {
		t.Fatalf("the tagged SET took %d attempts, want 2", attempts)
	}
	if keys, err := s.InvalidateTags(ctx, tags("t", "t2", "t3")); err != nil || len(keys) != 1 || string(keys[0]) != "ghost" {
		t.Fatalf("invalidate = %q %v, want [ghost]", keys, err)
	}
	if _, book := rc.rawKeys(t); len(book) != 0 {
		t.Fatalf("bookkeeping left: %v", book)
	}
}

// clusterTagInterleavings runs the two interleavings of a tagged write and a TAGINVALIDATE on
// other nodes that could lose a tag entry, each forced with a hook, and checks that the key
// written ends up invalidated by its tag.
func clusterTagInterleavings(t *testing.T, rc *redisCluster) {
	s1, s2 := open(t, rc.url), open(t, rc.url)
	ctx := context.Background()
	tag := [][]byte{[]byte("t")}
	set := func(s *redisstore.Store, k, v string, tags [][]byte) {
		t.Helper()
		if res, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Set, Value: []byte(v), Tags: tags}); err != nil || !res.Done {
			t.Fatalf("SET %s: %+v %v", k, res, err)
		}
	}
	invalidate := func(s *redisstore.Store, want ...string) {
		t.Helper()
		keys, err := s.InvalidateTags(ctx, tag)
		var got []string
		for _, k := range keys {
			got = append(got, string(k))
		}
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("invalidate t = %q %v, want %q", got, err, want)
		}
	}

	// An invalidation between the steps of a write: it deletes the old value, and the write,
	// which completes after it, stays tagged.
	set(s1, "k1", "old", tag)
	s1.AfterTagBegin(func() { invalidate(s2, "k1") })
	set(s1, "k1", "new", tag)
	s1.AfterTagBegin(nil)
	invalidate(s2, "k1")

	// A write between an invalidation's check (which found the entry stale) and its removal of
	// the entry: the write's entry survives the removal.
	set(s1, "k2", "old", tag)
	set(s1, "k2", "plain", nil) // the entry is stale now
	s1.AfterTagCheck(func() { set(s2, "k2", "new", tag) })
	invalidate(s1)
	s1.AfterTagCheck(nil)
	invalidate(s2, "k2")
	if _, book := rc.rawKeys(t); len(book) != 0 {
		t.Fatalf("bookkeeping left: %v", book)
	}
}

// clusterConcurrentTagging runs tagged writes, invalidations, deletes and plain writes at once
// through two stores on the cluster, then checks that no tagged key escaped its tags (after
// invalidating every tag, no key written with tags is left), that DBSIZE and SCAN agree with the
// masters' user keys meanwhile, and that no bookkeeping is left at the end.
func clusterConcurrentTagging(t *testing.T, rc *redisCluster) {
	stores := []*redisstore.Store{open(t, rc.url), open(t, rc.url)}
	ctx := context.Background()
	allTags := []string{"t0", "t1", "t2", "t3"}
	const keys, ops = 40, 150
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	run := func(seed uint64, fn func(s *redisstore.Store, rng *rand.Rand) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 7))
			for i := range ops {
				if err := fn(stores[i%2], rng); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for w := range 4 { // tagged writers
		run(uint64(w), func(s *redisstore.Store, rng *rand.Rand) error {
			var tags [][]byte
			for _, tg := range allTags {
				if rng.IntN(2) == 0 || tags == nil && tg == "t3" {
					tags = append(tags, []byte(tg))
				}
			}
			k := fmt.Sprintf("tag:%d", rng.IntN(keys))
			_, err := s.Do(ctx, []byte(k), store.Op{Kind: store.Set, Value: []byte(fmt.Sprint(rng.IntN(1000))), Tags: tags})
			return err
		})
	}
	for w := range 2 { // invalidators
		run(uint64(10+w), func(s *redisstore.Store, rng *rand.Rand) error {
			_, err := s.InvalidateTags(ctx, [][]byte{[]byte(allTags[rng.IntN(len(allTags))])})
			return err
		})
	}
	run(20, func(s *redisstore.Store, rng *rand.Rand) error { // deletes and plain writes
		var err error
		if rng.IntN(2) == 0 {
			_, err = s.Do(ctx, []byte(fmt.Sprintf("tag:%d", rng.IntN(keys))), store.Op{Kind: store.Delete})
		} else {
			_, err = s.Do(ctx, []byte(fmt.Sprintf("plain:%d", rng.IntN(keys))), store.Op{Kind: store.Set, Value: []byte("v")})
		}
		return err
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	user, book := rc.rawKeys(t)
	if n, err := stores[0].Len(ctx); err != nil || n != int64(len(user)) {
		t.Fatalf("DBSIZE = %d %v, the masters hold %d user keys (and %d bookkeeping keys)", n, err, len(user), len(book))
	}
	var scanned []string
	var cursor uint64
	for {
		keys, next, err := stores[1].Scan(ctx, cursor, nil, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			scanned = append(scanned, string(k))
		}
		if cursor = next; cursor == 0 {
			break
		}
	}
	slices.Sort(scanned)
	if scanned = slices.Compact(scanned); !slices.Equal(scanned, user) {
		t.Fatalf("SCAN = %d keys, the masters hold %d user keys", len(scanned), len(user))
	}
	tagged := 0
	for _, k := range user {
		if strings.HasPrefix(k, "tag:") {
			tagged++
		}
	}
	all := make([][]byte, len(allTags))
	for i, tg := range allTags {
		all[i] = []byte(tg)
	}
	deleted, err := stores[1].InvalidateTags(ctx, all)
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != tagged {
		t.Fatalf("invalidating every tag deleted %d keys, %d tagged keys were live", len(deleted), tagged)
	}
	user, book = rc.rawKeys(t)
	for _, k := range user {
		if strings.HasPrefix(k, "tag:") {
			t.Fatalf("%s, written only with tags, survived the invalidation of every tag: orphaned", k)
		}
	}
	if len(book) != 0 {
		t.Fatalf("bookkeeping left: %v", book)
	}
	t.Logf("%d live tagged keys at the end", tagged)
}

// BenchmarkCluster measures the store's calls on a three-master Redis Cluster, one at a time:
// a plain SET, SET … TAGS (three steps), TAGINVALIDATE of a tag with one key, and DBSIZE (which
// counts the bookkeeping keys of every slot) with 10,000 user keys.
func BenchmarkCluster(b *testing.B) {
	rc := startCluster(b)
	s := open(b, rc.url)
	ctx := context.Background()
	tags := [][]byte{[]byte("a"), []byte("b")}
	b.Run("Set", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Do(ctx, []byte(fmt.Sprintf("k%d", i%10000)), store.Op{Kind: store.Set, Value: []byte("v")}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SetTwoTags", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := s.Do(ctx, []byte(fmt.Sprintf("k%d", i%10000)), store.Op{Kind: store.Set, Value: []byte("v"), Tags: tags}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("SetAndInvalidate", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			k := []byte(fmt.Sprintf("inv%d", i))
			tag := [][]byte{k}
			if _, err := s.Do(ctx, k, store.Op{Kind: store.Set, Value: []byte("v"), Tags: tag}); err != nil {
				b.Fatal(err)
			}
			if keys, err := s.InvalidateTags(ctx, tag); err != nil || len(keys) != 1 {
				b.Fatal(keys, err)
			}
		}
	})
	b.Run("DBSize", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Len(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}
