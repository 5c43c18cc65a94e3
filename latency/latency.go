// Package latency is Vela's latency monitor, Redis's LATENCY: named events (a command, a fast
// command, an expiry sweep) that took at least a threshold of milliseconds are kept as a time
// series per event, one sample per second at most (the worst of that second), the last 160
// samples and the worst ever.
//
// Deciding that an event is not a spike reads one atomic value; only a spike takes the monitor's
// lock. A threshold of 0 turns the monitor off, as Redis's latency-monitor-threshold 0 does.
package latency

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// historyLen is how many samples an event keeps, Redis's LATENCY_TS_LEN.
const historyLen = 160

// Sample is one second's worst latency of an event.
type Sample struct {
	Time    int64 // unix seconds
	Latency int64 // milliseconds
}

// series is an event's samples, a ring of historyLen; next is where the next one goes.
type series struct {
	samples [historyLen]Sample
	next    int
	max     int64
}

// Monitor records latency spikes. Its zero value is off; use New.
type Monitor struct {
	threshold atomic.Int64 // milliseconds; 0: off
	mu        sync.Mutex
	events    map[string]*series
	now       func() time.Time
}

// New returns a monitor that records events of at least threshold milliseconds (0: none).
func New(threshold int64) *Monitor {
	m := &Monitor{events: map[string]*series{}, now: time.Now}
	m.SetThreshold(threshold)
	return m
}

// SetThreshold changes the threshold (CONFIG SET latency-monitor-threshold).
func (m *Monitor) SetThreshold(ms int64) { m.threshold.Store(max(ms, 0)) }

// On reports whether the monitor records anything: callers time their events only then.
func (m *Monitor) On() bool { return m != nil && m.threshold.Load() > 0 }

// Note records that event took d, if that is at least the threshold.
func (m *Monitor) Note(event string, d time.Duration) {
	t := m.threshold.Load()
	if ms := d.Milliseconds(); t > 0 && ms >= t {
		m.add(event, ms)
	}
}

// add records a spike as Redis's latencyAddSample does: a second's samples keep the worst.
func (m *Monitor) add(event string, ms int64) {
	now := m.now().Unix()
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.events[event]
	if s == nil {
		s = &series{}
		m.events[event] = s
	}
	s.max = max(s.max, ms)
	prev := &s.samples[(s.next+historyLen-1)%historyLen]
	if prev.Time == now {
		prev.Latency = max(prev.Latency, ms)
		return
	}
	s.samples[s.next] = Sample{Time: now, Latency: ms}
	s.next = (s.next + 1) % historyLen
}

// Latest is an event's last sample and its worst ever (LATENCY LATEST).
type Latest struct {
	Event string
	Last  Sample
	Max   int64
}

// Latest returns every event's last sample and worst latency, by event name.
func (m *Monitor) Latest() []Latest {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Latest, 0, len(m.events))
	for name, s := range m.events {
		out = append(out, Latest{Event: name, Last: s.samples[(s.next+historyLen-1)%historyLen], Max: s.max})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Event < out[j].Event })
	return out
}

// History returns an event's samples, oldest first; none for an unknown event.
func (m *Monitor) History(event string) []Sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.events[event]
	if s == nil {
		return nil
	}
	var out []Sample
	for j := range historyLen {
		if smp := s.samples[(s.next+j)%historyLen]; smp.Time != 0 {
			out = append(out, smp)
		}
	}
	return out
}

// Reset drops the named events' series, or every series when none is named, and returns how
// many it dropped.
func (m *Monitor) Reset(events ...string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(events) == 0 {
		n := len(m.events)
		clear(m.events)
		return n
	}
	n := 0
	for _, e := range events {
		if _, ok := m.events[e]; ok {
			delete(m.events, e)
			n++
		}
	}
	return n
}
