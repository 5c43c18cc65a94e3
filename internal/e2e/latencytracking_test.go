package e2e_test

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// histogramShape is what LATENCY HISTOGRAM says of each command that does not depend on how
// long it ran: its runs, and that its buckets are Redis's (each a bucket key Redis can print,
// rising, with cumulative counts rising to the runs). Buckets that break the rules are reported.
func histogramShape(t *testing.T, who string, v respclient.Value) map[string]int64 {
	t.Helper()
	if len(v.Elems)%2 != 0 {
		t.Fatalf("%s: LATENCY HISTOGRAM is not a map: %v", who, v)
	}
	out := map[string]int64{}
	for i := 0; i < len(v.Elems); i += 2 {
		name, body := v.Elems[i].Str, v.Elems[i+1].Map()
		calls := body["calls"].Int
		out[name] = calls
		buckets := body["histogram_usec"].Elems
		var prevKey, prevCount int64
		for j := 0; j+1 < len(buckets); j += 2 {
			key, count := buckets[j].Int, buckets[j+1].Int
			if !redisBucketKey(key) || key <= prevKey || count <= prevCount {
				t.Errorf("%s: %s's buckets are not Redis's: %v", who, name, body["histogram_usec"])
				break
			}
			prevKey, prevCount = key, count
		}
		if prevCount != calls {
			t.Errorf("%s: %s: %d calls, buckets end at %d: %v", who, name, calls, prevCount, body["histogram_usec"])
		}
	}
	return out
}

// redisBucketKey reports whether Redis's LATENCY HISTOGRAM can print key: the end, in whole
// microseconds, of the HdrHistogram range holding 1,024 ns × 2^k (1, 2, 4, 8, 16, 33, 66, 132…).
func redisBucketKey(key int64) bool {
	for level := int64(1024); level <= 2_000_000_000; level *= 2 {
		// Two significant digits: a power of two 2^k ≥ 256 lies in a range of 2^(k-7) values.
		if (level+level>>7-1)/1000 == key {
			return true
		}
	}
	return false
}

