// Package pubsub delivers published messages to the connections subscribed to their channel,
// or to a pattern that matches it, as Redis's Pub/Sub does on one server: SUBSCRIBE and
// PUBLISH, PSUBSCRIBE's glob patterns, and Redis 7's shard channels (SSUBSCRIBE and SPUBLISH),
// a namespace of their own.
//
// A Hub holds one node's subscriptions. Delivering a message is queuing it on each subscriber's
// connection (Conn.Push), which writes it between replies; the hub never writes to a socket
// itself, so a slow subscriber holds no publisher back (its connection bounds what it queues).
package pubsub

import (
	"slices"
	"strconv"
	"sync"

	"github.com/vela-cache/vela/glob"
	"github.com/vela-cache/vela/resp"
)

// Conn is a subscriber's connection as the hub sees it (a *resp.Conn).
type Conn interface {
	// PushFrom queues msg, whole RESP, to be written between the connection's replies; it
	// reports false when the connection is too far behind and is being closed. lp is the event
	// loop the publisher runs on, or nil.
	PushFrom(lp *resp.Loop, msg []byte) bool
	// SpeaksRESP3 reports whether the connection takes RESP3 pushes (">"); otherwise messages
	// go as RESP2 arrays ("*").
	SpeaksRESP3() bool
}

// Kind is a namespace of subscriptions.
type Kind uint8

// The kinds of subscription.
const (
	Channel Kind = iota // SUBSCRIBE: one channel by name
	Pattern             // PSUBSCRIBE: every channel whose name matches a glob pattern
	Shard               // SSUBSCRIBE: one shard channel by name (SPUBLISH)
	kinds
)

// Subscriber is one connection's subscriptions. Only the connection's own commands change it
// (one at a time); the hub reads it under its lock.
type Subscriber struct {
	conn Conn
	// names are its subscriptions of each kind in the order they were made, which is the order
	// UNSUBSCRIBE without arguments answers them in; set indexes them.
	names [kinds][]string
	set   [kinds]map[string]struct{}
}

// Count returns how many channels and patterns s is subscribed to: the count SUBSCRIBE,
// UNSUBSCRIBE, PSUBSCRIBE and PUNSUBSCRIBE answer with.
func (s *Subscriber) Count() int { return len(s.names[Channel]) + len(s.names[Pattern]) }

// CountOf returns the count the (un)subscribe commands of kind k answer with: Count for
// channels and patterns, and the shard channels alone for SSUBSCRIBE and SUNSUBSCRIBE.
func (s *Subscriber) CountOf(k Kind) int {
	if k == Shard {
		return len(s.names[Shard])
	}
	return s.Count()
}

// Active reports whether s has any subscription, shard channels included: a RESP2 connection
// is then in the Pub/Sub context, where only the commands that change subscriptions (and PING,
// QUIT, RESET) run.
func (s *Subscriber) Active() bool { return s != nil && s.Count()+len(s.names[Shard]) > 0 }

// Len returns how many subscriptions of kind k s holds.
func (s *Subscriber) Len(k Kind) int { return len(s.names[k]) }

// Hub is a node's subscriptions, by kind and name. Its methods are safe from any goroutine.
type Hub struct {
	// mu guards subs; Publish takes it for reading, so publishers run in parallel.
	mu   sync.RWMutex
	subs [kinds]map[string]*subscribers
}

// subscribers are those of one channel or pattern: a slice, which a publish walks, indexed so
// that one leaves in constant time.
type subscribers struct {
	list []*Subscriber
	pos  map[*Subscriber]int // index in list
}

func (ss *subscribers) add(s *Subscriber) {
	ss.pos[s] = len(ss.list)
	ss.list = append(ss.list, s)
}

func (ss *subscribers) remove(s *Subscriber) {
	i, ok := ss.pos[s]
	if !ok {
		return
	}
	last := len(ss.list) - 1
	ss.list[i] = ss.list[last]
	ss.pos[ss.list[i]] = i
	ss.list[last] = nil
	ss.list = ss.list[:last]
	delete(ss.pos, s)
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	h := &Hub{}
	for k := range h.subs {
		h.subs[k] = make(map[string]*subscribers)
	}
	return h
}

// NewSubscriber returns the subscriptions of conn, none yet.
func (h *Hub) NewSubscriber(conn Conn) *Subscriber { return &Subscriber{conn: conn} }

