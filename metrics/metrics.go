// Package metrics exposes one Vela node to Prometheus and to orchestrators: /metrics, /healthz
// and /readyz on an HTTP listener of its own.
//
// # Cost on the hot path
//
// The node's counters (stats.Stats, per-command call counts) are plain atomics that a custom
// Collector reads at scrape time, as mailgun/groupcache's exporter does. The only metric written
// per command is its latency histogram, and each command's Observer is resolved once, when the
// command is registered, so running a command costs two clock reads and a few atomic adds: no
// lock, no map lookup, no allocation.
//
// # No global state
//
// Every Metrics has its own prometheus.Registry; nothing is registered on the default one, so
// several nodes can run in one process (tests) without colliding.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vela-cache/vela/commands"
)

// namespace prefixes every Vela metric.
const namespace = "vela"

// latencyBuckets cover 10 µs to about 2.6 s in steps of four.
var latencyBuckets = prometheus.ExponentialBuckets(0.00001, 4, 10)

// ReadyCheck reports why the node is not ready to serve, or nil when, as far as it knows, it
// is. It must return quickly (a bounded wait at most): /readyz calls every check per request.
type ReadyCheck func(ctx context.Context) error

// Metrics is one node's telemetry: its registry, collector and HTTP endpoints.
type Metrics struct {
	node      *commands.Node
	log       *slog.Logger
	reg       *prometheus.Registry
	durations *prometheus.HistogramVec

	mu     sync.Mutex // guards checks
	checks []namedCheck

	srv      *http.Server
	addr     string
	served   chan struct{} // closed when the HTTP server's goroutine has returned
	shutOnce sync.Once
	shutErr  error
}

type namedCheck struct {
	name string
	fn   ReadyCheck
}

// New builds the metrics of node: a per-node registry holding Vela's collector, the Go runtime
// and process collectors, and a latency histogram for every command (attached to the node's
// command table, including commands registered later). Nothing listens until Start.
func New(node *commands.Node, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{node: node, log: log, reg: prometheus.NewRegistry()}
	m.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace,
		Name:      "command_duration_seconds",
		Help:      "Time to execute each command, from dispatch to reply value.",
		Buckets:   latencyBuckets,
	}, []string{"cmd"})
	m.reg.MustRegister(
		m.durations,
		&collector{node: node},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	node.Table().Observe(func(cmd *commands.Command) commands.Observer {
		return m.durations.WithLabelValues(cmd.Name)
	})
	return m
}

// Registerer is where other packages (cluster, near cache) register their own collectors.
func (m *Metrics) Registerer() prometheus.Registerer { return m.reg }

// Gatherer returns the registry for in-process reading (tests).
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// AddReadyCheck makes /readyz also depend on fn. Other packages add theirs during start-up
// (the cluster: joined and synced).
func (m *Metrics) AddReadyCheck(name string, fn ReadyCheck) {
	m.mu.Lock()
	m.checks = append(m.checks, namedCheck{name, fn})
	m.mu.Unlock()
}

// Ready runs every readiness check and returns their failures joined, or nil.
func (m *Metrics) Ready(ctx context.Context) error {
	m.mu.Lock()
	checks := append([]namedCheck(nil), m.checks...)
	m.mu.Unlock()
	var errs []error
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// Handler serves /metrics, /healthz and /readyz.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := m.Ready(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready: " + err.Error() + "\n"))
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}

// Start listens on addr and serves the endpoints in a goroutine that Shutdown ends.
func (m *Metrics) Start(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	m.addr = ln.Addr().String()
	m.srv = &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	m.served = make(chan struct{})
	go func() {
		defer close(m.served)
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("metrics server", "err", err)
		}
	}()
	return nil
}

// Addr returns the address Start bound ("" before Start).
func (m *Metrics) Addr() string { return m.addr }

// Shutdown stops the HTTP server, letting scrapes in flight finish until ctx ends. It is
// idempotent and safe when Start was never called.
func (m *Metrics) Shutdown(ctx context.Context) error {
	m.shutOnce.Do(func() {
		if m.srv == nil {
			return
		}
		m.shutErr = m.srv.Shutdown(ctx)
		if m.shutErr != nil {
			_ = m.srv.Close()
		}
		select {
		case <-m.served:
		case <-ctx.Done():
			if m.shutErr == nil {
				m.shutErr = ctx.Err()
			}
		}
	})
	return m.shutErr
}

