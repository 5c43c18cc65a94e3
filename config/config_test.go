package config

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "vela.toml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := "max_clients = 5\nlog_level = \"warn\"\n[store]\ntype = \"memory\"\n"
	for _, tc := range []struct {
		name string
		file bool
		env  []string
		args []string
		want int
	}{
		{"default", false, nil, nil, 10000},
		{"file over default", true, nil, nil, 5},
		{"env over file", true, []string{"VELA_MAX_CLIENTS=6"}, nil, 6},
		{"flag over env", true, []string{"VELA_MAX_CLIENTS=6"}, []string{"-max_clients", "7"}, 7},
		{"flag without file", false, nil, []string{"-max_clients=8"}, 8},
		{"env without file", false, []string{"VELA_MAX_CLIENTS=9"}, nil, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file {
				args = append([]string{"-config", writeFile(t, file)}, args...)
			}
			c, err := Load(args, tc.env, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if c.MaxClients != tc.want {
				t.Fatalf("max_clients = %d, want %d", c.MaxClients, tc.want)
			}
			if tc.file && c.LogLevel != "warn" {
				t.Fatalf("a key only the file sets was lost: log_level = %q", c.LogLevel)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		name  string
		file  string
		env   []string
		args  []string
		check func(c Config) bool
	}{
		{"duration integer is milliseconds", "default_ttl = 1500", nil, nil,
			func(c Config) bool { return c.DefaultTTL == 1500*time.Millisecond }},
		{"duration string", "default_ttl = \"5m\"", nil, nil,
			func(c Config) bool { return c.DefaultTTL == 5*time.Minute }},
		{"duration infinity", "default_ttl = \"infinity\"", nil, nil,
			func(c Config) bool { return c.DefaultTTL == 0 }},
		{"duration zero", "sweep_interval = 0", nil, nil,
			func(c Config) bool { return c.SweepInterval == 0 }},
		{"duration env milliseconds", "", []string{"VELA_TIMEOUT=250"}, nil,
			func(c Config) bool { return c.Timeout == 250*time.Millisecond }},
		{"duration flag with dash alias", "", nil, []string{"-default-ttl", "2s"},
			func(c Config) bool { return c.DefaultTTL == 2*time.Second }},
		{"size string", "proto_max_bulk_len = \"512mb\"", nil, nil,
			func(c Config) bool { return c.ProtoMaxBulkLen == 512<<20 }},
		{"size kb", "max_memory = \"64KB\"", nil, nil,
			func(c Config) bool { return c.MaxMemory == 64<<10 }},
		{"size integer", "proto_max_bulk_len = 1048576", nil, nil,
			func(c Config) bool { return c.ProtoMaxBulkLen == 1<<20 }},
		{"size gb env", "", []string{"VELA_MAX_MEMORY=1gb"}, nil,
			func(c Config) bool { return c.MaxMemory == 1<<30 }},
		{"nested table", "[store]\ntype = \"disk\"\n[store.disk]\npath = \"/tmp/x.db\"\n", nil, nil,
			func(c Config) bool { return c.Store.Type == "disk" && c.Store.DiskPath == "/tmp/x.db" }},
		{"dotted key", "near_cache.l1_ttl = 5000", nil, nil,
			func(c Config) bool { return c.NearCache.L1TTL == 5*time.Second }},
		{"near cache on the redis store", "[store]\ntype = \"redis\"\n[near_cache]\nenabled = true", nil, nil,
			func(c Config) bool { return c.NearCache.Enabled && c.NearCache.MaxSize == 100000 }},
		{"list", "[cluster]\njoin = [\"a:1\", \"b:2\"]", nil, nil,
			func(c Config) bool { return strings.Join(c.Cluster.Join, ",") == "a:1,b:2" }},
		{"list from env", "", []string{"VELA_CLUSTER_JOIN=a:1, b:2"}, nil,
			func(c Config) bool { return strings.Join(c.Cluster.Join, ",") == "a:1,b:2" }},
		{"bool from env", "", []string{"VELA_STATS_ENABLED=false"}, nil,
			func(c Config) bool { return !c.StatsEnabled }},
		{"env for a dotted key", "", []string{"VELA_STORE_TYPE=disk"}, nil,
			func(c Config) bool { return c.Store.Type == "disk" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"-config", writeFile(t, tc.file)}, args...)
			}
			c, err := Load(args, tc.env, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Fatalf("unexpected config: %+v", c)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
		env  []string
		args []string
		key  string // the key the error must name
	}{
		{"unknown key", "max_cleints = 5", nil, nil, "max_cleints"},
		{"unknown nested key", "[store]\ncolour = 1", nil, nil, "store.colour"},
		{"string for integer", "max_clients = \"many\"", nil, nil, "max_clients"},
		{"integer for string", "listen = 6379", nil, nil, "listen"},
		{"integer for bool", "protected_mode = 1", nil, nil, "protected_mode"},
		{"bad duration", "default_ttl = \"soon\"", nil, nil, "default_ttl"},
		{"negative duration", "default_ttl = -5", nil, nil, "default_ttl"},
		{"float duration", "default_ttl = 1.5", nil, nil, "default_ttl"},
		{"duration overflow", "default_ttl = 9223372036854775807", nil, nil, "default_ttl"},
		{"bad size", "max_memory = \"lots\"", nil, nil, "max_memory"},
		{"bad enum", "eviction_policy = \"random\"", nil, nil, "eviction_policy"},
		{"replicated topology on the redis store", "[store]\ntype = \"redis\"\nredis.url = \"redis://127.0.0.1:6379\"\n[cluster]\nnode_name = \"a\"", []string{"VELA_TOPOLOGY_TYPE=replicated"}, nil, "topology.type"},
		{"replicated topology with replicas", "[cluster]\nnode_name = \"a\"\nreplicas = 2", []string{"VELA_TOPOLOGY_TYPE=replicated"}, nil, "cluster.replicas"},
		{"near cache in a replicated cluster", "[cluster]\nnode_name = \"a\"\n[near_cache]\nenabled = true", []string{"VELA_TOPOLOGY_TYPE=replicated"}, nil, "near_cache.enabled"},
		{"near cache on the memory store", "[near_cache]\nenabled = true", nil, nil, "near_cache.enabled"},
		{"near cache of no size", "[store]\ntype = \"redis\"\n[near_cache]\nenabled = true\nmax_size = 0", nil, nil, "near_cache.max_size"},
		{"bad address", "listen = \"nowhere\"", nil, nil, "listen"},
		{"impossible port", "", nil, []string{"-listen", "127.0.0.1:99999"}, "listen"},
		{"impossible metrics port", "", nil, []string{"-metrics_listen", "127.0.0.1:65536"}, "metrics_listen"},
		{"bad env", "", []string{"VELA_MAX_CLIENTS=x"}, nil, "max_clients"},
		{"bad flag", "", nil, []string{"-sweep_interval", "x"}, "sweep_interval"},
		{"unknown flag", "", nil, []string{"-nosuch", "1"}, "nosuch"},
		{"protected mode", "listen = \"0.0.0.0:6379\"", nil, nil, "requirepass"},
		{"zero clients", "max_clients = 0", nil, nil, "max_clients"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"-config", writeFile(t, tc.file)}, args...)
			}
			_, err := Load(args, tc.env, io.Discard)
			if err == nil {
				t.Fatal("loaded without error")
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.key) || strings.Contains(msg, "\n") {
				t.Fatalf("error %q is not one line naming %q", msg, tc.key)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out strings.Builder
	_, err := Load([]string{"-h"}, nil, &out)
	if !errors.Is(err, flag.ErrHelp) || !strings.Contains(out.String(), "-default_ttl") {
		t.Fatalf("-h: %v, output %q", err, out.String())
	}
}

func TestParseDurationAndSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want time.Duration
		ok   bool
	}{
		{"milliseconds", "1500", 1500 * time.Millisecond, true},
		{"go duration", "1m30s", 90 * time.Second, true},
		{"infinity", "Infinity", 0, true},
		{"empty", "", 0, true},
		{"negative", "-1s", 0, false},
		{"garbage", "soon", 0, false},
	} {
		t.Run("duration "+tc.name, func(t *testing.T) {
			got, err := ParseDuration(tc.in)
			if got != tc.want || (err == nil) != tc.ok {
				t.Fatalf("ParseDuration(%q) = %v, %v", tc.in, got, err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		in   string
		want int64
		ok   bool
	}{
		{"bytes", "1024", 1024, true},
		{"mb", "512mb", 512 << 20, true},
		{"upper case", "2GB", 2 << 30, true},
		{"short unit, powers of 1000 as in Redis", "4k", 4000, true},
		{"short giga", "2g", 2_000_000_000, true},
		{"space", " 8 mb ", 8 << 20, true},
		{"negative", "-1", 0, false},
		{"overflow", "9999999999gb", 0, false},
		{"unit only", "mb", 0, false},
	} {
		t.Run("size "+tc.name, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if got != tc.want || (err == nil) != tc.ok {
				t.Fatalf("ParseSize(%q) = %d, %v", tc.in, got, err)
			}
		})
	}
}
