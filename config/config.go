// Package config loads Vela's configuration: defaults, then a TOML file, then VELA_* environment
// variables, then command-line flags, each overriding the one before. Every key has a flag of the
// same name ("-default_ttl 5m", "-store.type disk") and an environment variable (VELA_ plus the
// key in upper case with '.' as '_').
//
// Loading is strict: an unknown key, a value of the wrong type or an impossible combination is an
// error naming the key, so a typo never silently runs a default.
package config

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vela-cache/vela/latency"
	"github.com/vela-cache/vela/pubsub"
)

// percentilesErr reports whether s is not a valid latency_tracking_info_percentiles.
func percentilesErr(s string) error {
	_, err := latency.ParsePercentiles(s)
	return err
}

// validEvents reports whether s is a valid notify_keyspace_events.
func validEvents(s string) bool {
	_, ok := pubsub.ParseEvents(s)
	return ok
}

// Config is the whole configuration. Its zero value is not valid; start from Default.
type Config struct {
	// File is the TOML file the configuration was read from (-config), as an absolute path;
	// "" when none was. CONFIG REWRITE writes to it.
	File string

	Listen             string        // RESP address
	MetricsListen      string        // HTTP /metrics, /healthz, /readyz; "" disables
	RequirePass        string        // password for AUTH; "" none
	DefaultTTL         time.Duration // TTL for writes that give none; 0 none
	ProtectedMode      bool          // refuse a non-loopback Listen without RequirePass
	MaxClients         int           // most concurrent connections
	Timeout            time.Duration // close clients idle this long; 0 never
	ProtoMaxBulkLen    int64         // largest bulk string a client may send
	LogLevel           string        // debug, info, warn, error
	MaxSize            int64         // most live entries; 0 unlimited
	MaxMemory          int64         // most bytes of keys+values+overhead; 0 unlimited
	EvictionPolicy     string        // ttl_only, lru, lfu
	SweepInterval      time.Duration // background TTL sweep period; 0 disables the sweep
	StampedeProtection bool          // FETCHLOCK waits and GET coalescing
	StampedeTimeout    time.Duration // default FETCHLOCK wait and lease
	StatsEnabled       bool          // counters for STATS/INFO
	EventLoops         int           // epoll loops serving clients (memory store, or redis store on one Redis without TLS); 0 none (default: half the CPUs, at least 1)
	// SlowlogLogSlowerThan is the time in microseconds a command must run to enter the slow
	// log (0: every command; -1: none); SlowlogMaxLen is how many entries it keeps.
	SlowlogLogSlowerThan int64
	SlowlogMaxLen        int
	// LatencyMonitorThreshold is the milliseconds an event (a command, an expiry sweep) must
	// take to enter LATENCY's history; 0 keeps none.
	LatencyMonitorThreshold int64
	// LatencyTracking records every command's run times for INFO latencystats and LATENCY
	// HISTOGRAM (Redis's latency-tracking, on by default);
	// LatencyTrackingInfoPercentiles are the percentiles INFO prints, in Redis's format:
	// numbers from 0 to 100 separated by single spaces.
	LatencyTracking                bool
	LatencyTrackingInfoPercentiles string
	// NotifyKeyspaceEvents selects the keyspace notifications published to Pub/Sub subscribers,
	// in Redis's notify-keyspace-events letters ("" by default: none, as in Redis).
	NotifyKeyspaceEvents string

	Store     StoreConfig
	Topology  TopologyConfig
	Cluster   ClusterConfig
	NearCache NearCacheConfig
}

// StoreConfig chooses and configures the store.
type StoreConfig struct {
	Type     string // memory, disk, redis
	DiskPath string // bbolt file for the disk store
	RedisURL string // external Redis for the redis store
}

// TopologyConfig chooses the topology.
type TopologyConfig struct {
	Type string // local, replicated, partitioned
}