// usageReporter is implemented by stores that account for their entries' memory.
type usageReporter interface {
	Usage() (keys, bytes int64)
}

// tagIndexLen is implemented by stores that can size their tag index.
type tagIndexLen interface {
	TagIndexLen() (tags, keys int)
}

// collector reads the node's atomic counters at scrape time.
type collector struct {
	node *commands.Node
}

var (
	descCommands = prometheus.NewDesc(namespace+"_commands_total",
		"Commands executed, by command.", []string{"cmd"}, nil)
	descProcessed = prometheus.NewDesc(namespace+"_commands_processed_total",
		"Commands executed (INFO total_commands_processed).", nil, nil)
	descConnections = prometheus.NewDesc(namespace+"_connections_received_total",
		"Client connections accepted.", nil, nil)
	descClients = prometheus.NewDesc(namespace+"_connected_clients",
		"Client connections open.", nil, nil)
	descKeys = prometheus.NewDesc(namespace+"_keys",
		"Entries in the store (live, or expired and not yet swept).", nil, nil)
	descMemory = prometheus.NewDesc(namespace+"_memory_used_bytes",
		"Bytes of keys, values and overhead the store accounts for (what max_memory bounds).", nil, nil)
	descTags = prometheus.NewDesc(namespace+"_tags",
		"Tags that have at least one key.", nil, nil)
	descTaggedKeys = prometheus.NewDesc(namespace+"_tagged_keys",
		"Keys carrying at least one tag.", nil, nil)
	descNetIn = prometheus.NewDesc(namespace+"_net_input_bytes_total",
		"Bytes read from client and peer connections (INFO total_net_input_bytes).", nil, nil)
	descNetOut = prometheus.NewDesc(namespace+"_net_output_bytes_total",
		"Bytes written to client and peer connections (INFO total_net_output_bytes).", nil, nil)
	descRejected = prometheus.NewDesc(namespace+"_rejected_connections_total",
		"Connections refused for the client limit (INFO rejected_connections).", nil, nil)
	descBlocked = prometheus.NewDesc(namespace+"_blocked_clients",
		"Clients waiting in a blocking command, FETCHLOCK or WAIT (INFO blocked_clients).", nil, nil)
	descTracking = prometheus.NewDesc(namespace+"_tracking_clients",
		"Clients with CLIENT TRACKING on (INFO tracking_clients).", nil, nil)
	descTrackedKeys = prometheus.NewDesc(namespace+"_tracking_keys",
		"Keys in the client tracking table (INFO tracking_total_keys).", nil, nil)
	descChannels = prometheus.NewDesc(namespace+"_pubsub_channels",
		"Pub/Sub channels with at least one subscriber on this node (INFO pubsub_channels).", nil, nil)
	descPatterns = prometheus.NewDesc(namespace+"_pubsub_patterns",
		"Pub/Sub patterns subscribed to on this node (INFO pubsub_patterns).", nil, nil)
	descErrors = prometheus.NewDesc(namespace+"_error_replies_total",
		"Error replies answered, by code, the reply's first word (INFO errorstats).", []string{"code"}, nil)
	// statHelp documents each counter of stats.Stats.Snapshot, exported as vela_<name>_total.
	statHelp = map[string]string{
		"hits":              "Reads that found the key (keyspace_hits).",
		"misses":            "Reads that did not find the key (keyspace_misses).",
		"writes":            "Writes applied.",
		"deletes":           "Keys deleted by commands.",
		"evictions":         "Keys evicted to respect max_size or max_memory.",
		"expirations":       "Expired keys removed (on access, by the sweep or by eviction).",
		"tag_invalidations": "Keys deleted by TAGINVALIDATE.",
		"fetch_locks":       "FETCHLOCK leases granted.",
		"fetch_waits":       "FETCHLOCK calls that waited for another caller's fill.",
		"fetch_timeouts":    "FETCHLOCK calls that timed out waiting.",
		"l1_hits":           "Near-cache hits.",
		"l1_misses":         "Near-cache misses.",
		"forwards":          "Commands forwarded to the key's owner.",
	}
	statDescs = func() map[string]*prometheus.Desc {
		d := make(map[string]*prometheus.Desc, len(statHelp))
		for name, help := range statHelp {
			d[name] = prometheus.NewDesc(namespace+"_"+name+"_total", help, nil, nil)
		}
		return d
	}()
)

