package latency

import (
	"strings"
	"testing"
	"time"
)

// TestGraphLikeRedis: three spikes drawn as Redis 7.0.15 drew the same ones (its LATENCY GRAPH
// reply, captured from a real redis-server): heights scaled between the lowest and the highest,
// ages written downwards after a blank row.
func TestGraphLikeRedis(t *testing.T) {
	now := time.Unix(1795856460, 0)
	samples := []Sample{{now.Unix() - 4, 20}, {now.Unix() - 3, 60}, {now.Unix() - 1, 10}}
	want := "command - high 60 ms, low 10 ms (all time high 60 ms)\n" +
		strings.Repeat("-", 80) + "\n" +
		" # \n" +
		" | \n" +
		" | \n" +
		"#|_\n" +
		"   \n" +
		"431\n" +
		"sss\n"
	if got := Graph("command", samples, 60, now); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// TestGraphBlocks: more samples than 80 columns are drawn in blocks of 80, one after the other;
// equal samples sit on the bottom row; ages in minutes, hours and days.
func TestGraphBlocks(t *testing.T) {
	now := time.Unix(2_000_000_000, 0)
	var samples []Sample
	for i := range 100 {
		samples = append(samples, Sample{now.Unix() - 200000 + int64(i)*1000, 5})
	}
	lines := strings.Split(Graph("expire-cycle", samples, 5, now), "\n")
	// Header and rule, then per block: 4 rows, a blank row, label rows ("2d" or "1d": 2), and a
	// blank line between blocks.
	if len(lines) != 2+(4+1+2)+1+(4+1+2)+1 {
		t.Fatalf("%d lines:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	if lines[5] != strings.Repeat("_", 80) || lines[2] != strings.Repeat(" ", 80) {
		t.Fatalf("rows %q / %q", lines[2], lines[5])
	}
	for secs, want := range map[int64]string{59: "59s", 60: "1m", 3599: "59m", 3600: "1h", 86399: "23h", 86400: "1d"} {
		if got := age(secs); got != want {
			t.Errorf("age(%d) = %s, want %s", secs, got, want)
		}
	}
}

// TestSummarize: the figures of Redis's LATENCY DOCTOR for the three spikes above ("3 latency
// spikes (average 30ms, mean deviation 20ms, period 1.33 sec)").
func TestSummarize(t *testing.T) {
	now := time.Unix(1795856460, 0)
	s := Summarize([]Sample{{now.Unix() - 4, 20}, {now.Unix() - 3, 60}, {now.Unix() - 1, 10}}, now)
	if s.Samples != 3 || s.Mean != 30 || s.Deviation != 20 || s.Period < 1.33 || s.Period > 1.34 {
		t.Fatalf("%+v", s)
	}
}
