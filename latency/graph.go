package latency

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// LATENCY GRAPH's drawing, as Redis draws it: a sparkline of an event's samples, oldest on the
// left, 80 columns to a block and four rows high, each sample's column filled up to its height
// ("_", "o" or "#" at the top, "|" below), then, after a blank row, each sample's age written
// downwards ("4s", "12m", "3h", "2d").

const (
	graphColumns = 80
	graphRows    = 4
	graphTops    = "_o#" // the top of a column, by the third of a row it reaches
)

// Graph draws event's samples (oldest first, as History returns them), whose worst ever was
// allTimeMax, as of now.
func Graph(event string, samples []Sample, allTimeMax int64, now time.Time) string {
	lo, hi := samples[0].Latency, samples[0].Latency
	for _, s := range samples {
		lo, hi = min(lo, s.Latency), max(hi, s.Latency)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s - high %d ms, low %d ms (all time high %d ms)\n", event, hi, lo, allTimeMax)
	b.WriteString(strings.Repeat("-", graphColumns) + "\n")
	for start := 0; start < len(samples); start += graphColumns {
		if start > 0 {
			b.WriteString("\n")
		}
		drawBlock(&b, samples[start:min(start+graphColumns, len(samples))], lo, hi, now)
	}
	return b.String()
}

// drawBlock draws up to graphColumns samples, scaled between lo and hi.
func drawBlock(b *strings.Builder, samples []Sample, lo, hi int64, now time.Time) {
	span := float64(hi - lo)
	if span == 0 {
		span = 1
	}
	steps := len(graphTops) * graphRows
	heights := make([]int, len(samples))
	labels := make([]string, len(samples))
	longest := 0
	for i, s := range samples {
		h := int(float64(s.Latency-lo) * float64(steps) / span)
		heights[i] = min(max(h, 0), steps-1)
		labels[i] = age(now.Unix() - s.Time)
		longest = max(longest, len(labels[i]))
	}
	line := make([]byte, len(samples))
	for row := range graphRows {
		for i, h := range heights {
			// The part of the column in this row: below it, a full "|"; its top, by thirds.
			switch top := h - (graphRows-row-1)*len(graphTops); {
			case top >= len(graphTops):
				line[i] = '|'
			case top >= 0:
				line[i] = graphTops[top]
			default:
				line[i] = ' '
			}
		}
		b.Write(line)
		b.WriteString("\n")
	}
	b.WriteString(strings.Repeat(" ", len(samples)) + "\n")
	for row := range longest {
		for i, l := range labels {
			line[i] = ' '
			if row < len(l) {
				line[i] = l[row]
			}
		}
		b.Write(line)
		b.WriteString("\n")
	}
}

// age is how long ago a sample was, as the graph labels it: seconds, minutes, hours or days.
func age(secs int64) string {
	switch {
	case secs < 60:
		return strconv.FormatInt(secs, 10) + "s"
	case secs < 3600:
		return strconv.FormatInt(secs/60, 10) + "m"
	case secs < 86400:
		return strconv.FormatInt(secs/3600, 10) + "h"
	}
	return strconv.FormatInt(secs/86400, 10) + "d"
}

// Summary is what LATENCY DOCTOR says of an event's samples: how many, their mean and mean
// absolute deviation (ms), and the mean time between them since the oldest (s).
type Summary struct {
	Samples         int
	Mean, Deviation float64
	Period          float64
}

// Summarize describes samples (at least one) as of now.
func Summarize(samples []Sample, now time.Time) Summary {
	var sum float64
	oldest := samples[0].Time
	for _, s := range samples {
		sum += float64(s.Latency)
		oldest = min(oldest, s.Time)
	}
	n := float64(len(samples))
	mean := sum / n
	var dev float64
	for _, s := range samples {
		dev += abs(float64(s.Latency) - mean)
	}
	return Summary{Samples: len(samples), Mean: mean, Deviation: dev / n, Period: float64(now.Unix()-oldest) / n}
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}
