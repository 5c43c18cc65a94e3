package commands

import (
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/resp"
	"github.com/vela-cache/vela/stats"
	"github.com/vela-cache/vela/store/memory"
)

// TestCommandStats runs commands that succeed, fail and are refused, and reads INFO
// commandstats and total_error_replies as Redis reports them.
func TestCommandStats(t *testing.T) {
	n := NewNode(memory.New(memory.Config{}), Config{}, nil, nil)
	ctx := &Ctx{Node: n}
	run := func(args ...string) resp.Reply {
		var b [][]byte
		for _, a := range args {
			b = append(b, []byte(a))
		}
		return n.Exec(ctx, b)
	}
	run("SET", "k", "v")
	run("GET", "k")
	run("GET", "k")
	run("GET")           // wrong arity: refused
	run("INCR", "k")     // not an integer: failed
	run("CLIENT", "nop") // unknown subcommand: counted, like an unknown command, against none
	run("CLIENT")        // a container without its subcommand: refused
	run("NOSUCH")        // unknown command: only in total_error_replies
	info := func(section ...string) string { return run(append([]string{"INFO"}, section...)...).Str }
	stats := info("commandstats")
	for _, want := range []string{
		"cmdstat_get:calls=2,usec=", ",rejected_calls=1,failed_calls=0\r\n",
		"cmdstat_incr:calls=1,", ",rejected_calls=0,failed_calls=1\r\n",
		"cmdstat_set:calls=1,",
	} {
		if !strings.Contains(stats, want) {
			t.Errorf("INFO commandstats lacks %q:\n%s", want, stats)
		}
	}
	if !strings.Contains(stats, "cmdstat_client:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,failed_calls=0\r\n") {
		t.Errorf("INFO commandstats: CLIENT without a subcommand must count as refused:\n%s", stats)
	}
	if all := info(); !strings.Contains(all, "# Keyspace") || strings.Contains(all, "Commandstats") || !strings.Contains(info("all"), "Commandstats") {
		t.Error("commandstats must be left out of INFO by default and shown by INFO all, as in Redis")
	}
	if s := info("stats"); !strings.Contains(s, "total_error_replies:5\r\n") {
		t.Errorf("INFO stats:\n%s", s)
	}
}

// TestInstantaneousOps samples the command count around a burst of commands and reads INFO's
// instantaneous_ops_per_sec: the rate over the sampled window.
func TestInstantaneousOps(t *testing.T) {
	n := NewNode(memory.New(memory.Config{}), Config{}, &stats.Stats{}, nil)
	ctx := &Ctx{Node: n}
	if r := n.opsPerSec(); r != 0 {
		t.Fatalf("rate %d before any sample", r)
	}
	n.SampleOps()
	for range 1000 {
		n.Exec(ctx, [][]byte{[]byte("PING")})
	}
	time.Sleep(OpsSampleEvery)
	n.SampleOps()
	// 1000 commands in at least 100 ms: at most 10,000 a second, and some.
	if r := n.opsPerSec(); r <= 0 || r > 10000 {
		t.Fatalf("instantaneous_ops_per_sec = %d", r)
	}
	if s := n.Exec(ctx, [][]byte{[]byte("INFO"), []byte("stats")}).Str; !strings.Contains(s, "instantaneous_ops_per_sec:") {
		t.Fatalf("INFO stats:\n%s", s)
	}
}
