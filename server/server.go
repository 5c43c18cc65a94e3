// Package server assembles one Vela node from its configuration — store, command table, RESP
// listener, TTL sweep — starts the parts in order and shuts them down in reverse. main.go and the
// in-process test nodes both use it, so a test runs exactly what the binary runs.
package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vela-cache/vela/commands"
	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/fetchlock"
	"github.com/vela-cache/vela/latency"
	"github.com/vela-cache/vela/metrics"
	"github.com/vela-cache/vela/nearcache"
	"github.com/vela-cache/vela/partition"
	"github.com/vela-cache/vela/pubsub"
	"github.com/vela-cache/vela/replicate"
	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/slowlog"
	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store"
	"github.com/vela-cache/vela/store/disk"
	"github.com/vela-cache/vela/store/memory"
	"github.com/vela-cache/vela/store/redisstore"
)

// Server is one running Vela node.
type Server struct {
	cfg    config.Config
	log    *slog.Logger
	store  store.Store
	stats  *stats.Stats
	node   *commands.Node
	leases *fetchlock.Manager // in-process leases; nil when they live in Redis
	// redisLeases keeps the leases in Redis for the redis store; nil otherwise.
	redisLeases *redisstore.Leases
	resp        *resp.Server
	sweep       *store.SweepLoop
	// cluster is the partitioned topology and replicated the replicated one; nil unless
	// configured. topo is whichever of them runs, nil for a local node.
	cluster    *partition.Cluster
	replicated *replicate.Cluster
	topo       topology
	// near is the near cache and nearTracker its invalidation channel; nil when it is off.
	near        *nearcache.Cache
	nearTracker *nearcache.Tracker
	// metrics serves /metrics, /healthz and /readyz; nil when metrics_listen is "".
	metrics *metrics.Metrics
	ready   atomic.Bool // set once Start has finished, cleared when Shutdown begins
	loops   int         // event loops serving clients; 0 when goroutines serve them

	serveErr    chan error
	stopSampler chan struct{} // closed by Shutdown: the ops sampler (sampleOps) returns
	sampler     sync.WaitGroup
	once        sync.Once
	errShut     error

	// SHUTDOWN (shutdownByCommand): stopped is closed once the shutdown it began has ended.
	stopOnce sync.Once
	stopped  chan struct{}
}

// ShutdownTimeout bounds a shutdown's drain: how long in-flight commands, the graceful leave of a
// cluster and the store's close may take.
const ShutdownTimeout = 10 * time.Second

// shutdownByCommand is SHUTDOWN's effect: the node shuts down as on SIGTERM, in the background
// (the command's own connection must end first). Stopped reports when it is done.
func (s *Server) shutdownByCommand() {
	s.stopOnce.Do(func() {
		s.log.Info("shutting down", "by", "SHUTDOWN")
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				s.log.Error("shutdown", "err", err)
			}
			close(s.stopped)
		}()
	})
}

// Stopped is closed once a SHUTDOWN command has stopped the node; the process should then exit.
func (s *Server) Stopped() <-chan struct{} { return s.stopped }

