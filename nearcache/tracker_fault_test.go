package nearcache

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/resp"
)

// scriptedRedis is a stand-in for Redis that answers the tracker's set-up and PINGs and hands
// each tracking connection to the test, which writes raw frames to it: how frames are cut into
// TCP segments and when they arrive cannot be arranged with a real Redis.
func scriptedRedis(t *testing.T) (addr string, conns chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	conns = make(chan net.Conn, 4)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = nc.Close() })
			go func() {
				br := bufio.NewReader(nc)
				for range 3 { // HELLO 3, CLIENT SETNAME, CLIENT TRACKING ON BCAST
					if _, err := resp.ReadReply(br); err != nil {
						return
					}
				}
				_, _ = nc.Write([]byte("%1\r\n+server\r\n+redis\r\n+OK\r\n+OK\r\n"))
				conns <- nc
				for {
					if _, err := resp.ReadReply(br); err != nil {
						return
					}
					_, _ = nc.Write([]byte("+PONG\r\n"))
				}
			}()
		}
	}()
	return ln.Addr().String(), conns
}

func trackScripted(t *testing.T, ping time.Duration) (*Cache, net.Conn) {
	t.Helper()
	addr, conns := scriptedRedis(t)
	c, err := New(100000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	tr := Track(c, TrackerConfig{
		Masters: func(context.Context) ([]string, error) { return []string{addr}, nil },
		Dial:    func(a string) (net.Conn, error) { return net.Dial("tcp", a) },
		Timeout: time.Second,
		Ping:    ping,
	})
	t.Cleanup(tr.Close)
	nc := <-conns
	redistest.WaitFor(t, "the channel to track", c.Live)
	return c, nc
}

// A push whose second half arrives after the read deadline must not be read from its middle (the
// rest would parse as something else and its keys go unseen): the channel starts over and the
// cache is emptied.
func TestTrackerPushCutByDeadline(t *testing.T) {
	push := []byte(">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n")
	for _, cut := range []int{len(">2\r\n"), len(">2\r\n$10\r\ninvalidate\r\n"), len(">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nk")} {
		t.Run(fmt.Sprint("cut at ", cut), func(t *testing.T) {
			c, nc := trackScripted(t, 100*time.Millisecond)
			fill(c, "key", "v1", 0)
			_, _ = nc.Write(push[:cut])
			time.Sleep(150 * time.Millisecond) // past the deadline
			_, _ = nc.Write(push[cut:])
			time.Sleep(100 * time.Millisecond)
			if v, ok := c.Get([]byte("key")); ok {
				t.Fatalf("the invalidation was lost: %q still served", v)
			}
		})
	}
}

// A channel that keeps talking, its read buffer never empty, is not taken for a dead one.
func TestTrackerBusyChannelStaysUp(t *testing.T) {
	c, nc := trackScripted(t, 100*time.Millisecond)
	frame := func(i int) []byte {
		k := fmt.Sprintf("k%04d", i)
		return fmt.Appendf(nil, ">2\r\n$10\r\ninvalidate\r\n*1\r\n$%d\r\n%s\r\n", len(k), k)
	}
	const n = 400
	for i := range n {
		fill(c, fmt.Sprintf("k%04d", i), "v", 0)
	}
	flushes := c.Flushes()
	var rest []byte
	for i := range n { // ~0.8 s, leaving part of a frame behind every time
		rest = append(rest, frame(i)...)
		_, _ = nc.Write(rest[:len(rest)-5])
		rest = append([]byte(nil), rest[len(rest)-5:]...)
		time.Sleep(2 * time.Millisecond)
	}
	_, _ = nc.Write(rest)
	redistest.WaitFor(t, "every push to be applied", func() bool {
		_, ok := c.Get([]byte(fmt.Sprintf("k%04d", n-1)))
		return !ok
	})
	if c.Flushes() != flushes {
		t.Fatal("the channel was dropped although it never went quiet")
	}
	for i := range n {
		if _, ok := c.Get([]byte(fmt.Sprintf("k%04d", i))); ok {
			t.Fatalf("k%04d still served", i)
		}
	}
}