// ClusterConfig configures membership for the cluster topologies.
type ClusterConfig struct {
	NodeName     string   // unique member name
	GossipListen string   // memberlist bind address
	Advertise    string   // address peers use; derived when empty
	Join         []string // seed members
	Secret       string   // gossip encryption key and peer authentication
	Replicas     int      // copies of each key in partitioned mode
	// GossipProfile picks memberlist's timings: lan (default), wan, or local (one host, tests).
	GossipProfile string
	// ForwardTimeout bounds a request forwarded to a peer; a dead or slow peer gives clients an
	// error after it.
	ForwardTimeout time.Duration
}

// NearCacheConfig configures the L1 near cache.
type NearCacheConfig struct {
	Enabled bool
	L1TTL   time.Duration
	MaxSize int
}

// Default returns the configuration `go run .` uses: a local memory-store node on
// 127.0.0.1:6379.
func Default() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "vela"
	}
	return Config{
		Listen:             "127.0.0.1:6379",
		MetricsListen:      "127.0.0.1:9121",
		ProtectedMode:      true,
		MaxClients:         10000,
		ProtoMaxBulkLen:    512 << 20,
		LogLevel:           "info",
		EvictionPolicy:     "ttl_only",
		SweepInterval:      30 * time.Second,
		StampedeProtection: true,
		StampedeTimeout:    5 * time.Second,
		StatsEnabled:       true,
		EventLoops:         max(1, runtime.GOMAXPROCS(0)/2),
		// Redis's defaults.
		SlowlogLogSlowerThan:           10000,
		SlowlogMaxLen:                  128,
		LatencyTracking:                true,
		LatencyTrackingInfoPercentiles: "50 99 99.9",
		Store:                          StoreConfig{Type: "memory", DiskPath: "./data/vela.db", RedisURL: "redis://127.0.0.1:6379/0"},
		Topology:                       TopologyConfig{Type: "local"},
		Cluster: ClusterConfig{NodeName: host, GossipListen: "127.0.0.1:7946", Replicas: 1,
			GossipProfile: "lan", ForwardTimeout: time.Second},
		NearCache: NearCacheConfig{L1TTL: 60 * time.Second, MaxSize: 100000},
	}
}

// Error is a configuration problem with the key it concerns.
type Error struct {
	Key string
	Msg string
}

// Error implements error: the one-line message the binary prints before exiting with code 2.
func (e *Error) Error() string {
	if e.Key == "" {
		return "config: " + e.Msg
	}
	return "config: " + e.Key + ": " + e.Msg
}

