package commands

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vela-cache/vela/latency"
	"github.com/vela-cache/vela/resp"
)

// LATENCY GRAPH event draws the event's samples as Redis draws them (latency.Graph). LATENCY
// DOCTOR reports each event's spikes with Redis's figures (how many, their mean and mean
// deviation, the mean time between them, the worst ever) and advice for Vela, in Vela's words.

func (n *Node) latencyGraph(_ *Ctx, args [][]byte) (resp.Reply, error) {
	event := string(args[2])
	samples := n.latency.History(event)
	if len(samples) == 0 {
		return resp.Reply{}, Error("ERR No samples available for event '" + event + "'")
	}
	var worst int64
	for _, l := range n.latency.Latest() {
		if l.Event == event {
			worst = l.Max
		}
	}
	return resp.Verbatim(latency.Graph(event, samples, worst, time.Now())), nil
}

// eventAdvice is what may cause each event's spikes, and what to do.
var eventAdvice = map[string]string{
	"command": "Commands ran for longer than the threshold: SLOWLOG GET names them. Commands over " +
		"many keys (KEYS, a large MGET or DEL, FLUSHALL, TAGINVALIDATE of a large tag) and long " +
		"scripts take time in proportion to their work; SCAN spreads a walk over many calls.",
	"fast-command": "Commands that should take microseconds (GET, SET…) took milliseconds: the node " +
		"was starved of CPU (a busy or overcommitted machine, too many event loops for its CPUs) " +
		"or paused by the system (swap, a stopped VM).",
	"expire-cycle": "A pass of the expiry sweep took long: many keys expired at once. Spread their " +
		"TTLs (add some jitter), or sweep more often (sweep_interval) so that each pass does less.",
}

func (n *Node) latencyDoctor(_ *Ctx, _ [][]byte) (resp.Reply, error) {
	if !n.latency.On() {
		return resp.Verbatim("The latency monitor is off (latency-monitor-threshold is 0), so there " +
			"is nothing to report. Turn it on with CONFIG SET latency-monitor-threshold <milliseconds> " +
			"(or latency_monitor_threshold in the configuration file).\n"), nil
	}
	latest := n.latency.Latest()
	if len(latest) == 0 {
		return resp.Verbatim("No latency spike above the threshold has been recorded since the node " +
			"started or the last LATENCY RESET.\n"), nil
	}
	sort.Slice(latest, func(i, j int) bool { return latest[i].Event < latest[j].Event })
	var b strings.Builder
	b.WriteString("Latency spikes were recorded on this node.\n\n")
	now := time.Now()
	for i, l := range latest {
		samples := n.latency.History(l.Event)
		if len(samples) == 0 {
			continue
		}
		s := latency.Summarize(samples, now)
		fmt.Fprintf(&b, "%d. %s: %d latency spikes (average %.0fms, mean deviation %.0fms, period %.2f sec). Worst all time event %dms.\n",
			i+1, l.Event, s.Samples, s.Mean, s.Deviation, s.Period, l.Max)
	}
	b.WriteString("\nAdvice:\n\n")
	for _, l := range latest {
		if a, ok := eventAdvice[l.Event]; ok {
			b.WriteString("- " + a + "\n")
		}
	}
	if v := n.setting("slowlog-log-slower-than", "10000"); v != "" {
		b.WriteString("- SLOWLOG records commands slower than " + v + " µs (slowlog-log-slower-than): " +
			"set it below the latency threshold to see which commands the spikes were.\n")
	}
	return resp.Verbatim(b.String()), nil
}