// New builds a node from cfg; nothing listens until Start.
func New(cfg config.Config, log *slog.Logger, opt ...Option) (*Server, error) {
	var opts options
	for _, o := range opt {
		o(&opts)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	counters := &stats.Stats{Disabled: !cfg.StatsEnabled}
	st, err := openStore(cfg, counters, log)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(cfg.Listen)
	portNum, _ := strconv.Atoi(port)
	var rewriter func(map[string]string) error
	if cfg.File != "" {
		rewriter = configRewriter(cfg.File)
	}
	node := commands.NewNode(st, commands.Config{
		RequirePass:    cfg.RequirePass,
		DefaultTTL:     cfg.DefaultTTL,
		MaxBulkLen:     cfg.ProtoMaxBulkLen,
		Port:           portNum,
		Settings:       redisSettings(cfg),
		Rewrite:        rewriter,
		StoreType:      cfg.Store.Type,
		Topology:       cfg.Topology.Type,
		MaxSize:        cfg.MaxSize,
		MaxMemory:      cfg.MaxMemory,
		EvictionPolicy: cfg.EvictionPolicy,
		Slowlog:        slowlog.New(cfg.SlowlogLogSlowerThan, cfg.SlowlogMaxLen),
		Latency:        latency.New(cfg.LatencyMonitorThreshold),
		Tracking:       latency.NewTracking(cfg.LatencyTracking, percentiles(cfg)),
	}, counters, log)
	if cfg.NearCache.Enabled && cfg.Topology.Type == "local" {
		if rs, ok := st.(*redisstore.Store); !ok || !rs.Trackable() {
			_ = st.Close()
			return nil, &config.Error{Key: "near_cache.enabled", Msg: "the near cache needs the redis store (one Redis, a Redis Cluster or Sentinel)"}
		}
	}
	// FETCHLOCK leases live where the values do: in Redis for the redis store (so the nodes in
	// front of one Redis coordinate), in process otherwise.
	var leases fetchlock.Leases
	var mgr *fetchlock.Manager
	var redisLeases *redisstore.Leases
	if rs, ok := st.(*redisstore.Store); ok {
		rl, err := rs.NewLeases(redisstore.LeasesConfig{Stats: counters})
		if err != nil {
			log.Info("FETCHLOCK leases kept in process", "reason", err)
		} else {
			redisLeases, leases = rl, rl
			node.Watch(rl)
		}
	}
	if leases == nil {
		mgr = fetchlock.New(fetchlock.Config{Store: st, Stats: counters})
		leases = mgr
		node.Watch(mgr)
	}
	fetchlock.Register(node, leases, fetchlock.CommandConfig{
		NoWait:     !cfg.StampedeProtection,
		Timeout:    cfg.StampedeTimeout,
		DefaultTTL: cfg.DefaultTTL,
	})
	loops := eventLoops(cfg, st)
	// A local store that can prefetch warms the caches for pipelined batches. In a partitioned
	// cluster, where most keys of a client's batch belong to other members, it showed no gain
	// (BENCHMARKS.md); a replicated member holds them all.
	var prefetcher resp.Prefetcher
	if p, ok := st.(resp.Prefetcher); ok && cfg.Topology.Type != "partitioned" {
		prefetcher = p
	}
	// Cluster peers do not count against max_clients: a node whose clients fill it must still
	// take its peers' connections, or every other node's forwards to it would fail.
	var admitPeer func(args [][]byte) bool
	if cfg.Topology.Type != "local" {
		admitPeer = func(args [][]byte) bool {
			return bytes.EqualFold(args[0], []byte("auth")) ||
				(len(args) >= 2 && bytes.EqualFold(args[0], []byte("vela")) && bytes.EqualFold(args[1], []byte("peer")))
		}
	}
	rs := resp.NewServer(resp.Config{
		AdmitOverLimit:  admitPeer,
		Addr:            cfg.Listen,
		MaxClients:      cfg.MaxClients,
		IdleTimeout:     cfg.Timeout,
		RequireAuth:     cfg.RequirePass != "",
		Limits:          resp.Limits{MaxBulkLen: cfg.ProtoMaxBulkLen},
		Logger:          log,
		OnAccept:        counters.Connections.Inc,
		OnProtocolError: node.CountErrorReply,
		EventLoops:      loops,
		Prefetcher:      prefetcher,
	}, node)
	node.SetClients(rs)
	for _, w := range opts.watchers {
		node.Watch(w)
	}
	s := &Server{cfg: cfg, log: log, store: st, stats: counters, node: node, leases: mgr,
		redisLeases: redisLeases, resp: rs, loops: loops, serveErr: make(chan error, 1), stopSampler: make(chan struct{}),
		stopped: make(chan struct{})}
	node.SetShutdown(s.shutdownByCommand)
	if cfg.MetricsListen != "" {
		s.metrics = metrics.New(node, log)
		s.metrics.AddReadyCheck("node", func(context.Context) error {
			if !s.ready.Load() {
				return errors.New("not serving")
			}
			return nil
		})
		s.metrics.AddReadyCheck("store", s.probeStore)
	}
	if cfg.Topology.Type == "partitioned" {
		if cfg.NearCache.Enabled {
			// Copies of other members' keys; their owners keep them current (partition/near.go).
			if s.near, err = nearcache.New(cfg.NearCache.MaxSize, cfg.NearCache.L1TTL); err != nil {
				_ = st.Close()
				return nil, &config.Error{Key: "near_cache.max_size", Msg: err.Error()}
			}
			s.near.Resume()
			node.ShowNearCache(s.near)
		}
		cl, err := partition.New(node, st, partition.Config{
			Near:           s.near,
			NearTTL:        cfg.NearCache.L1TTL,
			NodeName:       cfg.Cluster.NodeName,
			GossipListen:   cfg.Cluster.GossipListen,
			Advertise:      cfg.Cluster.Advertise,
			Join:           cfg.Cluster.Join,
			Secret:         cfg.Cluster.Secret,
			Replicas:       cfg.Cluster.Replicas,
			Profile:        cfg.Cluster.GossipProfile,
			ForwardTimeout: cfg.Cluster.ForwardTimeout,
			BlockingWait:   cfg.StampedeTimeout,
			RequirePass:    cfg.RequirePass,
			Transport:      opts.transport,
			PeerDial:       opts.peerDial,
			Log:            log,
		})
		if err != nil {
			s.stopNear()
			_ = st.Close()
			return nil, &config.Error{Key: "topology.type", Msg: err.Error()}
		}
		s.cluster, s.topo = cl, cl
		s.registerNearMetrics()
	}
	if cfg.Topology.Type == "replicated" {
		stamps := ""
		if cfg.Store.Type == "disk" {
			stamps = cfg.Store.DiskPath + ".stamps" // they must outlive a restart as the data does
		}
		rc, err := replicate.New(node, st, replicate.Config{
			StampsPath:     stamps,
			NodeName:       cfg.Cluster.NodeName,
			GossipListen:   cfg.Cluster.GossipListen,
			Advertise:      cfg.Cluster.Advertise,
			Join:           cfg.Cluster.Join,
			Secret:         cfg.Cluster.Secret,
			Profile:        cfg.Cluster.GossipProfile,
			ForwardTimeout: cfg.Cluster.ForwardTimeout,
			BlockingWait:   cfg.StampedeTimeout,
			RequirePass:    cfg.RequirePass,
			Transport:      opts.transport,
			PeerDial:       opts.peerDial,
			Log:            log,
		})
		if err != nil {
			_ = st.Close()
			return nil, &config.Error{Key: "topology.type", Msg: err.Error()}
		}
		s.replicated, s.topo = rc, rc
	}
	if s.topo != nil && s.metrics != nil {
		topo := s.topo
		s.metrics.Registerer().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vela_cluster_members", Help: "Members in this node's hash ring.",
		}, func() float64 { return float64(len(topo.RingMembers())) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "vela_cluster_peers_not_answering",
				Help: "Peers that let a request time out and have not answered a probe since; their requests fail at once.",
			}, func() float64 { n, _ := topo.SilentPeers(); return float64(n) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name: "vela_cluster_requests_failed_fast_total",
				Help: "Requests to peers failed at once because the peer was not answering.",
			}, func() float64 { _, n := topo.SilentPeers(); return float64(n) }))
		s.metrics.AddReadyCheck("cluster", func(context.Context) error {
			if !topo.Ready() {
				return errors.New("not joined and synced")
			}
			return nil
		})
	}
	return s, nil
}