// Validate checks values and combinations that no single key's parser can.
func (c *Config) Validate() error {
	oneOf := func(key, v string, allowed ...string) error {
		for _, a := range allowed {
			if v == a {
				return nil
			}
		}
		return &Error{key, fmt.Sprintf("must be one of %s (got %q)", strings.Join(allowed, ", "), v)}
	}
	checks := []error{
		oneOf("log_level", c.LogLevel, "debug", "info", "warn", "error"),
		oneOf("eviction_policy", c.EvictionPolicy, "ttl_only", "lru", "lfu"),
		oneOf("store.type", c.Store.Type, "memory", "disk", "redis"),
		oneOf("topology.type", c.Topology.Type, "local", "replicated", "partitioned"),
		oneOf("cluster.gossip_profile", c.Cluster.GossipProfile, "lan", "wan", "local"),
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	if !hostPort(c.Listen) {
		return &Error{"listen", fmt.Sprintf("not a host:port address (%q)", c.Listen)}
	}
	if c.MetricsListen != "" {
		if !hostPort(c.MetricsListen) {
			return &Error{"metrics_listen", fmt.Sprintf("not a host:port address (%q)", c.MetricsListen)}
		}
	}
	if c.ProtectedMode && c.RequirePass == "" && !isLoopback(c.Listen) {
		return &Error{"requirepass", fmt.Sprintf("required when listen (%s) is not a loopback address; set requirepass or protected_mode = false", c.Listen)}
	}
	switch {
	case c.MaxClients < 1:
		return &Error{"max_clients", "must be at least 1"}
	case c.ProtoMaxBulkLen < 1:
		return &Error{"proto_max_bulk_len", "must be at least 1 byte"}
	case c.MaxSize < 0:
		return &Error{"max_size", "must not be negative"}
	case c.MaxMemory < 0:
		return &Error{"max_memory", "must not be negative"}
	case c.DefaultTTL < 0:
		return &Error{"default_ttl", "must not be negative"}
	case c.EventLoops < 0 || c.EventLoops > 1024:
		return &Error{"event_loops", "must be between 0 and 1024"}
	case c.Timeout < 0:
		return &Error{"timeout", "must not be negative"}
	case c.SlowlogLogSlowerThan < -1:
		return &Error{"slowlog_log_slower_than", "must be -1 (no slow log), 0 (every command) or a number of microseconds"}
	case c.SlowlogMaxLen < 0:
		return &Error{"slowlog_max_len", "must not be negative"}
	case c.LatencyMonitorThreshold < 0:
		return &Error{"latency_monitor_threshold", "must not be negative (0 turns the monitor off)"}
	case percentilesErr(c.LatencyTrackingInfoPercentiles) != nil:
		return &Error{"latency_tracking_info_percentiles", "must be numbers from 0 to 100 separated by single spaces, as \"50 99 99.9\""}
	case !validEvents(c.NotifyKeyspaceEvents):
		return &Error{"notify_keyspace_events", "must be letters of \"Ag$lshzxeKEtmdn\", as Redis's notify-keyspace-events"}
	case c.SweepInterval < 0:
		return &Error{"sweep_interval", "must not be negative"}
	case c.StampedeTimeout < 0:
		return &Error{"stampede_timeout", "must not be negative"}
	case c.NearCache.L1TTL < 0:
		return &Error{"near_cache.l1_ttl", "must not be negative"}
	case c.Cluster.ForwardTimeout <= 0:
		return &Error{"cluster.forward_timeout", "must be positive (a dead peer must not hang clients)"}
	case c.Cluster.Replicas < 1:
		return &Error{"cluster.replicas", "must be at least 1"}
	case c.Topology.Type == "replicated" && c.Store.Type == "redis":
		return &Error{"topology.type", `"replicated" keeps a copy of every key on every member, in its own memory or disk store; in front of a shared Redis use "local" (one sidecar per client host) or let Redis replicate`}
	case c.Topology.Type == "replicated" && c.Cluster.Replicas != 1:
		return &Error{"cluster.replicas", `applies to topology.type = "partitioned"; with "replicated" every member holds every key`}
	case c.NearCache.Enabled && c.Topology.Type == "replicated":
		return &Error{"near_cache.enabled", `with topology.type = "replicated" every read is answered from the member's own store: there is nothing to keep near`}
	case c.NearCache.Enabled && c.Topology.Type == "local" && c.Store.Type != "redis":
		return &Error{"near_cache.enabled", `on one node the near cache is for store.type = "redis" (the memory and disk stores are near already)`}
	case c.NearCache.MaxSize < 1 && c.NearCache.Enabled:
		return &Error{"near_cache.max_size", "must be at least 1 when the near cache is enabled"}
	case c.Topology.Type != "local" && c.Cluster.NodeName == "":
		return &Error{"cluster.node_name", "must be set for a cluster topology"}
	case c.Store.Type == "disk" && c.Store.DiskPath == "":
		return &Error{"store.disk.path", "must be set for the disk store"}
	case c.Store.Type == "redis" && c.Store.RedisURL == "":
		return &Error{"store.redis.url", "must be set for the redis store"}
	}
	if c.Topology.Type != "local" {
		if !hostPort(c.Cluster.GossipListen) {
			return &Error{"cluster.gossip_listen", fmt.Sprintf("not a host:port address (%q)", c.Cluster.GossipListen)}
		}
		for _, j := range c.Cluster.Join {
			if !hostPort(j) {
				return &Error{"cluster.join", fmt.Sprintf("not a host:port address (%q)", j)}
			}
		}
	}
	return nil
}

// hostPort reports whether addr is host:port with a port number from 0 to 65535 (or a service
// name, which the system resolves).
func hostPort(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if n, err := strconv.Atoi(port); err == nil {
		return n >= 0 && n <= 65535
	}
	return port != "" && !strings.ContainsAny(port, "+- ")
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
