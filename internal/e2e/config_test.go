package e2e_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/vela-cache/vela/config"
	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// TestConfigSetLikeRedis sends CONFIG SET to Redis and to Vela, each started with Redis's
// defaults, and compares the replies: every error form, and the slow log's two parameters
// changed, read back and in effect (what SLOWLOG then keeps). Then, on Vela alone: a parameter
// it reads only at start-up is refused unless set to the value it has, and a password given to
// CONFIG SET is redacted in the slow log, as Redis redacts it.
func TestConfigSetLikeRedis(t *testing.T) {
	want := respclient.Dial(t, redistest.Start(t).Addr)
	vela := testnode.StartDefault(t)
	got := respclient.Dial(t, vela.Addr())
	session := [][]any{
		{"CONFIG", "SET"}, {"CONFIG", "SET", "slowlog-max-len"}, {"CONFIG", "SET", "nosuch", "1"},
		{"CONFIG", "SET", "databases", "1"}, {"CONFIG", "SET", "slowlog-max-len", "5", "b"},
		{"CONFIG", "SET", "slowlog-max-len", "5", "nosuch", "1"},
		{"CONFIG", "SET", "Slowlog-Max-Len", "1", "SLOWLOG-MAX-LEN", "2"},
		{"CONFIG", "SET", "slowlog-max-len", "1", "cluster-enabled", "no"},
		{"CONFIG", "SET", "SLOWLOG-MAX-LEN", "abc"}, {"CONFIG", "SET", "slowlog-max-len", "-1"},
		{"CONFIG", "SET", "slowlog-max-len", "+5"}, {"CONFIG", "SET", "slowlog-log-slower-than", "-2"},
		{"CONFIG", "SET", "slowlog-log-slower-than", "1.5"},
		{"CONFIG", "SET", "slowlog-log-slower-than", "9223372036854775808"},
		{"CONFIG", "GET", "slowlog-max-len"}, {"CONFIG", "GET", "slowlog-log-slower-than"},
		// In effect: everything logged, two entries kept.
		{"CONFIG", "SET", "slowlog-log-slower-than", "0", "slowlog-max-len", "2"},
		{"CONFIG", "GET", "slowlog-max-len"}, {"CONFIG", "GET", "slowlog-log-slower-than"}, {"SLOWLOG", "RESET"},
		{"SET", "k", "1"}, {"GET", "k"}, {"INCR", "k"}, {"SLOWLOG", "LEN"},
		{"CONFIG", "SET", "slowlog-max-len", "1"}, {"SLOWLOG", "LEN"},
		{"CONFIG", "SET", "slowlog-log-slower-than", "-1"}, {"SLOWLOG", "RESET"}, {"GET", "k"},
		{"SLOWLOG", "LEN"},
		{"CONFIG", "SET", "slowlog-log-slower-than", "10000", "slowlog-max-len", "128"},
		// Already so.
		{"CONFIG", "SET", "save", "", "appendonly", "no", "maxmemory", "0"},
		{"CONFIG", "SET", "maxclients", "0"}, {"CONFIG", "SET", "maxclients", "abc"},
		{"CONFIG", "SET", "maxclients", "4294967296"}, {"CONFIG", "SET", "maxclients", "5000"},
		{"CONFIG", "GET", "maxclients"}, {"CONFIG", "SET", "maxclients", "10000"},
	}
	sameReplies(t, want, got, session)
	// The client limit, live: with this connection open, a limit of 1 refuses the next.
	got.Do("CONFIG", "SET", "maxclients", "1").OK()
	extra := respclient.Dial(t, vela.Addr())
	if v, _, err := extra.Receive(); err != nil || !v.IsError() || v.Str != "ERR max number of clients reached" {
		t.Errorf("a connection beyond maxclients 1 got %v, %v", v, err)
	}
	if info := got.Do("INFO", "clients").Value.Str; !strings.Contains(info, "maxclients:1\r\n") {
		t.Errorf("INFO clients after CONFIG SET maxclients 1: %q", info)
	}
	got.Do("CONFIG", "SET", "maxclients", "10000").OK()
	respclient.Dial(t, vela.Addr()).Do("PING").Status("PONG")
	got.Do("CONFIG", "SET", "maxmemory", "100mb").Err("ERR CONFIG SET failed (possibly related to argument 'maxmemory') - Vela reads it at start-up only: change its configuration and restart")
	if v := got.Do("CONFIG", "GET", "maxmemory").Value; len(v.Elems) != 2 || v.Elems[1].Str != "0" {
		t.Errorf("CONFIG GET maxmemory after a refused CONFIG SET: %v", v)
	}
	got.Do("CONFIG", "SET", "slowlog-log-slower-than", "0").OK()
	got.Do("CONFIG", "SET", "requirepass", "secret").ErrPrefix("ERR CONFIG SET failed (possibly related to argument 'requirepass')")
	entry := got.Do("SLOWLOG", "GET", "1").Value.Elems[0].Elems[3].Elems
	if len(entry) != 4 || entry[2].Str != "requirepass" || entry[3].Str != "(redacted)" {
		t.Errorf("the slow log shows CONFIG SET requirepass as %v", entry)
	}
}

