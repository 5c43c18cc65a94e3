package commands

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/vela-cache/vela/latency"
	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/resp"
)

// infoSections are the sections INFO prints, in Redis's order, then Vela's; those marked notDefault
// only when asked for by name or with "all" or "everything", as in Redis.
var infoSections = []string{"server", "clients", "memory", "persistence", "stats", "replication",
	"cpu", "commandstats", "errorstats", "latencystats", "cluster", "keyspace", "vela"}

var notDefault = map[string]bool{"commandstats": true, "latencystats": true}

// InfoSection adds lines to a custom INFO section; other packages (cluster, near cache) register
// theirs with AddInfoSection.
type InfoSection func(ctx context.Context) []string

// AddInfoSection appends key:value lines from fn to the named section (created when new).
func (n *Node) AddInfoSection(name string, fn InfoSection) {
	n.extraInfo = append(n.extraInfo, namedSection{name, fn})
}

type namedSection struct {
	name string
	fn   InfoSection
}

// expiresCounter is implemented by stores that know how many keys have an expiry.
type expiresCounter interface {
	Expires(ctx context.Context) (int64, error)
}

// ttlAverager is implemented by stores that know the mean remaining TTL of their keys with an
// expiry, in milliseconds (INFO's avg_ttl).
type ttlAverager interface {
	AvgTTL(ctx context.Context) (int64, error)
}

// tagIndexLen is implemented by stores that can size their tag index.
type tagIndexLen interface {
	TagIndexLen() (tags, keys int)
}

// usageReporter is implemented by stores that account for the memory their entries take (the
// figure max_memory bounds).
type usageReporter interface {
	Usage() (keys, bytes int64)
}

func (n *Node) info(c *Ctx, args [][]byte) (resp.Reply, error) {
	want := map[string]bool{}
	all, dflt := false, len(args) == 1
	for _, a := range args[1:] {
		s := strings.ToLower(string(a))
		all = all || s == "all" || s == "everything"
		dflt = dflt || s == "default"
		want[s] = true
	}
	var b strings.Builder
	for _, sec := range infoSections {
		if !all && !want[sec] && (!dflt || notDefault[sec]) {
			continue
		}
		lines := n.infoSection(c.Context(), sec)
		if b.Len() > 0 {
			b.WriteString("\r\n")
		}
		b.WriteString("# " + strings.ToUpper(sec[:1]) + sec[1:] + "\r\n")
		for _, l := range lines {
			b.WriteString(l + "\r\n")
		}
	}
	return resp.Verbatim(b.String()), nil
}