// TestLatencyTrackingLikeRedis compares latency tracking with Redis 7.0's: CONFIG GET and SET of
// latency-tracking and latency-tracking-info-percentiles (values, formatting and errors, byte for
// byte), then the same commands on both servers after CONFIG RESETSTAT: LATENCY HISTOGRAM
// reports the same commands with the same runs (a refused command is not a run, a failed one
// is; a container names its subcommands), in Redis's buckets; INFO latencystats has the same
// lines with the same percentiles, each in microseconds with three decimals; with tracking off,
// nothing more is recorded and INFO prints the heading alone; RESP3 gets maps.
func TestLatencyTrackingLikeRedis(t *testing.T) {
	redis := respclient.Dial(t, redistest.Start(t).Addr)
	vela := respclient.Dial(t, testnode.StartDefault(t).Addr())
	sameReplies(t, redis, vela, [][]any{
		{"CONFIG", "GET", "latency-tracking"}, {"CONFIG", "GET", "latency-tracking-info-percentiles"},
		{"CONFIG", "SET", "latency-tracking", "maybe"},
		{"CONFIG", "SET", "latency-tracking-info-percentiles", "50 abc"},
		{"CONFIG", "SET", "latency-tracking-info-percentiles", "101"},
		{"CONFIG", "SET", "latency-tracking-info-percentiles", "-1"},
		{"CONFIG", "SET", "latency-tracking-info-percentiles", "50  99"},
		{"CONFIG", "SET", "latency-tracking-info-percentiles", " 50"},
		{"CONFIG", "SET", "latency-tracking-info-percentiles", "nan"},
		{"CONFIG", "SET", "latency-tracking-info-percentiles", "inf"},
		{"CONFIG", "GET", "latency-tracking-info-percentiles"},
		{"CONFIG", "SET", "latency-tracking-info-percentiles", "50.5000 99.99 0 100"},
		{"CONFIG", "GET", "latency-tracking-info-percentiles"},
		{"CONFIG", "SET", "latency-tracking-info-percentiles", "1e1 0x10 33.333333333"},
		{"CONFIG", "GET", "latency-tracking-info-percentiles"},
		{"CONFIG", "SET", "latency-tracking-info-percentiles", ""},
		{"CONFIG", "GET", "latency-tracking-info-percentiles"},
		{"CONFIG", "SET", "latency-tracking", "YES", "latency-tracking-info-percentiles", "0 50 99 100"},
		{"CONFIG", "GET", "latency-tracking"}, {"CONFIG", "GET", "latency-tracking-info-percentiles"},
		{"LATENCY", "HISTOGRAM", "nosuch", "get|x", "config|nosuch"},
		{"CONFIG", "RESETSTAT"},
		{"SET", "k", "v"}, {"SET", "k", "w"}, {"SET", "k", "x", "EX", "100"},
		{"GET", "k"}, {"GET", "nokey"}, {"GET"}, {"INCR", "k"}, {"STRLEN", "k"},
	})

	// The same commands ran on both: the same histograms, but for the run times.
	for _, args := range [][]any{
		{"LATENCY", "HISTOGRAM", "set", "GET", "incr", "config", "strlen", "set"},
		{"LATENCY", "HISTOGRAM"},
		{"LATENCY", "HISTOGRAM", "config|resetstat"},
	} {
		w := histogramShape(t, "redis", redis.Do(args...).Value)
		g := histogramShape(t, "vela", vela.Do(args...).Value)
		if fmt.Sprint(w) != fmt.Sprint(g) {
			t.Errorf("%v: commands and runs\n redis: %v\n  vela: %v", args, w, g)
		}
	}

	// INFO latencystats: the same lines, and the percentiles in order, each a number.
	line := regexp.MustCompile(`^latency_percentiles_usec_([a-z|]+):p0=(\d+\.\d{3}),p50=(\d+\.\d{3}),p99=(\d+\.\d{3}),p100=(\d+\.\d{3})$`)
	stats := func(who string, c *respclient.Conn) []string {
		var names []string
		lines := strings.Split(strings.TrimSpace(c.Do("INFO", "latencystats").Value.Text()), "\r\n")
		if lines[0] != "# Latencystats" {
			t.Fatalf("%s: INFO latencystats: %q", who, lines)
		}
		for _, l := range lines[1:] {
			m := line.FindStringSubmatch(l)
			if m == nil {
				t.Errorf("%s: INFO latencystats line %q", who, l)
				continue
			}
			var prev float64
			for _, s := range m[2:] {
				v, _ := strconv.ParseFloat(s, 64)
				if v < prev {
					t.Errorf("%s: percentiles fall: %q", who, l)
				}
				prev = v
			}
			names = append(names, m[1])
		}
		sort.Strings(names)
		return names
	}
	if w, g := stats("redis", redis), stats("vela", vela); fmt.Sprint(w) != fmt.Sprint(g) {
		t.Errorf("INFO latencystats commands\n redis: %v\n  vela: %v", w, g)
	}
	for _, c := range []*respclient.Conn{redis, vela} {
		if info := c.Do("INFO").Value.Text(); strings.Contains(info, "# Latencystats") {
			t.Errorf("%s: plain INFO prints latencystats (Redis does not)", c.Addr())
		}
		if info := c.Do("INFO", "everything").Value.Text(); !strings.Contains(info, "# Latencystats\r\nlatency_percentiles_usec_") {
			t.Errorf("%s: INFO everything lacks latencystats", c.Addr())
		}
	}

	// Tracking off: INFO prints the heading alone, histograms keep what they had.
	sameReplies(t, redis, vela, [][]any{
		{"CONFIG", "SET", "latency-tracking", "no"},
		{"SET", "k", "y"}, {"GET", "k"},
		{"INFO", "latencystats"},
	})
	w := histogramShape(t, "redis", redis.Do("LATENCY", "HISTOGRAM", "set", "get").Value)
	g := histogramShape(t, "vela", vela.Do("LATENCY", "HISTOGRAM", "set", "get").Value)
	if fmt.Sprint(w) != fmt.Sprint(g) || g["set"] != 3 {
		t.Errorf("with tracking off\n redis: %v\n  vela: %v", w, g)
	}

	// RESP3: a map of maps, with integer bucket keys.
	for _, c := range []*respclient.Conn{redis, vela} {
		c.Do("HELLO", "3")
		v := c.Do("LATENCY", "HISTOGRAM", "set").Value
		if v.Type != '%' || len(v.Elems) != 2 || v.Elems[1].Type != '%' ||
			v.Elems[1].Map()["histogram_usec"].Type != '%' || v.Elems[1].Map()["histogram_usec"].Elems[0].Type != ':' {
			t.Errorf("%s: LATENCY HISTOGRAM over RESP3: %v", c.Addr(), v)
		}
	}
}

// TestLatencyTrackingThroughCluster: a member of a partitioned cluster records each command a
// client sends it once, whether it runs it on its own key or forwards it to the key's owner
// (whose run the owner records in its own histogram).
func TestLatencyTrackingThroughCluster(t *testing.T) {
	nodes := testnode.StartCluster(t, 2, nil)
	testnode.WaitConverged(t, 10*time.Second, nodes...)
	c := respclient.Dial(t, nodes[0].Addr())
	c.Do("CONFIG", "RESETSTAT").OK()
	const n = 40
	for i := range n {
		c.Do("SET", fmt.Sprintf("key:%d", i), "v").OK()
	}
	h := histogramShape(t, "vela", c.Do("LATENCY", "HISTOGRAM", "set").Value)
	if h["set"] != n {
		t.Fatalf("SET recorded %d times for %d commands", h["set"], n)
	}
}