// topology is what the server needs of a cluster topology (partitioned or replicated).
type topology interface {
	Start(respAddr string) error
	Ready() bool
	RingMembers() []string
	SilentPeers() (notAnswering int, failedFast int64)
	Leave(ctx context.Context)
	Shutdown(ctx context.Context) error
}

// Option adjusts how New builds a node.
type Option func(*options)

type options struct {
	transport memberlist.NodeAwareTransport
	peerDial  func(ctx context.Context, network, addr string) (net.Conn, error)
	watchers  []commands.KeyWatcher
}

// WithKeyWatcher registers w, before the node serves anyone, to be told about every change a
// command makes to a key (commands.KeyWatcher).
func WithKeyWatcher(w commands.KeyWatcher) Option {
	return func(o *options) { o.watchers = append(o.watchers, w) }
}

// WithPeerDialer makes the cluster open its connections to peers with dial (tests inject
// network faults this way).
func WithPeerDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *options) { o.peerDial = dial }
}

// WithGossipTransport makes the cluster gossip over t instead of UDP/TCP sockets of its own
// (tests inject network faults this way).
func WithGossipTransport(t memberlist.NodeAwareTransport) Option {
	return func(o *options) { o.transport = t }
}

// probeStore checks that the store answers: a read of a key no client can have written.
func (s *Server) probeStore(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err := s.store.Do(ctx, []byte("\x00vela:readyz"), store.Op{Kind: store.Inspect})
	return err
}

