package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/testnode"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

// scrape fetches /metrics over HTTP and parses it.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

// value returns the value of the series of family name whose labels include want ("k=v"), or
// for a histogram its sample count. It is -1 when there is no such series.
func value(families map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := families[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		for _, w := range want {
			k, v, _ := strings.Cut(w, "=")
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestScrapeMovesWithCommands runs commands against a node and checks, over HTTP, that every
// series the issue lists moves by exactly what the commands did.
func TestScrapeMovesWithCommands(t *testing.T) {
	cfg := testnode.Config()
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.MaxSize = 50
	cfg.EvictionPolicy = "lru"
	srv := testnode.Start(t, cfg)
	addr := srv.MetricsAddr()
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}

	before := scrape(t, addr)
	if v := value(before, "vela_connected_clients"); v != 1 {
		t.Fatalf("vela_connected_clients = %v, want 1", v)
	}
	for _, name := range []string{"vela_blocked_clients", "vela_tracking_clients", "vela_tracking_keys"} {
		if v := value(before, name); v != 0 {
			t.Fatalf("%s = %v, want 0", name, v)
		}
	}
	// 63 new keys through a store bounded at 50: 12 evictions, since by the last write the
	// expired "short" has been removed by the GET that found it.
	for i := 0; i < 60; i++ {
		c.Set(ctx, fmt.Sprintf("k%d", i), "v", 0)
	}
	c.Get(ctx, "k59")
	c.Get(ctx, "k58")
	c.Get(ctx, "missing")
	c.Set(ctx, "short", "v", time.Millisecond)
	time.Sleep(5 * time.Millisecond)
	c.Get(ctx, "short") // an expiration, and a miss
	c.Do(ctx, "SET", "tagged1", "v", "TAGS", "t")
	c.Do(ctx, "SET", "tagged2", "v", "TAGS", "t")
	c.Do(ctx, "TAGINVALIDATE", "t")
	c.Do(ctx, "CONFIG", "GET", "maxmemory")
	c.Do(ctx, "INCR", "k59")         // ERR value is not an integer
	c.Do(ctx, "NOSUCH")              // ERR unknown command
	c.Do(ctx, "EVALSHA", "ffff", 0)  // NOSCRIPT
	c.Do(ctx, "CONFIG", "RESETSTAT") // INFO counts from here; /metrics does not fall
	after := scrape(t, addr)

	moved := []struct {
		name   string
		labels []string
		delta  float64
	}{
		{"vela_commands_total", []string{"cmd=set"}, 63},
		{"vela_commands_total", []string{"cmd=get"}, 4},
		{"vela_commands_total", []string{"cmd=config|get"}, 1},
		{"vela_command_duration_seconds", []string{"cmd=set"}, 63},
		{"vela_command_duration_seconds", []string{"cmd=taginvalidate"}, 1},
		{"vela_hits_total", nil, 2},
		{"vela_misses_total", nil, 2},
		{"vela_writes_total", nil, 63},
		{"vela_evictions_total", nil, 12},
		{"vela_expirations_total", nil, 1},
		{"vela_tag_invalidations_total", nil, 2},
		{"vela_commands_processed_total", nil, 72},
		{"vela_error_replies_total", []string{"code=ERR"}, 2},
		{"vela_error_replies_total", []string{"code=NOSCRIPT"}, 1},
	}
	for _, m := range moved {
		b := max(value(before, m.name, m.labels...), 0)
		a := value(after, m.name, m.labels...)
		if a-b != m.delta {
			t.Errorf("%s%v moved %v → %v, want +%v", m.name, m.labels, b, a, m.delta)
		}
	}
	if v := value(after, "vela_keys"); v != 48 {
		t.Errorf("vela_keys = %v, want 48 (the 50 of max_size less the 2 invalidated)", v)
	}
	if v := value(after, "vela_memory_used_bytes"); v <= value(before, "vela_memory_used_bytes") {
		t.Errorf("vela_memory_used_bytes did not grow: %v", v)
	}
	if v := value(after, "go_goroutines"); v <= 0 {
		t.Errorf("the Go runtime collector is missing")
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestHealthAndReadiness checks /healthz, /readyz, and that a readiness check added by another
// package (as the cluster does) turns /readyz to 503 with its reason.
func TestHealthAndReadiness(t *testing.T) {
	cfg := testnode.Config()
	cfg.MetricsListen = "127.0.0.1:0"
	srv := testnode.Start(t, cfg)
	base := "http://" + srv.MetricsAddr()
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	var syncing atomic.Bool
	syncing.Store(true)
	srv.Metrics().AddReadyCheck("cluster", func(context.Context) error {
		if syncing.Load() {
			return errors.New("still copying the data set")
		}
		return nil
	})
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "cluster: still copying") {
		t.Fatalf("/readyz while syncing = %d %q", code, body)
	}
	syncing.Store(false)
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz after sync = %d", code)
	}
}

// TestNoDefaultRegistry runs two nodes with metrics in one process: with per-node registries
// they do not collide, and each counts only its own commands.
func TestNoDefaultRegistry(t *testing.T) {
	cfg := testnode.Config()
	cfg.MetricsListen = "127.0.0.1:0"
	a, b := testnode.Start(t, cfg), testnode.Start(t, cfg)
	ca := redis.NewClient(&redis.Options{Addr: a.Addr()})
	defer ca.Close()
	for i := 0; i < 3; i++ {
		ca.Set(ctx, "k", "v", 0)
	}
	if v := value(scrape(t, a.MetricsAddr()), "vela_writes_total"); v != 3 {
		t.Fatalf("node a: vela_writes_total = %v", v)
	}
	if v := value(scrape(t, b.MetricsAddr()), "vela_writes_total"); v != 0 {
		t.Fatalf("node b: vela_writes_total = %v", v)
	}
}

// The near cache's size, state and flushes are exported beside its hits and misses.
func TestNearCacheMetrics(t *testing.T) {
	ctx := context.Background()
	cfg := testnode.Config()
	cfg.MetricsListen = "127.0.0.1:0"
	cfg.Store.Type = "redis"
	cfg.Store.RedisURL = "redis://" + redistest.Start(t).Addr + "/0"
	cfg.NearCache.Enabled = true
	srv := testnode.Start(t, cfg)
	redistest.WaitFor(t, "the near cache to go live", srv.Node().NearCache().Live)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	c.Set(ctx, "k", "v", 0)
	redistest.WaitFor(t, "a copy of k", func() bool {
		c.Get(ctx, "k")
		return value(scrape(t, srv.MetricsAddr()), "vela_near_cache_entries") == 1
	})
	m := scrape(t, srv.MetricsAddr())
	if v := value(m, "vela_near_cache_live"); v != 1 {
		t.Fatalf("vela_near_cache_live = %v, want 1", v)
	}
	if v := value(m, "vela_l1_hits_total"); v < 0 {
		t.Fatal("no vela_l1_hits_total")
	}
	before := value(m, "vela_near_cache_flushes_total")
	c.FlushAll(ctx)
	if v := value(scrape(t, srv.MetricsAddr()), "vela_near_cache_flushes_total"); v <= before {
		t.Fatalf("vela_near_cache_flushes_total %v -> %v after FLUSHALL", before, v)
	}
}

// TestScrapeTrackingAndBlocked: the gauges of client tracking and of blocked clients follow a
// client that turns tracking on and reads a key, and one that waits in WAIT until unblocked.
func TestScrapeTrackingAndBlocked(t *testing.T) {
	cfg := testnode.Config()
	cfg.MetricsListen = "127.0.0.1:0"
	srv := testnode.Start(t, cfg)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr(), Protocol: 3})
	defer c.Close()
	tracker := c.Conn()
	defer tracker.Close()
	if err := tracker.Do(ctx, "CLIENT", "TRACKING", "ON").Err(); err != nil {
		t.Fatal(err)
	}
	tracker.Get(ctx, "k")
	waiter := c.Conn()
	defer waiter.Close()
	id, err := waiter.ClientID(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waiter.Do(ctx, "WAIT", "1", "0").Err() }()
	deadline := time.Now().Add(5 * time.Second)
	for value(scrape(t, srv.MetricsAddr()), "vela_blocked_clients") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("vela_blocked_clients never reached 1 while WAIT waited")
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := scrape(t, srv.MetricsAddr())
	if a, b := value(m, "vela_tracking_clients"), value(m, "vela_tracking_keys"); a != 1 || b != 1 {
		t.Errorf("vela_tracking_clients = %v, vela_tracking_keys = %v, want 1 and 1", a, b)
	}
	if err := c.ClientUnblock(ctx, id).Err(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("WAIT unblocked: %v", err)
	}
	if v := value(scrape(t, srv.MetricsAddr()), "vela_blocked_clients"); v != 0 {
		t.Errorf("vela_blocked_clients = %v after the unblock", v)
	}
}