func (n *Node) infoSection(ctx context.Context, sec string) []string {
	var lines []string
	switch sec {
	case "server":
		uptime := time.Since(n.started)
		lines = []string{
			"redis_version:" + Version,
			"redis_mode:standalone",
			"os:" + runtime.GOOS + " " + runtime.GOARCH,
			"arch_bits:64",
			fmt.Sprintf("process_id:%d", os.Getpid()),
			"run_id:" + n.runID,
			fmt.Sprintf("tcp_port:%d", n.cfg.Port),
			fmt.Sprintf("uptime_in_seconds:%d", int64(uptime.Seconds())),
			fmt.Sprintf("uptime_in_days:%d", int64(uptime.Hours()/24)),
			"executable:vela",
			"vela_version:" + VelaVersion,
		}
	case "clients":
		connected := 0
		var maxIn, maxOut int64 // the largest buffers of the clients, as of their last reads
		if n.clients != nil {
			connected = n.clients.ClientCount()
			n.clients.Clients(func(c *resp.Conn) {
				in, out := c.BufferSizes()
				maxIn, maxOut = max(maxIn, in), max(maxOut, out)
			})
		}
		lines = []string{
			fmt.Sprintf("connected_clients:%d", connected),
			"maxclients:" + n.setting("maxclients", "0"),
			fmt.Sprintf("client_recent_max_input_buffer:%d", maxIn),
			fmt.Sprintf("client_recent_max_output_buffer:%d", maxOut),
			fmt.Sprintf("blocked_clients:%d", n.blockedN.Load()),
			fmt.Sprintf("tracking_clients:%d", n.clientCache.clients.Load()),
		}
	case "memory":
		lines = n.infoMemory(ctx)
	case "stats":
		s := n.stats
		lines = []string{
			fmt.Sprintf("total_connections_received:%d", s.Connections.Since()),
			fmt.Sprintf("total_commands_processed:%d", s.Commands.Since()),
			fmt.Sprintf("instantaneous_ops_per_sec:%d", n.opsPerSec()),
		}
		if n.clients != nil {
			in, out, rejected := n.clients.NetStats()
			if b := n.netBase.Load(); b != nil {
				in, out, rejected = in-b[0], out-b[1], rejected-b[2]
			}
			kin, kout := n.netKbps()
			lines = append(lines, fmt.Sprintf("total_net_input_bytes:%d", in),
				fmt.Sprintf("total_net_output_bytes:%d", out),
				fmt.Sprintf("instantaneous_input_kbps:%.2f", kin),
				fmt.Sprintf("instantaneous_output_kbps:%.2f", kout),
				fmt.Sprintf("rejected_connections:%d", rejected))
		}
		lines = append(lines,
			fmt.Sprintf("expired_keys:%d", s.Expirations.Since()),
			fmt.Sprintf("evicted_keys:%d", s.Evictions.Since()),
			fmt.Sprintf("keyspace_hits:%d", s.Hits.Since()),
			fmt.Sprintf("keyspace_misses:%d", s.Misses.Since()),
			fmt.Sprintf("pubsub_channels:%d", n.hub.NumChannels(pubsub.Channel)),
			fmt.Sprintf("pubsub_patterns:%d", n.hub.NumPat()),
			fmt.Sprintf("pubsubshard_channels:%d", n.hub.NumChannels(pubsub.Shard)),
		)
		tk, ti, tp := n.clientCache.figures()
		lines = append(lines,
			fmt.Sprintf("tracking_total_keys:%d", tk),
			fmt.Sprintf("tracking_total_items:%d", ti),
			fmt.Sprintf("tracking_total_prefixes:%d", tp),
			fmt.Sprintf("total_error_replies:%d", n.errs.Total()),
		)
	case "commandstats":
		for _, cmd := range n.table.All() {
			lines = appendCommandStats(lines, cmd)
			for _, name := range sortedSubcommands(cmd) {
				lines = appendCommandStats(lines, cmd.Subcommands[name])
			}
		}
	case "errorstats":
		lines = n.errs.lines()
	case "latencystats":
		if !n.track.On() {
			break // as Redis: the heading alone while latency-tracking is off
		}
		ps := n.track.Percentiles()
		for _, cmd := range n.table.All() {
			lines = appendLatencyStats(lines, cmd, ps)
			for _, name := range sortedSubcommands(cmd) {
				lines = appendLatencyStats(lines, cmd.Subcommands[name], ps)
			}
		}
	case "persistence":
		// Vela never loads or saves a snapshot: a disk store is usable as soon as it opens.
		lines = []string{"loading:0", "async_loading:0", "rdb_changes_since_last_save:0",
			"rdb_bgsave_in_progress:0", "rdb_last_bgsave_status:ok", "aof_enabled:0",
			"aof_rewrite_in_progress:0", "aof_last_write_status:ok"}
	case "replication":
		// Every node takes writes; a cluster's copies are its own (VELA NODES), not Redis replicas.
		lines = []string{"role:master", "connected_slaves:0", "master_failover_state:no-failover",
			"master_replid:" + n.runID, "master_replid2:" + strings.Repeat("0", 40),
			"master_repl_offset:0", "second_repl_offset:-1", "repl_backlog_active:0"}
	case "cpu":
		if sys, user, ok := processCPU(); ok {
			lines = []string{fmt.Sprintf("used_cpu_sys:%.6f", sys.Seconds()),
				fmt.Sprintf("used_cpu_user:%.6f", user.Seconds())}
		}
	case "cluster":
		lines = []string{"cluster_enabled:0"} // Vela's own cluster speaks plain RESP, not Redis Cluster's protocol
	case "keyspace":
		if ks, err := n.keyspace(); err == nil {
			keys, _ := ks.Len(ctx)
			var expires, avgTTL int64
			if ec, ok := n.store.(expiresCounter); ok {
				expires, _ = ec.Expires(ctx)
			}
			if ta, ok := n.store.(ttlAverager); ok && expires > 0 {
				avgTTL, _ = ta.AvgTTL(ctx)
			}
			if keys > 0 {
				lines = append(lines, fmt.Sprintf("db0:keys=%d,expires=%d,avg_ttl=%d", keys, expires, avgTTL))
			}
		}
	case "vela":
		lines = []string{
			"vela_version:" + VelaVersion,
			"store:" + n.cfg.StoreType,
			"topology:" + n.cfg.Topology,
			"eviction_policy:" + n.cfg.EvictionPolicy,
			fmt.Sprintf("max_size:%d", n.cfg.MaxSize),
			fmt.Sprintf("max_memory:%d", n.cfg.MaxMemory),
			fmt.Sprintf("gomaxprocs:%d", runtime.GOMAXPROCS(0)),
		}
		if u, ok := n.store.(usageReporter); ok {
			entries, bytes := u.Usage()
			lines = append(lines, fmt.Sprintf("store_entries:%d", entries), fmt.Sprintf("store_used_memory:%d", bytes))
		}
		if ti, ok := n.store.(tagIndexLen); ok {
			tags, keys := ti.TagIndexLen()
			lines = append(lines, fmt.Sprintf("tags:%d", tags), fmt.Sprintf("tagged_keys:%d", keys))
		}
		if nc := n.nearShown; nc != nil {
			lines = append(lines, "near_cache:on",
				fmt.Sprintf("near_cache_live:%d", boolInt(nc.Live())),
				fmt.Sprintf("near_cache_entries:%d", nc.Len()),
				fmt.Sprintf("near_cache_flushes:%d", nc.Flushes()))
		} else {
			lines = append(lines, "near_cache:off")
		}
		lines = append(lines, fmt.Sprintf("stats_enabled:%d", boolInt(n.stats.On())))
		for _, f := range n.stats.SnapshotSince() {
			lines = append(lines, fmt.Sprintf("%s:%d", f.Name, f.Value))
		}
	}
	for _, x := range n.extraInfo {
		if x.name == sec {
			lines = append(lines, x.fn(ctx)...)
		}
	}
	return lines
}