// Describe sends every descriptor the collector uses.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCommands, descProcessed, descConnections, descClients,
		descKeys, descMemory, descTags, descTaggedKeys, descErrors, descNetIn, descNetOut, descRejected,
		descBlocked, descTracking, descTrackedKeys, descChannels, descPatterns} {
		ch <- d
	}
	names := make([]string, 0, len(statDescs))
	for name := range statDescs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		ch <- statDescs[name]
	}
}

// Collect reads the counters. Prometheus serialises Collect calls per registry only loosely, so
// it reads atomics and takes no lock the hot path takes.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	n := c.node
	s := n.Stats()
	for _, f := range s.Snapshot() {
		if d := statDescs[f.Name]; d != nil {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(f.Value))
		}
	}
	ch <- prometheus.MustNewConstMetric(descProcessed, prometheus.CounterValue, float64(s.Commands.Load()))
	ch <- prometheus.MustNewConstMetric(descConnections, prometheus.CounterValue, float64(s.Connections.Load()))
	ch <- prometheus.MustNewConstMetric(descClients, prometheus.GaugeValue, float64(n.ClientCount()))
	in, out, rejected := n.NetStats()
	ch <- prometheus.MustNewConstMetric(descNetIn, prometheus.CounterValue, float64(in))
	ch <- prometheus.MustNewConstMetric(descNetOut, prometheus.CounterValue, float64(out))
	ch <- prometheus.MustNewConstMetric(descRejected, prometheus.CounterValue, float64(rejected))
	ch <- prometheus.MustNewConstMetric(descBlocked, prometheus.GaugeValue, float64(n.BlockedClients()))
	clients, keys := n.TrackingFigures()
	ch <- prometheus.MustNewConstMetric(descTracking, prometheus.GaugeValue, float64(clients))
	ch <- prometheus.MustNewConstMetric(descTrackedKeys, prometheus.GaugeValue, float64(keys))
	channels, patterns := n.PubSubFigures()
	ch <- prometheus.MustNewConstMetric(descChannels, prometheus.GaugeValue, float64(channels))
	ch <- prometheus.MustNewConstMetric(descPatterns, prometheus.GaugeValue, float64(patterns))
	for _, cmd := range n.Table().All() {
		c.collectCalls(ch, cmd)
	}
	n.ErrorReplies(func(code string, count uint64) {
		ch <- prometheus.MustNewConstMetric(descErrors, prometheus.CounterValue, float64(count), code)
	})
	if u, ok := n.Store().(usageReporter); ok {
		keys, bytes := u.Usage()
		ch <- prometheus.MustNewConstMetric(descKeys, prometheus.GaugeValue, float64(keys))
		ch <- prometheus.MustNewConstMetric(descMemory, prometheus.GaugeValue, float64(bytes))
	}
	if t, ok := n.Store().(tagIndexLen); ok {
		tags, keys := t.TagIndexLen()
		ch <- prometheus.MustNewConstMetric(descTags, prometheus.GaugeValue, float64(tags))
		ch <- prometheus.MustNewConstMetric(descTaggedKeys, prometheus.GaugeValue, float64(keys))
	}
}

// collectCalls reports the calls of cmd and its subcommands that have run at least once.
func (c *collector) collectCalls(ch chan<- prometheus.Metric, cmd *commands.Command) {
	if calls := cmd.Calls(); calls > 0 {
		ch <- prometheus.MustNewConstMetric(descCommands, prometheus.CounterValue, float64(calls), cmd.Name)
	}
	for _, sub := range cmd.Subcommands {
		if calls := sub.Calls(); calls > 0 {
			ch <- prometheus.MustNewConstMetric(descCommands, prometheus.CounterValue, float64(calls), sub.Name)
		}
	}
}
