package redisstore_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	cryptorand "crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/testnode"
	"github.com/vela-cache/vela/server"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/redisstore"
)

// startNode runs an in-process Vela node on the redis store at url.
func startNode(t *testing.T, url string) (*server.Server, *redis.Client) {
	t.Helper()
	cfg := testnode.Config()
	cfg.Store.Type = "redis"
	cfg.Store.RedisURL = url
	srv := testnode.Start(t, cfg)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, ReadTimeout: 10 * time.Second})
	t.Cleanup(func() { _ = c.Close() })
	return srv, c
}

// TestTwoNodesShareTags runs two Vela nodes on one Redis: keys tagged through one are invalidated
// through the other, overwrites through either drop the old tags, and the tag bookkeeping never
// shows up as user keys.
func TestTwoNodesShareTags(t *testing.T) {
	r := redistest.Start(t)
	url := "redis://" + r.Addr + "/0"
	_, a := startNode(t, url)
	_, b := startNode(t, url)
	direct := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer direct.Close()
	ctx := context.Background()

	for i := range 10 {
		if err := a.Do(ctx, "set", fmt.Sprintf("user:%d", i), "v", "ex", 100, "tags", "users", fmt.Sprintf("team:%d", i%2)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	// Overwritten through b without tags: no longer under "users".
	if err := b.Set(ctx, "user:0", "plain", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// Re-tagged through b.
	if err := b.Do(ctx, "set", "user:1", "v2", "tags", "other").Err(); err != nil {
		t.Fatal(err)
	}
	// Only user keys are visible.
	if n := b.DBSize(ctx).Val(); n != 10 {
		t.Fatalf("DBSIZE through b = %d, want 10", n)
	}
	keys, err := a.Keys(ctx, "*").Result()
	if err != nil || len(keys) != 10 {
		t.Fatalf("KEYS * through a = %v %v", keys, err)
	}
	if keys, _ := direct.Keys(ctx, "*").Result(); len(keys) != 10 {
		t.Fatalf("KEYS * on Redis db 0 = %v (bookkeeping must stay out)", keys)
	}

	n, err := tagInvalidate(ctx, b, "team:0")
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 { // user:2,4,6,8 (user:0 was overwritten without tags)
		t.Fatalf("TAGINVALIDATE team:0 through b = %d, want 4", n)
	}
	for _, k := range []string{"user:2", "user:4", "user:6", "user:8"} {
		if err := a.Get(ctx, k).Err(); !errors.Is(err, redis.Nil) {
			t.Fatalf("%s after invalidation through the other node: %v", k, err)
		}
	}
	if v := a.Get(ctx, "user:0").Val(); v != "plain" {
		t.Fatalf("user:0 = %q", v)
	}
	if n, _ := tagInvalidate(ctx, a, "users"); n != 4 { // user:3,5,7,9
		t.Fatalf("TAGINVALIDATE users through a = %v, want 4", n)
	}
	if n, _ := tagInvalidate(ctx, a, "other"); n != 1 {
		t.Fatalf("TAGINVALIDATE other = %v, want 1", n)
	}
	if keys := a.Keys(ctx, "*").Val(); !slices.Equal(keys, []string{"user:0"}) {
		t.Fatalf("left: %v", keys)
	}
}

// tagInvalidate sends TAGINVALIDATE through c and returns the count it replies.
func tagInvalidate(ctx context.Context, c *redis.Client, tags ...string) (int64, error) {
	args := []any{"taginvalidate"}
	for _, t := range tags {
		args = append(args, t)
	}
	return c.Do(ctx, args...).Int64()
}

// TestTagsNeverOrphaned writes tagged keys and ends their life every way there is — through
// Vela, through Redis directly, by expiry — and checks that after a sweep no tag set in the meta
// database names a key that does not carry the tag.
func TestTagsNeverOrphaned(t *testing.T) {
	r := redistest.Start(t)
	s := open(t, "redis://"+r.Addr+"/0")
	direct := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer direct.Close()
	meta := redis.NewClient(&redis.Options{Addr: r.Addr, DB: 15})
	defer meta.Close()
	ctx := context.Background()
	tag := endTaggedLives(t, s, direct)
	members := meta.SMembers(ctx, "t:t").Val()
	slices.Sort(members)
	if !slices.Equal(members, []string{"kept"}) {
		t.Fatalf("tag set after sweep = %v", members)
	}
	if recs := meta.Keys(ctx, "[kf]:*").Val(); len(recs) != 2 { // k:kept and f:kept
		t.Fatalf("tag records after sweep: %v", recs)
	}
	keys, err := s.InvalidateTags(ctx, tag)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || string(keys[0]) != "kept" {
		t.Fatalf("invalidate = %q, want [kept]", keys)
	}
	if n := meta.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("meta database still holds %d keys: %v", n, meta.Keys(ctx, "*").Val())
	}
}

// endTaggedLives tags keys with "t" and ends their tags every way there is — through Vela
// (delete, expiry, a write without TAGS), through Redis directly (DEL, a new value), by expiry —
// except for "kept", then lets the expiries pass and sweeps. It returns the tag.
func endTaggedLives(t *testing.T, s *redisstore.Store, direct redis.Cmdable) [][]byte {
	t.Helper()
	ctx := context.Background()
	tag := [][]byte{[]byte("t")}
	set := func(k string, op store.Op) {
		t.Helper()
		if _, err := s.Do(ctx, []byte(k), op); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UnixMilli()
	set("expires", store.Op{Kind: store.Set, Value: []byte("v"), TTL: store.TTLSet, ExpireAt: now + 100, Tags: tag})
	set("expire-later", store.Op{Kind: store.Set, Value: []byte("v"), Tags: tag})
	set("expire-later", store.Op{Kind: store.Expire, ExpireAt: now + 100})
	set("deleted", store.Op{Kind: store.Set, Value: []byte("v"), Tags: tag})
	set("deleted", store.Op{Kind: store.Delete})
	set("direct-del", store.Op{Kind: store.Set, Value: []byte("v"), Tags: tag})
	set("direct-set", store.Op{Kind: store.Set, Value: []byte("v"), Tags: tag})
	set("incr", store.Op{Kind: store.Set, Value: []byte("1"), Tags: tag})
	set("incr", store.Op{Kind: store.Set, Value: []byte("5")}) // tags end…
	set("incr", store.Op{Kind: store.IncrBy, Delta: 1})        // …and stay ended
	set("kept", store.Op{Kind: store.Set, Value: []byte("1"), Tags: tag})
	set("kept", store.Op{Kind: store.IncrBy, Delta: 1}) // keeps its tags
	direct.Del(ctx, "direct-del")
	direct.Set(ctx, "direct-set", "behind Vela's back", 0) // a new value ends the tags
	time.Sleep(250 * time.Millisecond)
	// The tag record of a key deleted behind Vela's back lingers until the sweep.
	if _, err := s.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	return tag
}

// TestCoalescedGets blocks Redis with DEBUG SLEEP, fires concurrent GETs of one key through the
// store, and counts the GETs Redis served: they must share one call.
func TestCoalescedGets(t *testing.T) {
	r := redistest.Start(t, "--enable-debug-command", "yes")
	s := open(t, "redis://"+r.Addr+"/0")
	direct := redis.NewClient(&redis.Options{Addr: r.Addr, ReadTimeout: 5 * time.Second})
	defer direct.Close()
	ctx := context.Background()
	direct.Set(ctx, "hot", "value", 0)
	direct.ConfigResetStat(ctx)

	sleeping := make(chan struct{})
	go func() {
		close(sleeping)
		direct.Do(ctx, "debug", "sleep", "1")
	}()
	<-sleeping
	time.Sleep(50 * time.Millisecond) // let DEBUG SLEEP reach Redis
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := s.Do(ctx, []byte("hot"), store.Op{Kind: store.Get})
			if err == nil && string(res.Value) != "value" {
				err = fmt.Errorf("got %q", res.Value)
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
	stats := direct.Info(ctx, "commandstats").Val()
	calls := -1
	for line := range strings.SplitSeq(stats, "\r\n") {
		if rest, ok := strings.CutPrefix(line, "cmdstat_get:calls="); ok {
			_, _ = fmt.Sscanf(rest, "%d", &calls)
		}
	}
	if calls < 1 || calls > 3 {
		t.Fatalf("Redis served %d GETs for %d concurrent reads of one key, want them coalesced", calls, n)
	}
	t.Logf("%d concurrent GETs -> %d Redis GET calls", n, calls)
}

// TestRedisDownAndBack stops Redis under a running node: every command fails with a clear error
// within the store's deadline, a slow Redis times out within it too, and once Redis is back the
// node serves again without a restart.
func TestRedisDownAndBack(t *testing.T) {
	r := redistest.Start(t, "--enable-debug-command", "yes")
	_, c := startNode(t, "redis://"+r.Addr+"/0")
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	const bound = 2*time.Second + 2*time.Second // the store's default deadline, plus slack for a loaded machine

	// Slow: Redis blocked for longer than the deadline.
	direct := redis.NewClient(&redis.Options{Addr: r.Addr, ReadTimeout: 10 * time.Second})
	go direct.Do(ctx, "debug", "sleep", "3")
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	err := c.Set(ctx, "k", "slow", 0).Err()
	took := time.Since(start)
	if err == nil || !strings.HasPrefix(err.Error(), "ERR redis store:") {
		t.Fatalf("SET while Redis sleeps: %v", err)
	}
	if took > bound {
		t.Fatalf("SET while Redis sleeps took %v, want at most %v", took, bound)
	}
	t.Logf("slow Redis: %q after %v", err, took.Round(time.Millisecond))
	time.Sleep(3 * time.Second) // let DEBUG SLEEP end
	_ = direct.Close()

	// Down.
	r.Stop()
	for i, cmd := range [][]any{{"get", "k"}, {"set", "k", "x"}, {"incr", "n"}, {"dbsize"}, {"set", "t", "v", "tags", "x"}} {
		start := time.Now()
		err := c.Do(ctx, cmd...).Err()
		took := time.Since(start)
		if err == nil || !strings.HasPrefix(err.Error(), "ERR redis store:") {
			t.Fatalf("%v with Redis down: %v", cmd, err)
		}
		if took > bound {
			t.Fatalf("%v with Redis down took %v, want at most %v", cmd, took, bound)
		}
		if i == 0 {
			t.Logf("Redis down: %q after %v", err, took.Round(time.Millisecond))
		}
	}

	// Back: the node recovers by itself.
	r.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Set(ctx, "k", "back", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after Redis came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v := c.Get(ctx, "k").Val(); v != "back" {
		t.Fatalf("GET after recovery = %q", v)
	}
}

// TestURLForms opens the store through the URL forms that a single redis-server can serve.
func TestURLForms(t *testing.T) {
	r := redistest.Start(t)
	for _, url := range []string{
		"redis://" + r.Addr,
		"redis://" + r.Addr + "/3",
		"redis://" + r.Addr + "/0?vela_meta_db=7&dial_timeout=2s",
	} {
		s := open(t, url)
		ctx := context.Background()
		if _, err := s.Do(ctx, []byte("k"), store.Op{Kind: store.Set, Value: []byte("v"), Tags: [][]byte{[]byte("t")}}); err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		if keys, err := s.InvalidateTags(ctx, [][]byte{[]byte("t")}); err != nil || len(keys) != 1 {
			t.Fatalf("%s: invalidate %q %v", url, keys, err)
		}
	}
	for _, bad := range []string{
		"http://" + r.Addr,
		"redis://" + r.Addr + "/15", // the default meta database
		"redis://" + r.Addr + "/0?vela_meta_db=x",
		"redis+sentinel://" + r.Addr, // no master name
		"redis+nope://" + r.Addr,
	} {
		if _, err := redisstore.Open(redisstore.Config{URL: bad}); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// TestSentinel runs a real Sentinel (redis-server --sentinel) watching a master and opens the
// store through a redis+sentinel:// URL: commands and tags reach the master.
func TestSentinel(t *testing.T) {
	master := redistest.Start(t)
	addr := redistest.StartSentinel(t, "mymaster", master)
	s := open(t, "redis+sentinel://"+addr+"/mymaster/0")
	ctx := context.Background()
	if _, err := s.Do(ctx, []byte("k"), store.Op{Kind: store.Set, Value: []byte("v"), Tags: [][]byte{[]byte("t")}}); err != nil {
		t.Fatal(err)
	}
	direct := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer direct.Close()
	if v := direct.Get(ctx, "k").Val(); v != "v" {
		t.Fatalf("master has k = %q", v)
	}
	if res, err := s.Do(ctx, []byte("k"), store.Op{Kind: store.Get}); err != nil || string(res.Value) != "v" {
		t.Fatalf("get through sentinel: %q %v", res.Value, err)
	}
	keys, err := s.InvalidateTags(ctx, [][]byte{[]byte("t")})
	if err != nil || len(keys) != 1 {
		t.Fatalf("invalidate through sentinel: %q %v", keys, err)
	}
	if n := direct.Exists(ctx, "k").Val(); n != 0 {
		t.Fatal("k survived the invalidation")
	}
}

// redisCluster is a three-master Redis Cluster of real redis-server processes on free loopback
// ports, built with redis-cli --cluster create.
type redisCluster struct {
	url     string          // redis+cluster:// URL naming every master
	masters []*redis.Client // one plain client per master, to look behind Vela's back
}

// startCluster builds a redisCluster and waits until every node reports it up.
func startCluster(t testing.TB) *redisCluster {
	t.Helper()
	var addrs []string
	for range 3 {
		r := redistest.Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
		addrs = append(addrs, r.Addr)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Skip("redis-cli not installed")
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	ctx := context.Background()
	rc := &redisCluster{url: "redis+cluster://" + strings.Join(addrs, ",")}
	for _, a := range addrs { // wait until every node agrees the cluster is up
		c := redis.NewClient(&redis.Options{Addr: a})
		t.Cleanup(func() { _ = c.Close() })
		rc.masters = append(rc.masters, c)
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(c.ClusterInfo(ctx).Val(), "cluster_state:ok") {
			if time.Now().After(deadline) {
				t.Fatalf("%s: cluster not ok", a)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return rc
}

// flush empties every master.
func (rc *redisCluster) flush(t testing.TB) {
	t.Helper()
	for _, c := range rc.masters {
		if err := c.FlushAll(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// rawKeys returns every key of every master, as KEYS * on each sees them: the user keys, and
// the bookkeeping keys (those under "__vela:"), each list sorted.
func (rc *redisCluster) rawKeys(t *testing.T) (user, book []string) {
	t.Helper()
	for _, c := range rc.masters {
		keys, err := c.Keys(context.Background(), "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if strings.HasPrefix(k, "__vela:") {
				book = append(book, k)
			} else {
				user = append(user, k)
			}
		}
	}
	slices.Sort(user)
	slices.Sort(book)
	return user, book
}

// TestCluster builds one three-master Redis Cluster and runs the store on it through a
// redis+cluster:// URL: the store's own checks, the conformance suite, and tags, SCAN and
// FETCHLOCK through several Vela nodes (cluster_test.go).
func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a Redis Cluster")
	}
	rc := startCluster(t)
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, rc *redisCluster)
	}{
		{"Commands", clusterCommands},
		{"KeySlot", clusterKeySlot},
		{"Conformance", clusterConformance},
		{"TwoNodesShareTags", clusterTwoNodesShareTags},
		{"TagsNeverOrphaned", clusterTagsNeverOrphaned},
		{"CrashedTagWrites", clusterCrashedTagWrites},
		{"TagInterleavings", clusterTagInterleavings},
		{"ConcurrentTagging", clusterConcurrentTagging},
		{"Leases", func(t *testing.T, rc *redisCluster) { leasesAcrossNodes(t, rc.url) }},
		{"WritesEndLeases", func(t *testing.T, rc *redisCluster) { writesEndLeases(t, rc.url) }},
		{"SidecarsFetchOnce", func(t *testing.T, rc *redisCluster) { sidecarsFetchOnce(t, rc.url) }},
		{"NearCache", clusterNearCache},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc.flush(t)
			tc.fn(t, rc)
		})
	}
}

// TestTLS serves Redis over TLS (a self-signed certificate made here) and opens the store with a
// rediss:// URL: both go-redis's connections and the shared pipelined ones speak TLS.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	tlsPort := redistest.FreePort(t)
	redistest.Start(t, "--tls-port", strconv.Itoa(tlsPort), "--tls-cert-file", certFile,
		"--tls-key-file", keyFile, "--tls-ca-cert-file", certFile, "--tls-auth-clients", "no")
	_, c := startNode(t, fmt.Sprintf("rediss://127.0.0.1:%d/0?skip_verify=true", tlsPort))
	ctx := context.Background()
	pipe := c.Pipeline()
	for i := range 20 {
		pipe.Set(ctx, fmt.Sprintf("k%d", i), i, 0)
		pipe.Get(ctx, fmt.Sprintf("k%d", i))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "set", "tagged", "v", "tags", "t").Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := tagInvalidate(ctx, c, "t"); err != nil || n != 1 {
		t.Fatalf("TAGINVALIDATE over TLS = %d %v", n, err)
	}
	if n := c.DBSize(ctx).Val(); n != 20 {
		t.Fatalf("DBSIZE = %d", n)
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key, PEM-encoded.
func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), cryptorand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "vela test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(cryptorand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestEventLoopPipeline drives a node on the redis store, whose clients the event loop serves,
// with many clients pipelining SETs and GETs of their own keys (each GET after a SET of its key
// that follows an earlier GET of it) and of one shared key; every other round mixes in commands
// the loop hands to a goroutine (SET … TAGS, INCR). Every reply must be the one Redis itself
// would give in that order, and the loop must have used a Redis connection of its own.
func TestEventLoopPipeline(t *testing.T) {
	r := redistest.Start(t)
	srv, _ := startNode(t, "redis://"+r.Addr+"/0")
	ctx := context.Background()
	const clients, rounds, depth = 16, 20, 40
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for id := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := redis.NewClient(&redis.Options{Addr: srv.Addr(), PoolSize: 1, ReadTimeout: 10 * time.Second})
			defer c.Close()
			for round := range rounds {
				pipe := c.Pipeline()
				var gets []*redis.StringCmd
				var want []string
				for i := range depth {
					key := fmt.Sprintf("c%d:k%d", id, i%7)
					val := fmt.Sprintf("v%d.%d.%d", id, round, i)
					switch {
					case round%2 == 0 || i >= depth/2: // commands the loop runs; a run of them gives the connection back to it
						pipe.Set(ctx, key, val, 0)
					case i%10 == 3:
						pipe.Do(ctx, "set", key, val, "tags", "t"+strconv.Itoa(id)) // goes to a goroutine
					case i%10 == 6:
						pipe.Incr(ctx, fmt.Sprintf("c%d:n", id))
						pipe.Set(ctx, key, val, 0)
					default:
						pipe.Set(ctx, key, val, 0)
					}
					gets = append(gets, pipe.Get(ctx, key))
					want = append(want, val)
					pipe.Get(ctx, "shared") // coalesced with the other clients' reads
				}
				if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
					errs <- fmt.Errorf("client %d: %v", id, err)
					return
				}
				for i, g := range gets {
					if g.Val() != want[i] {
						errs <- fmt.Errorf("client %d round %d: GET after SET = %q, want %q", id, round, g.Val(), want[i])
						return
					}
				}
			}
			if n, err := c.Get(ctx, fmt.Sprintf("c%d:n", id)).Int(); err != nil || n != rounds/2*depth/20 {
				errs <- fmt.Errorf("client %d: counter %d, %v", id, n, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.Store().(*redisstore.Store).LoopPipes(); n == 0 {
		t.Error("the event loop never used a Redis connection of its own")
	}
}

// TestKeysOfOtherTypes reads and writes, through Vela, keys that another client of the Redis made
// a list and a hash, and compares every reply, and the hit, miss and failed-call counters, with
// those of a Redis holding the same keys.
func TestKeysOfOtherTypes(t *testing.T) {
	r := redistest.Start(t)
	_, v := startNode(t, "redis://"+r.Addr+"/0")
	direct := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer direct.Close()
	// ref is a Redis of its own holding the same keys, to compare replies and counters with
	// (direct's counters include the store's own traffic).
	ref := redis.NewClient(&redis.Options{Addr: redistest.Start(t).Addr})
	defer ref.Close()
	ctx := context.Background()
	at := time.Now().Add(time.Hour)
	for _, c := range []*redis.Client{direct, ref} {
		if err := c.RPush(ctx, "l", "a", "b").Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.HSet(ctx, "h", "f", "v").Err(); err != nil {
			t.Fatal(err)
		}
		if err := c.ExpireAt(ctx, "h", at).Err(); err != nil {
			t.Fatal(err)
		}
	}
	show := func(c *redis.Client, args ...any) string {
		res, err := c.Do(ctx, args...).Result()
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprint(res)
	}
	counters := func(c *redis.Client) string {
		var out []string
		for _, section := range []string{"stats", "commandstats"} {
			for _, line := range strings.Split(c.Info(ctx, section).Val(), "\r\n") {
				name, rest, _ := strings.Cut(line, ":")
				switch {
				case name == "keyspace_hits" || name == "keyspace_misses":
					out = append(out, line)
				case strings.HasPrefix(name, "cmdstat_") && !slices.Contains([]string{"cmdstat_info",
					"cmdstat_hello", "cmdstat_client|setinfo", "cmdstat_ping", "cmdstat_rpush", "cmdstat_hset",
					"cmdstat_expireat"}, name): // the set-up's and the clients' own
					_, failed, _ := strings.Cut(rest, "failed_calls=")
					out = append(out, name+" failed "+failed)
				}
			}
		}
		slices.Sort(out)
		return strings.Join(out, "\n")
	}
	// None of these changes a key of another type: Redis refuses the writes with WRONGTYPE.
	for _, cmd := range [][]any{
		{"type", "l"}, {"type", "h"}, {"exists", "l", "h", "missing"}, {"ttl", "l"},
		{"expiretime", "h"}, {"strlen", "l"}, {"strlen", "h"}, {"get", "l"}, {"append", "l", "x"},
		{"incr", "h"}, {"incrbyfloat", "l", "1"}, {"getdel", "l"}, {"getex", "h", "persist"},
		{"set", "l", "v", "get"}, {"getset", "h", "v"}, {"mget", "l", "h"}, {"touch", "l", "h"},
	} {
		if got, want := show(v, cmd...), show(ref, cmd...); got != want {
			t.Errorf("%v: Vela %q, Redis %q", cmd, got, want)
		}
	}
	// Both counted the same hits, misses and failed calls (GET's WRONGTYPE comes back on the
	// pipelined path, after the handler has returned).
	if got, want := counters(v), counters(ref); got != want {
		t.Errorf("counters:\n Vela  %s\n Redis %s", strings.ReplaceAll(got, "\n", ", "), strings.ReplaceAll(want, "\n", ", "))
	}
	// Key-level writes work on any type, as in Redis.
	if got := show(v, "persist", "h"); got != "1" {
		t.Errorf("PERSIST h = %s, want 1", got)
	}
	if got := show(v, "pexpire", "l", 100000); got != "1" {
		t.Errorf("PEXPIRE l = %s, want 1", got)
	}
	if got := show(direct, "ttl", "l"); got != "100" {
		t.Errorf("TTL l on Redis after PEXPIRE through Vela = %s, want 100", got)
	}
	if got := show(v, "del", "l", "h"); got != "2" {
		t.Errorf("DEL l h = %s, want 2", got)
	}
	if n := direct.Exists(ctx, "l", "h").Val(); n != 0 {
		t.Errorf("EXISTS l h on Redis after DEL through Vela = %d, want 0", n)
	}
}

// clusterNearCache runs a node with the near cache on the Redis Cluster: it tracks every master,
// so a write made directly on any master (through a cluster client that is not Vela) reaches
// Vela's readers, keys of every slot are kept, and a master's channel lost stops the cache.
func clusterNearCache(t *testing.T, rc *redisCluster) {
	cfg := testnode.Config()
	cfg.Store.Type = "redis"
	cfg.Store.RedisURL = rc.url
	cfg.NearCache.Enabled = true
	srv := testnode.Start(t, cfg)
	near := srv.Node().NearCache()
	redistest.WaitFor(t, "the near cache to track every master", near.Live)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	var seeds []string
	for _, m := range rc.masters {
		seeds = append(seeds, m.Options().Addr)
	}
	direct := redis.NewClusterClient(&redis.ClusterOptions{Addrs: seeds})
	defer direct.Close()
	ctx := context.Background()
	hits := func() uint64 { return srv.Node().Stats().L1Hits.Load() }
	for i := range 30 { // keys spread over the three masters
		k := fmt.Sprintf("near:%d", i)
		if err := c.Set(ctx, k, "v1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		// The SET's own invalidation may arrive after the first GET kept a copy, and drop it:
		// read until a GET is answered from the near cache.
		redistest.WaitFor(t, k+" to be served from the near cache", func() bool {
			c.Get(ctx, k)
			before := hits()
			return c.Get(ctx, k).Val() == "v1" && hits() == before+1
		})
		if err := direct.Set(ctx, k, "v2", 0).Err(); err != nil {
			t.Fatal(err)
		}
		redistest.WaitFor(t, k+"'s foreign write to reach Vela", func() bool { return c.Get(ctx, k).Val() == "v2" })
	}
	// Kill one master's channel: the whole cache stops serving until it is back.
	m := rc.masters[1]
	list := m.ClientList(ctx).Val()
	var id string
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, " name=vela-near-cache-inv ") {
			id = strings.TrimPrefix(strings.Fields(line)[0], "id=")
		}
	}
	if id == "" {
		t.Fatalf("no tracking connection on %s:\n%s", m.Options().Addr, list)
	}
	flushes := near.Flushes()
	if err := m.Do(ctx, "client", "kill", "id", id).Err(); err != nil {
		t.Fatal(err)
	}
	redistest.WaitFor(t, "the lost channel to flush the cache", func() bool { return near.Flushes() > flushes })
	redistest.WaitFor(t, "the channel to come back", near.Live)
}
