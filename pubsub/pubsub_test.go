package pubsub

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/vela-cache/vela/resp"
)

// conn records what a subscriber is pushed.
type conn struct {
	resp3 bool
	mu    sync.Mutex
	got   []string
}

func (c *conn) PushFrom(_ *resp.Loop, msg []byte) bool {
	c.mu.Lock()
	c.got = append(c.got, string(msg))
	c.mu.Unlock()
	return true
}

func (c *conn) SpeaksRESP3() bool { return c.resp3 }

func (c *conn) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	got := c.got
	c.got = nil
	return got
}

func TestPublishReachesChannelsAndPatterns(t *testing.T) {
	h := NewHub()
	c2, c3 := &conn{}, &conn{resp3: true}
	s2, s3 := h.NewSubscriber(c2), h.NewSubscriber(c3)
	h.Subscribe(s2, Channel, "news")
	h.Subscribe(s2, Pattern, "n*")
	h.Subscribe(s3, Pattern, "*s")
	if h.Subscribe(s2, Channel, "news") {
		t.Error("a second SUBSCRIBE to the same channel added it again")
	}
	if n := h.Publish([]byte("news"), []byte("hi"), nil); n != 3 {
		t.Errorf("Publish reached %d, want 3 (a channel and a pattern on one, a pattern on the other)", n)
	}
	got := c2.take()
	slices.Sort(got)
	want := []string{
		"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
		"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$2\r\nhi\r\n",
	}
	if !slices.Equal(got, want) {
		t.Errorf("RESP2 subscriber got %q, want %q", got, want)
	}
	if got := c3.take(); !slices.Equal(got, []string{">4\r\n$8\r\npmessage\r\n$2\r\n*s\r\n$4\r\nnews\r\n$2\r\nhi\r\n"}) {
		t.Errorf("RESP3 subscriber got %q", got)
	}
	if n := h.Publish([]byte("other"), []byte("x"), nil); n != 0 {
		t.Errorf("a channel nobody listens to reached %d", n)
	}
	if s2.Count() != 2 || s3.Count() != 1 || !s2.Active() {
		t.Errorf("counts: %d and %d", s2.Count(), s3.Count())
	}
}

func TestUnsubscribeAndIntrospection(t *testing.T) {
	h := NewHub()
	a, b := h.NewSubscriber(&conn{}), h.NewSubscriber(&conn{})
	for _, name := range []string{"x", "y", "z"} {
		h.Subscribe(a, Channel, name)
	}
	h.Subscribe(b, Channel, "y")
	h.Subscribe(b, Pattern, "y*")
	if got := h.Channels(Channel, nil); !slices.Equal(got, []string{"x", "y", "z"}) {
		t.Errorf("Channels: %q", got)
	}
	if got := h.Channels(Channel, []byte("[xy]")); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("Channels [xy]: %q", got)
	}
	if h.NumSub(Channel, []byte("y")) != 2 || h.NumPat() != 1 || h.NumChannels(Channel) != 3 {
		t.Errorf("NumSub y %d, NumPat %d, NumChannels %d", h.NumSub(Channel, []byte("y")), h.NumPat(), h.NumChannels(Channel))
	}
	if !h.Unsubscribe(a, Channel, "y") || h.Unsubscribe(a, Channel, "y") {
		t.Error("Unsubscribe should report true once, then false")
	}
	if got := h.UnsubscribeAll(a, Channel); !slices.Equal(got, []string{"x", "z"}) {
		t.Errorf("UnsubscribeAll answered %q, want the order of subscription", got)
	}
	if a.Active() || h.NumChannels(Channel) != 1 {
		t.Errorf("after UnsubscribeAll: active %v, %d channels", a.Active(), h.NumChannels(Channel))
	}
	h.Drop(b)
	if h.NumChannels(Channel) != 0 || h.NumPat() != 0 || b.Active() {
		t.Error("Drop left subscriptions behind")
	}
	var none *Subscriber
	if none.Active() {
		t.Error("a nil subscriber is active")
	}
}