// TestConfigResetStatLikeRedis runs the same commands on Redis and on Vela, resets the
// statistics, runs a few more, and compares INFO's counters and commandstats (times aside):
// both count from the reset, the reset itself included. Vela's STATS counts from it too.
func TestConfigResetStatLikeRedis(t *testing.T) {
	want := respclient.Dial(t, redistest.Start(t).Addr)
	got := respclient.Dial(t, testnode.StartDefault(t).Addr())
	fields := regexp.MustCompile(`(?m)^(total_commands_processed|keyspace_hits|keyspace_misses|total_error_replies|expired_keys|evicted_keys):\d+`)
	sameReplies(t, want, got, [][]any{
		{"SET", "a", "1"}, {"GET", "a"}, {"GET", "nokey"}, {"NOSUCH"}, {"GET"}, {"INCR", "a"},
		{"SET", "b", "x", "PX", "1"}, {"CONFIG", "RESETSTAT", "extra"}, {"CONFIG", "RESETSTAT"},
		{"GET", "a"}, {"GET", "nokey2"}, {"INCR", "nokey2x", "y"},
	})
	ws, gs := want.Do("INFO", "stats").Value.Str, got.Do("INFO", "stats").Value.Str
	if w, g := fields.FindAllString(ws, -1), fields.FindAllString(gs, -1); fmt.Sprint(w) != fmt.Sprint(g) {
		t.Errorf("INFO stats after CONFIG RESETSTAT:\n redis: %v\n  vela: %v", w, g)
	}
	if wc, gc := infoLines(want, "commandstats"), infoLines(got, "commandstats"); !slices.Equal(wc, gc) {
		t.Errorf("INFO commandstats after CONFIG RESETSTAT:\n redis: %q\n  vela: %q", wc, gc)
	}
	st := got.Do("STATS").Value
	for i := 0; i+1 < len(st.Elems); i += 2 {
		if name, n := st.Elems[i].Str, st.Elems[i+1].Int; (name == "hits" && n != 1) || (name == "misses" && n != 1) {
			t.Errorf("STATS after CONFIG RESETSTAT: %s %d, want 1", name, n)
		}
	}
}

// TestConfigRewrite: CONFIG REWRITE writes what CONFIG SET changed into the file the node was
// started from, which then starts a node with those settings; the file's other lines, comments
// included, stay. Without a file the reply is Redis's, as is the wrong argument count.
func TestConfigRewrite(t *testing.T) {
	noFile := testnode.StartDefault(t)
	sameReplies(t, respclient.Dial(t, redistest.Start(t).Addr), respclient.Dial(t, noFile.Addr()), [][]any{
		{"CONFIG", "REWRITE"}, {"CONFIG", "REWRITE", "x"},
	})

	path := filepath.Join(t.TempDir(), "vela.toml")
	original := "# my node\nlisten = \"127.0.0.1:0\"\nmetrics_listen = \"\"\nslowlog_max_len = 128 # kept short\n\n[store]\ntype = \"memory\"\n"
	if err := os.WriteFile(path, []byte(original), 0o644); err != nil {
		t.Fatal(err)
	}
	load := func() config.Config {
		t.Helper()
		cfg, err := config.Load([]string{"-config", path}, nil, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	c := respclient.Dial(t, testnode.Start(t, load()).Addr())
	c.Do("CONFIG", "SET", "slowlog-max-len", "77", "latency-tracking", "no", "maxclients", "500").OK()
	c.Do("CONFIG", "REWRITE").OK()
	cfg := load()
	if cfg.SlowlogMaxLen != 77 || cfg.LatencyTracking || cfg.MaxClients != 500 {
		t.Fatalf("after the rewrite the file gives slowlog_max_len %d, latency_tracking %v, max_clients %d",
			cfg.SlowlogMaxLen, cfg.LatencyTracking, cfg.MaxClients)
	}
	text, _ := os.ReadFile(path)
	for _, want := range []string{"# my node\n", "slowlog_max_len = 77  # kept short\n", "[store]\ntype = \"memory\"\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the rewritten file lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(string(text), "latency_monitor_threshold") {
		t.Errorf("a setting at its default was added:\n%s", text)
	}
	again := respclient.Dial(t, testnode.Start(t, load()).Addr())
	if got := again.Do("CONFIG", "GET", "slowlog-max-len").Value.Elems[1].Text(); got != "77" {
		t.Errorf("a node started from the rewritten file has slowlog-max-len %s", got)
	}
}
