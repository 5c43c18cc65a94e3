package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
)

// kind is how a key's value is written.
type kind int

const (
	kString   kind = iota
	kBool          // true/false
	kInt           // integer
	kDuration      // TOML integer = milliseconds; string = Go duration; "infinity" or 0 = none
	kSize          // integer bytes or "512mb"-style string
	kList          // TOML array of strings; comma-separated in flags and environment
)

// key is one configuration key and where its value goes.
type key struct {
	name string
	kind kind
	help string
	ptr  any
}

// keys lists every key of c, pointing into c.
func (c *Config) keys() []key {
	return []key{
		{"listen", kString, "RESP address", &c.Listen},
		{"metrics_listen", kString, "HTTP address for /metrics, /healthz, /readyz (\"\" disables)", &c.MetricsListen},
		{"requirepass", kString, "password for AUTH", &c.RequirePass},
		{"default_ttl", kDuration, "TTL for writes that give none", &c.DefaultTTL},
		{"protected_mode", kBool, "refuse a non-loopback listen without requirepass", &c.ProtectedMode},
		{"max_clients", kInt, "most concurrent connections", &c.MaxClients},
		{"timeout", kDuration, "close a client idle this long (0: never)", &c.Timeout},
		{"proto_max_bulk_len", kSize, "largest bulk string a client may send", &c.ProtoMaxBulkLen},
		{"log_level", kString, "debug, info, warn or error", &c.LogLevel},
		{"max_size", kInt, "most live entries per node (0: unlimited)", &c.MaxSize},
		{"max_memory", kSize, "most bytes of keys+values+overhead per node (0: unlimited)", &c.MaxMemory},
		{"eviction_policy", kString, "ttl_only, lru or lfu", &c.EvictionPolicy},
		{"sweep_interval", kDuration, "background TTL sweep period", &c.SweepInterval},
		{"stampede_protection", kBool, "FETCHLOCK waits and GET coalescing", &c.StampedeProtection},
		{"stampede_timeout", kDuration, "default FETCHLOCK wait and lease", &c.StampedeTimeout},
		{"stats_enabled", kBool, "counters for STATS and INFO", &c.StatsEnabled},
		{"slowlog_log_slower_than", kInt, "microseconds a command must run to enter SLOWLOG (0: every command, -1: none)", &c.SlowlogLogSlowerThan},
		{"slowlog_max_len", kInt, "entries SLOWLOG keeps", &c.SlowlogMaxLen},
		{"latency_monitor_threshold", kInt, "milliseconds an event must take to enter LATENCY (0: none)", &c.LatencyMonitorThreshold},
		{"latency_tracking", kBool, "record commands' run times for INFO latencystats and LATENCY HISTOGRAM", &c.LatencyTracking},
		{"latency_tracking_info_percentiles", kString, "percentiles INFO latencystats prints, space-separated", &c.LatencyTrackingInfoPercentiles},
		{"notify_keyspace_events", kString, "keyspace notifications to publish, Redis's letters (\"\": none)", &c.NotifyKeyspaceEvents},
		{"event_loops", kInt, "epoll loops serving clients of the memory store (0: a goroutine per client)", &c.EventLoops},
		{"store.type", kString, "memory, disk or redis", &c.Store.Type},
		{"store.disk.path", kString, "bbolt file of the disk store", &c.Store.DiskPath},
		{"store.redis.url", kString, "external Redis for the redis store", &c.Store.RedisURL},
		{"topology.type", kString, "local, replicated or partitioned", &c.Topology.Type},
		{"cluster.node_name", kString, "unique member name", &c.Cluster.NodeName},
		{"cluster.gossip_listen", kString, "memberlist bind address", &c.Cluster.GossipListen},
		{"cluster.advertise", kString, "address peers use (derived when empty)", &c.Cluster.Advertise},
		{"cluster.join", kList, "seed members, host:port", &c.Cluster.Join},
		{"cluster.secret", kString, "gossip encryption key and peer authentication", &c.Cluster.Secret},
		{"cluster.replicas", kInt, "copies of each key in partitioned mode", &c.Cluster.Replicas},
		{"cluster.gossip_profile", kString, "memberlist timings: lan, wan or local (one host)", &c.Cluster.GossipProfile},
		{"cluster.forward_timeout", kDuration, "longest wait for a peer's reply to a forwarded command", &c.Cluster.ForwardTimeout},
		{"near_cache.enabled", kBool, "L1 in front of the topology", &c.NearCache.Enabled},
		{"near_cache.l1_ttl", kDuration, "longest an L1 copy lives", &c.NearCache.L1TTL},
		{"near_cache.max_size", kInt, "L1 entries", &c.NearCache.MaxSize},
	}
}

