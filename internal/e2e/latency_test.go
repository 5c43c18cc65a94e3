package e2e_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// digits are the numbers in a LATENCY GRAPH.
var digits = regexp.MustCompile(`[0-9]+`)

// TestLatencyLikeRedis compares LATENCY with Redis's: the forms and errors with the monitor off
// (both servers' default), then, with latency-monitor-threshold 1, a script that runs tens of
// milliseconds: both record one "command" spike, at this second, shown by LATEST, HISTORY and
// GRAPH (drawn alike) and dropped by RESET; Vela's DOCTOR reports it. The spike's size is each server's own and only checked to be at least
// the threshold.
func TestLatencyLikeRedis(t *testing.T) {
	want := respclient.Dial(t, redistest.Start(t).Addr)
	got := respclient.Dial(t, testnode.StartDefault(t).Addr())
	same := func(args ...any) {
		t.Helper()
		sameReplies(t, want, got, [][]any{args})
	}
	sameReplies(t, want, got, [][]any{
		{"LATENCY"}, {"LATENCY", "LATEST", "x"}, {"LATENCY", "HISTORY"}, {"LATENCY", "HISTORY", "command"},
		{"LATENCY", "RESET"}, {"LATENCY", "RESET", "a", "b"}, {"LATENCY", "FOO"}, {"LATENCY", "LATEST"},
		{"LATENCY", "GRAPH"}, {"LATENCY", "GRAPH", "command"}, {"LATENCY", "GRAPH", "a", "b"}, {"LATENCY", "DOCTOR", "x"},
		{"CONFIG", "GET", "latency-monitor-threshold"}, {"CONFIG", "SET", "latency-monitor-threshold", "-1"},
		{"CONFIG", "SET", "latency-monitor-threshold", "abc"}, {"CONFIG", "SET", "latency-monitor-threshold", "1"},
		{"CONFIG", "GET", "latency-monitor-threshold"},
	})
	// Some milliseconds in Redis; under the race detector on a loaded machine, well within
	// Vela's script limit.
	const slow = "local i = 0 while i < 300000 do i = i + 1 end return i"
	graphs := map[string]string{}
	for name, c := range map[string]*respclient.Conn{"redis": want, "vela": got} {
		before := time.Now().Unix()
		c.SetTimeout(time.Minute) // a script under the race detector is slow
		c.Do("EVAL", slow, "0").Int(300000)
		after := time.Now().Unix()
		latest := c.Do("LATENCY", "LATEST").Value
		if len(latest.Elems) != 1 || len(latest.Elems[0].Elems) != 4 {
			t.Fatalf("%s: LATENCY LATEST after a slow script: %v", name, latest)
		}
		e := latest.Elems[0].Elems
		// Redis stamps the spike with its cached clock, which serverCron refreshes: it may still
		// read the second before the script started.
		if e[0].Str != "command" || e[1].Int < before-1 || e[1].Int > after || e[2].Int < 1 || e[3].Int != e[2].Int {
			t.Errorf("%s: LATENCY LATEST: %v", name, latest)
		}
		h := c.Do("LATENCY", "HISTORY", "command").Value
		if len(h.Elems) != 1 || h.Elems[0].Elems[0].Int != e[1].Int || h.Elems[0].Elems[1].Int != e[2].Int {
			t.Errorf("%s: LATENCY HISTORY command: %v", name, h)
		}
		// The graph's numbers (the spike's size, its age) are each server's own; its drawing is
		// the same.
		graphs[name] = digits.ReplaceAllString(c.Do("LATENCY", "GRAPH", "command").Value.Text(), "N")
	}
	if graphs["redis"] != graphs["vela"] {
		t.Errorf("LATENCY GRAPH command:\n redis:\n%s\n  vela:\n%s", graphs["redis"], graphs["vela"])
	}
	if d := got.Do("LATENCY", "DOCTOR").Value.Text(); !strings.Contains(d, "1. command: 1 latency spikes") {
		t.Errorf("LATENCY DOCTOR:\n%s", d)
	}
	same("LATENCY", "RESET", "command", "command", "nosuch")
	same("LATENCY", "LATEST")
	same("CONFIG", "SET", "latency-monitor-threshold", "0")
	same("EVAL", "return 1", "0")
	same("LATENCY", "LATEST")
}
