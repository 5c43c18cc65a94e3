package commands

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"

	"github.com/vela-cache/vela/resp"
)

// Memory as INFO memory and MEMORY STATS, DOCTOR, MALLOC-STATS and PURGE report it: Redis's
// names, the Go runtime's figures. used_memory is the bytes of the heap's objects (what the
// allocator has handed out, as Redis's is), the dataset is what the store counts for its keys
// (memory store: keys, values, tags and per-entry overhead, as max_memory bounds them) and the
// overhead everything else. The allocator figures are the Go heap's: allocated (its objects),
// active (the spans holding them, free space included) and resident (all the runtime has mapped
// and not returned to the system).

// memFigures is one reading of the memory figures.
type memFigures struct {
	used, peak, startup uint64
	active, resident    uint64
	rss                 uint64
	rssOK               bool
	dataset             uint64
	datasetOK           bool
	keys                int64
	scripts             int64
}

// readMemory reads the figures now, and counts the current use towards the peak.
func (n *Node) readMemory(ctx context.Context) memFigures {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/memory/classes/heap/released:bytes"},
	}
	metrics.Read(s)
	v := func(i int) uint64 {
		if s[i].Value.Kind() == metrics.KindUint64 {
			return s[i].Value.Uint64()
		}
		return 0
	}
	f := memFigures{used: v(0), active: v(0) + v(1), resident: v(2) - v(3), startup: n.memStartup}
	f.peak = n.notePeak(f.used)
	f.rss, f.rssOK = residentBytes()
	if u, ok := n.store.(usageReporter); ok {
		keys, bytes := u.Usage()
		f.keys, f.dataset, f.datasetOK = keys, uint64(bytes), true
	} else if ks, err := n.keyspace(); err == nil {
		f.keys, _ = ks.Len(ctx)
	}
	f.scripts = n.scripts.cache.Bytes()
	return f
}

// notePeak raises the peak to used if it is above, and returns the peak.
func (n *Node) notePeak(used uint64) uint64 {
	for {
		p := n.memPeak.Load()
		if used <= p || n.memPeak.CompareAndSwap(p, used) {
			return max(p, used)
		}
	}
}

// overhead is used_memory_overhead: what is not the dataset.
func (f memFigures) overhead() uint64 {
	if f.dataset >= f.used {
		return 0
	}
	return f.used - f.dataset
}

