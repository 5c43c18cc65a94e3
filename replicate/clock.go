package replicate

import (
	"sync/atomic"
	"time"
)

// Stamp orders the writes of the whole cluster: a hybrid logical clock reading (Time) and the
// writer's identity (Node, a hash of its name) to break ties. Every member compares stamps the
// same way, so concurrent writes to one key converge on the one with the greater stamp (last
// writer wins). The zero Stamp is older than every write: the state of a key no member wrote
// through this topology (loaded from a disk store, say).
type Stamp struct {
	Time uint64 // wall-clock milliseconds << 16 | a counter, never going back on one member
	Node uint64 // the writer's id; ties between equal Times go to the greater Node
}

// After reports whether s is newer than o.
func (s Stamp) After(o Stamp) bool {
	return s.Time > o.Time || (s.Time == o.Time && s.Node > o.Node)
}

// IsZero reports whether s is the zero Stamp.
func (s Stamp) IsZero() bool { return s.Time == 0 && s.Node == 0 }

// counterBits is the room below a millisecond in a Stamp's Time: 65,536 stamps per millisecond
// before the clock runs ahead of the wall.
const counterBits = 16

// clock is a hybrid logical clock: its readings follow the wall clock, never repeat, and are
// pushed past every reading it observes from other members, so a write made after this member
// applied another member's write gets a greater stamp even if the other member's wall clock is
// ahead.
type clock struct {
	last atomic.Uint64 // the latest Time handed out or observed
	now  func() time.Time
}

// next returns a Time greater than every one handed out or observed before.
func (c *clock) next() uint64 {
	wall := uint64(c.now().UnixMilli()) << counterBits
	for {
		last := c.last.Load()
		t := max(wall, last+1)
		if c.last.CompareAndSwap(last, t) {
			return t
		}
	}
}

// observe moves the clock past t, a Time another member handed out.
func (c *clock) observe(t uint64) {
	for {
		last := c.last.Load()
		if t <= last || c.last.CompareAndSwap(last, t) {
			return
		}
	}
}

// wallMillis returns the wall-clock milliseconds in a Time.
func wallMillis(t uint64) int64 { return int64(t >> counterBits) }