// Subscribe adds s's subscription of kind k to name, and reports false when s had it already.
func (h *Hub) Subscribe(s *Subscriber, k Kind, name string) bool {
	if _, ok := s.set[k][name]; ok {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if s.set[k] == nil {
		s.set[k] = make(map[string]struct{})
	}
	s.set[k][name] = struct{}{}
	s.names[k] = append(s.names[k], name)
	ss := h.subs[k][name]
	if ss == nil {
		ss = &subscribers{pos: make(map[*Subscriber]int, 1)}
		h.subs[k][name] = ss
	}
	ss.add(s)
	return true
}

// Unsubscribe removes s's subscription of kind k to name, and reports false when s did not
// have it.
func (h *Hub) Unsubscribe(s *Subscriber, k Kind, name string) bool {
	if _, ok := s.set[k][name]; !ok {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropLocked(s, k, name)
	delete(s.set[k], name)
	s.names[k] = slices.DeleteFunc(s.names[k], func(n string) bool { return n == name })
	return true
}

// UnsubscribeAll removes every subscription of kind k that s holds and returns their names,
// oldest first.
func (h *Hub) UnsubscribeAll(s *Subscriber, k Kind) []string {
	names := s.names[k]
	if len(names) == 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, name := range names {
		h.dropLocked(s, k, name)
	}
	s.names[k], s.set[k] = nil, nil
	return names
}

// Drop removes all of s's subscriptions: its connection has closed or been reset.
func (h *Hub) Drop(s *Subscriber) {
	for k := range kinds {
		h.UnsubscribeAll(s, k)
	}
}

func (h *Hub) dropLocked(s *Subscriber, k Kind, name string) {
	if ss := h.subs[k][name]; ss != nil {
		ss.remove(s)
		if len(ss.list) == 0 {
			delete(h.subs[k], name)
		}
	}
}

// Publish delivers msg on channel, to the subscribers of the channel and to those of every
// pattern that matches it. It returns the number of deliveries, as PUBLISH answers: a
// connection subscribed to the channel and to two matching patterns receives it three times.
//
// lp is the event loop the publishing command runs on, or nil: a subscriber on the same loop
// then gets the message with the loop's replies, without a wake-up.
func (h *Hub) Publish(channel, msg []byte, lp *resp.Loop) int {
	var m message
	n := 0
	h.mu.RLock()
	defer h.mu.RUnlock()
	if ss := h.subs[Channel][string(channel)]; ss != nil {
		for _, s := range ss.list {
			s.conn.PushFrom(lp, m.encode(s.conn.SpeaksRESP3(), "message", nil, channel, msg))
		}
		n += len(ss.list)
	}
	for pattern, ss := range h.subs[Pattern] {
		if !glob.Match([]byte(pattern), channel) {
			continue
		}
		var pm message // each pattern its own message: the pattern is in it
		for _, s := range ss.list {
			s.conn.PushFrom(lp, pm.encode(s.conn.SpeaksRESP3(), "pmessage", []byte(pattern), channel, msg))
		}
		n += len(ss.list)
	}
	return n
}

// PublishShard delivers msg on the shard channel channel to its subscribers, as SPUBLISH
// does, and returns their number.
func (h *Hub) PublishShard(channel, msg []byte, lp *resp.Loop) int {
	var m message
	h.mu.RLock()
	defer h.mu.RUnlock()
	ss := h.subs[Shard][string(channel)]
	if ss == nil {
		return 0
	}
	for _, s := range ss.list {
		s.conn.PushFrom(lp, m.encode(s.conn.SpeaksRESP3(), "smessage", nil, channel, msg))
	}
	return len(ss.list)
}

// Channels returns the channels (k: Channel) or shard channels (k: Shard) that have
// subscribers, those matching pattern only when pattern is not nil, as PUBSUB CHANNELS and
// PUBSUB SHARDCHANNELS answer (sorted).
func (h *Hub) Channels(k Kind, pattern []byte) []string {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []string
	for name := range h.subs[k] {
		if pattern == nil || glob.Match(pattern, []byte(name)) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// NumSub returns the number of subscribers of channel (k: Channel, not counting pattern
// subscriptions) or of a shard channel (k: Shard), as PUBSUB NUMSUB and SHARDNUMSUB answer.
func (h *Hub) NumSub(k Kind, channel []byte) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if ss := h.subs[k][string(channel)]; ss != nil {
		return len(ss.list)
	}
	return 0
}

// NumPat returns the number of patterns subscribed to, by any connection: PUBSUB NUMPAT, and
// INFO's pubsub_patterns.
func (h *Hub) NumPat() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs[Pattern])
}

// NumChannels returns the number of channels (k: Channel) or shard channels (k: Shard) with
// subscribers: INFO's pubsub_channels and pubsubshard_channels.
func (h *Hub) NumChannels(k Kind) int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs[k])
}

// Message returns a message as a subscriber receives it, in RESP3 (a push) or RESP2 (an
// array): "message", or "pmessage" and the pattern when pattern is not nil, then the channel
// and the payload.
func Message(resp3 bool, pattern, channel, payload []byte) []byte {
	var m message
	if pattern != nil {
		return m.encode(resp3, "pmessage", pattern, channel, payload)
	}
	return m.encode(resp3, "message", nil, channel, payload)
}

// ShardMessage returns a message to a shard channel as a subscriber receives it: "smessage",
// the channel and the payload.
func ShardMessage(resp3 bool, channel, payload []byte) []byte {
	var m message
	return m.encode(resp3, "smessage", nil, channel, payload)
}

// message is one published message, encoded once per protocol on first use.
type message struct{ resp2, resp3 []byte }

// encode returns the message as RESP3 (a push) or RESP2 (an array): its kind, the pattern that
// matched (pmessage only), the channel and the payload.
func (m *message) encode(resp3 bool, kind string, pattern, channel, payload []byte) []byte {
	dst := &m.resp2
	if resp3 {
		dst = &m.resp3
	}
	if *dst != nil {
		return *dst
	}
	n := 3
	if pattern != nil {
		n = 4
	}
	b := make([]byte, 0, 32+len(kind)+len(pattern)+len(channel)+len(payload))
	if resp3 {
		b = append(b, '>')
	} else {
		b = append(b, '*')
	}
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, '\r', '\n')
	b = appendBulk(b, []byte(kind))
	if pattern != nil {
		b = appendBulk(b, pattern)
	}
	b = appendBulk(b, channel)
	b = appendBulk(b, payload)
	*dst = b
	return b
}

func appendBulk(b, s []byte) []byte {
	b = append(b, '$')
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, '\r', '\n')
	b = append(b, s...)
	return append(b, '\r', '\n')
}
