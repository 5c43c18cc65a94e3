package latency

import (
	"testing"
	"time"
)

// clocked is a monitor whose clock the test moves.
func clocked(threshold int64) (*Monitor, *time.Time) {
	m := New(threshold)
	now := time.Unix(1_800_000_000, 0)
	m.now = func() time.Time { return now }
	return m, &now
}

// TestSpikes: below the threshold nothing is kept; a second keeps its worst sample; the worst
// ever survives newer, smaller ones; a threshold of 0 keeps nothing.
func TestSpikes(t *testing.T) {
	m, now := clocked(10)
	m.Note("command", 9*time.Millisecond)
	if len(m.Latest()) != 0 {
		t.Fatal("a 9 ms command was kept under a 10 ms threshold")
	}
	m.Note("command", 12*time.Millisecond)
	m.Note("command", 30*time.Millisecond) // the same second: its worst
	m.Note("command", 20*time.Millisecond)
	*now = now.Add(time.Second)
	m.Note("command", 11*time.Millisecond)
	m.Note("expire-cycle", 15*time.Millisecond)
	got := m.Latest()
	if len(got) != 2 || got[0].Event != "command" || got[0].Last.Latency != 11 || got[0].Max != 30 ||
		got[0].Last.Time != now.Unix() || got[1].Event != "expire-cycle" {
		t.Fatalf("Latest = %+v", got)
	}
	h := m.History("command")
	if len(h) != 2 || h[0].Latency != 30 || h[1].Latency != 11 || h[1].Time != h[0].Time+1 {
		t.Errorf("History = %+v", h)
	}
	m.SetThreshold(0)
	m.Note("fast-command", time.Hour)
	if m.On() || len(m.History("fast-command")) != 0 {
		t.Error("threshold 0 still records")
	}
}

// TestHistoryWraps: an event keeps its newest 160 seconds, oldest first.
func TestHistoryWraps(t *testing.T) {
	m, now := clocked(1)
	for i := range 200 {
		m.Note("command", time.Duration(i+1)*time.Millisecond)
		*now = now.Add(time.Second)
	}
	h := m.History("command")
	if len(h) != historyLen || h[0].Latency != 41 || h[historyLen-1].Latency != 200 {
		t.Errorf("kept %d, from %d to %d ms; want 160, from 41 to 200", len(h), h[0].Latency, h[len(h)-1].Latency)
	}
}

// TestReset: naming events resets those that exist, each counted once; no name resets all.
func TestReset(t *testing.T) {
	m, _ := clocked(1)
	for _, e := range []string{"a", "b", "c"} {
		m.Note(e, time.Second)
	}
	if n := m.Reset("a", "a", "nosuch"); n != 1 {
		t.Errorf("Reset(a, a, nosuch) = %d, want 1", n)
	}
	if n := m.Reset(); n != 2 || len(m.Latest()) != 0 {
		t.Errorf("Reset() = %d, want 2, leaving %v", n, m.Latest())
	}
}