func openStore(cfg config.Config, counters *stats.Stats, log *slog.Logger) (store.Store, error) {
	switch cfg.Store.Type {
	case "memory":
		policy, err := memory.ParsePolicy(cfg.EvictionPolicy)
		if err != nil {
			return nil, &config.Error{Key: "eviction_policy", Msg: err.Error()}
		}
		return memory.New(memory.Config{
			MaxValueLen: cfg.ProtoMaxBulkLen,
			MaxSize:     cfg.MaxSize,
			MaxMemory:   cfg.MaxMemory,
			Policy:      policy,
			Stats:       counters,
		}), nil
	case "disk":
		st, err := disk.Open(disk.Config{Path: cfg.Store.DiskPath, MaxValueLen: cfg.ProtoMaxBulkLen})
		if err != nil {
			return nil, &config.Error{Key: "store.disk.path", Msg: err.Error()}
		}
		return st, nil
	case "redis":
		st, err := redisstore.Open(redisstore.Config{URL: cfg.Store.RedisURL, Logger: log})
		if err != nil {
			return nil, &config.Error{Key: "store.redis.url", Msg: err.Error()}
		}
		return st, nil
	}
	return nil, &config.Error{Key: "store.type", Msg: fmt.Sprintf("%q is not available in this build", cfg.Store.Type)}
}

// eventLoops is how many event loops serve clients. Their commands run on the loop, so only a
// store whose calls never wait on I/O, or whose calls the loop drives itself, can use them: the
// memory store, in every topology (in the partitioned one the loop runs what the node serves
// itself and forwards single-key commands with replies that notify; in the replicated one it
// runs reads, writes waiting for their copies on goroutines), and the redis store
// in front of a single Redis without TLS (its GETs and SETs travel on a Redis connection each
// loop owns, see store.LoopPipeliner). The disk store, and the redis store over Cluster,
// Sentinel or TLS, serve each connection from a goroutine of its own.
func eventLoops(cfg config.Config, st store.Store) int {
	switch cfg.Store.Type {
	case "memory":
		return cfg.EventLoops // every topology: a cluster's router says what may run on a loop
	case "redis":
		if lp, ok := st.(store.LoopPipeliner); ok && lp.OnLoops() && cfg.Topology.Type == "local" {
			return cfg.EventLoops
		}
	}
	return 0
}

// Procs is the number of Go processors (GOMAXPROCS) this node serves best with, or 0 for Go's
// default (one per CPU it may use). The binary applies it at start-up unless the GOMAXPROCS
// environment variable is set; the library never changes it.
//
// On the redis store served by event loops the loops do all the serving and the node holds no
// data, so its heap and its garbage collection are small: one processor per loop is enough (and
// never more than Go's default). A
// spare processor only adds runtime threads that wake, poll and sleep beside the loops, taking
// CPU from the loops and from the Redis behind them when they share the machine. On the 2-core
// test machine one processor raised the redis store's throughput by 5 to 35 % (BENCHMARKS.md).
// The memory store keeps the default: its garbage collector, which marks every value it holds,
// then runs on processors of its own instead of taking turns with the loops (with 1M 1 KiB values
// one processor cost a fifth of its SET throughput).
func (s *Server) Procs() int {
	if s.loops > 0 && s.cfg.Store.Type == "redis" {
		return min(s.loops, runtime.GOMAXPROCS(0)) // more loops than CPUs gain nothing from more
	}
	return 0
}

// percentiles are cfg's latency_tracking_info_percentiles (Validate has checked them).
func percentiles(cfg config.Config) []float64 {
	ps, err := latency.ParsePercentiles(cfg.LatencyTrackingInfoPercentiles)
	if err != nil {
		return latency.DefaultPercentiles
	}
	return ps
}