// TestScrapePubSub: vela_pubsub_channels and vela_pubsub_patterns follow subscriptions as they
// come and go.
func TestScrapePubSub(t *testing.T) {
	cfg := testnode.Config()
	cfg.MetricsListen = "127.0.0.1:0"
	srv := testnode.Start(t, cfg)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	defer c.Close()
	figures := func() (float64, float64) {
		m := scrape(t, srv.MetricsAddr())
		return value(m, "vela_pubsub_channels"), value(m, "vela_pubsub_patterns")
	}
	if ch, pat := figures(); ch != 0 || pat != 0 {
		t.Fatalf("before any subscription: %v channels, %v patterns", ch, pat)
	}
	sub := c.Subscribe(ctx, "a", "b")
	if err := sub.PSubscribe(ctx, "c*"); err != nil {
		t.Fatal(err)
	}
	for range 3 { // the confirmations: the subscriptions are in place
		if _, err := sub.Receive(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if ch, pat := figures(); ch != 2 || pat != 1 {
		t.Errorf("subscribed to 2 channels and 1 pattern: %v and %v", ch, pat)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for ch, pat := figures(); ch != 0 || pat != 0; ch, pat = figures() {
		if time.Now().After(deadline) {
			t.Fatalf("after the subscriber left: %v channels, %v patterns", ch, pat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
