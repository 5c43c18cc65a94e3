package e2e_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestMemoryReportsLikeRedis: INFO memory's fields are Redis's, in Redis's order (Vela has a
// subset: no Lua VM, functions or replication buffers); MEMORY STATS has Redis's fields and
// kinds (integers, and doubles for ratios and percentages, in RESP3); the figures agree with one
// another and move as keys are written; DOCTOR, MALLOC-STATS and PURGE answer as Redis's do in
// kind, and the argument errors are Redis's.
func TestMemoryReportsLikeRedis(t *testing.T) {
	redis := respclient.Dial(t, redistest.Start(t).Addr)
	vela := respclient.Dial(t, testnode.StartDefault(t).Addr())
	fields := func(c *respclient.Conn) []string {
		var out []string
		for _, l := range infoLines(c, "memory")[1:] {
			name, _, _ := strings.Cut(l, ":")
			out = append(out, name)
		}
		return out
	}
	redisFields, velaFields := fields(redis), fields(vela)
	last := -1
	for _, f := range velaFields {
		i := slices.Index(redisFields, f)
		if i < 0 {
			t.Errorf("INFO memory: Redis has no %s", f)
			continue
		}
		if i < last {
			t.Errorf("INFO memory: %s is out of Redis's order", f)
		}
		last = i
	}
	for _, want := range []string{"used_memory_peak", "used_memory_overhead", "used_memory_startup",
		"used_memory_dataset_perc", "total_system_memory", "allocator_active", "mem_fragmentation_bytes"} {
		if !slices.Contains(velaFields, want) {
			t.Errorf("INFO memory lacks %s", want)
		}
	}

	stats := func(c *respclient.Conn) map[string]respclient.Value {
		c.Do("HELLO", "3")
		defer c.Do("HELLO", "2")
		return c.Do("MEMORY", "STATS").Value.Map()
	}
	redisStats := stats(redis)
	before := stats(vela)
	for name, v := range before {
		w, ok := redisStats[name]
		if !ok {
			t.Errorf("MEMORY STATS: Redis has no %s", name)
		} else if w.Type != v.Type {
			t.Errorf("MEMORY STATS %s: kind %c, Redis's %c", name, v.Type, w.Type)
		}
	}
	for i := range 2000 {
		vela.Do("SET", "key:"+strconv.Itoa(i), strings.Repeat("v", 500)).OK()
	}
	after := stats(vela)
	if n := after["keys.count"].Int; n != 2000 {
		t.Errorf("keys.count = %d, want 2000", n)
	}
	if d := after["dataset.bytes"].Int; d < 2000*500 || d <= before["dataset.bytes"].Int {
		t.Errorf("dataset.bytes = %d after 2000 values of 500 bytes (before: %d)", d, before["dataset.bytes"].Int)
	}
	if p, u := after["peak.allocated"].Int, after["total.allocated"].Int; p < u || u <= 0 {
		t.Errorf("peak.allocated %d below total.allocated %d", p, u)
	}
	if o, d, u := after["overhead.total"].Int, after["dataset.bytes"].Int, after["total.allocated"].Int; u > d && o+d != u {
		t.Errorf("overhead.total %d + dataset.bytes %d != total.allocated %d", o, d, u)
	}

	sameReplies(t, redis, vela, [][]any{
		{"MEMORY", "STATS", "x"}, {"MEMORY", "DOCTOR", "x"}, {"MEMORY", "PURGE", "x"},
		{"MEMORY", "MALLOC-STATS", "x"}, {"MEMORY", "PURGE"}, {"MEMORY", "NOSUCH"},
	})
	for _, sub := range []string{"DOCTOR", "MALLOC-STATS"} {
		if r := vela.Do("MEMORY", sub).Value; r.Type != '$' || r.Str == "" {
			t.Errorf("MEMORY %s = %v, want a text", sub, r)
		}
	}
}