// TestConcurrentPublishAndSubscribe runs publishers beside connections that subscribe and drop
// (run it with -race): every message published while a subscription is held reaches it.
func TestConcurrentPublishAndSubscribe(t *testing.T) {
	h := NewHub()
	steady := &conn{}
	s := h.NewSubscriber(steady)
	h.Subscribe(s, Channel, "ch")
	var wg sync.WaitGroup
	const publishers, each = 4, 500
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if h.Publish([]byte("ch"), []byte(fmt.Sprint(p, i)), nil) < 1 {
					t.Error("a publish missed the steady subscriber")
					return
				}
			}
		}()
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				sub := h.NewSubscriber(&conn{})
				h.Subscribe(sub, Channel, "ch")
				h.Subscribe(sub, Pattern, "c*")
				h.Drop(sub)
			}
		}()
	}
	wg.Wait()
	if got := len(steady.take()); got != publishers*each {
		t.Errorf("the steady subscriber got %d messages, want %d", got, publishers*each)
	}
	if h.NumSub(Channel, []byte("ch")) != 1 || h.NumPat() != 0 {
		t.Errorf("left behind: %d subscribers, %d patterns", h.NumSub(Channel, []byte("ch")), h.NumPat())
	}
}

// discard is a subscriber's connection that keeps nothing.
type discard struct{}

func (discard) PushFrom(*resp.Loop, []byte) bool { return true }
func (discard) SpeaksRESP3() bool                { return false }

// BenchmarkPublish measures one PUBLISH delivered to a number of subscribers of the channel,
// with 100 patterns subscribed that do not match it (each is tried).
func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{1, 100} {
		b.Run(fmt.Sprintf("subscribers=%d", subs), func(b *testing.B) {
			h := NewHub()
			for range subs {
				h.Subscribe(h.NewSubscriber(discard{}), Channel, "orders")
			}
			for i := range 100 {
				h.Subscribe(h.NewSubscriber(discard{}), Pattern, fmt.Sprintf("audit.%d.*", i))
			}
			channel, msg := []byte("orders"), []byte("a message of some 32 bytes......")
			b.ReportAllocs()
			for b.Loop() {
				h.Publish(channel, msg, nil)
			}
		})
	}
}

// Shard channels are a namespace of their own: SPUBLISH reaches their subscribers only, as
// "smessage", PUBLISH never does, and their count is apart from the channels' and patterns'.
func TestShardChannels(t *testing.T) {
	h := NewHub()
	c := &conn{}
	s := h.NewSubscriber(c)
	h.Subscribe(s, Shard, "x")
	h.Subscribe(s, Pattern, "*")
	if s.Count() != 1 || s.CountOf(Shard) != 1 || s.CountOf(Pattern) != 1 || !s.Active() {
		t.Errorf("counts: channels and patterns %d, shard %d", s.Count(), s.CountOf(Shard))
	}
	if n := h.PublishShard([]byte("x"), []byte("hi"), nil); n != 1 {
		t.Errorf("PublishShard reached %d, want 1 (the pattern does not match shard channels)", n)
	}
	if got := c.take(); !slices.Equal(got, []string{"*3\r\n$8\r\nsmessage\r\n$1\r\nx\r\n$2\r\nhi\r\n"}) {
		t.Errorf("shard subscriber got %q", got)
	}
	if n := h.Publish([]byte("x"), []byte("hi"), nil); n != 1 { // the pattern only
		t.Errorf("PUBLISH on x reached %d, want 1", n)
	}
	c.take()
	if got := h.Channels(Shard, nil); !slices.Equal(got, []string{"x"}) || h.NumSub(Shard, []byte("x")) != 1 ||
		h.NumSub(Channel, []byte("x")) != 0 || h.NumChannels(Shard) != 1 || h.NumChannels(Channel) != 0 {
		t.Errorf("introspection: shard channels %q", got)
	}
	h.UnsubscribeAll(s, Pattern)
	if !s.Active() {
		t.Error("a subscriber with a shard channel left is not active")
	}
	h.Drop(s)
	if s.Active() || h.NumChannels(Shard) != 0 {
		t.Error("Drop left a shard subscription")
	}
}
