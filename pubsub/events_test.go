package pubsub

import "testing"

// TestEventsRoundTrip: notify-keyspace-events values read back as Redis 7.0.15's CONFIG GET
// shows them (captured from it), and bad characters are refused.
func TestEventsRoundTrip(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "KEA": "AKE", "AKE": "AKE", "g$lshzxetd": "A", "Ex": "xE", "Kx": "xK", "KEAm": "AKEm",
		"KEAn": "AKE", "KEAmn": "AKEm", "gK": "gK", "KEg$xe": "g$xeKE", "KEAz": "AKE", "$": "$",
		"KEn": "nKE", "ngK": "gnK",
	} {
		ev, ok := ParseEvents(in)
		if !ok || ev.String() != want {
			t.Errorf("%q: %q (%v), want %q", in, ev.String(), ok, want)
		}
	}
	for _, bad := range []string{"q", "KEAq", " "} {
		if _, ok := ParseEvents(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
	ev, _ := ParseEvents("Kx")
	if !ev.Publishes(Expired) || ev.Publishes(Generic) {
		t.Error("Kx should publish expired events only")
	}
	if ev, _ := ParseEvents("x"); ev.Publishes(Expired) {
		t.Error("x without K or E publishes nothing, as in Redis")
	}
}

// FuzzParseEvents: any value ParseEvents takes reads back, through String, as the same classes
// (but "n" beside "A", which Redis 7.0's String leaves out, as Vela's does), and String's
// output is accepted in turn.
func FuzzParseEvents(f *testing.F) {
	for _, s := range []string{"", "KEA", "g$lshzxetd", "Exm", "KEAmn", "q", "AAAA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ev, ok := ParseEvents(s)
		if !ok {
			return
		}
		want := ev
		if ev&All == All {
			want &^= New
		}
		again, ok := ParseEvents(ev.String())
		if !ok || again != want {
			t.Fatalf("%q → %v → %q → %v", s, ev, ev.String(), again)
		}
	})
}