// Keys returns every configuration key name, sorted.
func Keys() []string {
	var c Config
	var names []string
	for _, k := range c.keys() {
		names = append(names, k.name)
	}
	sort.Strings(names)
	return names
}

// Load builds the configuration from args (without the program name) and the environment,
// reading the file named by -config when given. Output for -h goes to usage.
func Load(args []string, environ []string, usage io.Writer) (Config, error) {
	c := Default()
	keys := c.keys()
	byName := map[string]key{}
	for _, k := range keys {
		byName[k.name] = k
	}

	fs := flag.NewFlagSet("vela", flag.ContinueOnError)
	// The flag package prints the whole usage on any error; a bad flag must give one line, so
	// usage is printed only for -h.
	fs.SetOutput(io.Discard)
	configPath := fs.String("config", "", "TOML configuration file")
	flagValues := map[string]*string{}
	for _, k := range keys {
		v := fs.String(k.name, "", k.help)
		flagValues[k.name] = v
		if alias := strings.ReplaceAll(k.name, "_", "-"); alias != k.name {
			// -default-ttl and -default_ttl are the same flag.
			fs.StringVar(v, alias, "", "same as -"+k.name)
			flagValues[alias] = v
			byName[alias] = k
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usage)
			fs.Usage()
			return c, err
		}
		return c, &Error{"", err.Error()}
	}
	if fs.NArg() > 0 {
		return c, &Error{"", fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}

	if *configPath != "" {
		if err := c.loadFile(*configPath, byName); err != nil {
			return c, err
		}
		c.File = *configPath
		if abs, err := filepath.Abs(*configPath); err == nil {
			c.File = abs
		}
	}
	env := map[string]string{}
	for _, kv := range environ {
		if i := strings.IndexByte(kv, '='); i > 0 {
			env[kv[:i]] = kv[i+1:]
		}
	}
	for _, k := range keys {
		name := "VELA_" + strings.ToUpper(strings.ReplaceAll(k.name, ".", "_"))
		if v, ok := env[name]; ok {
			if err := setString(k, v); err != nil {
				return c, &Error{k.name, err.Error() + " (from " + name + ")"}
			}
		}
	}
	var flagErr error
	fs.Visit(func(f *flag.Flag) {
		if k, ok := byName[f.Name]; ok && flagErr == nil {
			if err := setString(k, *flagValues[f.Name]); err != nil {
				flagErr = &Error{k.name, err.Error() + " (from -" + f.Name + ")"}
			}
		}
	})
	if flagErr != nil {
		return c, flagErr
	}
	return c, c.Validate()
}

// loadFile reads a TOML file; nested tables give dotted keys ([store.disk] path = … is
// "store.disk.path").
func (c *Config) loadFile(path string, byName map[string]key) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return &Error{"", err.Error()}
	}
	var tree map[string]any
	if err := toml.Unmarshal(data, &tree); err != nil {
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return &Error{"", fmt.Sprintf("%s:%d:%d: %s", path, row, col, de.Error())}
		}
		return &Error{"", path + ": " + err.Error()}
	}
	flat := map[string]any{}
	flatten("", tree, flat)
	names := make([]string, 0, len(flat))
	for name := range flat {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		k, ok := byName[name]
		if !ok {
			return &Error{name, "unknown key in " + path}
		}
		if err := setTOML(k, flat[name]); err != nil {
			return &Error{name, err.Error() + " in " + path}
		}
	}
	return nil
}

func flatten(prefix string, tree map[string]any, out map[string]any) {
	for k, v := range tree {
		name := k
		if prefix != "" {
			name = prefix + "." + k
		}
		if sub, ok := v.(map[string]any); ok {
			flatten(name, sub, out)
			continue
		}
		out[name] = v
	}
}

