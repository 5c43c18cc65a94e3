package latency

import (
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/vela-cache/vela/redisnum"
)

// Tracking is Redis's latency-tracking setting and the percentiles INFO latencystats prints
// (latency-tracking-info-percentiles). Both change while the node serves (CONFIG SET); reading
// either is one atomic load.
type Tracking struct {
	off         atomic.Bool
	percentiles atomic.Pointer[[]float64]
}

// DefaultPercentiles are Redis's latency-tracking-info-percentiles.
var DefaultPercentiles = []float64{50, 99, 99.9}

// NewTracking returns the setting: on or off, and the percentiles INFO prints.
func NewTracking(on bool, percentiles []float64) *Tracking {
	t := &Tracking{}
	t.SetOn(on)
	t.SetPercentiles(percentiles)
	return t
}

// On reports whether commands' run times are recorded.
func (t *Tracking) On() bool { return !t.off.Load() }

// SetOn turns the recording on or off; what was recorded stays.
func (t *Tracking) SetOn(on bool) { t.off.Store(!on) }

// Percentiles returns the percentiles INFO latencystats prints, in their order. The caller must
// not change the slice.
func (t *Tracking) Percentiles() []float64 { return *t.percentiles.Load() }

// SetPercentiles replaces the percentiles INFO latencystats prints.
func (t *Tracking) SetPercentiles(p []float64) {
	c := append([]float64(nil), p...)
	t.percentiles.Store(&c)
}

// Errors ParsePercentiles returns, in Redis's words (which CONFIG SET quotes, capital included).
var (
	ErrPercentileSyntax error = redisText("Invalid latency-tracking-info-percentiles parameters")
	ErrPercentileRange  error = redisText("latency-tracking-info-percentiles parameters should sit between [0.0,100.0]")
)

// redisText is an error whose text is Redis's own.
type redisText string

func (e redisText) Error() string { return string(e) }

// ParsePercentiles reads latency-tracking-info-percentiles as Redis does: numbers separated by
// single spaces (an empty string is none), each as Redis's string2d reads it and within 0–100.
func ParsePercentiles(s string) ([]float64, error) {
	if s == "" {
		return []float64{}, nil
	}
	fields := strings.Split(s, " ")
	out := make([]float64, len(fields))
	for i, f := range fields {
		ld, ok := redisnum.ParseLongDouble([]byte(f))
		if !ok {
			return nil, ErrPercentileSyntax
		}
		v := ld.Float64()
		if ld.IsInf() || v < 0 || v > 100 {
			return nil, ErrPercentileRange
		}
		out[i] = v
	}
	return out, nil
}

// FormatPercentile writes p as Redis names a percentile: "%f" without trailing zeros ("99.9",
// "50").
func FormatPercentile(p float64) string {
	s := strconv.FormatFloat(p, 'f', 6, 64)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// FormatPercentiles writes ps as CONFIG GET latency-tracking-info-percentiles shows them.
func FormatPercentiles(ps []float64) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = FormatPercentile(p)
	}
	return strings.Join(parts, " ")
}