// appendCommandStats adds cmd's commandstats line, as Redis prints it, when cmd has been called
// or refused.
func appendCommandStats(lines []string, cmd *Command) []string {
	calls, nsec, rejected, failed := cmd.sinceReset()
	if calls == 0 && rejected == 0 {
		return lines
	}
	usec := nsec / 1000
	perCall := 0.0
	if calls > 0 {
		perCall = float64(nsec) / 1000 / float64(calls)
	}
	return append(lines, fmt.Sprintf("cmdstat_%s:calls=%d,usec=%d,usec_per_call=%.2f,rejected_calls=%d,failed_calls=%d",
		cmd.Name, calls, usec, perCall, rejected, failed))
}

// appendLatencyStats adds cmd's latencystats line, as Redis prints it, when cmd has run since
// CONFIG RESETSTAT with latency-tracking on: each percentile of ps, in microseconds.
func appendLatencyStats(lines []string, cmd *Command, ps []float64) []string {
	s := cmd.runTimes()
	if s == nil {
		return lines
	}
	b := []byte("latency_percentiles_usec_" + cmd.Name + ":")
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, 'p')
		b = append(b, latency.FormatPercentile(p)...)
		b = append(b, '=')
		b = strconv.AppendFloat(b, float64(s.Percentile(p))/1000, 'f', 3, 64)
	}
	return append(lines, string(b))
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// heapBytes is the memory held by live heap objects: the closest Go figure to Redis's
// used_memory (what the allocator has handed out), read without stopping the world.
func heapBytes() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	if sample[0].Value.Kind() == metrics.KindUint64 {
		return sample[0].Value.Uint64()
	}
	return 0
}

func humanBytes(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2fG", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.2fM", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.2fK", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}