// redisSettings are the CONFIG GET parameters, under Redis's names.
func redisSettings(cfg config.Config) map[string]string {
	events, _ := pubsub.ParseEvents(cfg.NotifyKeyspaceEvents) // Validate has checked it
	policy := map[string]string{"ttl_only": "noeviction", "lru": "allkeys-lru", "lfu": "allkeys-lfu"}[cfg.EvictionPolicy]
	host, port, _ := net.SplitHostPort(cfg.Listen)
	if host == "" {
		host = "*" // every address, as Redis spells it
	}
	// Redis's log levels are debug, verbose, notice and warning.
	logLevel := map[string]string{"debug": "debug", "info": "notice", "warn": "warning", "error": "warning"}[cfg.LogLevel]
	return map[string]string{
		"maxclients":                        strconv.Itoa(cfg.MaxClients),
		"timeout":                           strconv.FormatInt(int64(cfg.Timeout.Seconds()), 10),
		"proto-max-bulk-len":                strconv.FormatInt(cfg.ProtoMaxBulkLen, 10),
		"maxmemory":                         strconv.FormatInt(cfg.MaxMemory, 10),
		"maxmemory-policy":                  policy,
		"databases":                         "1",
		"save":                              "",
		"appendonly":                        "no",
		"protected-mode":                    map[bool]string{true: "yes", false: "no"}[cfg.ProtectedMode],
		"bind":                              host,
		"port":                              port,
		"loglevel":                          logLevel,
		"cluster-enabled":                   "no", // a partitioned Vela is one cache to its clients, not a Redis Cluster
		"maxmemory-samples":                 "5",  // the memory store's eviction sample (memory.Config.Samples)
		"notify-keyspace-events":            events.String(),
		"requirepass":                       cfg.RequirePass, // Redis shows it too, to clients allowed to run CONFIG
		"slowlog-log-slower-than":           strconv.FormatInt(cfg.SlowlogLogSlowerThan, 10),
		"slowlog-max-len":                   strconv.Itoa(cfg.SlowlogMaxLen),
		"latency-monitor-threshold":         strconv.FormatInt(cfg.LatencyMonitorThreshold, 10),
		"latency-tracking":                  map[bool]string{true: "yes", false: "no"}[cfg.LatencyTracking],
		"latency-tracking-info-percentiles": latency.FormatPercentiles(percentiles(cfg)),
	}
}

// Store returns the node's store.
func (s *Server) Store() store.Store { return s.store }

// Node returns the command node, for packages that add commands.
func (s *Server) Node() *commands.Node { return s.node }

// Leases returns the node's in-process FETCHLOCK lease manager (nil when the redis store keeps
// the leases in Redis).
func (s *Server) Leases() *fetchlock.Manager { return s.leases }

// Metrics returns the node's telemetry, for packages that add collectors or readiness checks;
// nil when metrics_listen is "".
func (s *Server) Metrics() *metrics.Metrics { return s.metrics }

// MetricsAddr returns the address /metrics is served on ("" when disabled or before Start).
func (s *Server) MetricsAddr() string {
	if s.metrics == nil {
		return ""
	}
	return s.metrics.Addr()
}

// registerNearMetrics exports the near cache's size and state (its hits and misses are among
// the counters already).
func (s *Server) registerNearMetrics() {
	if s.metrics == nil || s.near == nil {
		return
	}
	near := s.near
	s.metrics.Registerer().MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vela_near_cache_entries", Help: "Copies held by the near cache.",
		}, func() float64 { return float64(near.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vela_near_cache_live", Help: "1 while the near cache serves copies (its invalidation channels are up).",
		}, func() float64 {
			if near.Live() {
				return 1
			}
			return 0
		}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "vela_near_cache_flushes_total", Help: "Times the near cache dropped every copy (FLUSHALL, a lost channel, a ring change).",
		}, func() float64 { return float64(near.Flushes()) }),
	)
}

// stopNear ends the near cache's tracker and the cache, if they run.
func (s *Server) stopNear() {
	if s.nearTracker != nil {
		s.nearTracker.Close()
	}
	if s.near != nil {
		s.near.Close()
	}
}

