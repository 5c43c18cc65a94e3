package latency

import (
	"math/bits"
	"sync/atomic"
)

// Histogram is one command's distribution of run times, as Redis keeps it for INFO
// latencystats and LATENCY HISTOGRAM: HdrHistogram's buckets for 1 ns to 1 s with two
// significant digits (LATENCY_HISTOGRAM_MIN_VALUE, _MAX_VALUE, _PRECISION), so that its
// percentiles and its buckets are the values Redis would print for the same run times.
//
// Values from 0 to 255 ns each have a count; above that every power of two is split into 128
// equal ranges, each counted as one. Record is one atomic add, safe from any goroutine; readers
// take a Snapshot. The zero value is empty and ready; it is 24 KiB, so a command gets one on its
// first run.
type Histogram struct {
	counts [countsLen]atomic.Int64
}

// HdrHistogram's layout for lowest value 1, highest 1e9 and 2 significant digits: 256
// sub-buckets (2×10² rounded up to a power of two), of which a bucket above the first uses the
// upper half, and 23 buckets to reach 1e9.
const (
	halfMagnitude = 7
	halfCount     = 1 << halfMagnitude // sub-buckets per bucket after the first
	subCount      = 2 * halfCount
	subMask       = subCount - 1
	bucketCount   = 23
	countsLen     = (bucketCount + 1) * halfCount

	minValue = 1
	maxValue = 1_000_000_000
)

// Record adds one run of ns nanoseconds, clamped to 1 ns … 1 s as Redis clamps it.
func (h *Histogram) Record(ns int64) {
	h.counts[countsIndex(min(max(ns, minValue), maxValue))].Add(1)
}

// Snapshot is a Histogram's counts read at one moment.
type Snapshot struct {
	counts []int64
	total  int64
}

// Snapshot reads the counts. Runs recorded meanwhile may be in it or not; its total is the sum
// of what it read.
func (h *Histogram) Snapshot() *Snapshot {
	s := &Snapshot{counts: make([]int64, countsLen)}
	for i := range h.counts {
		c := h.counts[i].Load()
		s.counts[i] = c
		s.total += c
	}
	return s
}

// Total is how many runs the snapshot holds (LATENCY HISTOGRAM's "calls").
func (s *Snapshot) Total() int64 { return s.total }

// Percentile returns the run time in nanoseconds at percentile p (0–100) as HdrHistogram's
// hdr_value_at_percentile gives it: the highest value of the range holding that run (for p = 0,
// the lowest value of the range holding the fastest run).
func (s *Snapshot) Percentile(p float64) int64 {
	want := int64(min(p, 100)/100*float64(s.total) + 0.5)
	want = min(max(want, 1), s.total)
	var seen int64
	i := -1
	for seen < want && i+1 < countsLen {
		i++
		seen += s.counts[i]
	}
	if i < 0 {
		return 0
	}
	v := valueAt(i)
	if p == 0 {
		return v
	}
	return v + rangeSize(v) - 1
}

// CDF calls fn with Redis's LATENCY HISTOGRAM buckets, in order: the runs up to 1,024 ns, up
// to 2,048 and so on doubling, each as HdrHistogram's logarithmic iterator reports it (the
// bucket's upper bound, rounded up to the end of the range that holds it, in whole
// microseconds) with the number of runs up to there, and only where that number grew.
func (s *Snapshot) CDF(fn func(usec, cumulative int64)) {
	level := int64(1024)
	levelLow := lowestEquivalent(level)
	i, value, cumulative, reported := -1, int64(0), int64(0), int64(0)
	for cumulative < s.total || (i < countsLen && valueAt(i+1) > levelLow) {
		for value < levelLow && i+1 < countsLen {
			i++
			cumulative += s.counts[i]
			value = valueAt(i)
		}
		if value < levelLow {
			return // past the last range: nothing more to report
		}
		if cumulative > reported {
			fn((value+rangeSize(value)-1)/1000, cumulative)
			reported = cumulative
		}
		level *= 2
		levelLow = lowestEquivalent(level)
	}
}

// bucketOf is the bucket of v: 0 up to 255, then one per power of two.
func bucketOf(v int64) int {
	return 64 - bits.LeadingZeros64(uint64(v)|subMask) - (halfMagnitude + 1)
}

// countsIndex is where v is counted.
func countsIndex(v int64) int {
	b := bucketOf(v)
	return (b+1)<<halfMagnitude + int(v>>b) - halfCount
}

// valueAt is the lowest value counted at index i.
func valueAt(i int) int64 {
	b := i>>halfMagnitude - 1
	sub := i&(halfCount-1) + halfCount
	if b < 0 {
		sub -= halfCount
		b = 0
	}
	return int64(sub) << b
}

// lowestEquivalent is the lowest value counted where v is.
func lowestEquivalent(v int64) int64 { return valueAt(countsIndex(v)) }

// rangeSize is how many values are counted where v is.
func rangeSize(v int64) int64 { return 1 << bucketOf(v) }
