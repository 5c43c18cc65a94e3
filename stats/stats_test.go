package stats

import "testing"

// TestResetKeepsLoad: Reset makes Since count from zero while Load, which Prometheus reads, goes
// on from where it was; a nil Stats resets and snapshots without failing.
func TestResetKeepsLoad(t *testing.T) {
	var s Stats
	s.Hits.Add(5)
	s.Commands.Add(3)
	s.Reset()
	s.Hits.Inc()
	if s.Hits.Load() != 6 || s.Hits.Since() != 1 || s.Commands.Load() != 3 || s.Commands.Since() != 0 {
		t.Errorf("hits %d/%d, commands %d/%d; want 6/1, 3/0", s.Hits.Load(), s.Hits.Since(),
			s.Commands.Load(), s.Commands.Since())
	}
	if all, since := s.Snapshot()[0], s.SnapshotSince()[0]; all.Name != "hits" || all.Value != 6 || since.Value != 1 {
		t.Errorf("snapshots: %+v, %+v", all, since)
	}
	var none *Stats
	none.Reset()
	if len(none.SnapshotSince()) != 13 {
		t.Error("a nil Stats has no fields")
	}
}
