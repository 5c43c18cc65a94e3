package pubsub

import (
	"strings"

	"github.com/vela-cache/vela/resp"
)

// Events are the classes of keyspace notifications a node publishes, as Redis's
// notify-keyspace-events parameter selects them: where they go (K: __keyspace@0__:<key>, with
// the event as the message; E: __keyevent@0__:<event>, with the key) and which events (g
// generic, $ strings, x expired, e evicted, m key misses; and the classes of types Vela does
// not serve, kept so that the parameter reads back as it was set). The zero value publishes
// nothing.
type Events uint16

// The event classes, as Redis numbers them.
const (
	Keyspace Events = 1 << iota // K
	Keyevent                    // E
	Generic                     // g: del, expire, persist…
	String                      // $: set, incrby, append…
	List                        // l
	Set                         // s
	Hash                        // h
	ZSet                        // z
	Expired                     // x
	Evicted                     // e
	Stream                      // t
	KeyMiss                     // m: a read of a missing key
	Module                      // d
	New                         // n: a key created

	// All is Redis's "A": every class of event but key misses and new keys.
	All = Generic | String | List | Set | Hash | ZSet | Expired | Evicted | Stream | Module
)

// BadEventClass is Redis's complaint about a value ParseEvents refuses.
const BadEventClass = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."

// ParseEvents reads a notify-keyspace-events value, as Redis's keyspaceEventsStringToFlags
// does: any order, repeats allowed. It reports false for a character it does not know.
func ParseEvents(s string) (Events, bool) {
	var e Events
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 'A':
			e |= All
		case 'g':
			e |= Generic
		case '$':
			e |= String
		case 'l':
			e |= List
		case 's':
			e |= Set
		case 'h':
			e |= Hash
		case 'z':
			e |= ZSet
		case 'x':
			e |= Expired
		case 'e':
			e |= Evicted
		case 'K':
			e |= Keyspace
		case 'E':
			e |= Keyevent
		case 't':
			e |= Stream
		case 'm':
			e |= KeyMiss
		case 'd':
			e |= Module
		case 'n':
			e |= New
		default:
			return 0, false
		}
	}
	return e, true
}

// String writes e as Redis's CONFIG GET shows it (keyspaceEventsFlagsToString of Redis 7.0,
// which writes "n" among the class letters, and leaves it out beside "A").
func (e Events) String() string {
	var b strings.Builder
	if e&All == All {
		b.WriteByte('A')
	} else {
		for _, c := range []struct {
			ev Events
			ch byte
		}{{Generic, 'g'}, {String, '$'}, {List, 'l'}, {Set, 's'}, {Hash, 'h'}, {ZSet, 'z'},
			{Expired, 'x'}, {Evicted, 'e'}, {Stream, 't'}, {Module, 'd'}, {New, 'n'}} {
			if e&c.ev != 0 {
				b.WriteByte(c.ch)
			}
		}
	}
	for _, c := range []struct {
		ev Events
		ch byte
	}{{Keyspace, 'K'}, {Keyevent, 'E'}, {KeyMiss, 'm'}} {
		if e&c.ev != 0 {
			b.WriteByte(c.ch)
		}
	}
	return b.String()
}

// Publishes reports whether e publishes events of class c anywhere.
func (e Events) Publishes(c Events) bool {
	return e&c != 0 && e&(Keyspace|Keyevent) != 0
}

// Notify publishes event (of class c) about key, as e selects: on the key's keyspace channel
// and on the event's keyevent channel, to this hub's subscribers. lp is as for Publish.
func (h *Hub) Notify(e Events, c Events, event string, key []byte, lp *resp.Loop) {
	if !e.Publishes(c) {
		return
	}
	if e&Keyspace != 0 {
		channel := make([]byte, 0, len(keyspacePrefix)+len(key))
		channel = append(append(channel, keyspacePrefix...), key...)
		h.Publish(channel, []byte(event), lp)
	}
	if e&Keyevent != 0 {
		channel := make([]byte, 0, len(keyeventPrefix)+len(event))
		channel = append(append(channel, keyeventPrefix...), event...)
		h.Publish(channel, key, lp)
	}
}

// The channels' prefixes: Vela has one database, Redis's 0.
const (
	keyspacePrefix = "__keyspace@0__:"
	keyeventPrefix = "__keyevent@0__:"
)
