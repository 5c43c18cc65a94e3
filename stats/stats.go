// Package stats holds Vela's cache counters: plain atomic integers, each on its own cache line so
// that the cores bumping different counters do not contend. Readers (STATS, INFO, the Prometheus
// collector) load them at any time without stopping writers.
package stats

import "sync/atomic"

// Counter is a monotonically increasing count, padded to a cache line.
type Counter struct {
	n atomic.Uint64
	_ [56]byte
}

// Add adds d.
func (c *Counter) Add(d uint64) { c.n.Add(d) }

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Load returns the count.
func (c *Counter) Load() uint64 { return c.n.Load() }

// Stats are the counters STATS reports, in its order. A nil *Stats, or one with Disabled set,
// counts nothing (stats_enabled = false); every method is safe on it.
type Stats struct {
	Disabled bool

	Hits             Counter
	Misses           Counter
	Writes           Counter
	Deletes          Counter
	Evictions        Counter
	Expirations      Counter
	TagInvalidations Counter
	FetchLocks       Counter
	FetchWaits       Counter
	FetchTimeouts    Counter
	L1Hits           Counter
	L1Misses         Counter
	Forwards         Counter

	// Commands and Connections feed INFO's total_commands_processed and
	// total_connections_received.
	Commands    Counter
	Connections Counter
}

// On reports whether counting is enabled.
func (s *Stats) On() bool { return s != nil && !s.Disabled }

// Field is one named counter value.
type Field struct {
	Name  string
	Value uint64
}

// Snapshot returns the STATS counters in their documented order.
func (s *Stats) Snapshot() []Field {
	if s == nil {
		s = &Stats{}
	}
	return []Field{
		{"hits", s.Hits.Load()},
		{"misses", s.Misses.Load()},
		{"writes", s.Writes.Load()},
		{"deletes", s.Deletes.Load()},
		{"evictions", s.Evictions.Load()},
		{"expirations", s.Expirations.Load()},
		{"tag_invalidations", s.TagInvalidations.Load()},
		{"fetch_locks", s.FetchLocks.Load()},
		{"fetch_waits", s.FetchWaits.Load()},
		{"fetch_timeouts", s.FetchTimeouts.Load()},
		{"l1_hits", s.L1Hits.Load()},
		{"l1_misses", s.L1Misses.Load()},
		{"forwards", s.Forwards.Load()},
	}
}
