package e2e_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vela-cache/vela/internal/redistest"
	"github.com/vela-cache/vela/internal/respclient"
	"github.com/vela-cache/vela/internal/testnode"
)

// replySession is sent pipelined, then PING "end": what a client reads back, up to that PONG.
var replySession = [][]any{
	{"CLIENT", "REPLY", "OFF"}, {"SET", "a", "1"}, {"GET", "a"}, {"INCR", "x"}, {"GET", "nosuchkey"},
	{"CLIENT", "REPLY", "ON"}, {"GET", "a"}, {"CLIENT", "REPLY", "SKIP"}, {"SET", "b", "2"}, {"GET", "b"},
	{"CLIENT", "REPLY", "SKIP"}, {"CLIENT", "REPLY", "SKIP"}, {"GET", "a"}, {"GET", "b"},
	{"CLIENT", "REPLY", "OFF"}, {"CLIENT", "REPLY", "SKIP"}, {"GET", "a"}, {"CLIENT", "REPLY", "ON"},
	{"GET", "x"}, {"CLIENT", "REPLY", "MAYBE"}, {"CLIENT", "REPLY"}, {"CLIENT", "REPLY", "OFF"},
	{"RESET"}, {"GET", "a"}, {"MGET", "a", "b", "x"}, {"CLIENT", "REPLY", "SKIP"}, {"MGET", "a", "b"},
	{"CLIENT", "REPLY", "OFF"}, {"SET", "c", "3"}, {"CLIENT", "REPLY", "ON"}, {"GET", "c"},
}

// readReplies sends the session pipelined and returns the replies up to PING's "end".
func readReplies(t *testing.T, addr string) []string {
	t.Helper()
	c := respclient.Dial(t, addr)
	for _, args := range replySession {
		c.Send(args...)
	}
	c.Send("PING", "end")
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	var out []string
	for {
		v, _, err := c.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", out, err)
		}
		out = append(out, v.String())
		if v.Text() == "end" || len(out) > 100 {
			return out
		}
	}
}

// TestClientReplyLikeRedis: CLIENT REPLY OFF, ON and SKIP leave out the replies Redis leaves out
// (OFF and SKIP answer nothing themselves; SKIP under OFF is ignored; RESET ends OFF), on event
// loops and goroutines, and through a cluster member whose replies come from other members.
// Inside MULTI Vela refuses it (Redis writes a malformed EXEC reply).
func TestClientReplyLikeRedis(t *testing.T) {
	want := readReplies(t, redistest.Start(t).Addr)
	check := func(t *testing.T, addr string) {
		got := readReplies(t, addr)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("replies:\n redis: %v\n  vela: %v", want, got)
		}
	}
	for _, loops := range []int{1, 0} {
		t.Run(fmt.Sprintf("event_loops=%d", loops), func(t *testing.T) {
			cfg := testnode.Config()
			cfg.EventLoops = loops
			check(t, testnode.Start(t, cfg).Addr())
		})
	}
	t.Run("cluster", func(t *testing.T) {
		nodes := testnode.StartCluster(t, 3, nil)
		testnode.WaitConverged(t, 10*time.Second, nodes...)
		check(t, nodes[1].Addr())
	})
	c := respclient.Dial(t, testnode.StartDefault(t).Addr())
	c.Do("MULTI").OK()
	if r := c.Do("CLIENT", "REPLY", "OFF").Value; r.Text() != "ERR Command not allowed inside a transaction" {
		t.Errorf("CLIENT REPLY in MULTI = %v", r)
	}
}
