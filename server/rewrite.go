package server

import (
	"strings"

	"github.com/vela-cache/vela/config"
)

// rewrittenKeys are the parameters CONFIG SET changes at run time, by Redis name: their key in
// Vela's TOML file and whether the value is a string (else a number, or yes/no as a boolean).
var rewrittenKeys = map[string]struct {
	key    string
	quoted bool
}{
	"slowlog-log-slower-than":           {"slowlog_log_slower_than", false},
	"slowlog-max-len":                   {"slowlog_max_len", false},
	"latency-monitor-threshold":         {"latency_monitor_threshold", false},
	"latency-tracking":                  {"latency_tracking", false},
	"latency-tracking-info-percentiles": {"latency_tracking_info_percentiles", true},
	"maxclients":                        {"max_clients", false},
	"notify-keyspace-events":            {"notify_keyspace_events", true},
}

// configRewriter returns CONFIG REWRITE for a node started from file: it writes the settings
// CONFIG SET changes, as the node has them now (CONFIG GET's values, by Redis name), under
// Vela's keys. A setting at its default is written only over a line the file has, as Redis adds
// only what differs from its defaults.
func configRewriter(file string) func(settings map[string]string) error {
	defaults := redisSettings(config.Default())
	return func(settings map[string]string) error {
		set, ifPresent := map[string]string{}, map[string]bool{}
		for param, v := range settings {
			k, ok := rewrittenKeys[param]
			if !ok {
				continue
			}
			switch {
			case k.quoted:
				set[k.key] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
			case v == "yes" || v == "no":
				set[k.key] = map[string]string{"yes": "true", "no": "false"}[v]
			default:
				set[k.key] = v
			}
			if v == defaults[param] {
				ifPresent[k.key] = true
			}
		}
		return config.Rewrite(file, set, ifPresent)
	}
}
