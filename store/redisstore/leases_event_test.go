package redisstore

import (
	"testing"
	"time"

	"github.com/vela-cache/vela/fetchlock"
)

// TestParseEvent reads the lease events luaLeaseEvents publishes, and refuses other payloads
// (which Leases.event takes as bare keys to wake).
func TestParseEvent(t *testing.T) {
	tok := fetchlock.Token{0xab, 1, 2, 3}
	ts := tok.String()
	for _, tc := range []struct {
		payload string
		want    leaseEvent
		ok      bool
	}{
		{"g" + ts + " 4000 w", leaseEvent{kind: eventGrant, token: tok, lease: 4 * time.Second, key: "w"}, true},
		{"g" + ts + " 1 a key with spaces", leaseEvent{kind: eventGrant, token: tok, lease: time.Millisecond, key: "a key with spaces"}, true},
		{"g" + ts + " 5 ", leaseEvent{kind: eventGrant, token: tok, lease: 5 * time.Millisecond, key: ""}, true},
		{"e" + ts + " w", leaseEvent{kind: eventEnd, token: tok, key: "w"}, true},
		{"e" + ts + " ", leaseEvent{kind: eventEnd, token: tok, key: ""}, true},
		{"e" + ts + " g" + ts + " 1 k", leaseEvent{kind: eventEnd, token: tok, key: "g" + ts + " 1 k"}, true},
		{"w", leaseEvent{}, false},                   // a bare key
		{"e" + ts, leaseEvent{}, false},              // no separator
		{"x" + ts + " w", leaseEvent{}, false},       // unknown kind
		{"e" + ts[:31] + "z w", leaseEvent{}, false}, // not hex
		{"g" + ts + " w", leaseEvent{}, false},       // no lease
		{"g" + ts + " -1 w", leaseEvent{}, false},    // negative lease
		{"g" + ts + " 12x w", leaseEvent{}, false},   // not a number
	} {
		got, ok := parseEvent(tc.payload)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("parseEvent(%q) = %+v %v, want %+v %v", tc.payload, got, ok, tc.want, tc.ok)
		}
	}
}