// setTOML stores a decoded TOML value.
func setTOML(k key, v any) error {
	switch k.kind {
	case kString:
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("must be a string (got %v)", v)
		}
		*k.ptr.(*string) = s
	case kBool:
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("must be true or false (got %s)", tomlValue(v))
		}
		*k.ptr.(*bool) = b
	case kInt:
		n, ok := v.(int64)
		if !ok {
			return fmt.Errorf("must be an integer (got %s)", tomlValue(v))
		}
		return setInt(k, n)
	case kDuration:
		switch x := v.(type) {
		case int64:
			if x < 0 {
				return fmt.Errorf("must not be negative (got %d)", x)
			}
			if x > maxDurationMs {
				return fmt.Errorf("too large (got %d ms)", x)
			}
			*k.ptr.(*time.Duration) = time.Duration(x) * time.Millisecond
		case string:
			return setString(k, x)
		default:
			return fmt.Errorf("must be milliseconds or a duration string like \"5m\" (got %v)", v)
		}
	case kSize:
		switch x := v.(type) {
		case int64:
			if x < 0 {
				return fmt.Errorf("must not be negative (got %d)", x)
			}
			*k.ptr.(*int64) = x
		case string:
			return setString(k, x)
		default:
			return fmt.Errorf("must be bytes or a size string like \"512mb\" (got %v)", v)
		}
	case kList:
		arr, ok := v.([]any)
		if !ok {
			return fmt.Errorf("must be an array of strings (got %v)", v)
		}
		list := make([]string, 0, len(arr))
		for _, e := range arr {
			s, ok := e.(string)
			if !ok {
				return fmt.Errorf("must be an array of strings (got %v)", e)
			}
			list = append(list, s)
		}
		*k.ptr.(*[]string) = list
	}
	return nil
}

// setString stores a value given as text (flag, environment, or a TOML string).
func setString(k key, s string) error {
	switch k.kind {
	case kString:
		*k.ptr.(*string) = s
	case kBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("must be true or false (got %q)", s)
		}
		*k.ptr.(*bool) = b
	case kInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("must be an integer (got %q)", s)
		}
		return setInt(k, n)
	case kDuration:
		d, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*k.ptr.(*time.Duration) = d
	case kSize:
		n, err := ParseSize(s)
		if err != nil {
			return err
		}
		*k.ptr.(*int64) = n
	case kList:
		var list []string
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				list = append(list, part)
			}
		}
		*k.ptr.(*[]string) = list
	}
	return nil
}

func setInt(k key, n int64) error {
	switch p := k.ptr.(type) {
	case *int:
		if int64(int(n)) != n {
			return fmt.Errorf("out of range (got %d)", n)
		}
		*p = int(n)
	case *int64:
		*p = n
	}
	return nil
}

// maxDurationMs is the largest duration in milliseconds a time.Duration holds (about 292 years).
const maxDurationMs = int64(1<<63-1) / int64(time.Millisecond)

// ParseDuration reads a duration as the configuration writes it: a Go duration ("5m", "250ms"),
// a bare integer of milliseconds, or "infinity"/"0" for none (0).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "infinity") || s == "0" || s == "" {
		return 0, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 {
			return 0, fmt.Errorf("must not be negative (got %q)", s)
		}
		if ms > maxDurationMs {
			return 0, fmt.Errorf("too large (got %q ms)", s)
		}
		return time.Duration(ms) * time.Millisecond, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("must be a duration like \"5m\", milliseconds, or \"infinity\" (got %q)", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("must not be negative (got %q)", s)
	}
	return d, nil
}

// ParseSize reads a size as Redis reads its configuration: bytes, or a number with a unit b,
// kb, mb, gb (powers of 1024) or k, m, g (powers of 1000); case-insensitive.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"gb", 1 << 30}, {"mb", 1 << 20}, {"kb", 1 << 10}, {"g", 1e9}, {"m", 1e6}, {"k", 1e3}, {"b", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/mult {
		return 0, fmt.Errorf("must be a size like 1024, \"64kb\" or \"512mb\" (got %q)", s)
	}
	return n * mult, nil
}

// tomlValue shows a value of a configuration file as it was written: a string quoted, so that
// "10" (a string where a number belongs) does not read as 10.
func tomlValue(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}
