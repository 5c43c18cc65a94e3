package latency

import (
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
)

// TestHistogramAsRedis: the figures real Redis 7.0 printed for one run of 11 µs (INFO
// latencystats "p50=11.007", "p0=10.944"; LATENCY HISTOGRAM "16" → 1).
func TestHistogramAsRedis(t *testing.T) {
	var h Histogram
	h.Record(11_000)
	s := h.Snapshot()
	if got := s.Percentile(50); got != 11_007 {
		t.Errorf("p50 = %d, want 11007", got)
	}
	if got := s.Percentile(100); got != 11_007 {
		t.Errorf("p100 = %d, want 11007", got)
	}
	if got := s.Percentile(0); got != 10_944 {
		t.Errorf("p0 = %d, want 10944", got)
	}
	var buckets [][2]int64
	s.CDF(func(usec, n int64) { buckets = append(buckets, [2]int64{usec, n}) })
	if !slices.Equal(buckets, [][2]int64{{16, 1}}) {
		t.Errorf("CDF = %v, want [[16 1]]", buckets)
	}
}

// TestHistogramRanges: every value falls in a range that holds it, ranges are exact below 256
// and within 1/128 of the value above, and out-of-range values are clamped as Redis clamps them.
func TestHistogramRanges(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		v := r.Int64N(maxValue) + 1
		if r.IntN(4) == 0 {
			v = r.Int64N(2000) + 1
		}
		lo := lowestEquivalent(v)
		hi := lo + rangeSize(v) - 1
		if v < lo || v > hi {
			t.Fatalf("%d outside its range [%d, %d]", v, lo, hi)
		}
		if v < subCount && lo != hi {
			t.Fatalf("%d: range [%d, %d], want exact", v, lo, hi)
		}
		if i := countsIndex(v); i < 0 || i >= countsLen || valueAt(i) != lo {
			t.Fatalf("%d: index %d, value there %d, lowest %d", v, i, valueAt(i), lo)
		}
		if v >= subCount && rangeSize(v)*halfCount > v {
			t.Fatalf("%d: range of %d is wider than 1/128 of it", v, rangeSize(v))
		}
	}
	var h Histogram
	h.Record(0)
	h.Record(-5)
	h.Record(5_000_000_000)
	s := h.Snapshot()
	if s.Total() != 3 || s.Percentile(0) != 1 || s.Percentile(100) != lowestEquivalent(maxValue)+rangeSize(maxValue)-1 {
		t.Fatalf("clamping: total %d, p0 %d, p100 %d", s.Total(), s.Percentile(0), s.Percentile(100))
	}
}

// TestHistogramAgainstSorted: percentiles and the CDF agree with what sorting the recorded
// values gives, by HdrHistogram's definitions (the count at a percentile rounds half up and is
// at least one; a log bucket holds every value up to the end of the range holding its bound).
func TestHistogramAgainstSorted(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 50 {
		var h Histogram
		n := 1 + r.IntN(3000)
		vals := make([]int64, n)
		for i := range vals {
			// log-uniform, from 100 ns to about 50 ms, and a few identical values
			vals[i] = int64(100*(1<<r.IntN(19))) + r.Int64N(1000)
			if round%5 == 0 {
				vals[i] = 7_000
			}
			h.Record(vals[i])
		}
		slices.Sort(vals)
		s := h.Snapshot()
		for _, p := range []float64{0, 0.1, 1, 25, 50, 50.5, 90, 99, 99.9, 99.99, 100} {
			want := int64(p/100*float64(n) + 0.5)
			want = min(max(want, 1), int64(n))
			v := vals[want-1]
			exp := lowestEquivalent(v) + rangeSize(v) - 1
			if p == 0 {
				exp = lowestEquivalent(v)
			}
			if got := s.Percentile(p); got != exp {
				t.Fatalf("round %d, p%v: %d, want %d", round, p, got, exp)
			}
		}
		var got, want [][2]int64
		s.CDF(func(usec, c int64) { got = append(got, [2]int64{usec, c}) })
		prev := int64(0)
		for level := int64(1024); prev < int64(n); level *= 2 {
			bound := lowestEquivalent(level) + rangeSize(level) - 1
			c := int64(0)
			for _, v := range vals {
				if v <= bound {
					c++
				}
			}
			if c > prev {
				want = append(want, [2]int64{bound / 1000, c})
				prev = c
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: CDF\n got %v\nwant %v", round, got, want)
		}
	}
}

// TestHistogramConcurrent: runs recorded from many goroutines are all counted (run with -race).
func TestHistogramConcurrent(t *testing.T) {
	var h Histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 10_000 {
				h.Record(int64(g*1000 + i))
			}
		}()
	}
	wg.Wait()
	if got := h.Snapshot().Total(); got != 80_000 {
		t.Fatalf("total %d, want 80000", got)
	}
}

// TestPercentilesSetting: latency-tracking-info-percentiles is read and written as Redis 7.0
// reads and writes it (texts checked against real Redis).
func TestPercentilesSetting(t *testing.T) {
	for in, want := range map[string]string{
		"":                    "",
		"50 99 99.9":          "50 99 99.9",
		"50.5000 99.99 0 100": "50.5 99.99 0 100",
		"1e1 0x10":            "10 16",
		"33.333333333":        "33.333333",
		"99 50 50":            "99 50 50",
	} {
		ps, err := ParsePercentiles(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := FormatPercentiles(ps); got != want {
			t.Errorf("%q reads back as %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]error{
		"50 abc": ErrPercentileSyntax, "50  99": ErrPercentileSyntax, " 50": ErrPercentileSyntax,
		"nan": ErrPercentileSyntax, "101": ErrPercentileRange, "-1": ErrPercentileRange, "inf": ErrPercentileRange,
	} {
		if _, err := ParsePercentiles(in); err != want {
			t.Errorf("%q: %v, want %v", in, err, want)
		}
	}
}

// FuzzParsePercentiles: any text CONFIG SET may bring is refused or read into percentiles
// within 0–100, which CONFIG GET's form reads back as the same numbers.
func FuzzParsePercentiles(f *testing.F) {
	for _, s := range []string{"", "50 99 99.9", "1e1 0x10", "50  99", "nan", "inf", "-0", "100 0", "0x1p-2", "1e-320"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePercentiles(s)
		if err != nil {
			if err != ErrPercentileSyntax && err != ErrPercentileRange {
				t.Fatalf("%q: unexpected error %v", s, err)
			}
			return
		}
		for _, p := range ps {
			if !(p >= 0 && p <= 100) {
				t.Fatalf("%q: percentile %v out of range", s, p)
			}
		}
		again, err := ParsePercentiles(FormatPercentiles(ps))
		if err != nil || len(again) != len(ps) {
			t.Fatalf("%q: %q does not read back: %v %v", s, FormatPercentiles(ps), again, err)
		}
		for i := range ps {
			// "%f" keeps six decimals, as Redis prints them
			if d := again[i] - ps[i]; d > 1e-6 || d < -1e-6 {
				t.Fatalf("%q: %v read back as %v", s, ps[i], again[i])
			}
		}
	})
}