// Start binds the listener and starts serving and sweeping. On error nothing is left running.
func (s *Server) Start() error {
	if err := s.resp.Listen(); err != nil {
		_ = s.store.Close()
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	if s.cfg.NearCache.Enabled && s.cfg.Topology.Type == "local" {
		// The cache serves nothing until the tracker's connection is tracking.
		near, err := nearcache.New(s.cfg.NearCache.MaxSize, s.cfg.NearCache.L1TTL)
		if err != nil {
			_ = s.resp.Shutdown(context.Background())
			_ = s.store.Close()
			return fmt.Errorf("near cache: %w", err)
		}
		s.near = near
		s.node.SetNearCache(near)
		s.registerNearMetrics()
		rs := s.store.(*redisstore.Store)
		s.nearTracker = nearcache.Track(near, nearcache.TrackerConfig{
			Masters: rs.Masters, Dial: rs.DialMaster, Timeout: rs.Timeout(), Log: s.log})
	}
	if s.metrics != nil {
		if err := s.metrics.Start(s.cfg.MetricsListen); err != nil {
			_ = s.resp.Shutdown(context.Background())
			s.stopNear()
			_ = s.store.Close()
			return err
		}
	}
	if sw, ok := s.store.(store.Sweeper); ok && s.cfg.SweepInterval > 0 {
		// The memory store counts every expiration itself (memory.Config.Stats), lazy ones
		// included; for other stores the sweep's count is added here. A long sweep is a latency
		// spike ("expire-cycle", as Redis's active expiry).
		countSwept := s.cfg.Store.Type != "memory"
		onSwept := func(n int, took time.Duration) {
			if countSwept && n > 0 && s.stats.On() {
				s.stats.Expirations.Add(uint64(n))
			}
			s.node.Latency().Note("expire-cycle", took)
		}
		s.sweep = store.StartSweep(sw, s.cfg.SweepInterval, s.node.Paused, onSwept, s.log)
	}
	if s.topo != nil {
		// Join once the listener is up, so peers can forward to this node as soon as they see it.
		if err := s.topo.Start(s.resp.Addr().String()); err != nil {
			_ = s.resp.Shutdown(context.Background())
			if s.sweep != nil {
				_ = s.sweep.Shutdown(context.Background())
			}
			if s.metrics != nil {
				_ = s.metrics.Shutdown(context.Background())
			}
			s.stopNear()
			_ = s.store.Close()
			return fmt.Errorf("cluster: %w", err)
		}
	}
	go func() { s.serveErr <- s.resp.Serve() }()
	s.sampler.Add(1)
	go s.sampleOps()
	s.ready.Store(true)
	s.log.Info("vela ready", "listen", s.resp.Addr().String(), "store", s.cfg.Store.Type, "topology", s.cfg.Topology.Type)
	return nil
}

// ticker is a store whose clock the node advances: the memory store's idle clock.
type ticker interface{ Tick() }

// sampleOps samples the command count for INFO's instantaneous_ops_per_sec, and advances the
// store's clock, until Shutdown.
func (s *Server) sampleOps() {
	defer s.sampler.Done()
	tick := time.NewTicker(commands.OpsSampleEvery)
	defer tick.Stop()
	clock, _ := s.store.(ticker)
	for {
		select {
		case <-tick.C:
			s.node.SampleOps()
			if clock != nil {
				clock.Tick()
			}
		case <-s.stopSampler:
			return
		}
	}
}

// Cluster returns the partitioned topology, or nil for a local node.
func (s *Server) Cluster() *partition.Cluster { return s.cluster }

// Replicated returns the replicated topology, or nil unless topology.type = "replicated".
func (s *Server) Replicated() *replicate.Cluster { return s.replicated }

// Addr returns the RESP listener's address (useful with port 0).
func (s *Server) Addr() string { return s.resp.Addr().String() }

// Shutdown stops accepting, lets in-flight commands finish, stops the sweep and closes the store.
// It is idempotent and honours ctx's deadline.
func (s *Server) Shutdown(ctx context.Context) error {
	s.once.Do(func() {
		s.ready.Store(false)
		var errs []error
		if s.topo != nil {
			// Hand the keys over and say goodbye while the listener still serves (and forwards).
			s.topo.Leave(ctx)
		}
		// Wake FETCHLOCK waiters first (they answer TIMEOUT) so in-flight commands finish promptly.
		if s.leases != nil {
			errs = append(errs, s.leases.Shutdown(ctx))
		}
		if s.redisLeases != nil {
			errs = append(errs, s.redisLeases.Close())
		}
		errs = append(errs, s.resp.Shutdown(ctx))
		close(s.stopSampler)
		s.sampler.Wait()
		if s.topo != nil {
			errs = append(errs, s.topo.Shutdown(ctx))
		}
		if s.sweep != nil {
			errs = append(errs, s.sweep.Shutdown(ctx))
		}
		s.stopNear()
		errs = append(errs, s.store.Close())
		if s.metrics != nil {
			errs = append(errs, s.metrics.Shutdown(ctx))
		}
		s.errShut = errors.Join(errs...)
		s.log.Info("vela stopped")
	})
	return s.errShut
}
