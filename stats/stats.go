// Package stats holds Vela's cache counters: plain atomic integers, each on its own cache line so
// that the cores bumping different counters do not contend. Readers (STATS, INFO, the Prometheus
// collector) load them at any time without stopping writers.
package stats

import "sync/atomic"

// Counter is a monotonically increasing count, padded to a cache line. Reset does not lower it:
// it records a baseline that Since counts from (what CONFIG RESETSTAT resets), while Load keeps
// counting from the start (what Prometheus, which expects counters never to fall, reads).
type Counter struct {
	n    atomic.Uint64
	base atomic.Uint64
	_    [48]byte
}

// Add adds d.
func (c *Counter) Add(d uint64) { c.n.Add(d) }

// Inc adds one.
func (c *Counter) Inc() { c.n.Add(1) }

// Load returns the count since the process started.
func (c *Counter) Load() uint64 { return c.n.Load() }

// Since returns the count since the last Reset.
func (c *Counter) Since() uint64 { return c.n.Load() - c.base.Load() }

// Reset makes Since count from now.
func (c *Counter) Reset() { c.base.Store(c.n.Load()) }

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

// counters returns the STATS counters in their documented order, by name.
func (s *Stats) counters() []struct {
	name string
	c    *Counter
} {
	return []struct {
		name string
		c    *Counter
	}{
		{"hits", &s.Hits}, {"misses", &s.Misses}, {"writes", &s.Writes}, {"deletes", &s.Deletes},
		{"evictions", &s.Evictions}, {"expirations", &s.Expirations},
		{"tag_invalidations", &s.TagInvalidations}, {"fetch_locks", &s.FetchLocks},
		{"fetch_waits", &s.FetchWaits}, {"fetch_timeouts", &s.FetchTimeouts},
		{"l1_hits", &s.L1Hits}, {"l1_misses", &s.L1Misses}, {"forwards", &s.Forwards},
	}
}

// Snapshot returns the STATS counters in their documented order, counted since the process
// started (Counter.Load).
func (s *Stats) Snapshot() []Field { return s.snapshot((*Counter).Load) }

// SnapshotSince is Snapshot counted since the last Reset (Counter.Since): what STATS and INFO
// show.
func (s *Stats) SnapshotSince() []Field { return s.snapshot((*Counter).Since) }

func (s *Stats) snapshot(read func(*Counter) uint64) []Field {
	if s == nil {
		s = &Stats{}
	}
	cs := s.counters()
	out := make([]Field, len(cs))
	for i, c := range cs {
		out[i] = Field{c.name, read(c.c)}
	}
	return out
}

// Reset makes every counter's Since count from now (CONFIG RESETSTAT).
func (s *Stats) Reset() {
	if s == nil {
		return
	}
	for _, c := range s.counters() {
		c.c.Reset()
	}
	s.Commands.Reset()
	s.Connections.Reset()
}