// net is the use since start-up (Redis's net_usage: at least 1, it divides).
func (f memFigures) net() uint64 {
	if f.used > f.startup {
		return f.used - f.startup
	}
	return 1
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// infoMemory is INFO's memory section, its fields in Redis's order.
func (n *Node) infoMemory(ctx context.Context) []string {
	f := n.readMemory(ctx)
	lines := []string{fmt.Sprintf("used_memory:%d", f.used), "used_memory_human:" + humanBytes(f.used)}
	if f.rssOK {
		lines = append(lines, fmt.Sprintf("used_memory_rss:%d", f.rss), "used_memory_rss_human:"+humanBytes(f.rss))
	}
	lines = append(lines,
		fmt.Sprintf("used_memory_peak:%d", f.peak), "used_memory_peak_human:"+humanBytes(f.peak),
		fmt.Sprintf("used_memory_peak_perc:%.2f%%", 100*ratio(f.used, f.peak)),
		fmt.Sprintf("used_memory_overhead:%d", f.overhead()),
		fmt.Sprintf("used_memory_startup:%d", f.startup))
	if f.datasetOK {
		lines = append(lines, fmt.Sprintf("used_memory_dataset:%d", f.dataset),
			fmt.Sprintf("used_memory_dataset_perc:%.2f%%", 100*ratio(f.dataset, f.net())))
	}
	lines = append(lines, fmt.Sprintf("allocator_allocated:%d", f.used),
		fmt.Sprintf("allocator_active:%d", f.active), fmt.Sprintf("allocator_resident:%d", f.resident))
	if total, ok := systemMemory(); ok {
		lines = append(lines, fmt.Sprintf("total_system_memory:%d", total), "total_system_memory_human:"+humanBytes(total))
	}
	lines = append(lines,
		fmt.Sprintf("used_memory_scripts_eval:%d", f.scripts),
		fmt.Sprintf("number_of_cached_scripts:%d", n.scripts.cache.Len()),
		fmt.Sprintf("maxmemory:%s", n.setting("maxmemory", "0")),
		"maxmemory_human:"+humanBytes(uint64(n.cfg.MaxMemory)),
		"maxmemory_policy:"+n.setting("maxmemory-policy", "noeviction"),
		fmt.Sprintf("allocator_frag_ratio:%.2f", ratio(f.active, f.used)),
		fmt.Sprintf("allocator_frag_bytes:%d", int64(f.active)-int64(f.used)),
		fmt.Sprintf("allocator_rss_ratio:%.2f", ratio(f.resident, f.active)),
		fmt.Sprintf("allocator_rss_bytes:%d", int64(f.resident)-int64(f.active)))
	if f.rssOK {
		lines = append(lines,
			fmt.Sprintf("rss_overhead_ratio:%.2f", ratio(f.rss, f.resident)),
			fmt.Sprintf("rss_overhead_bytes:%d", int64(f.rss)-int64(f.resident)),
			fmt.Sprintf("mem_fragmentation_ratio:%.2f", ratio(f.rss, f.used)),
			fmt.Sprintf("mem_fragmentation_bytes:%d", int64(f.rss)-int64(f.used)))
	}
	return append(lines, "mem_allocator:"+runtime.Version())
}

// memoryStats serves MEMORY STATS: the figures of INFO memory as Redis's map, those Vela has
// (no replication backlog, replicas' or AOF buffers: their fields are 0; it does not measure
// its clients' buffers, and leaves their field out).
func (n *Node) memoryStats(c *Ctx, _ [][]byte) (resp.Reply, error) {
	f := n.readMemory(c.Context())
	var kv []resp.Reply
	add := func(name string, v resp.Reply) { kv = append(kv, resp.BulkString(name), v) }
	num := func(v uint64) resp.Reply { return resp.Int(int64(v)) }
	add("peak.allocated", num(f.peak))
	add("total.allocated", num(f.used))
	add("startup.allocated", num(f.startup))
	add("replication.backlog", resp.Int(0))
	add("clients.slaves", resp.Int(0))
	add("aof.buffer", resp.Int(0))
	add("lua.caches", resp.Int(f.scripts))
	add("overhead.total", num(f.overhead()))
	add("keys.count", resp.Int(f.keys))
	perKey := uint64(0)
	if f.keys > 0 {
		perKey = f.net() / uint64(f.keys)
	}
	add("keys.bytes-per-key", num(perKey))
	add("dataset.bytes", num(f.dataset))
	add("dataset.percentage", resp.Double(100*ratio(f.dataset, f.net())))
	add("peak.percentage", resp.Double(100*ratio(f.used, f.peak)))
	add("allocator.allocated", num(f.used))
	add("allocator.active", num(f.active))
	add("allocator.resident", num(f.resident))
	add("allocator-fragmentation.ratio", resp.Double(ratio(f.active, f.used)))
	add("allocator-fragmentation.bytes", resp.Int(int64(f.active)-int64(f.used)))
	add("allocator-rss.ratio", resp.Double(ratio(f.resident, f.active)))
	add("allocator-rss.bytes", resp.Int(int64(f.resident)-int64(f.active)))
	if f.rssOK {
		add("rss-overhead.ratio", resp.Double(ratio(f.rss, f.resident)))
		add("rss-overhead.bytes", resp.Int(int64(f.rss)-int64(f.resident)))
		add("fragmentation", resp.Double(ratio(f.rss, f.used)))
		add("fragmentation.bytes", resp.Int(int64(f.rss)-int64(f.used)))
	}
	return resp.Map(kv), nil
}

// memoryDoctor serves MEMORY DOCTOR: Redis's checks where Vela has the figures (too little in
// use to judge; a past peak well above today's use; a resident size well above the heap's), in
// Vela's words, since the remedies differ from Redis's.
func (n *Node) memoryDoctor(c *Ctx, _ [][]byte) (resp.Reply, error) {
	f := n.readMemory(c.Context())
	if f.used < 5<<20 {
		return resp.BulkString("This node uses too little memory for the checks to mean anything: fill it with data and ask again."), nil
	}
	var issues []string
	if float64(f.peak) > 1.5*float64(f.used) {
		issues = append(issues, fmt.Sprintf(" * Peak memory: the heap once held %s, more than 150%% of the %s it holds now. "+
			"The Go runtime returns freed memory to the system over a few minutes; MEMORY PURGE returns it now.",
			humanBytes(f.peak), humanBytes(f.used)))
	}
	if f.rssOK && f.rss > 10<<20 && ratio(f.rss, f.used) > 1.4 {
		issues = append(issues, fmt.Sprintf(" * High total RSS: the resident size (%s) is %.2f times the heap's objects (%s). "+
			"After a peak this is expected; otherwise the garbage collector is running behind: "+
			"a lower GOGC, or a GOMEMLIMIT under the machine's memory, makes it collect sooner.",
			humanBytes(f.rss), ratio(f.rss, f.used), humanBytes(f.used)))
	}
	if len(issues) == 0 {
		return resp.BulkString("No memory issue found: the heap, its peak and the resident size are in proportion."), nil
	}
	return resp.BulkString("Memory issues found on this node:\n\n" + strings.Join(issues, "\n\n") + "\n"), nil
}

// memoryMallocStats serves MEMORY MALLOC-STATS: Redis prints its allocator's report; Vela
// prints the Go runtime's memory classes, one "name: bytes" line each.
func (n *Node) memoryMallocStats(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	var s []metrics.Sample
	for _, d := range metrics.All() {
		if strings.HasPrefix(d.Name, "/memory/classes/") || strings.HasPrefix(d.Name, "/gc/heap/") {
			if d.Kind == metrics.KindUint64 {
				s = append(s, metrics.Sample{Name: d.Name})
			}
		}
	}
	metrics.Read(s)
	var b strings.Builder
	b.WriteString("___ Go runtime memory statistics (" + runtime.Version() + ") ___\n")
	for _, m := range s {
		fmt.Fprintf(&b, "%s %d\n", m.Name, m.Value.Uint64())
	}
	return resp.BulkString(b.String()), nil
}

// memoryPurge serves MEMORY PURGE: a garbage collection that returns all the memory it can to
// the system (debug.FreeOSMemory), as Redis asks its allocator to purge its dirty pages.
func (n *Node) memoryPurge(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	debug.FreeOSMemory()
	return resp.OK, nil
}
