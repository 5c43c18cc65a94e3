// Package slowlog keeps the commands that ran longer than a threshold, newest first, as Redis's
// SLOWLOG does: each entry has an id, the time it was logged, how long the command ran, its
// arguments (shortened as Redis shortens them) and the client that sent it.
//
// Deciding whether a command is slow reads one atomic value; only a slow command takes the log's
// lock, so the log costs the commands that are not slow nothing else.
package slowlog

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Redis's limits on what an entry keeps of a command (SLOWLOG_ENTRY_MAX_ARGC and
// SLOWLOG_ENTRY_MAX_STRING).
const (
	maxArgs   = 32
	maxString = 128
)

// Entry is one logged command.
type Entry struct {
	ID       int64
	Time     int64 // Unix seconds when it was logged
	Micros   int64 // how long it ran
	Args     [][]byte
	Client   string // ip:port, or "?:0" for a command a script called
	ClientID string // the client's name, "" for none
}

// Log is a bounded list of slow commands. Its zero value logs nothing; use New.
type Log struct {
	threshold atomic.Int64 // microseconds; negative: off
	mu        sync.Mutex
	max       int
	ring      []Entry // a circular buffer of at most max entries; head is the oldest
	head, n   int
	nextID    int64
}

// New returns a log of commands that ran for at least threshold microseconds (0: every
// command; negative: none), keeping the newest max.
func New(threshold int64, max int) *Log {
	l := &Log{max: max}
	l.threshold.Store(threshold)
	if threshold < 0 {
		l.threshold.Store(-1)
	}
	return l
}

// On reports whether the log takes commands at all: callers time commands only then.
func (l *Log) On() bool { return l != nil && l.threshold.Load() >= 0 }

// Slow reports whether a command that ran for d belongs in the log.
func (l *Log) Slow(d time.Duration) bool {
	t := l.threshold.Load()
	return t >= 0 && d.Microseconds() >= t
}

// Add logs a command that ran for d, sent by the client at addr named name. It keeps copies of
// at most 32 arguments (the last of them then says how many more there were) and of at most 128
// bytes of each (followed by how many more there were), as Redis does. redact, if not nil, says
// which arguments are replaced by "(redacted)" (AUTH's password).
func (l *Log) Add(args [][]byte, d time.Duration, addr, name string, redact func(i int) bool) {
	kept := min(len(args), maxArgs)
	e := Entry{Time: time.Now().Unix(), Micros: d.Microseconds(), Args: make([][]byte, kept),
		Client: addr, ClientID: name}
	for i := range kept {
		a := args[i]
		switch {
		case kept < len(args) && i == kept-1:
			e.Args[i] = []byte("... (" + strconv.Itoa(len(args)-kept+1) + " more arguments)")
		case redact != nil && redact(i):
			e.Args[i] = []byte("(redacted)")
		case len(a) > maxString:
			more := "... (" + strconv.Itoa(len(a)-maxString) + " more bytes)"
			e.Args[i] = append(append(make([]byte, 0, maxString+len(more)), a[:maxString]...), more...)
		default:
			e.Args[i] = append([]byte(nil), a...)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	e.ID = l.nextID
	l.nextID++
	if l.max <= 0 {
		return
	}
	if len(l.ring) < l.max {
		l.ring = append(l.ring, Entry{})
	}
	if l.n < l.max {
		l.ring[(l.head+l.n)%len(l.ring)] = e
		l.n++
		return
	}
	l.ring[l.head] = e // the oldest makes room
	l.head = (l.head + 1) % len(l.ring)
}

// Get returns the newest count entries, newest first (count < 0: all of them).
func (l *Log) Get(count int) []Entry {
	l.mu.Lock()
	defer l.mu.Unlock()
	if count < 0 || count > l.n {
		count = l.n
	}
	out := make([]Entry, count)
	for i := range count {
		out[i] = l.ring[(l.head+l.n-1-i)%len(l.ring)]
	}
	return out
}

// Len returns the number of entries kept.
func (l *Log) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// SetThreshold changes the threshold (CONFIG SET slowlog-log-slower-than): microseconds, 0 for
// every command, negative for none.
func (l *Log) SetThreshold(threshold int64) { l.threshold.Store(max(threshold, -1)) }

// SetMax changes how many entries are kept (CONFIG SET slowlog-max-len), dropping the oldest
// beyond it.
func (l *Log) SetMax(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := min(l.n, max(n, 0))
	ring := make([]Entry, keep)
	for i := range keep {
		ring[i] = l.ring[(l.head+l.n-keep+i)%len(l.ring)]
	}
	l.ring, l.head, l.n, l.max = ring, 0, keep, n
}

// Reset drops every entry. Ids keep counting from where they were, as in Redis.
func (l *Log) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring, l.head, l.n = nil, 0, 0
}
